//! Pure conversions between the wire's forms and the tree's: open checks,
//! name checks, iounit, 9P2000.u device specs, Rgetattr and Tsetattr.

use ninep::{dm, l, Rgetattr, Tsetattr};

use crate::error::{Error, Result};
use crate::session::Version;
use crate::tree::*;

/// The fid's open mode must suit the file: no writing directories, and the
/// permission bits must allow the access at all (synthetic files say 0444
/// to mean "read only").
pub(crate) fn check_open(attr: &Attr, mode: OpenMode) -> Result<()> {
    if attr.is_dir() && (mode.write || mode.truncate) {
        return Err(Error::is_dir());
    }
    if mode.write && attr.mode & 0o222 == 0 {
        return Err(Error::perm());
    }
    if mode.read && attr.mode & 0o444 == 0 {
        return Err(Error::perm());
    }
    Ok(())
}

/// A name from the wire must be one path element.
pub(crate) fn checked_name(name: &str) -> Result<&str> {
    if name.is_empty() || name == "." || name == ".." || name.contains('/') || name.contains('\0') {
        return Err(Error::invalid_arg(format!("bad file name '{name}'")));
    }
    Ok(name)
}

pub(crate) fn clamp_iounit(iounit: u32, v: Version) -> u32 {
    match iounit {
        0 => v.max_io(),
        n => n.min(v.max_io()),
    }
}

/// 9P2000.u device creation: perm says the kind, extension `b 1 2` / `c 1 2`.
pub(crate) fn special_from_dotu(perm: u32, ext: &str) -> Result<CreateKind> {
    let bits = perm & 0o7777;
    if perm & dm::NAMEDPIPE != 0 {
        return Ok(CreateKind::Special {
            mode: mode::S_IFIFO | bits,
            major: 0,
            minor: 0,
        });
    }
    if perm & dm::SOCKET != 0 {
        return Ok(CreateKind::Special {
            mode: mode::S_IFSOCK | bits,
            major: 0,
            minor: 0,
        });
    }
    let bad = || Error::invalid_arg(format!("bad device extension '{ext}'"));
    let mut it = ext.split_whitespace();
    let kind = match it.next() {
        Some("b") => mode::S_IFBLK,
        Some("c") => mode::S_IFCHR,
        _ => return Err(bad()),
    };
    let major = it.next().and_then(|s| s.parse().ok()).ok_or_else(bad)?;
    let minor = it.next().and_then(|s| s.parse().ok()).ok_or_else(bad)?;
    Ok(CreateKind::Special {
        mode: kind | bits,
        major,
        minor,
    })
}

pub(crate) fn getattr_reply(a: &Attr) -> Rgetattr {
    let (atime_sec, atime_nsec) = unix_time(a.atime);
    let (mtime_sec, mtime_nsec) = unix_time(a.mtime);
    let (ctime_sec, ctime_nsec) = unix_time(a.ctime);
    Rgetattr {
        valid: l::getattr::BASIC,
        qid: a.qid,
        mode: a.mode,
        uid: a.uid,
        gid: a.gid,
        nlink: a.nlink,
        rdev: a.rdev,
        size: a.size,
        blksize: a.blksize,
        blocks: a.blocks,
        atime_sec,
        atime_nsec,
        mtime_sec,
        mtime_nsec,
        ctime_sec,
        ctime_nsec,
        btime_sec: 0,
        btime_nsec: 0,
        gen: 0,
        data_version: 0,
    }
}

pub(crate) fn setattr_from_l(m: &Tsetattr) -> Result<SetAttr> {
    use l::setattr as sa;
    let has = |bit| m.valid & bit != 0;
    let time = |set_bit, explicit_bit, sec: u64, nsec: u64| {
        if !has(set_bit) {
            Ok(None)
        } else if has(explicit_bit) {
            ninep::wire_time(sec, nsec)
                .map(|t| Some(TimeSet::At(t)))
                .ok_or_else(|| {
                    Error::invalid_arg(format!("setattr: time {sec}.{nsec} is out of range"))
                })
        } else {
            Ok(Some(TimeSet::Now))
        }
    };
    Ok(SetAttr {
        mode: has(sa::MODE).then_some(m.mode & 0o7777),
        uid: has(sa::UID).then_some(m.uid),
        gid: has(sa::GID).then_some(m.gid),
        size: has(sa::SIZE).then_some(m.size),
        atime: time(sa::ATIME, sa::ATIME_SET, m.atime_sec, m.atime_nsec)?,
        mtime: time(sa::MTIME, sa::MTIME_SET, m.mtime_sec, m.mtime_nsec)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn names_must_be_one_element() {
        for bad in ["", ".", "..", "a/b", "a\0b"] {
            assert!(checked_name(bad).is_err(), "{bad:?}");
        }
        assert_eq!(checked_name("a.b"), Ok("a.b"));
    }

    #[test]
    fn dotu_device_specs() {
        assert_eq!(
            special_from_dotu(dm::DEVICE | 0o600, "c 1 3"),
            Ok(CreateKind::Special {
                mode: mode::S_IFCHR | 0o600,
                major: 1,
                minor: 3
            })
        );
        assert!(special_from_dotu(dm::DEVICE, "x 1 3").is_err());
        assert!(special_from_dotu(dm::DEVICE, "b 1").is_err());
        assert!(matches!(
            special_from_dotu(dm::NAMEDPIPE | 0o644, ""),
            Ok(CreateKind::Special { mode, .. }) if mode == mode::S_IFIFO | 0o644
        ));
    }

    #[test]
    fn setattr_times_follow_the_set_bits() {
        use l::setattr as sa;
        let m = Tsetattr {
            valid: sa::ATIME | sa::MTIME | sa::MTIME_SET | sa::SIZE,
            mtime_sec: 5,
            mtime_nsec: 7,
            size: 9,
            ..Default::default()
        };
        let s = setattr_from_l(&m).expect("in range");
        assert_eq!(s.atime, Some(TimeSet::Now));
        assert_eq!(s.mtime, Some(TimeSet::At(UNIX_EPOCH + Duration::new(5, 7))));
        assert_eq!(s.size, Some(9));
        assert_eq!(s.mode, None);
        // A time from the wire that does not fit is an error, not a panic.
        let far = Tsetattr {
            valid: sa::MTIME | sa::MTIME_SET,
            mtime_sec: u64::MAX,
            ..Default::default()
        };
        assert!(setattr_from_l(&far).is_err());
    }

    #[test]
    fn open_checks() {
        let q = ninep::Qid {
            ty: ninep::qt::DIR,
            version: 0,
            path: 1,
        };
        let dir = Attr::synthetic(q, 0o755);
        let w = OpenMode {
            write: true,
            ..OpenMode::default()
        };
        assert_eq!(check_open(&dir, w), Err(Error::is_dir()));
        let ro = Attr::synthetic(ninep::Qid::default(), 0o444);
        assert_eq!(check_open(&ro, w), Err(Error::perm()));
        assert_eq!(check_open(&ro, OpenMode::READ), Ok(()));
    }
}

//! 9P2000.L attributes and errors in the kernel's terms.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::{Errno, FileAttr, FileType, INodeNo, TimeOrNow};
use ninep::{Qid, Rgetattr};
use ninep_client::{Error, SetTime};

const S_IFMT: u32 = 0o170000;

/// The kernel's attributes for inode `ino` from an Rgetattr.
pub(crate) fn file_attr(ino: u64, a: &Rgetattr) -> FileAttr {
    FileAttr {
        ino: INodeNo(ino),
        size: a.size,
        blocks: a.blocks,
        atime: time(a.atime_sec, a.atime_nsec),
        mtime: time(a.mtime_sec, a.mtime_nsec),
        ctime: time(a.ctime_sec, a.ctime_nsec),
        crtime: UNIX_EPOCH,
        kind: kind_of_mode(a.mode, &a.qid),
        perm: (a.mode & 0o7777) as u16,
        nlink: u32::try_from(a.nlink).unwrap_or(u32::MAX),
        uid: a.uid,
        gid: a.gid,
        rdev: a.rdev as u32,
        blksize: u32::try_from(a.blksize).unwrap_or(4096),
        flags: 0,
    }
}

fn time(sec: u64, nsec: u64) -> SystemTime {
    UNIX_EPOCH + Duration::new(sec, (nsec % 1_000_000_000) as u32)
}

/// The file type of a Linux mode, or of the qid when the mode has none.
fn kind_of_mode(mode: u32, qid: &Qid) -> FileType {
    match mode & S_IFMT {
        0o040000 => FileType::Directory,
        0o100000 => FileType::RegularFile,
        0o120000 => FileType::Symlink,
        0o020000 => FileType::CharDevice,
        0o060000 => FileType::BlockDevice,
        0o010000 => FileType::NamedPipe,
        0o140000 => FileType::Socket,
        _ => kind_of_qid(qid),
    }
}

/// The file type of a Linux `d_type` (Rreaddir), or of the qid.
pub(crate) fn kind_of_dtype(ty: u8, qid: &Qid) -> FileType {
    match ty {
        4 => FileType::Directory,
        8 => FileType::RegularFile,
        10 => FileType::Symlink,
        2 => FileType::CharDevice,
        6 => FileType::BlockDevice,
        1 => FileType::NamedPipe,
        12 => FileType::Socket,
        _ => kind_of_qid(qid),
    }
}

fn kind_of_qid(qid: &Qid) -> FileType {
    if qid.is_dir() {
        FileType::Directory
    } else if qid.ty & ninep::qt::SYMLINK != 0 {
        FileType::Symlink
    } else {
        FileType::RegularFile
    }
}

/// A kernel time to set, as the client's.
pub(crate) fn set_time(t: TimeOrNow) -> SetTime {
    match t {
        TimeOrNow::Now => SetTime::Now,
        TimeOrNow::SpecificTime(t) => SetTime::At(t),
    }
}

/// The errno for a 9P client error: the server's own in 9P2000.L;
/// `ENOENT` for a short walk; `ENOTCONN` once gridd has gone (FUSE's
/// usual word for a dead server).
pub(crate) fn errno(e: &Error) -> Errno {
    match e {
        Error::Remote { errno: Some(n), .. } => Errno::from_i32(i32::try_from(*n).unwrap_or(0)),
        Error::WalkIncomplete { .. } => Errno::ENOENT,
        Error::Io(io) => io.raw_os_error().map_or(Errno::EIO, Errno::from_i32),
        Error::Closed => Errno::ENOTCONN,
        Error::Protocol(_) => Errno::EPROTO,
        Error::Invalid(_) => Errno::EINVAL,
        Error::Unsupported { .. } => Errno::ENOSYS,
        _ => Errno::EIO,
    }
}

/// `.errnos()`: a client result with the error as an errno.
pub(crate) trait Errnos<T> {
    fn errnos(self) -> Result<T, Errno>;
}

impl<T> Errnos<T> for Result<T, Error> {
    fn errnos(self) -> Result<T, Errno> {
        self.map_err(|e| errno(&e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_keep_type_perm_and_times() {
        let a = Rgetattr {
            mode: 0o100644,
            size: 5,
            nlink: 1,
            uid: 1000,
            mtime_sec: 10,
            mtime_nsec: 7,
            ..Rgetattr::default()
        };
        let f = file_attr(42, &a);
        assert_eq!(f.ino, INodeNo(42));
        assert_eq!(f.kind, FileType::RegularFile);
        assert_eq!(f.perm, 0o644);
        assert_eq!(f.size, 5);
        assert_eq!(f.uid, 1000);
        assert_eq!(f.mtime, UNIX_EPOCH + Duration::new(10, 7));
        let dir = Qid {
            ty: ninep::qt::DIR,
            ..Qid::default()
        };
        assert_eq!(kind_of_mode(0, &dir), FileType::Directory);
        assert_eq!(kind_of_dtype(10, &dir), FileType::Symlink);
    }

    #[test]
    fn errors_become_errnos() {
        let remote = Error::Remote {
            errno: Some(libc::EACCES as u32),
            msg: "permission denied".into(),
        };
        assert_eq!(errno(&remote), Errno::EACCES);
        let walk = Error::WalkIncomplete {
            name: "x".into(),
            walked: 0,
            total: 1,
        };
        assert_eq!(errno(&walk), Errno::ENOENT);
        assert_eq!(errno(&Error::Closed), Errno::ENOTCONN);
    }
}

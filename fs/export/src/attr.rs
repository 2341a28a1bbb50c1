//! Host metadata to 9P: statx(2) to [`Qid`] and [`Attr`], and the names of
//! uids and gids.
//!
//! qid.path is the inode number, mixed with the device number for files on
//! another file system than the root (mount points inside the tree), so it
//! is stable for a file's life and distinct across the mounts. qid.version
//! is the modification time in nanoseconds, folded to 32 bits.

use std::collections::HashMap;
use std::io;
use std::os::fd::BorrowedFd;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ninep::{qt, Qid};
use ninep_server::{mode, Attr};
use rustix::fs::{AtFlags, Statx, StatxFlags, StatxTimestamp};

/// Most names of each kind kept; past it lookups are not cached.
const NAME_CACHE_MAX: usize = 4096;

/// statx of the file `fd` refers to (an `O_PATH` symlink is not followed).
pub(crate) fn stat_fd(fd: BorrowedFd<'_>) -> io::Result<Statx> {
    let flags = AtFlags::EMPTY_PATH | AtFlags::SYMLINK_NOFOLLOW;
    Ok(rustix::fs::statx(fd, "", flags, StatxFlags::BASIC_STATS)?)
}

/// statx of the entry `name` of the directory `dir`, not following it.
pub(crate) fn stat_at(dir: BorrowedFd<'_>, name: &str) -> io::Result<Statx> {
    let flags = AtFlags::SYMLINK_NOFOLLOW;
    Ok(rustix::fs::statx(
        dir,
        name,
        flags,
        StatxFlags::BASIC_STATS,
    )?)
}

/// The S_IFMT bits of a statx.
pub(crate) fn file_type(st: &Statx) -> u32 {
    u32::from(st.stx_mode) & mode::S_IFMT
}

/// The device a statx's file is on.
pub(crate) fn dev(st: &Statx) -> u64 {
    rustix::fs::makedev(st.stx_dev_major, st.stx_dev_minor)
}

/// The qid of a file, given the device of the export's root.
pub(crate) fn qid(st: &Statx, root_dev: u64) -> Qid {
    let ty = match file_type(st) {
        mode::S_IFDIR => qt::DIR,
        mode::S_IFLNK => qt::SYMLINK,
        _ => qt::FILE,
    };
    let d = dev(st);
    let path = if d == root_dev {
        st.stx_ino
    } else {
        st.stx_ino ^ mix(d)
    };
    let m = st.stx_mtime;
    let ns = (m.tv_sec as u64)
        .wrapping_mul(1_000_000_000)
        .wrapping_add(u64::from(m.tv_nsec));
    Qid {
        ty,
        version: (ns ^ (ns >> 32)) as u32,
        path,
    }
}

/// splitmix64's finalizer: spreads a device number over all 64 bits, so
/// `ino ^ mix(dev)` of two mounts rarely meet.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// The attributes of a file, with its owner's names and (for a symlink)
/// target already looked up.
pub(crate) fn to_attr(st: &Statx, qid: Qid, names: (String, String), link_target: String) -> Attr {
    let (uname, gname) = names;
    Attr {
        qid,
        mode: u32::from(st.stx_mode),
        uid: st.stx_uid,
        gid: st.stx_gid,
        uname,
        gname,
        nlink: u64::from(st.stx_nlink),
        rdev: rustix::fs::makedev(st.stx_rdev_major, st.stx_rdev_minor),
        size: st.stx_size,
        blksize: u64::from(st.stx_blksize),
        blocks: st.stx_blocks,
        atime: time(st.stx_atime),
        mtime: time(st.stx_mtime),
        ctime: time(st.stx_ctime),
        link_target,
    }
}

/// Attributes for a directory entry that could not be stat'ed (a directory
/// readable but not searchable): its type from `d_type`, the rest zero.
pub(crate) fn bare_attr(ino: u64, ty: rustix::fs::FileType) -> Attr {
    let (kind, qty) = match ty {
        rustix::fs::FileType::Directory => (mode::S_IFDIR, qt::DIR),
        rustix::fs::FileType::Symlink => (mode::S_IFLNK, qt::SYMLINK),
        rustix::fs::FileType::Fifo => (mode::S_IFIFO, qt::FILE),
        rustix::fs::FileType::Socket => (mode::S_IFSOCK, qt::FILE),
        rustix::fs::FileType::CharacterDevice => (mode::S_IFCHR, qt::FILE),
        rustix::fs::FileType::BlockDevice => (mode::S_IFBLK, qt::FILE),
        _ => (mode::S_IFREG, qt::FILE),
    };
    Attr {
        qid: Qid {
            ty: qty,
            version: 0,
            path: ino,
        },
        mode: kind,
        uid: 0,
        gid: 0,
        uname: String::new(),
        gname: String::new(),
        nlink: 0,
        rdev: 0,
        size: 0,
        blksize: 0,
        blocks: 0,
        atime: UNIX_EPOCH,
        mtime: UNIX_EPOCH,
        ctime: UNIX_EPOCH,
        link_target: String::new(),
    }
}

fn time(t: StatxTimestamp) -> SystemTime {
    time_of(t.tv_sec, t.tv_nsec)
}

fn time_of(sec: i64, nsec: u32) -> SystemTime {
    let nanos = Duration::from_nanos(u64::from(nsec.min(999_999_999)));
    let at = if sec >= 0 {
        UNIX_EPOCH.checked_add(Duration::from_secs(sec.unsigned_abs()) + nanos)
    } else {
        UNIX_EPOCH
            .checked_sub(Duration::from_secs(sec.unsigned_abs()))
            .and_then(|s| s.checked_add(nanos))
    };
    at.unwrap_or(UNIX_EPOCH)
}

/// uid and gid to names, via getpwuid_r/getgrgid_r, cached: a listing of
/// a thousand files owned by one user costs one lookup. Ids without a name
/// are shown as numbers (and cached as such).
#[derive(Debug, Default)]
pub(crate) struct Names {
    users: Mutex<HashMap<u32, String>>,
    groups: Mutex<HashMap<u32, String>>,
}

impl Names {
    /// The names of `uid` and `gid` if both are cached (never blocks).
    pub(crate) fn cached(&self, uid: u32, gid: u32) -> Option<(String, String)> {
        let u = lock(&self.users).get(&uid).cloned()?;
        let g = lock(&self.groups).get(&gid).cloned()?;
        Some((u, g))
    }

    /// The names of `uid` and `gid`, looking them up if need be (may block
    /// on NSS).
    pub(crate) fn lookup(&self, uid: u32, gid: u32) -> (String, String) {
        (
            cached_or(&self.users, uid, ninep_server::ids::user_name),
            cached_or(&self.groups, gid, ninep_server::ids::group_name),
        )
    }
}

fn cached_or(
    cache: &Mutex<HashMap<u32, String>>,
    id: u32,
    find: fn(u32) -> Option<String>,
) -> String {
    if let Some(name) = lock(cache).get(&id) {
        return name.clone();
    }
    // Looked up without the lock: NSS may be slow, and two threads racing
    // to fill the same id find the same name.
    let name = find(id).unwrap_or_else(|| id.to_string());
    let mut map = lock(cache);
    if map.len() < NAME_CACHE_MAX {
        map.insert(id, name.clone());
    }
    name
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_has_a_name_and_unknown_ids_are_numbers() {
        let names = Names::default();
        assert_eq!(names.cached(0, 0), None);
        let (u, _) = names.lookup(0, 0);
        assert_eq!(u, "root");
        assert_eq!(names.cached(0, 0).map(|n| n.0), Some("root".to_owned()));
        let (u, g) = names.lookup(3_999_999_999, 3_999_999_999);
        assert_eq!((u.as_str(), g.as_str()), ("3999999999", "3999999999"));
    }

    #[test]
    fn times_before_the_epoch_do_not_panic() {
        assert_eq!(
            time_of(-5, 500_000_000),
            UNIX_EPOCH - Duration::from_millis(4500)
        );
        assert!(time_of(i64::MIN, u32::MAX) <= UNIX_EPOCH);
    }

    #[test]
    fn mix_is_not_identity() {
        assert_ne!(mix(0), 0);
        assert_ne!(mix(1), mix(2));
    }
}

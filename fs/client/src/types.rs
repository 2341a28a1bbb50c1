//! Dialect-neutral types for [`crate::Fid`]'s methods: open flags, file
//! metadata, directory entries, attribute changes.

use std::ops::{BitOr, BitOrAssign};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ninep::{dm, l, om, Qid, Rgetattr, Stat};

/// How to open a file, translated to a Topen mode or Tlopen flags.
///
/// Combine with `|`: `OpenFlags::RDWR | OpenFlags::TRUNC`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OpenFlags(u32);

impl OpenFlags {
    /// Read only.
    pub const READ: OpenFlags = OpenFlags(l::open::RDONLY);
    /// Write only.
    pub const WRITE: OpenFlags = OpenFlags(l::open::WRONLY);
    /// Read and write.
    pub const RDWR: OpenFlags = OpenFlags(l::open::RDWR);
    /// Truncate to zero length.
    pub const TRUNC: OpenFlags = OpenFlags(l::open::TRUNC);
    /// With create: fail if the file exists (9P2000's Tcreate always does).
    pub const EXCL: OpenFlags = OpenFlags(l::open::EXCL);

    /// The 9P2000.L flags (Linux `O_*` values).
    pub fn lflags(self) -> u32 {
        self.0
    }

    /// The 9P2000 open mode (open(5)).
    pub fn mode(self) -> u8 {
        let access = match self.0 & l::open::ACCMODE {
            l::open::WRONLY => om::WRITE,
            l::open::RDWR => om::RDWR,
            _ => om::READ,
        };
        if self.0 & l::open::TRUNC != 0 {
            access | om::TRUNC
        } else {
            access
        }
    }
}

impl BitOr for OpenFlags {
    type Output = OpenFlags;
    fn bitor(self, rhs: OpenFlags) -> OpenFlags {
        OpenFlags(self.0 | rhs.0)
    }
}

impl BitOrAssign for OpenFlags {
    fn bitor_assign(&mut self, rhs: OpenFlags) {
        self.0 |= rhs.0;
    }
}

/// What kind of file a qid, stat or dirent describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FileKind {
    /// A directory.
    Dir,
    /// A regular (or synthetic) file.
    File,
    /// A symbolic link (9P2000.u and .L).
    Symlink,
    /// A device, fifo or socket.
    Other,
}

impl FileKind {
    fn of_qid(qid: &Qid) -> FileKind {
        if qid.is_dir() {
            FileKind::Dir
        } else if qid.ty & ninep::qt::SYMLINK != 0 {
            FileKind::Symlink
        } else {
            FileKind::File
        }
    }
}

/// A file's metadata, from Tstat (9P2000, .u) or Tgetattr (.L).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metadata {
    /// The server's identity for the file.
    pub qid: Qid,
    /// Directory, file, ...
    pub kind: FileKind,
    /// Permission bits, Unix-style (`0o7777`: rwx for owner, group and
    /// others, plus setuid and setgid where the dialect has them).
    pub perm: u32,
    /// Length in bytes.
    pub size: u64,
    /// Last modification.
    pub mtime: SystemTime,
}

impl Metadata {
    /// Whether it is a directory.
    pub fn is_dir(&self) -> bool {
        self.kind == FileKind::Dir
    }

    /// From a 9P2000 or .u stat.
    pub fn from_stat(st: &Stat) -> Metadata {
        let kind = if st.mode & dm::DIR != 0 {
            FileKind::Dir
        } else if st.mode & dm::SYMLINK != 0 {
            FileKind::Symlink
        } else if st.mode & (dm::DEVICE | dm::NAMEDPIPE | dm::SOCKET) != 0 {
            FileKind::Other
        } else {
            FileKind::File
        };
        let mut perm = st.mode & 0o777;
        if st.mode & dm::SETUID != 0 {
            perm |= 0o4000;
        }
        if st.mode & dm::SETGID != 0 {
            perm |= 0o2000;
        }
        Metadata {
            qid: st.qid,
            kind,
            perm,
            size: st.length,
            mtime: UNIX_EPOCH + Duration::from_secs(st.mtime.into()),
        }
    }

    /// From a 9P2000.L Rgetattr.
    pub fn from_getattr(a: &Rgetattr) -> Metadata {
        let kind = match a.mode & S_IFMT {
            S_IFDIR => FileKind::Dir,
            S_IFREG => FileKind::File,
            S_IFLNK => FileKind::Symlink,
            0 => FileKind::of_qid(&a.qid),
            _ => FileKind::Other,
        };
        Metadata {
            qid: a.qid,
            kind,
            perm: a.mode & 0o7777,
            size: a.size,
            // A time that does not fit (a server that lies) reads as the epoch.
            mtime: ninep::wire_time(a.mtime_sec, a.mtime_nsec).unwrap_or(UNIX_EPOCH),
        }
    }
}

/// One entry of a directory listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    /// The entry's name (never `.` or `..`).
    pub name: String,
    /// Its metadata.
    pub meta: Metadata,
}

impl DirEntry {
    /// Whether it is a directory.
    pub fn is_dir(&self) -> bool {
        self.meta.is_dir()
    }

    /// Its qid.
    pub fn qid(&self) -> Qid {
        self.meta.qid
    }

    /// Its length in bytes.
    pub fn size(&self) -> u64 {
        self.meta.size
    }

    pub(crate) fn from_stat(st: Stat) -> DirEntry {
        let meta = Metadata::from_stat(&st);
        DirEntry {
            name: st.name,
            meta,
        }
    }
}

/// Attributes to change; `None` leaves one alone. Becomes a Tsetattr in
/// 9P2000.L and a Twstat elsewhere.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SetAttr {
    /// New permission bits (`0o7777`); the file's type is kept.
    pub perm: Option<u32>,
    /// New numeric owner (.L and .u only).
    pub uid: Option<u32>,
    /// New numeric group (.L and .u only).
    pub gid: Option<u32>,
    /// New length: truncate or extend.
    pub size: Option<u64>,
    /// New access time.
    pub atime: Option<SetTime>,
    /// New modification time.
    pub mtime: Option<SetTime>,
}

impl SetAttr {
    /// Only a new length.
    pub fn size(size: u64) -> SetAttr {
        SetAttr {
            size: Some(size),
            ..SetAttr::default()
        }
    }

    /// Only new permission bits.
    pub fn perm(perm: u32) -> SetAttr {
        SetAttr {
            perm: Some(perm),
            ..SetAttr::default()
        }
    }

    /// The Tsetattr for `fid`.
    pub(crate) fn to_tsetattr(&self, fid: u32) -> ninep::Tsetattr {
        use l::setattr as v;
        let mut t = ninep::Tsetattr {
            fid,
            ..Default::default()
        };
        if let Some(perm) = self.perm {
            t.valid |= v::MODE;
            t.mode = perm;
        }
        if let Some(uid) = self.uid {
            t.valid |= v::UID;
            t.uid = uid;
        }
        if let Some(gid) = self.gid {
            t.valid |= v::GID;
            t.gid = gid;
        }
        if let Some(size) = self.size {
            t.valid |= v::SIZE;
            t.size = size;
        }
        match self.atime {
            None => {}
            Some(SetTime::Now) => t.valid |= v::ATIME,
            Some(SetTime::At(at)) => {
                t.valid |= v::ATIME | v::ATIME_SET;
                (t.atime_sec, t.atime_nsec) = unix_time(at);
            }
        }
        match self.mtime {
            None => {}
            Some(SetTime::Now) => t.valid |= v::MTIME,
            Some(SetTime::At(at)) => {
                t.valid |= v::MTIME | v::MTIME_SET;
                (t.mtime_sec, t.mtime_nsec) = unix_time(at);
            }
        }
        t
    }
}

/// A time to set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetTime {
    /// The server's clock (in 9P2000, which has no such request, ours).
    Now,
    /// This time.
    At(SystemTime),
}

impl SetTime {
    /// Seconds since the epoch, for a 9P2000 stat.
    pub(crate) fn stat_seconds(self) -> u32 {
        let t = match self {
            SetTime::Now => SystemTime::now(),
            SetTime::At(t) => t,
        };
        u32::try_from(unix_time(t).0).unwrap_or(u32::MAX)
    }
}

fn unix_time(t: SystemTime) -> (u64, u64) {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    (d.as_secs(), d.subsec_nanos().into())
}

const S_IFMT: u32 = 0o170000;
const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;
const S_IFLNK: u32 = 0o120000;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_flags_translate_to_both_dialects() {
        assert_eq!(OpenFlags::READ.mode(), om::READ);
        assert_eq!(
            (OpenFlags::RDWR | OpenFlags::TRUNC).mode(),
            om::RDWR | om::TRUNC
        );
        assert_eq!(OpenFlags::WRITE.lflags(), l::open::WRONLY);
        assert_eq!(
            (OpenFlags::WRITE | OpenFlags::EXCL).lflags(),
            l::open::WRONLY | l::open::EXCL
        );
    }

    #[test]
    fn metadata_from_stat_keeps_type_and_perm() {
        let st = Stat {
            mode: dm::DIR | dm::SETGID | 0o755,
            length: 0,
            mtime: 10,
            ..Stat::default()
        };
        let m = Metadata::from_stat(&st);
        assert!(m.is_dir());
        assert_eq!(m.perm, 0o2755);
        assert_eq!(m.mtime, UNIX_EPOCH + Duration::from_secs(10));
    }

    #[test]
    fn metadata_from_getattr_reads_unix_mode() {
        let a = Rgetattr {
            mode: S_IFLNK | 0o777,
            size: 7,
            mtime_sec: 1,
            mtime_nsec: 5,
            ..Rgetattr::default()
        };
        let m = Metadata::from_getattr(&a);
        assert_eq!(m.kind, FileKind::Symlink);
        assert_eq!(m.perm, 0o777);
        assert_eq!(m.size, 7);
        assert_eq!(m.mtime, UNIX_EPOCH + Duration::new(1, 5));
    }

    #[test]
    fn setattr_sets_valid_bits() {
        let t = SetAttr {
            size: Some(3),
            mtime: Some(SetTime::Now),
            atime: Some(SetTime::At(UNIX_EPOCH + Duration::new(2, 1))),
            ..SetAttr::default()
        }
        .to_tsetattr(9);
        use l::setattr as v;
        assert_eq!(t.fid, 9);
        assert_eq!(t.valid, v::SIZE | v::MTIME | v::ATIME | v::ATIME_SET);
        assert_eq!((t.size, t.atime_sec, t.atime_nsec), (3, 2, 1));
    }
}

//! A sans-IO codec for 9P2000, 9P2000.u and 9P2000.L.
//!
//! This crate turns bytes into 9P messages and messages into bytes. It owns
//! nothing else: it has no networking code, no clock and no tokio, so the
//! server, the client, the fuzzers and the tests all drive the same pure
//! functions.
//!
//! # Layout
//!
//! - [`frame`]: [`decode`] and [`encode`] for whole frames (`size[4] type[1] tag[2] ...`),
//!   and the [`DecodeError`] that says whether the stream can go on.
//! - [`messages`]: one plain struct per message, named and laid out as in the
//!   spec (`Twalk { fid, newfid, wnames }`), gathered in the [`Fcall`] enum.
//! - [`wire`]: the base types that appear inside messages ([`Qid`], [`Stat`],
//!   [`Dirent`]) and the field codec.
//!
//! # Goals
//!
//! - Every length on the wire is checked against the bytes actually present
//!   (and the frame against the negotiated msize) before anything is
//!   allocated, so a hostile peer cannot make us allocate more than one frame.
//! - Malformed input is an error value, never a panic.
//! - `decode(encode(m)) == m` for every message in every dialect.
//!
//! # Non-goals
//!
//! - Session state (fids, tags, flush): that is the server's and client's job.
//! - Interpreting modes, flags or permissions beyond naming their bits.
//!
//! # Dialects
//!
//! The three dialects share the frame and most messages. They differ in a few
//! fields, which the codec reads or writes according to the [`Dialect`] it is
//! given: `n_uname` in Tauth/Tattach (.u and .L), the errno in Rerror (.u),
//! the extension in Tcreate (.u), and the .u fields of [`Stat`]. Messages only
//! meaningful in one dialect (Topen in 9P2000, Tlopen in .L) decode in any
//! dialect; refusing them is the session's decision, not the codec's.

#![warn(missing_docs, unreachable_pub)]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod addr;
pub mod frame;
pub mod messages;
pub mod wire;

pub use addr::Addr;
pub use frame::{decode, encode, frame_size, DecodeError, EncodeError, ErrorKind, Msg};
pub use messages::*;
pub use wire::{Dirent, Qid, Stat};

/// Which variant of the protocol a session speaks, fixed by Tversion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Dialect {
    /// Plain 9P2000, as in Plan 9's intro(5).
    #[default]
    P2000,
    /// 9P2000.u: Unix extensions (numeric ids, errno, symlinks and devices in stat).
    U,
    /// 9P2000.L: Linux extensions (Tlopen, Tgetattr, Treaddir, ...), as the Linux kernel speaks it.
    L,
}

impl Dialect {
    /// The version string sent in Tversion/Rversion.
    pub fn version_string(self) -> &'static str {
        match self {
            Dialect::P2000 => "9P2000",
            Dialect::U => "9P2000.u",
            Dialect::L => "9P2000.L",
        }
    }

    /// Picks the dialect a server answers with for a client's version string,
    /// following version(5): a string that begins `9P2000` with an unknown
    /// suffix gets plain 9P2000; anything not beginning `9P` gets `None`
    /// (answer "unknown").
    pub fn negotiate(client_version: &str) -> Option<Dialect> {
        match client_version {
            "9P2000.L" => Some(Dialect::L),
            "9P2000.u" => Some(Dialect::U),
            v if v.starts_with("9P2000") => Some(Dialect::P2000),
            _ => None,
        }
    }
}

/// The tag of Tversion, which is outside the tag space.
pub const NOTAG: u16 = 0xFFFF;
/// "No fid": the afid of an unauthenticated Tattach.
pub const NOFID: u32 = !0;
/// "No numeric user": n_uname when the client sends only a name.
pub const NONUNAME: u32 = !0;
/// The most names a single Twalk may carry.
pub const MAXWELEM: usize = 16;
/// Bytes of a Tread/Twrite header; iounit is at most msize minus this.
pub const IOHDRSZ: u32 = 24;
/// The smallest frame: size[4] type[1] tag[2].
pub const HEADER_SIZE: usize = 7;

/// Qid type bits (qid.type), from intro(5).
pub mod qt {
    /// A directory.
    pub const DIR: u8 = 0x80;
    /// Append-only file.
    pub const APPEND: u8 = 0x40;
    /// Exclusive-use file.
    pub const EXCL: u8 = 0x20;
    /// Mounted channel.
    pub const MOUNT: u8 = 0x10;
    /// Authentication file.
    pub const AUTH: u8 = 0x08;
    /// Non-backed-up file.
    pub const TMP: u8 = 0x04;
    /// Symbolic link (9P2000.u and .L).
    pub const SYMLINK: u8 = 0x02;
    /// Plain file.
    pub const FILE: u8 = 0x00;
}

/// Mode bits of a 9P2000 stat (stat(5)); the low 9 bits are rwxrwxrwx.
pub mod dm {
    /// Directory.
    pub const DIR: u32 = 0x8000_0000;
    /// Append-only.
    pub const APPEND: u32 = 0x4000_0000;
    /// Exclusive use.
    pub const EXCL: u32 = 0x2000_0000;
    /// Mounted channel.
    pub const MOUNT: u32 = 0x1000_0000;
    /// Authentication file.
    pub const AUTH: u32 = 0x0800_0000;
    /// Non-backed-up file.
    pub const TMP: u32 = 0x0400_0000;
    /// Symbolic link (.u).
    pub const SYMLINK: u32 = 0x0200_0000;
    /// Hard link (.u, Tcreate only): the extension is the decimal fid of
    /// the file to link to.
    pub const LINK: u32 = 0x0100_0000;
    /// Device file (.u).
    pub const DEVICE: u32 = 0x0080_0000;
    /// Named pipe (.u).
    pub const NAMEDPIPE: u32 = 0x0020_0000;
    /// Socket (.u).
    pub const SOCKET: u32 = 0x0010_0000;
    /// Set-user-id (.u).
    pub const SETUID: u32 = 0x0008_0000;
    /// Set-group-id (.u).
    pub const SETGID: u32 = 0x0004_0000;
}

/// Open modes of Topen/Tcreate (open(5)).
pub mod om {
    /// Read.
    pub const READ: u8 = 0;
    /// Write.
    pub const WRITE: u8 = 1;
    /// Read and write.
    pub const RDWR: u8 = 2;
    /// Execute (read access, checked for execute permission).
    pub const EXEC: u8 = 3;
    /// Truncate on open.
    pub const TRUNC: u8 = 0x10;
    /// Close on exec (ignored by servers).
    pub const CEXEC: u8 = 0x20;
    /// Remove when the fid is clunked.
    pub const RCLOSE: u8 = 0x40;
}

/// Constants of 9P2000.L, whose values are Linux's (include/net/9p/9p.h).
pub mod l {
    /// Open flags of Tlopen/Tlcreate (Linux O_* values on every architecture the protocol fixes).
    pub mod open {
        /// Access mode mask.
        pub const ACCMODE: u32 = 0o3;
        /// Read only.
        pub const RDONLY: u32 = 0;
        /// Write only.
        pub const WRONLY: u32 = 1;
        /// Read and write.
        pub const RDWR: u32 = 2;
        /// Create.
        pub const CREAT: u32 = 0o100;
        /// Fail if it exists.
        pub const EXCL: u32 = 0o200;
        /// No controlling terminal.
        pub const NOCTTY: u32 = 0o400;
        /// Truncate.
        pub const TRUNC: u32 = 0o1000;
        /// Append.
        pub const APPEND: u32 = 0o2000;
        /// Non-blocking.
        pub const NONBLOCK: u32 = 0o4000;
        /// Must be a directory.
        pub const DIRECTORY: u32 = 0o200000;
        /// Do not follow a final symlink.
        pub const NOFOLLOW: u32 = 0o400000;
    }
    /// request_mask and valid bits of Tgetattr/Rgetattr.
    pub mod getattr {
        /// st_mode.
        pub const MODE: u64 = 0x1;
        /// st_nlink.
        pub const NLINK: u64 = 0x2;
        /// st_uid.
        pub const UID: u64 = 0x4;
        /// st_gid.
        pub const GID: u64 = 0x8;
        /// st_rdev.
        pub const RDEV: u64 = 0x10;
        /// st_atime.
        pub const ATIME: u64 = 0x20;
        /// st_mtime.
        pub const MTIME: u64 = 0x40;
        /// st_ctime.
        pub const CTIME: u64 = 0x80;
        /// st_ino.
        pub const INO: u64 = 0x100;
        /// st_size.
        pub const SIZE: u64 = 0x200;
        /// st_blocks.
        pub const BLOCKS: u64 = 0x400;
        /// Birth time.
        pub const BTIME: u64 = 0x800;
        /// Generation.
        pub const GEN: u64 = 0x1000;
        /// Data version.
        pub const DATA_VERSION: u64 = 0x2000;
        /// Everything `stat(2)` returns.
        pub const BASIC: u64 = 0x7ff;
        /// Everything.
        pub const ALL: u64 = 0x3fff;
    }
    /// valid bits of Tsetattr.
    pub mod setattr {
        /// Set mode.
        pub const MODE: u32 = 0x1;
        /// Set uid.
        pub const UID: u32 = 0x2;
        /// Set gid.
        pub const GID: u32 = 0x4;
        /// Set size (truncate).
        pub const SIZE: u32 = 0x8;
        /// Set atime (to now unless ATIME_SET).
        pub const ATIME: u32 = 0x10;
        /// Set mtime (to now unless MTIME_SET).
        pub const MTIME: u32 = 0x20;
        /// Set ctime.
        pub const CTIME: u32 = 0x40;
        /// atime is given in the message.
        pub const ATIME_SET: u32 = 0x80;
        /// mtime is given in the message.
        pub const MTIME_SET: u32 = 0x100;
    }
    /// Tunlinkat flag: remove a directory.
    pub const AT_REMOVEDIR: u32 = 0x200;
    /// Lock types of Tlock/Tgetlock.
    pub mod lock {
        /// Read lock.
        pub const RDLCK: u8 = 0;
        /// Write lock.
        pub const WRLCK: u8 = 1;
        /// Unlock.
        pub const UNLCK: u8 = 2;
        /// Rlock status: success.
        pub const SUCCESS: u8 = 0;
        /// Rlock status: would block.
        pub const BLOCKED: u8 = 1;
        /// Rlock status: error.
        pub const ERROR: u8 = 2;
        /// Rlock status: grace period.
        pub const GRACE: u8 = 3;
        /// Tlock flag: blocking request.
        pub const FLAG_BLOCK: u32 = 1;
    }
}

/// A time from the wire (`sec`, `nsec` since the epoch, as Rgetattr and
/// Tsetattr carry them), or `None` when it does not fit a `SystemTime`.
/// Nanoseconds beyond a second are clamped.
pub fn wire_time(sec: u64, nsec: u64) -> Option<std::time::SystemTime> {
    let nanos = u32::try_from(nsec.min(999_999_999)).unwrap_or(999_999_999);
    std::time::UNIX_EPOCH.checked_add(std::time::Duration::new(sec, nanos))
}

#[cfg(test)]
mod time_tests {
    #[test]
    fn hostile_wire_times_are_none_not_panics() {
        assert_eq!(super::wire_time(u64::MAX, u64::MAX), None);
        assert!(super::wire_time(1, 5).is_some());
    }
}

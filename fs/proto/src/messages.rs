//! One plain struct per message, with the spec's names and field order.
//!
//! Sources: Plan 9's intro(5) and the section 5 pages for 9P2000; the
//! 9P2000.u RFC draft for the Unix extensions; Linux's `include/net/9p/9p.h`
//! and diod's `protocol.md` for 9P2000.L message numbers and layouts.
//!
//! Fields marked in the table below are dialect-dependent:
//! `#[ext_uid]` (n_uname) is on the wire in 9P2000.u and 9P2000.L and
//! decodes as [`crate::NONUNAME`] when absent; `#[dotu]` is on the wire only
//! in 9P2000.u; `#[opt]` is read only if the frame still has bytes (Linux
//! appends `datasync` to Tfsync; older clients do not). Other absent fields
//! decode as their defaults.
//!
//! Linux's own encoder also puts Rerror's errno, Tcreate's extension and
//! the .u stat fields on the wire in .L; it never sends those messages in
//! .L, and neither do we (.L errors are Rlerror).

use crate::frame::{EncodeError, ErrorKind};
use crate::wire::{Reader, Wire, Writer};
use crate::{Dialect, Qid, Stat, NONUNAME};

macro_rules! present {
    ($d:expr, $rem:expr) => {
        true
    };
    ($d:expr, $rem:expr, ext_uid) => {
        $d != Dialect::P2000
    };
    ($d:expr, $rem:expr, dotu) => {
        $d == Dialect::U
    };
    ($d:expr, $rem:expr, opt) => {
        $rem > 0
    };
}

macro_rules! absent {
    () => {
        Default::default()
    };
    (ext_uid) => {
        NONUNAME
    };
    ($m:ident) => {
        Default::default()
    };
}

macro_rules! messages {
    ($(
        $(#[doc = $doc:literal])*
        $name:ident = $ty:literal { $( $(#[$m:ident])? $field:ident : $fty:ty ),* $(,)? }
    )*) => {
        $(
            $(#[doc = $doc])*
            #[derive(Debug, Clone, PartialEq, Eq, Default)]
            #[allow(missing_docs)]
            pub struct $name { $( pub $field: $fty, )* }

            impl $name {
                /// The message's type number.
                pub const TYPE: u8 = $ty;

                #[allow(unused_variables)]
                fn encode_body(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
                    $( if present!(w.dialect(), 1usize $(, $m)?) { self.$field.encode(w)?; } )*
                    Ok(())
                }

                #[allow(unused_variables)]
                fn decode_body(r: &mut Reader<'_>) -> Result<Self, ErrorKind> {
                    Ok($name { $(
                        $field: if present!(r.dialect(), r.remaining() $(, $m)?) {
                            Wire::decode(r)?
                        } else {
                            absent!($($m)?)
                        },
                    )* })
                }
            }

            impl From<$name> for Fcall {
                fn from(m: $name) -> Self { Fcall::$name(m) }
            }
        )*

        /// Any 9P message, T or R, of any dialect.
        #[derive(Debug, Clone, PartialEq, Eq)]
        #[allow(missing_docs)]
        pub enum Fcall { $( $name($name), )* }

        impl Fcall {
            /// The type number on the wire.
            pub fn msg_type(&self) -> u8 {
                match self { $( Fcall::$name(_) => $ty, )* }
            }

            /// The spec's name of the message, for traces (`Twalk`).
            pub fn name(&self) -> &'static str {
                match self { $( Fcall::$name(_) => stringify!($name), )* }
            }

            pub(crate) fn encode_body(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
                match self { $( Fcall::$name(m) => m.encode_body(w), )* }
            }

            pub(crate) fn decode_body(ty: u8, r: &mut Reader<'_>) -> Result<Self, ErrorKind> {
                match ty {
                    $( $ty => Ok(Fcall::$name($name::decode_body(r)?)), )*
                    _ => Err(ErrorKind::UnknownType(ty)),
                }
            }
        }
    };
}

messages! {
    // ---- 9P2000.L (Linux) ----
    /// .L error reply: a Linux errno.
    Rlerror = 7 { ecode: u32 }
    /// .L: file system statistics.
    Tstatfs = 8 { fid: u32 }
    /// .L: reply to Tstatfs, as statfs(2).
    Rstatfs = 9 { ty: u32, bsize: u32, blocks: u64, bfree: u64, bavail: u64, files: u64, ffree: u64, fsid: u64, namelen: u32 }
    /// .L: open with Linux flags.
    Tlopen = 12 { fid: u32, flags: u32 }
    /// .L: reply to Tlopen.
    Rlopen = 13 { qid: Qid, iounit: u32 }
    /// .L: create and open a regular file; fid becomes the new file.
    Tlcreate = 14 { fid: u32, name: String, flags: u32, mode: u32, gid: u32 }
    /// .L: reply to Tlcreate.
    Rlcreate = 15 { qid: Qid, iounit: u32 }
    /// .L: create a symbolic link in directory fid.
    Tsymlink = 16 { fid: u32, name: String, symtgt: String, gid: u32 }
    /// .L: reply to Tsymlink.
    Rsymlink = 17 { qid: Qid }
    /// .L: create a device node or fifo.
    Tmknod = 18 { dfid: u32, name: String, mode: u32, major: u32, minor: u32, gid: u32 }
    /// .L: reply to Tmknod.
    Rmknod = 19 { qid: Qid }
    /// .L: rename fid into directory dfid as name.
    Trename = 20 { fid: u32, dfid: u32, name: String }
    /// .L: reply to Trename.
    Rrename = 21 {}
    /// .L: read a symbolic link.
    Treadlink = 22 { fid: u32 }
    /// .L: reply to Treadlink.
    Rreadlink = 23 { target: String }
    /// .L: get attributes.
    Tgetattr = 24 { fid: u32, request_mask: u64 }
    /// .L: reply to Tgetattr, as stat(2) plus btime, gen and data_version.
    Rgetattr = 25 {
        valid: u64, qid: Qid, mode: u32, uid: u32, gid: u32, nlink: u64, rdev: u64, size: u64,
        blksize: u64, blocks: u64, atime_sec: u64, atime_nsec: u64, mtime_sec: u64,
        mtime_nsec: u64, ctime_sec: u64, ctime_nsec: u64, btime_sec: u64, btime_nsec: u64,
        gen: u64, data_version: u64,
    }
    /// .L: set attributes; `valid` says which.
    Tsetattr = 26 {
        fid: u32, valid: u32, mode: u32, uid: u32, gid: u32, size: u64, atime_sec: u64,
        atime_nsec: u64, mtime_sec: u64, mtime_nsec: u64,
    }
    /// .L: reply to Tsetattr.
    Rsetattr = 27 {}
    /// .L: walk to an extended attribute (or the list of them when name is empty).
    Txattrwalk = 30 { fid: u32, newfid: u32, name: String }
    /// .L: reply to Txattrwalk.
    Rxattrwalk = 31 { size: u64 }
    /// .L: prepare fid to write an extended attribute.
    Txattrcreate = 32 { fid: u32, name: String, attr_size: u64, flags: u32 }
    /// .L: reply to Txattrcreate.
    Rxattrcreate = 33 {}
    /// .L: read directory entries from a cookie.
    Treaddir = 40 { fid: u32, offset: u64, count: u32 }
    /// .L: reply to Treaddir: packed [`crate::Dirent`]s.
    Rreaddir = 41 { data: Vec<u8> }
    /// .L: flush a file to stable storage.
    Tfsync = 50 { fid: u32, #[opt] datasync: u32 }
    /// .L: reply to Tfsync.
    Rfsync = 51 {}
    /// .L: acquire or release a POSIX record lock.
    Tlock = 52 { fid: u32, ty: u8, flags: u32, start: u64, length: u64, proc_id: u32, client_id: String }
    /// .L: reply to Tlock.
    Rlock = 53 { status: u8 }
    /// .L: test for a POSIX record lock.
    Tgetlock = 54 { fid: u32, ty: u8, start: u64, length: u64, proc_id: u32, client_id: String }
    /// .L: reply to Tgetlock.
    Rgetlock = 55 { ty: u8, start: u64, length: u64, proc_id: u32, client_id: String }
    /// .L: hard link fid into directory dfid.
    Tlink = 70 { dfid: u32, fid: u32, name: String }
    /// .L: reply to Tlink.
    Rlink = 71 {}
    /// .L: create a directory in dfid.
    Tmkdir = 72 { dfid: u32, name: String, mode: u32, gid: u32 }
    /// .L: reply to Tmkdir.
    Rmkdir = 73 { qid: Qid }
    /// .L: rename by directory fid and name.
    Trenameat = 74 { olddirfid: u32, oldname: String, newdirfid: u32, newname: String }
    /// .L: reply to Trenameat.
    Rrenameat = 75 {}
    /// .L: remove a name from directory dirfd.
    Tunlinkat = 76 { dirfd: u32, name: String, flags: u32 }
    /// .L: reply to Tunlinkat.
    Runlinkat = 77 {}

    // ---- 9P2000 (and .u where marked) ----
    /// Negotiate the protocol version and message size.
    Tversion = 100 { msize: u32, version: String }
    /// Reply to Tversion.
    Rversion = 101 { msize: u32, version: String }
    /// Authenticate: afid becomes the authentication file.
    Tauth = 102 { afid: u32, uname: String, aname: String, #[ext_uid] n_uname: u32 }
    /// Reply to Tauth.
    Rauth = 103 { aqid: Qid }
    /// Attach fid to the root of the tree named aname.
    Tattach = 104 { fid: u32, afid: u32, uname: String, aname: String, #[ext_uid] n_uname: u32 }
    /// Reply to Tattach.
    Rattach = 105 { qid: Qid }
    /// Error reply (9P2000 and .u; .u adds a Unix errno).
    Rerror = 107 { ename: String, #[dotu] errno: u32 }
    /// Abort the request with tag oldtag.
    Tflush = 108 { oldtag: u16 }
    /// Reply to Tflush.
    Rflush = 109 {}
    /// Walk fid by wnames; newfid is the result.
    Twalk = 110 { fid: u32, newfid: u32, wnames: Vec<String> }
    /// Reply to Twalk: one qid per name walked.
    Rwalk = 111 { wqids: Vec<Qid> }
    /// Open fid.
    Topen = 112 { fid: u32, mode: u8 }
    /// Reply to Topen.
    Ropen = 113 { qid: Qid, iounit: u32 }
    /// Create name in directory fid and open it; fid becomes the new file.
    Tcreate = 114 { fid: u32, name: String, perm: u32, mode: u8, #[dotu] extension: String }
    /// Reply to Tcreate.
    Rcreate = 115 { qid: Qid, iounit: u32 }
    /// Read count bytes at offset.
    Tread = 116 { fid: u32, offset: u64, count: u32 }
    /// Reply to Tread.
    Rread = 117 { data: Vec<u8> }
    /// Write data at offset.
    Twrite = 118 { fid: u32, offset: u64, data: Vec<u8> }
    /// Reply to Twrite.
    Rwrite = 119 { count: u32 }
    /// Forget fid.
    Tclunk = 120 { fid: u32 }
    /// Reply to Tclunk.
    Rclunk = 121 {}
    /// Remove the file and clunk fid.
    Tremove = 122 { fid: u32 }
    /// Reply to Tremove.
    Rremove = 123 {}
    /// Get the file's stat.
    Tstat = 124 { fid: u32 }
    /// Reply to Tstat.
    Rstat = 125 { stat: Stat }
    /// Change the file's stat ("don't touch" fields are ~0 or empty).
    Twstat = 126 { fid: u32, stat: Stat }
    /// Reply to Twstat.
    Rwstat = 127 {}
}

impl Fcall {
    /// Whether this is a request (T-message): even type numbers.
    pub fn is_request(&self) -> bool {
        // Bit test rather than `% 2` or `is_multiple_of` (Rust 1.87): the
        // workspace's rust-version is 1.80.
        self.msg_type() & 1 == 0
    }
}

//! What the server core asks of a file tree.
//!
//! A tree is a graph of [`Node`]s. The session owns fids, tags, flush,
//! msize, open modes, offsets and `..`; a node only ever sees requests that
//! already passed those checks, in the dialect-neutral form below (one
//! [`Attr`] for Rstat and Rgetattr, one [`OpenMode`] for Topen and Tlopen).
//!
//! Every method has a default that returns the canonical Plan 9 error, so a
//! read-only synthetic file implements two methods (`qid`, `attr`) on the
//! node and one (`read`) on its handle.
//!
//! `..` never reaches a node: the session keeps the path each fid walked and
//! pops it, stopping at the attach point, so no tree can be escaped by name.

use std::any::Any;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use ninep::{dm, qt, Dialect, Qid, Stat};

use crate::error::{Error, Result};

/// A file or directory.
#[async_trait]
pub trait Node: Send + Sync + 'static {
    /// The node's qid: stable for the node's life, unique in the tree.
    fn qid(&self) -> Qid;

    /// Current attributes.
    async fn attr(&self) -> Result<Attr>;

    /// The child called `name` (never `.` or `..`; the session handles those).
    async fn walk(&self, _name: &str) -> Result<Arc<dyn Node>> {
        if self.qid().is_dir() {
            Err(Error::not_found())
        } else {
            Err(Error::not_dir())
        }
    }

    /// Opens the node. For a directory the session reads entries with
    /// [`Node::readdir`] and the handle only sees clunk.
    async fn open(&self, _mode: OpenMode) -> Result<Opened> {
        if self.qid().is_dir() {
            Ok(Opened::new(NoIo))
        } else {
            Err(Error::perm())
        }
    }

    /// All entries of a directory, in a stable order. Called once per open
    /// directory fid; the session pages through the result.
    async fn readdir(&self) -> Result<Vec<DirEntry>> {
        Err(Error::not_dir())
    }

    /// Creates `name` in this directory. When `open` is given the new file is
    /// opened with it and the handle returned (Tcreate, Tlcreate).
    async fn create(
        &self,
        _name: &str,
        _kind: CreateKind,
        _open: Option<OpenMode>,
    ) -> Result<(Arc<dyn Node>, Option<Opened>)> {
        Err(Error::no_create())
    }

    /// Removes this node (Tremove). Directories must be empty.
    async fn remove(&self) -> Result<()> {
        Err(Error::no_remove())
    }

    /// Removes the entry `name` of this directory (Tunlinkat). The default
    /// walks to it and removes it.
    async fn unlink(&self, name: &str, _is_dir: bool) -> Result<()> {
        self.walk(name).await?.remove().await
    }

    /// Renames this directory's entry `from` to `to` in `to_dir`, which is a
    /// directory of the same tree (downcast it with [`Node::as_any`]).
    async fn rename(&self, _from: &str, _to_dir: &Arc<dyn Node>, _to: &str) -> Result<()> {
        Err(Error::no_wstat())
    }

    /// Changes attributes (Twstat, Tsetattr).
    async fn setattr(&self, _set: SetAttr) -> Result<()> {
        Err(Error::no_wstat())
    }

    /// The target of a symbolic link.
    async fn readlink(&self) -> Result<String> {
        Err(Error::invalid())
    }

    /// Creates a hard link to `target` (a node of this tree) called `name` in this directory.
    async fn link(&self, _target: &Arc<dyn Node>, _name: &str) -> Result<()> {
        Err(Error::not_supported())
    }

    /// File system statistics (Tstatfs).
    async fn statfs(&self) -> Result<Statfs> {
        Ok(Statfs::synthetic())
    }

    /// For downcasting a peer node of the same tree (rename, link).
    fn as_any(&self) -> &dyn Any;
}

/// Per-open state: what a fid holds between open and clunk.
#[async_trait]
pub trait Handle: Send + Sync + 'static {
    /// Up to `count` bytes at `offset`. An empty result is end of file. May
    /// wait for data; a Tflush cancels the wait by dropping the future.
    async fn read(&self, _offset: u64, _count: u32) -> Result<Vec<u8>> {
        Err(Error::no_read())
    }

    /// Writes `data` at `offset` and returns how much was taken.
    async fn write(&self, _offset: u64, _data: &[u8]) -> Result<u32> {
        Err(Error::no_write())
    }

    /// Flushes to stable storage.
    async fn fsync(&self) -> Result<()> {
        Ok(())
    }

    /// The fid is being clunked (or the connection closed).
    async fn clunk(&self) {}
}

/// A handle for files that are opened only for their side effects, and for
/// directories (whose reads the session serves from [`Node::readdir`]).
#[derive(Debug, Default)]
pub struct NoIo;

impl Handle for NoIo {}

/// The result of opening a node.
pub struct Opened {
    /// The per-open state.
    pub handle: Arc<dyn Handle>,
    /// The clone idiom: when set, the fid now refers to this node (the
    /// `/cpu/N/ctl` that opening `/cpu/clone` created) and the reply carries its qid.
    pub becomes: Option<Arc<dyn Node>>,
    /// iounit to report; 0 means "msize minus the header".
    pub iounit: u32,
}

impl Opened {
    /// An opened handle with no clone and the default iounit.
    pub fn new(handle: impl Handle) -> Self {
        Opened {
            handle: Arc::new(handle),
            becomes: None,
            iounit: 0,
        }
    }
}

/// An open mode, the same for Topen and Tlopen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OpenMode {
    /// Open for reading.
    pub read: bool,
    /// Open for writing.
    pub write: bool,
    /// Truncate on open.
    pub truncate: bool,
    /// Writes go to the end.
    pub append: bool,
    /// Fail if the file exists (create only).
    pub exclusive: bool,
}

impl OpenMode {
    /// Read only.
    pub const READ: OpenMode = OpenMode {
        read: true,
        write: false,
        truncate: false,
        append: false,
        exclusive: false,
    };

    /// From a 9P2000 Topen/Tcreate mode byte (OEXEC reads; ORCLOSE is the session's).
    pub fn from_9p(mode: u8) -> Self {
        let (read, write) = match mode & 3 {
            ninep::om::READ | ninep::om::EXEC => (true, false),
            ninep::om::WRITE => (false, true),
            _ => (true, true),
        };
        OpenMode {
            read,
            write,
            truncate: mode & ninep::om::TRUNC != 0,
            append: false,
            exclusive: false,
        }
    }

    /// From 9P2000.L Tlopen/Tlcreate flags (Linux O_* values).
    pub fn from_linux(flags: u32) -> Self {
        use ninep::l::open;
        let (read, write) = match flags & open::ACCMODE {
            open::RDONLY => (true, false),
            open::WRONLY => (false, true),
            _ => (true, true),
        };
        OpenMode {
            read,
            write,
            truncate: flags & open::TRUNC != 0,
            append: flags & open::APPEND != 0,
            exclusive: flags & open::EXCL != 0,
        }
    }
}

/// What to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CreateKind {
    /// A regular file with these permission bits.
    File {
        /// Permission bits (0o777 plus setuid/setgid/sticky).
        perm: u32,
    },
    /// A directory.
    Dir {
        /// Permission bits.
        perm: u32,
    },
    /// A symbolic link.
    Symlink {
        /// Where it points.
        target: String,
    },
    /// A device node, fifo or socket (Linux `mode` including S_IFMT).
    Special {
        /// Full Linux mode.
        mode: u32,
        /// Device major.
        major: u32,
        /// Device minor.
        minor: u32,
    },
}

/// Attribute changes; `None` leaves a field alone.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SetAttr {
    /// New permission bits (0o7777).
    pub mode: Option<u32>,
    /// New owner.
    pub uid: Option<u32>,
    /// New group.
    pub gid: Option<u32>,
    /// Truncate or extend to this size.
    pub size: Option<u64>,
    /// New access time.
    pub atime: Option<TimeSet>,
    /// New modification time.
    pub mtime: Option<TimeSet>,
}

impl SetAttr {
    /// Whether nothing would change (a Twstat of all "don't touch" is a sync request).
    pub fn is_empty(&self) -> bool {
        *self == SetAttr::default()
    }
}

/// A time to set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeSet {
    /// The server's current time.
    Now,
    /// This time.
    At(SystemTime),
}

/// One directory entry from [`Node::readdir`].
#[derive(Debug, Clone)]
pub struct DirEntry {
    /// The entry's name.
    pub name: String,
    /// Its attributes (the 9P2000 directory read sends whole stats).
    pub attr: Attr,
}

/// File attributes in one dialect-neutral form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attr {
    /// The qid.
    pub qid: Qid,
    /// Linux mode: S_IFMT type bits plus permissions.
    pub mode: u32,
    /// Numeric owner.
    pub uid: u32,
    /// Numeric group.
    pub gid: u32,
    /// Owner's name, for 9P2000.
    pub uname: String,
    /// Group's name, for 9P2000.
    pub gname: String,
    /// Link count.
    pub nlink: u64,
    /// Device number of a device node.
    pub rdev: u64,
    /// Length in bytes.
    pub size: u64,
    /// Preferred I/O size.
    pub blksize: u64,
    /// 512-byte blocks allocated.
    pub blocks: u64,
    /// Last access.
    pub atime: SystemTime,
    /// Last modification.
    pub mtime: SystemTime,
    /// Last status change.
    pub ctime: SystemTime,
    /// Symlink target, for 9P2000.u's stat extension.
    pub link_target: String,
}

/// Linux's S_IFMT bits, which .L sends as they are.
pub mod mode {
    /// Type mask.
    pub const S_IFMT: u32 = 0o170000;
    /// Directory.
    pub const S_IFDIR: u32 = 0o040000;
    /// Regular file.
    pub const S_IFREG: u32 = 0o100000;
    /// Symbolic link.
    pub const S_IFLNK: u32 = 0o120000;
    /// Character device.
    pub const S_IFCHR: u32 = 0o020000;
    /// Block device.
    pub const S_IFBLK: u32 = 0o060000;
    /// FIFO.
    pub const S_IFIFO: u32 = 0o010000;
    /// Socket.
    pub const S_IFSOCK: u32 = 0o140000;
}

impl Attr {
    /// Attributes for a synthetic file or directory: owner and group from
    /// the server process, all times "now", size 0.
    pub fn synthetic(qid: Qid, perm: u32) -> Self {
        let now = SystemTime::now();
        let kind = if qid.is_dir() {
            mode::S_IFDIR
        } else {
            mode::S_IFREG
        };
        Attr {
            qid,
            mode: kind | (perm & 0o7777),
            uid: process_uid(),
            gid: process_gid(),
            uname: process_user(),
            gname: process_user(),
            nlink: 1,
            rdev: 0,
            size: 0,
            blksize: 4096,
            blocks: 0,
            atime: now,
            mtime: now,
            ctime: now,
            link_target: String::new(),
        }
    }

    /// Whether this is a directory.
    pub fn is_dir(&self) -> bool {
        self.mode & mode::S_IFMT == mode::S_IFDIR
    }

    /// Linux d_type for Rreaddir.
    pub fn dtype(&self) -> u8 {
        match self.mode & mode::S_IFMT {
            mode::S_IFDIR => 4,
            mode::S_IFREG => 8,
            mode::S_IFLNK => 10,
            mode::S_IFCHR => 2,
            mode::S_IFBLK => 6,
            mode::S_IFIFO => 1,
            mode::S_IFSOCK => 12,
            _ => 0,
        }
    }

    /// The 9P2000 (or .u) stat record for this file called `name`.
    pub fn to_stat(&self, name: &str, dialect: Dialect) -> Stat {
        let mut m = self.mode & 0o777;
        let is_u = dialect == Dialect::U;
        match self.mode & mode::S_IFMT {
            mode::S_IFDIR => m |= dm::DIR,
            mode::S_IFLNK if is_u => m |= dm::SYMLINK,
            mode::S_IFCHR | mode::S_IFBLK if is_u => m |= dm::DEVICE,
            mode::S_IFIFO if is_u => m |= dm::NAMEDPIPE,
            mode::S_IFSOCK if is_u => m |= dm::SOCKET,
            _ => {}
        }
        if is_u && self.mode & 0o4000 != 0 {
            m |= dm::SETUID;
        }
        if is_u && self.mode & 0o2000 != 0 {
            m |= dm::SETGID;
        }
        if self.qid.ty & qt::APPEND != 0 {
            m |= dm::APPEND;
        }
        if self.qid.ty & qt::EXCL != 0 {
            m |= dm::EXCL;
        }
        let extension = match self.mode & mode::S_IFMT {
            mode::S_IFLNK => self.link_target.clone(),
            kind @ (mode::S_IFCHR | mode::S_IFBLK) => format!(
                "{} {} {}",
                if kind == mode::S_IFCHR { 'c' } else { 'b' },
                libc::major(self.rdev),
                libc::minor(self.rdev)
            ),
            _ => String::new(),
        };
        Stat {
            ty: 0,
            dev: 0,
            qid: self.qid,
            mode: m,
            atime: unix_secs(self.atime) as u32,
            mtime: unix_secs(self.mtime) as u32,
            length: if self.is_dir() { 0 } else { self.size },
            name: name.to_owned(),
            uid: self.uname.clone(),
            gid: self.gname.clone(),
            muid: self.uname.clone(),
            extension,
            n_uid: self.uid,
            n_gid: self.gid,
            n_muid: self.uid,
        }
    }
}

/// File system statistics, as statfs(2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Statfs {
    /// File system type magic.
    pub ty: u32,
    /// Block size.
    pub bsize: u32,
    /// Total blocks.
    pub blocks: u64,
    /// Free blocks.
    pub bfree: u64,
    /// Blocks available to unprivileged users.
    pub bavail: u64,
    /// Total inodes.
    pub files: u64,
    /// Free inodes.
    pub ffree: u64,
    /// File system id.
    pub fsid: u64,
    /// Longest name.
    pub namelen: u32,
}

impl Statfs {
    /// What a synthetic tree reports: V9FS_MAGIC, no space.
    pub fn synthetic() -> Self {
        Statfs {
            ty: 0x0102_1997,
            bsize: 4096,
            blocks: 0,
            bfree: 0,
            bavail: 0,
            files: 0,
            ffree: 0,
            fsid: 0,
            namelen: 255,
        }
    }
}

/// Who is attaching, so a file server can choose the root it hands out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachInfo {
    /// Tattach uname.
    pub uname: String,
    /// Tattach aname: which tree, or which path of it.
    pub aname: String,
    /// Tattach n_uname (.u/.L), [`ninep::NONUNAME`] if absent.
    pub n_uname: u32,
    /// The session's dialect.
    pub dialect: Dialect,
    /// Who is on the other end of the connection.
    pub peer: PeerInfo,
    /// The connection's id, unique in this process: the same for every
    /// attach of one connection, and the one [`FileServer::disconnect`]
    /// is called with when it ends.
    pub conn: u64,
}

/// Who is on the other end of a connection, as the transport knows it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum PeerInfo {
    /// A unix-socket peer with its credentials.
    Unix {
        /// Peer's uid, from SO_PEERCRED.
        uid: Option<u32>,
    },
    /// A TCP peer.
    Tcp(std::net::SocketAddr),
    /// Another grid over QUIC, authenticated by its key in the TLS handshake.
    Grid {
        /// The peer's Ed25519 public key in hex, as the handshake proved it.
        key: String,
        /// The peer's UDP address.
        addr: std::net::SocketAddr,
    },
    /// Another transport, described.
    Other(String),
    /// Unknown (tests, in-memory streams).
    #[default]
    Unknown,
}

/// A 9P file server: gives each attach a root.
#[async_trait]
pub trait FileServer: Send + Sync + 'static {
    /// The root node for this attach. `aname` may name a tree or a path
    /// inside one; [`walk_path`] resolves the latter.
    async fn attach(&self, info: &AttachInfo) -> Result<Arc<dyn Node>>;

    /// Connection `conn` ([`AttachInfo::conn`]) has ended: the peer hung
    /// up, broke the protocol, or its serving task was cancelled. Called
    /// once per connection, after its fids are clunked, whether or not it
    /// ever attached. The default does nothing.
    async fn disconnect(&self, _conn: u64) {}
}

/// A file server that serves one tree to everyone, attaching at `aname`
/// taken as a path inside it ("" or "/" is the root).
pub struct SingleTree(pub Arc<dyn Node>);

#[async_trait]
impl FileServer for SingleTree {
    async fn attach(&self, info: &AttachInfo) -> Result<Arc<dyn Node>> {
        walk_path(self.0.clone(), &info.aname).await
    }
}

/// Walks `path` ("a/b", "/a/b") from `root`. `..` and `.` are refused,
/// so a path can only go down.
pub async fn walk_path(root: Arc<dyn Node>, path: &str) -> Result<Arc<dyn Node>> {
    let mut node = root;
    for name in path.split('/').filter(|s| !s.is_empty()) {
        if name == ".." || name == "." {
            return Err(Error::invalid_arg(
                "attach: path may not contain '.' or '..'",
            ));
        }
        node = node.walk(name).await?;
    }
    Ok(node)
}

/// Seconds since the epoch (0 for times before it).
pub fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs()
}

/// Seconds and nanoseconds since the epoch.
pub fn unix_time(t: SystemTime) -> (u64, u64) {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    (d.as_secs(), u64::from(d.subsec_nanos()))
}

fn process_uid() -> u32 {
    // SAFETY: getuid has no preconditions and cannot fail.
    unsafe { libc::getuid() }
}

fn process_gid() -> u32 {
    // SAFETY: getgid has no preconditions and cannot fail.
    unsafe { libc::getgid() }
}

/// The server process's user name (for 9P2000 stat): the password
/// file's name for the uid (services often run without $USER), else the
/// number.
fn process_user() -> String {
    static USER: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    USER.get_or_init(|| {
        crate::ids::user_name(process_uid()).unwrap_or_else(|| process_uid().to_string())
    })
    .clone()
}

//! The mount's tables and the 9P2000.L side of every FUSE operation.
//!
//! - **Inodes.** An inode number is the file's qid.path (the root is 1;
//!   see [`State::ino_of`]). Each inode the kernel knows holds one walked,
//!   unopened fid, used for getattr, setattr, walks and as the source of
//!   clones to open. A lookup replaces it with the fid just walked (the
//!   freshest name for the file) and counts up; forget counts down and
//!   drops (clunks) the fid at zero, as the kernel's nlookup protocol asks.
//! - **Handles.** Each open file or directory is a file handle number
//!   mapping to its own opened fid (or, for a directory, the entries read
//!   at opendir); release clunks it.
//!
//! Nothing awaits while a table lock is held.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use fuser::{Errno, FileAttr, FileType, INodeNo};
use ninep::{l, Dirent, Fcall, Qid, Rgetattr, Rstatfs, NONUNAME};
use ninep_client::{Fid, SetAttr};

use super::attr::{file_attr, kind_of_dtype, Errnos};

/// The root's inode number (FUSE_ROOT_ID).
pub(crate) const ROOT: u64 = INodeNo::ROOT.0;
/// Set in the inode numbers of qid paths 0 and 1, which would otherwise be
/// FUSE's "no inode" and the root.
const LOW_QID_BIT: u64 = 1 << 62;

/// An inode the kernel holds.
struct Inode {
    fid: Arc<Fid>,
    /// The kernel's lookup count; the root's is not counted.
    lookups: u64,
}

/// An open file or directory.
pub(crate) enum Handle {
    File(OpenFile),
    Dir(Vec<Entry>),
}

/// An open file.
pub(crate) struct OpenFile {
    pub(crate) fid: Fid,
    /// Opened O_APPEND: the server appends, so writes go one at a time.
    append: bool,
    /// Bypasses the page cache (see [`direct_io`]).
    pub(crate) direct: bool,
}

/// One directory entry, as read at opendir.
pub(crate) struct Entry {
    pub(crate) name: String,
    pub(crate) ino: u64,
    pub(crate) kind: FileType,
}

/// The mount's tables.
pub(crate) struct State {
    root_path: u64,
    root: Arc<Fid>,
    inodes: Mutex<HashMap<u64, Inode>>,
    handles: Mutex<HashMap<u64, Arc<Handle>>>,
    next_fh: AtomicU64,
}

/// Whether a file's contents bypass the kernel's page cache: qid.version
/// 0 says the server does not track versions (synthetic files such as
/// /status and /ctl), so cached pages or a cached size could be wrong, and
/// each write must reach the server as written.
fn direct_io(qid: &Qid) -> bool {
    qid.version == 0 && !qid.is_dir()
}

/// The 9P2000.L open flags for the kernel's: access mode, append and
/// truncate; the rest (O_CREAT, O_NOCTTY, O_NONBLOCK, ...) are the
/// kernel's business.
fn lflags(flags: i32) -> u32 {
    let f = flags as u32;
    f & (l::open::ACCMODE | l::open::APPEND | l::open::TRUNC)
}

impl State {
    /// Tables for a mount whose root is `root`.
    pub(crate) fn new(root: Fid) -> State {
        let root_path = root.qid().path;
        let root = Arc::new(root);
        let mut inodes = HashMap::new();
        inodes.insert(
            ROOT,
            Inode {
                fid: root.clone(),
                lookups: 0,
            },
        );
        State {
            root_path,
            root,
            inodes: Mutex::new(inodes),
            handles: Mutex::new(HashMap::new()),
            next_fh: AtomicU64::new(1),
        }
    }

    /// The inode number for a qid.
    pub(crate) fn ino_of(&self, qid: &Qid) -> u64 {
        match qid.path {
            p if p == self.root_path => ROOT,
            p @ (0 | 1) => p | LOW_QID_BIT,
            p => p,
        }
    }

    fn inodes(&self) -> MutexGuard<'_, HashMap<u64, Inode>> {
        self.inodes.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn handles(&self) -> MutexGuard<'_, HashMap<u64, Arc<Handle>>> {
        self.handles.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The fid of inode `ino`.
    fn fid(&self, ino: u64) -> Result<Arc<Fid>, Errno> {
        self.inodes()
            .get(&ino)
            .map(|i| i.fid.clone())
            .ok_or(Errno::ESTALE)
    }

    /// Records that the kernel now holds one more reference to the file
    /// `fid` (attributes `a`); returns its attributes for the reply.
    fn remember(&self, fid: Fid, a: &Rgetattr) -> FileAttr {
        let ino = self.ino_of(&a.qid);
        let mut inodes = self.inodes();
        if ino != ROOT {
            let fid = Arc::new(fid);
            inodes
                .entry(ino)
                .and_modify(|i| {
                    i.fid = fid.clone();
                    i.lookups += 1;
                })
                .or_insert(Inode { fid, lookups: 1 });
        }
        file_attr(ino, a)
    }

    /// Walks `name` from directory `dir` and remembers the result.
    async fn enter(&self, dir: &Fid, name: &str) -> Result<FileAttr, Errno> {
        let fid = dir.walk(&[name]).await.errnos()?;
        let a = fid.getattr(l::getattr::BASIC).await.errnos()?;
        Ok(self.remember(fid, &a))
    }

    /// The kernel dropped `n` references to `ino`.
    pub(crate) fn forget(&self, ino: u64, n: u64) {
        if ino == ROOT {
            return;
        }
        let mut inodes = self.inodes();
        if let Some(i) = inodes.get_mut(&ino) {
            i.lookups = i.lookups.saturating_sub(n);
            if i.lookups == 0 {
                // Dropping the fid clunks it (in the background).
                inodes.remove(&ino);
            }
        }
    }

    fn add_handle(&self, h: Handle) -> u64 {
        let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
        self.handles().insert(fh, Arc::new(h));
        fh
    }

    pub(crate) fn handle(&self, fh: u64) -> Result<Arc<Handle>, Errno> {
        self.handles().get(&fh).cloned().ok_or(Errno::EBADF)
    }

    fn file(&self, fh: u64) -> Result<Arc<Handle>, Errno> {
        let h = self.handle(fh)?;
        match &*h {
            Handle::File(_) => Ok(h),
            Handle::Dir(_) => Err(Errno::EISDIR),
        }
    }

    pub(crate) fn take_handle(&self, fh: u64) -> Option<Arc<Handle>> {
        self.handles().remove(&fh)
    }

    // ---- names ----

    pub(crate) async fn lookup(&self, parent: u64, name: &str) -> Result<FileAttr, Errno> {
        let dir = self.fid(parent)?;
        self.enter(&dir, name).await
    }

    pub(crate) async fn mkdir(
        &self,
        parent: u64,
        name: &str,
        perm: u32,
    ) -> Result<FileAttr, Errno> {
        let dir = self.fid(parent)?;
        dir.mkdir(name, perm).await.errnos()?;
        self.enter(&dir, name).await
    }

    pub(crate) async fn symlink(
        &self,
        parent: u64,
        name: &str,
        target: &str,
    ) -> Result<FileAttr, Errno> {
        let dir = self.fid(parent)?;
        let t = ninep::Tsymlink {
            fid: dir.number(),
            name: name.into(),
            symtgt: target.into(),
            gid: NONUNAME,
        };
        dir.client().rpc(t).await.errnos()?;
        self.enter(&dir, name).await
    }

    pub(crate) async fn link(&self, ino: u64, parent: u64, name: &str) -> Result<FileAttr, Errno> {
        let target = self.fid(ino)?;
        let dir = self.fid(parent)?;
        let t = ninep::Tlink {
            dfid: dir.number(),
            fid: target.number(),
            name: name.into(),
        };
        dir.client().rpc(t).await.errnos()?;
        self.enter(&dir, name).await
    }

    pub(crate) async fn readlink(&self, ino: u64) -> Result<String, Errno> {
        let fid = self.fid(ino)?;
        let t = ninep::Treadlink { fid: fid.number() };
        match fid.client().rpc(t).await.errnos()? {
            Fcall::Rreadlink(r) => Ok(r.target),
            _ => Err(Errno::EIO),
        }
    }

    pub(crate) async fn unlink(&self, parent: u64, name: &str, dir: bool) -> Result<(), Errno> {
        let flags = if dir { l::AT_REMOVEDIR } else { 0 };
        self.fid(parent)?.unlinkat(name, flags).await.errnos()
    }

    pub(crate) async fn rename(
        &self,
        parent: u64,
        name: &str,
        newparent: u64,
        newname: &str,
        noreplace: bool,
    ) -> Result<(), Errno> {
        let from = self.fid(parent)?;
        let to = self.fid(newparent)?;
        // 9P has no "unless it exists"; checking first is as close as it gets.
        if noreplace && to.walk(&[newname]).await.is_ok() {
            return Err(Errno::EEXIST);
        }
        from.renameat(name, &to, newname).await.errnos()
    }

    // ---- attributes ----

    pub(crate) async fn getattr(&self, ino: u64) -> Result<FileAttr, Errno> {
        let a = self.fid(ino)?.getattr(l::getattr::BASIC).await.errnos()?;
        Ok(file_attr(ino, &a))
    }

    pub(crate) async fn setattr(&self, ino: u64, set: SetAttr) -> Result<FileAttr, Errno> {
        let fid = self.fid(ino)?;
        if set != SetAttr::default() {
            fid.setattr(&set).await.errnos()?;
        }
        let a = fid.getattr(l::getattr::BASIC).await.errnos()?;
        Ok(file_attr(ino, &a))
    }

    /// The file system statistics of the tree `ino` is in (an export's
    /// host file system; zeros for the synthetic tree).
    pub(crate) async fn statfs(&self, ino: u64) -> Result<Rstatfs, Errno> {
        let fid = self.fid(ino).unwrap_or_else(|_| self.root.clone());
        fid.statfs().await.errnos()
    }

    // ---- files ----

    /// Opens inode `ino`; returns the handle and whether it is direct I/O.
    pub(crate) async fn open(&self, ino: u64, flags: i32) -> Result<(u64, bool), Errno> {
        let mut fid = self.fid(ino)?.try_clone().await.errnos()?;
        let qid = fid.lopen(lflags(flags)).await.errnos()?;
        let direct = direct_io(&qid);
        let fh = self.add_handle(Handle::File(OpenFile {
            fid,
            append: flags & libc::O_APPEND != 0,
            direct,
        }));
        Ok((fh, direct))
    }

    /// Creates and opens `name`; returns its attributes, the handle and
    /// whether it is direct I/O.
    pub(crate) async fn create(
        &self,
        parent: u64,
        name: &str,
        perm: u32,
        flags: i32,
    ) -> Result<(FileAttr, u64, bool), Errno> {
        let dir = self.fid(parent)?;
        let mut fid = dir.try_clone().await.errnos()?;
        let lf = lflags(flags) | l::open::CREAT | (flags as u32 & l::open::EXCL);
        let qid = fid.lcreate(name, lf, perm, NONUNAME).await.errnos()?;
        let attr = self.enter(&dir, name).await?;
        let direct = direct_io(&qid);
        let fh = self.add_handle(Handle::File(OpenFile {
            fid,
            append: flags & libc::O_APPEND != 0,
            direct,
        }));
        Ok((attr, fh, direct))
    }

    /// Up to `size` bytes at `offset`. A cached file is read until `size`
    /// or end of file, because the kernel takes a short read as the end; a
    /// direct-I/O file gets one read, as a stream would.
    pub(crate) async fn read(&self, fh: u64, offset: u64, size: u32) -> Result<Vec<u8>, Errno> {
        let h = self.file(fh)?;
        let Handle::File(f) = &*h else {
            return Err(Errno::EISDIR);
        };
        if f.direct {
            return f.fid.read(offset, size).await.errnos();
        }
        let size = size as usize;
        let mut out = Vec::with_capacity(size);
        while out.len() < size {
            let want = u32::try_from(size - out.len()).unwrap_or(u32::MAX);
            let data = f.fid.read(offset + out.len() as u64, want).await.errnos()?;
            if data.is_empty() {
                break;
            }
            out.extend_from_slice(&data);
        }
        Ok(out)
    }

    /// Writes `data` at `offset`: pipelined for an ordinary file, one
    /// write at a time for append mode (the server picks the offsets) and
    /// for direct-I/O files (control messages stay in order).
    pub(crate) async fn write(&self, fh: u64, offset: u64, data: &[u8]) -> Result<u32, Errno> {
        let h = self.file(fh)?;
        let Handle::File(f) = &*h else {
            return Err(Errno::EISDIR);
        };
        if f.append || f.direct {
            let mut done = 0;
            while done < data.len() {
                let n = f
                    .fid
                    .write(offset + done as u64, &data[done..])
                    .await
                    .errnos()? as usize;
                if n == 0 {
                    return Err(Errno::EIO);
                }
                done += n;
            }
        } else {
            f.fid.write_all(offset, data).await.errnos()?;
        }
        u32::try_from(data.len()).map_err(|_| Errno::EINVAL)
    }

    pub(crate) async fn fsync(&self, fh: u64) -> Result<(), Errno> {
        match &*self.file(fh)? {
            Handle::File(f) => f.fid.fsync().await.errnos(),
            Handle::Dir(_) => Ok(()),
        }
    }

    // ---- directories ----

    /// Opens directory `ino` and reads all its entries (`.` and `..`
    /// included, as the server sends them).
    pub(crate) async fn opendir(&self, ino: u64) -> Result<u64, Errno> {
        let mut dir = self.fid(ino)?.try_clone().await.errnos()?;
        dir.lopen(l::open::RDONLY | l::open::DIRECTORY)
            .await
            .errnos()?;
        let mut entries = Vec::new();
        let mut cookie = 0u64;
        loop {
            let t = ninep::Treaddir {
                fid: dir.number(),
                offset: cookie,
                count: dir.iounit(),
            };
            let Fcall::Rreaddir(r) = dir.client().rpc(t).await.errnos()? else {
                return Err(Errno::EIO);
            };
            let ents = Dirent::decode_all(&r.data).map_err(|_| Errno::EIO)?;
            let Some(last) = ents.last() else { break };
            if last.offset == cookie {
                return Err(Errno::EIO);
            }
            cookie = last.offset;
            entries.extend(ents.into_iter().map(|d| Entry {
                ino: self.ino_of(&d.qid),
                kind: kind_of_dtype(d.ty, &d.qid),
                name: d.name,
            }));
        }
        Ok(self.add_handle(Handle::Dir(entries)))
    }
}

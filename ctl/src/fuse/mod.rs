//! The FUSE file system: kernel requests to 9P2000.L.
//!
//! fuser calls these methods on its one session thread. None of them
//! waits on the network there: each hands its work to the tokio runtime
//! and returns, and the task replies when the server has answered (fuser's
//! reply objects are `Send`), so a slow read never holds up a lookup, and
//! the kernel can keep many requests in flight (FUSE_ASYNC_READ). Only
//! `forget`, `readdir` (served from the entries read at opendir) and the
//! bookkeeping of `releasedir` and `flush` are answered in place.
//!
//! Operation map: lookup = Twalk + Tgetattr; getattr = Tgetattr; setattr
//! = Tsetattr (+ Tgetattr); open = Twalk (clone) + Tlopen; create =
//! Tlcreate + Twalk + Tgetattr; read/write = Tread/Twrite on the handle's
//! fid; release = Tclunk; opendir = Tlopen + Treaddir; mkdir = Tmkdir;
//! unlink/rmdir = Tunlinkat; rename = Trenameat; symlink, link, readlink
//! = Tsymlink, Tlink, Treadlink; statfs = Tstatfs; fsync = Tfsync.
//! Attributes and names are cached by the kernel for [`TTL`].

mod attr;
mod state;

use std::ffi::OsStr;
use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use fuser::{
    BsdFileFlags, Errno, FileHandle, Filesystem, FopenFlags, Generation, INodeNo, KernelConfig,
    LockOwner, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory,
    ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, Request, TimeOrNow, WriteFlags,
};
use ninep_client::{Fid, SetAttr};

use attr::set_time;
use state::{Handle, State};

/// How long the kernel may trust attributes and names. Short, because
/// synthetic files change under it and other clients change exports.
pub(crate) const TTL: Duration = Duration::from_secs(1);
/// The largest write the kernel sends in one request.
const MAX_WRITE: u32 = 1 << 20;

/// A mounted namespace.
pub(crate) struct GridFs {
    rt: tokio::runtime::Handle,
    st: Arc<State>,
}

impl GridFs {
    /// A file system over the attached `root`, whose work runs on `rt`.
    pub(crate) fn new(rt: tokio::runtime::Handle, root: Fid) -> GridFs {
        GridFs {
            rt,
            st: Arc::new(State::new(root)),
        }
    }

    /// Runs `op` on the runtime.
    fn spawn<F>(&self, op: impl FnOnce(Arc<State>) -> F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.rt.spawn(op(self.st.clone()));
    }
}

/// A name from the kernel as 9P wants it: UTF-8 (9P strings are).
fn utf8(name: &OsStr) -> Result<String, Errno> {
    name.to_str().map(str::to_owned).ok_or(Errno::EINVAL)
}

fn entry(reply: ReplyEntry, r: Result<fuser::FileAttr, Errno>) {
    match r {
        Ok(a) => reply.entry(&TTL, &a, Generation(0)),
        Err(e) => reply.error(e),
    }
}

fn empty(reply: ReplyEmpty, r: Result<(), Errno>) {
    match r {
        Ok(()) => reply.ok(),
        Err(e) => reply.error(e),
    }
}

fn fopen(direct: bool) -> FopenFlags {
    if direct {
        FopenFlags::FOPEN_DIRECT_IO
    } else {
        FopenFlags::empty()
    }
}

impl Filesystem for GridFs {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        // The kernel clamps this to its own page limit.
        let _ = config.set_max_write(MAX_WRITE);
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let name = match utf8(name) {
            Ok(n) => n,
            Err(_) => return reply.error(Errno::ENOENT),
        };
        self.spawn(|st| async move { entry(reply, st.lookup(parent.0, &name).await) });
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        self.st.forget(ino.0, nlookup);
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        self.spawn(|st| async move {
            match st.getattr(ino.0).await {
                Ok(a) => reply.attr(&TTL, &a),
                Err(e) => reply.error(e),
            }
        });
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let set = SetAttr {
            perm: mode.map(|m| m & 0o7777),
            uid,
            gid,
            size,
            atime: atime.map(set_time),
            mtime: mtime.map(set_time),
        };
        self.spawn(|st| async move {
            match st.setattr(ino.0, set).await {
                Ok(a) => reply.attr(&TTL, &a),
                Err(e) => reply.error(e),
            }
        });
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        self.spawn(|st| async move {
            match st.readlink(ino.0).await {
                Ok(t) => reply.data(t.as_bytes()),
                Err(e) => reply.error(e),
            }
        });
    }

    fn mkdir(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        let name = match utf8(name) {
            Ok(n) => n,
            Err(e) => return reply.error(e),
        };
        let perm = mode & !umask & 0o7777;
        self.spawn(|st| async move { entry(reply, st.mkdir(parent.0, &name, perm).await) });
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let name = match utf8(name) {
            Ok(n) => n,
            Err(e) => return reply.error(e),
        };
        self.spawn(|st| async move { empty(reply, st.unlink(parent.0, &name, false).await) });
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let name = match utf8(name) {
            Ok(n) => n,
            Err(e) => return reply.error(e),
        };
        self.spawn(|st| async move { empty(reply, st.unlink(parent.0, &name, true).await) });
    }

    fn symlink(
        &self,
        _req: &Request,
        parent: INodeNo,
        link_name: &OsStr,
        target: &Path,
        reply: ReplyEntry,
    ) {
        let (name, target) = match (utf8(link_name), utf8(target.as_os_str())) {
            (Ok(n), Ok(t)) => (n, t),
            _ => return reply.error(Errno::EINVAL),
        };
        self.spawn(|st| async move { entry(reply, st.symlink(parent.0, &name, &target).await) });
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        let (name, newname) = match (utf8(name), utf8(newname)) {
            (Ok(a), Ok(b)) => (a, b),
            _ => return reply.error(Errno::EINVAL),
        };
        // 9P cannot exchange two names atomically, nor make whiteouts.
        if !(flags - RenameFlags::RENAME_NOREPLACE).is_empty() {
            return reply.error(Errno::EINVAL);
        }
        let noreplace = flags.contains(RenameFlags::RENAME_NOREPLACE);
        self.spawn(|st| async move {
            let r = st
                .rename(parent.0, &name, newparent.0, &newname, noreplace)
                .await;
            empty(reply, r)
        });
    }

    fn link(
        &self,
        _req: &Request,
        ino: INodeNo,
        newparent: INodeNo,
        newname: &OsStr,
        reply: ReplyEntry,
    ) {
        let name = match utf8(newname) {
            Ok(n) => n,
            Err(e) => return reply.error(e),
        };
        self.spawn(|st| async move { entry(reply, st.link(ino.0, newparent.0, &name).await) });
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        self.spawn(|st| async move {
            match st.open(ino.0, flags.0).await {
                Ok((fh, direct)) => reply.opened(FileHandle(fh), fopen(direct)),
                Err(e) => reply.error(e),
            }
        });
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        self.spawn(|st| async move {
            match st.read(fh.0, offset, size).await {
                Ok(data) => reply.data(&data),
                Err(e) => reply.error(e),
            }
        });
    }

    fn write(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let data = data.to_vec();
        self.spawn(|st| async move {
            match st.write(fh.0, offset, &data).await {
                Ok(n) => reply.written(n),
                Err(e) => reply.error(e),
            }
        });
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        // Writes are not buffered here: each was answered by the server.
        reply.ok();
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        let Some(h) = self.st.take_handle(fh.0) else {
            return reply.ok();
        };
        self.spawn(|_| async move {
            // A read or write still in flight holds the handle; then the
            // fid is clunked when that finishes instead.
            if let Ok(Handle::File(f)) = Arc::try_unwrap(h) {
                let _ = f.fid.clunk().await;
            }
            reply.ok();
        });
    }

    fn fsync(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        self.spawn(|st| async move { empty(reply, st.fsync(fh.0).await) });
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        self.spawn(|st| async move {
            match st.opendir(ino.0).await {
                Ok(fh) => reply.opened(FileHandle(fh), FopenFlags::empty()),
                Err(e) => reply.error(e),
            }
        });
    }

    fn readdir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let h = match self.st.handle(fh.0) {
            Ok(h) => h,
            Err(e) => return reply.error(e),
        };
        let Handle::Dir(entries) = &*h else {
            return reply.error(Errno::ENOTDIR);
        };
        let start = usize::try_from(offset).unwrap_or(usize::MAX);
        for (i, e) in entries.iter().enumerate().skip(start) {
            // Offsets are entry indexes plus one: where the next call starts.
            if reply.add(INodeNo(e.ino), i as u64 + 1, e.kind, &e.name) {
                break;
            }
        }
        reply.ok();
    }

    fn releasedir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        self.st.take_handle(fh.0);
        reply.ok();
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }

    fn statfs(&self, _req: &Request, ino: INodeNo, reply: ReplyStatfs) {
        self.spawn(|st| async move {
            match st.statfs(ino.0).await {
                Ok(s) => reply.statfs(
                    s.blocks, s.bfree, s.bavail, s.files, s.ffree, s.bsize, s.namelen, s.bsize,
                ),
                Err(e) => reply.error(e),
            }
        });
    }

    fn create(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let name = match utf8(name) {
            Ok(n) => n,
            Err(e) => return reply.error(e),
        };
        let perm = mode & !umask & 0o7777;
        self.spawn(|st| async move {
            match st.create(parent.0, &name, perm, flags).await {
                Ok((a, fh, direct)) => {
                    reply.created(&TTL, &a, Generation(0), FileHandle(fh), fopen(direct))
                }
                Err(e) => reply.error(e),
            }
        });
    }
}

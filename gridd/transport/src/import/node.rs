//! The nodes and handles of an import: each operation is the matching
//! 9P2000.L request on a fid of the current session.

use std::any::Any;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use ninep::{l, Fcall, Qid, Rgetattr, NONUNAME};
use ninep_client::{Fid, Metadata, SetTime};
use ninep_server::tree::mode;
use ninep_server::{
    Attr, CreateKind, DirEntry, Error, Handle, NoIo, Node, OpenMode, Opened, Result, SetAttr,
    Statfs, TimeSet,
};

use super::{is_connection_failure, Import, Session};

/// A file or directory of the peer, known by its path from the import's
/// root and the qid it had when walked.
pub(super) struct RemoteNode {
    imp: Arc<Import>,
    path: Vec<String>,
    qid: Qid,
    /// A fid for this node in session `.0`; walked again from the root
    /// when the session has changed.
    fid: Mutex<Option<(u64, Arc<Fid>)>>,
}

/// Whether an operation may be sent again on a new session after the
/// connection failed under it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Retry {
    Once,
    Never,
}

impl RemoteNode {
    pub(super) fn root(imp: Arc<Import>, s: &Session) -> RemoteNode {
        RemoteNode {
            imp,
            path: Vec::new(),
            qid: s.root.qid(),
            fid: Mutex::new(Some((s.gen, s.root.clone()))),
        }
    }

    fn child(&self, name: &str, qid: Qid, fid: Option<(u64, Arc<Fid>)>) -> RemoteNode {
        let mut path = self.path.clone();
        path.push(name.to_owned());
        RemoteNode {
            imp: self.imp.clone(),
            path,
            qid,
            fid: Mutex::new(fid),
        }
    }

    /// This node's fid in a live session, walking to it again if the
    /// session has changed since it was last used.
    async fn fid(&self) -> Result<(Arc<Session>, Arc<Fid>)> {
        let s = self.imp.session().await?;
        if let Some((gen, fid)) = &*self.cached() {
            if *gen == s.gen {
                return Ok((s, fid.clone()));
            }
        }
        let fid = if self.path.is_empty() {
            s.root.clone()
        } else {
            Arc::new(
                s.root
                    .walk(&self.path)
                    .await
                    .map_err(|e| self.imp.map_err(e))?,
            )
        };
        *self.cached() = Some((s.gen, fid.clone()));
        Ok((s, fid))
    }

    fn cached(&self) -> std::sync::MutexGuard<'_, Option<(u64, Arc<Fid>)>> {
        self.fid.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `op` on this node's fid; with [`Retry::Once`], once more on a
    /// new session if the connection failed under it. Returns the result
    /// and the session it came from.
    async fn run<T, F, Fut>(&self, retry: Retry, op: F) -> Result<(T, u64)>
    where
        F: Fn(Arc<Fid>) -> Fut,
        Fut: Future<Output = ninep_client::Result<T>>,
    {
        let (s, fid) = self.fid().await?;
        match op(fid).await {
            Ok(v) => Ok((v, s.gen)),
            Err(e) if retry == Retry::Once && is_connection_failure(&e, &s) => {
                let (s, fid) = self.fid().await?;
                match op(fid).await {
                    Ok(v) => Ok((v, s.gen)),
                    Err(e) => Err(self.imp.map_err(e)),
                }
            }
            Err(e) => Err(self.imp.map_err(e)),
        }
    }

    /// [`RemoteNode::run`] without the session.
    async fn op<T, F, Fut>(&self, retry: Retry, op: F) -> Result<T>
    where
        F: Fn(Arc<Fid>) -> Fut,
        Fut: Future<Output = ninep_client::Result<T>>,
    {
        Ok(self.run(retry, op).await?.0)
    }

    /// Another node of the same import, for rename and link.
    fn same_import<'a>(&self, other: &'a Arc<dyn Node>) -> Result<&'a RemoteNode> {
        other
            .as_any()
            .downcast_ref::<RemoteNode>()
            .filter(|n| Arc::ptr_eq(&n.imp, &self.imp))
            .ok_or_else(|| Error::new(libc::EXDEV, "cannot rename or link across trees"))
    }

    /// This node's fid and `other`'s, in one session.
    async fn fid_pair(&self, other: &RemoteNode) -> Result<(Arc<Fid>, Arc<Fid>)> {
        let (s1, a) = self.fid().await?;
        let (s2, b) = other.fid().await?;
        if s1.gen != s2.gen {
            return Err(self.imp.lost());
        }
        Ok((a, b))
    }

    fn owner(&self) -> String {
        self.imp.name()
    }
}

#[async_trait]
impl Node for RemoteNode {
    fn qid(&self) -> Qid {
        self.qid
    }

    async fn attr(&self) -> Result<Attr> {
        let (a, target) = self
            .op(Retry::Once, |fid| async move {
                let a = fid.getattr(l::getattr::BASIC).await?;
                let target = if a.mode & mode::S_IFMT == mode::S_IFLNK {
                    readlink(&fid).await?
                } else {
                    String::new()
                };
                Ok((a, target))
            })
            .await?;
        let mut attr = attr_from_getattr(&a, &self.owner());
        attr.link_target = target;
        Ok(attr)
    }

    async fn walk(&self, name: &str) -> Result<Arc<dyn Node>> {
        let (fid, gen) = self
            .run(Retry::Once, |fid| async move { fid.walk(&[name]).await })
            .await?;
        let qid = fid.qid();
        Ok(Arc::new(self.child(name, qid, Some((gen, Arc::new(fid))))))
    }

    async fn open(&self, mode: OpenMode) -> Result<Opened> {
        if self.qid.is_dir() {
            // The session reads directories with readdir, on its own fid.
            return Ok(Opened::new(NoIo));
        }
        let flags = open_flags(mode);
        let fid = self
            .op(Retry::Once, |fid| async move {
                let mut f = fid.try_clone().await?;
                f.lopen(flags).await?;
                Ok(f)
            })
            .await?;
        Ok(opened(&self.imp, fid))
    }

    async fn readdir(&self) -> Result<Vec<DirEntry>> {
        let entries = self
            .op(Retry::Once, |fid| async move { fid.readdir().await })
            .await?;
        let owner = self.owner();
        Ok(entries
            .into_iter()
            .filter(|e| is_path_element(&e.name))
            .map(|e| DirEntry {
                attr: attr_from_metadata(&e.meta, &owner),
                name: e.name,
            })
            .collect())
    }

    async fn create(
        &self,
        name: &str,
        kind: CreateKind,
        open: Option<OpenMode>,
    ) -> Result<(Arc<dyn Node>, Option<Opened>)> {
        let (qid, file) = match kind {
            CreateKind::File { perm } => {
                let mut flags = open_flags(open.unwrap_or(OpenMode::READ)) | l::open::CREAT;
                if open.is_some_and(|m| m.exclusive) {
                    flags |= l::open::EXCL;
                }
                let f = self
                    .op(Retry::Never, |fid| async move {
                        let mut f = fid.try_clone().await?;
                        f.lcreate(name, flags, perm, NONUNAME).await?;
                        Ok(f)
                    })
                    .await?;
                (f.qid(), Some(f))
            }
            CreateKind::Dir { perm } => {
                let qid = self
                    .op(
                        Retry::Never,
                        |fid| async move { fid.mkdir(name, perm).await },
                    )
                    .await?;
                (qid, None)
            }
            CreateKind::Symlink { target } => {
                let target = target.as_str();
                let qid = self
                    .op(Retry::Never, |fid| async move {
                        let body = ninep::Tsymlink {
                            fid: fid.number(),
                            name: name.into(),
                            symtgt: target.into(),
                            gid: NONUNAME,
                        };
                        match fid.client().rpc(body).await? {
                            Fcall::Rsymlink(r) => Ok(r.qid),
                            other => Err(unexpected(&other)),
                        }
                    })
                    .await?;
                (qid, None)
            }
            CreateKind::Special { mode, major, minor } => {
                let qid = self
                    .op(Retry::Never, |fid| async move {
                        let body = ninep::Tmknod {
                            dfid: fid.number(),
                            name: name.into(),
                            mode,
                            major,
                            minor,
                            gid: NONUNAME,
                        };
                        match fid.client().rpc(body).await? {
                            Fcall::Rmknod(r) => Ok(r.qid),
                            other => Err(unexpected(&other)),
                        }
                    })
                    .await?;
                (qid, None)
            }
        };
        let node: Arc<dyn Node> = Arc::new(self.child(name, qid, None));
        let opened = match (open, file) {
            (Some(_), Some(f)) => Some(opened(&self.imp, f)),
            (Some(_), None) => Some(Opened::new(NoIo)),
            (None, _) => None,
        };
        Ok((node, opened))
    }

    async fn remove(&self) -> Result<()> {
        self.op(Retry::Never, |fid| async move {
            fid.try_clone().await?.remove().await
        })
        .await
    }

    async fn unlink(&self, name: &str, is_dir: bool) -> Result<()> {
        let flags = if is_dir { l::AT_REMOVEDIR } else { 0 };
        self.op(Retry::Never, |fid| async move {
            fid.unlinkat(name, flags).await
        })
        .await
    }

    async fn rename(&self, from: &str, to_dir: &Arc<dyn Node>, to: &str) -> Result<()> {
        let other = self.same_import(to_dir)?;
        let (a, b) = self.fid_pair(other).await?;
        a.renameat(from, &b, to)
            .await
            .map_err(|e| self.imp.map_err(e))
    }

    async fn setattr(&self, set: SetAttr) -> Result<()> {
        let set = &setattr(&set);
        self.op(Retry::Once, |fid| async move { fid.setattr(set).await })
            .await
    }

    async fn readlink(&self) -> Result<String> {
        self.op(Retry::Once, |fid| async move { readlink(&fid).await })
            .await
    }

    async fn link(&self, target: &Arc<dyn Node>, name: &str) -> Result<()> {
        let other = self.same_import(target)?;
        let (dir, file) = self.fid_pair(other).await?;
        let body = ninep::Tlink {
            dfid: dir.number(),
            fid: file.number(),
            name: name.into(),
        };
        match dir.client().rpc(body).await {
            Ok(Fcall::Rlink(_)) => Ok(()),
            Ok(other) => Err(self.imp.map_err(unexpected(&other))),
            Err(e) => Err(self.imp.map_err(e)),
        }
    }

    async fn statfs(&self) -> Result<Statfs> {
        let s = self
            .op(Retry::Once, |fid| async move { fid.statfs().await })
            .await?;
        Ok(Statfs {
            ty: s.ty,
            bsize: s.bsize,
            blocks: s.blocks,
            bfree: s.bfree,
            bavail: s.bavail,
            files: s.files,
            ffree: s.ffree,
            fsid: s.fsid,
            namelen: s.namelen,
        })
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// An open file of the peer. It belongs to the session it was opened in:
/// after a reconnect its reads and writes fail (`connection lost`).
struct RemoteHandle {
    imp: Arc<Import>,
    fid: Fid,
}

#[async_trait]
impl Handle for RemoteHandle {
    async fn read(&self, offset: u64, count: u32) -> Result<Vec<u8>> {
        self.fid
            .read(offset, count)
            .await
            .map_err(|e| self.imp.map_err(e))
    }

    async fn write(&self, offset: u64, data: &[u8]) -> Result<u32> {
        self.fid
            .write(offset, data)
            .await
            .map_err(|e| self.imp.map_err(e))
    }

    async fn fsync(&self) -> Result<()> {
        self.fid.fsync().await.map_err(|e| self.imp.map_err(e))
    }

    // clunk: dropping the handle drops the fid, which clunks it.
}

fn opened(imp: &Arc<Import>, fid: Fid) -> Opened {
    let iounit = fid.iounit();
    Opened {
        handle: Arc::new(RemoteHandle {
            imp: imp.clone(),
            fid,
        }),
        becomes: None,
        iounit,
    }
}

async fn readlink(fid: &Fid) -> ninep_client::Result<String> {
    let body = ninep::Treadlink { fid: fid.number() };
    match fid.client().rpc(body).await? {
        Fcall::Rreadlink(r) => Ok(r.target),
        other => Err(unexpected(&other)),
    }
}

fn unexpected(reply: &Fcall) -> ninep_client::Error {
    ninep_client::Error::Protocol(format!("unexpected {}", reply.name()))
}

/// Linux open flags (Tlopen, Tlcreate) for an open mode.
fn open_flags(m: OpenMode) -> u32 {
    let mut f = match (m.read, m.write) {
        (true, true) => l::open::RDWR,
        (false, true) => l::open::WRONLY,
        _ => l::open::RDONLY,
    };
    if m.truncate {
        f |= l::open::TRUNC;
    }
    if m.append {
        f |= l::open::APPEND;
    }
    f
}

fn setattr(s: &SetAttr) -> ninep_client::SetAttr {
    let time = |t: TimeSet| match t {
        TimeSet::Now => SetTime::Now,
        TimeSet::At(t) => SetTime::At(t),
    };
    ninep_client::SetAttr {
        perm: s.mode,
        uid: s.uid,
        gid: s.gid,
        size: s.size,
        atime: s.atime.map(time),
        mtime: s.mtime.map(time),
    }
}

/// Attributes from the peer's Rgetattr. The peer's numeric owners are
/// kept; the names (for 9P2000 stat) are the peer's local name.
fn attr_from_getattr(a: &Rgetattr, owner: &str) -> Attr {
    Attr {
        qid: a.qid,
        mode: a.mode,
        uid: a.uid,
        gid: a.gid,
        uname: owner.to_owned(),
        gname: owner.to_owned(),
        nlink: a.nlink,
        rdev: a.rdev,
        size: a.size,
        blksize: a.blksize,
        blocks: a.blocks,
        atime: time(a.atime_sec, a.atime_nsec),
        mtime: time(a.mtime_sec, a.mtime_nsec),
        ctime: time(a.ctime_sec, a.ctime_nsec),
        link_target: String::new(),
    }
}

/// Attributes of a directory entry, from what a listing carries.
fn attr_from_metadata(m: &Metadata, owner: &str) -> Attr {
    let kind = match m.kind {
        ninep_client::FileKind::Dir => mode::S_IFDIR,
        ninep_client::FileKind::Symlink => mode::S_IFLNK,
        _ => mode::S_IFREG,
    };
    Attr {
        qid: m.qid,
        mode: kind | (m.perm & 0o7777),
        uid: 0,
        gid: 0,
        uname: owner.to_owned(),
        gname: owner.to_owned(),
        nlink: 1,
        rdev: 0,
        size: m.size,
        blksize: 4096,
        blocks: m.size.div_ceil(512),
        atime: m.mtime,
        mtime: m.mtime,
        ctime: m.mtime,
        link_target: String::new(),
    }
}

/// Whether a name a peer listed can be served as one directory entry: a
/// lying or broken peer could list "", "..", or "a/b", which local
/// clients would take for other paths. Such entries are left out.
fn is_path_element(name: &str) -> bool {
    !(name.is_empty() || name == "." || name == ".." || name.contains(['/', '\0']))
}

/// A time from the wire; out-of-range values (hostile or broken peers)
/// become the epoch rather than a panic.
fn time(sec: u64, nsec: u64) -> SystemTime {
    let nanos = u32::try_from(nsec.min(999_999_999)).unwrap_or(0);
    UNIX_EPOCH
        .checked_add(Duration::new(sec, nanos))
        .unwrap_or(UNIX_EPOCH)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_times_do_not_panic() {
        assert_eq!(time(u64::MAX, u64::MAX), UNIX_EPOCH);
        assert_eq!(time(1, 5), UNIX_EPOCH + Duration::new(1, 5));
    }

    #[test]
    fn only_single_path_elements_are_listed() {
        for good in ["motd", "a.b", "...", "x y"] {
            assert!(is_path_element(good), "{good:?}");
        }
        for bad in ["", ".", "..", "a/b", "/", "a\0b"] {
            assert!(!is_path_element(bad), "{bad:?}");
        }
    }

    #[test]
    fn open_modes_become_linux_flags() {
        let m = |read, write, truncate, append| OpenMode {
            read,
            write,
            truncate,
            append,
            exclusive: false,
        };
        assert_eq!(open_flags(m(true, false, false, false)), l::open::RDONLY);
        assert_eq!(
            open_flags(m(true, true, true, false)),
            l::open::RDWR | l::open::TRUNC
        );
        assert_eq!(
            open_flags(m(false, true, false, true)),
            l::open::WRONLY | l::open::APPEND
        );
    }
}

//! [`Node`] for a host path: the async side of the export.
//!
//! Each method checks what needs no syscall (read-only export, names, which
//! tree a peer node is from), then runs the body from `ops` either inline
//! (the cached walk/attr fast path, see the crate docs) or on the blocking
//! pool via [`blocking`].

use std::any::Any;
use std::io;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use ninep::Qid;
use ninep_server::{
    Attr, CreateKind, DirEntry, Error, Node, OpenMode, Opened, Result, SetAttr, Statfs,
};
use rustix::fs::OFlags;

use crate::attr::{self, Names};
use crate::beneath::{check_name, join, Root};
use crate::registry::Registry;
use crate::{ops, ExportOptions};

/// File systems whose lookups and getattr never wait on anything but local
/// memory once the dentry is cached: the inline fast path is only used when
/// the root is on one of these (statfs f_type magic numbers).
const LOCAL_FS: &[i64] = &[
    0xEF53,      // ext2/3/4
    0x5846_5342, // xfs
    0x9123_683E, // btrfs
    0x0102_1994, // tmpfs
    0x8584_58F6, // ramfs
    0xF2F5_2010, // f2fs
    0x2FC1_2FC1, // zfs
    0xCA45_1A4E, // bcachefs
    0x794C_7630, // overlayfs
];

/// What all nodes of one export share.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) root: Root,
    pub(crate) read_only: bool,
    /// The root's device: files on it get their inode number as qid.path.
    pub(crate) root_dev: u64,
    /// Whether walk and attr may try the cached lookup inline.
    inline_meta: bool,
    pub(crate) names: Names,
    pub(crate) registry: Registry,
}

impl Shared {
    /// A new node for `path`, registered so renames can move it.
    fn node(self: &Arc<Self>, path: String, qid: Qid) -> Arc<ExportNode> {
        let node = Arc::new(ExportNode {
            shared: self.clone(),
            path: Mutex::new(path.into()),
            qid,
        });
        self.registry.add(&node);
        node
    }

    /// `EROFS` when the export is read-only.
    fn writable(&self) -> Result<()> {
        if self.read_only {
            return Err(io::Error::from_raw_os_error(libc::EROFS).into());
        }
        Ok(())
    }
}

/// Opens `root` and returns the export's root node.
pub(crate) fn export_root(root: &Path, options: ExportOptions) -> io::Result<Arc<ExportNode>> {
    let root = Root::open(root)?;
    let st = attr::stat_fd(root.fd())?;
    let fs = rustix::fs::fstatfs(root.fd())?;
    let root_dev = attr::dev(&st);
    #[allow(clippy::unnecessary_cast)] // f_type is not an i64 on every target
    let local = LOCAL_FS.contains(&(fs.f_type as i64));
    // Kernels before 5.12 lack RESOLVE_CACHED: then every inline try would
    // be a wasted syscall.
    let cached_works = || matches!(root.resolve_cached("", OFlags::PATH), Some(Ok(_)));
    let inline_meta = local && cached_works();
    let shared = Arc::new(Shared {
        root,
        read_only: options.read_only,
        root_dev,
        inline_meta,
        names: Names::default(),
        registry: Registry::default(),
    });
    let qid = attr::qid(&st, root_dev);
    Ok(shared.node(String::new(), qid))
}

/// A file, directory or symlink of the export, named by its path relative
/// to the root.
#[derive(Debug)]
pub(crate) struct ExportNode {
    shared: Arc<Shared>,
    /// Changed only by the registry, under its lock.
    path: Mutex<Arc<str>>,
    /// The qid when walked; attr reports the current one.
    qid: Qid,
}

impl ExportNode {
    /// The current path relative to the root ("" for the root).
    pub(crate) fn path(&self) -> Arc<str> {
        self.path
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Moves the node (the registry, after a rename).
    pub(crate) fn set_path(&self, path: Arc<str>) {
        *self.path.lock().unwrap_or_else(PoisonError::into_inner) = path;
    }

    /// What this node's export shares.
    #[cfg(test)]
    pub(crate) fn shared(&self) -> &Shared {
        &self.shared
    }

    /// `other` as a node of this same export, or `EXDEV`.
    fn same_tree<'a>(&self, other: &'a Arc<dyn Node>) -> Result<&'a ExportNode> {
        match other.as_any().downcast_ref::<ExportNode>() {
            Some(n) if Arc::ptr_eq(&n.shared, &self.shared) => Ok(n),
            _ => Err(Error::new(libc::EXDEV, "export: not a node of this tree")),
        }
    }
}

impl Drop for ExportNode {
    fn drop(&mut self) {
        self.shared.registry.remove(self);
    }
}

#[async_trait]
impl Node for ExportNode {
    fn qid(&self) -> Qid {
        self.qid
    }

    async fn attr(&self) -> Result<Attr> {
        let path = self.path();
        if self.shared.inline_meta {
            if let Some(r) = ops::attr_cached(&self.shared, &path) {
                return Ok(r?);
            }
        }
        let shared = self.shared.clone();
        blocking(move || ops::attr(&shared, &path)).await
    }

    async fn walk(&self, name: &str) -> Result<Arc<dyn Node>> {
        check_name(name)?;
        let path = join(&self.path(), name);
        if self.shared.inline_meta {
            if let Some(r) = ops::lookup_cached(&self.shared, &path) {
                let qid = r?;
                return Ok(self.shared.node(path, qid));
            }
        }
        let shared = self.shared.clone();
        let (path, qid) = blocking(move || {
            let qid = ops::lookup(&shared, &path)?;
            Ok((path, qid))
        })
        .await?;
        Ok(self.shared.node(path, qid))
    }

    async fn open(&self, mode: OpenMode) -> Result<Opened> {
        if mode.write || mode.truncate || mode.append {
            self.shared.writable()?;
        }
        let (shared, path) = (self.shared.clone(), self.path());
        blocking(move || ops::open(&shared, &path, mode)).await
    }

    async fn readdir(&self) -> Result<Vec<DirEntry>> {
        let (shared, path) = (self.shared.clone(), self.path());
        blocking(move || ops::readdir(&shared, &path)).await
    }

    async fn create(
        &self,
        name: &str,
        kind: CreateKind,
        open: Option<OpenMode>,
    ) -> Result<(Arc<dyn Node>, Option<Opened>)> {
        self.shared.writable()?;
        check_name(name)?;
        let (shared, dir, name) = (self.shared.clone(), self.path(), name.to_owned());
        let (path, qid, opened) =
            blocking(move || ops::create(&shared, &dir, &name, kind, open)).await?;
        Ok((self.shared.node(path, qid), opened))
    }

    async fn remove(&self) -> Result<()> {
        self.shared.writable()?;
        let path = self.path();
        if path.is_empty() {
            return Err(Error::new(
                libc::EBUSY,
                "export: the root cannot be removed",
            ));
        }
        let (shared, is_dir) = (self.shared.clone(), self.qid.is_dir());
        blocking(move || ops::remove(&shared, &path, is_dir)).await
    }

    async fn unlink(&self, name: &str, is_dir: bool) -> Result<()> {
        self.shared.writable()?;
        check_name(name)?;
        let (shared, dir, name) = (self.shared.clone(), self.path(), name.to_owned());
        blocking(move || ops::unlink(&shared, &dir, &name, is_dir)).await
    }

    async fn rename(&self, from: &str, to_dir: &Arc<dyn Node>, to: &str) -> Result<()> {
        self.shared.writable()?;
        check_name(from)?;
        check_name(to)?;
        let to_dir = self.same_tree(to_dir)?.path();
        let (shared, from_dir) = (self.shared.clone(), self.path());
        let (from, to) = (from.to_owned(), to.to_owned());
        blocking(move || ops::rename(&shared, &from_dir, &from, &to_dir, &to)).await
    }

    async fn setattr(&self, set: SetAttr) -> Result<()> {
        let (shared, path) = (self.shared.clone(), self.path());
        if set.is_empty() {
            // A Twstat that changes nothing asks for the file to be
            // committed to stable storage; nothing of ours can be dirty in a
            // read-only export.
            if self.shared.read_only {
                return Ok(());
            }
            return blocking(move || ops::sync(&shared, &path)).await;
        }
        self.shared.writable()?;
        blocking(move || ops::setattr(&shared, &path, &set)).await
    }

    async fn readlink(&self) -> Result<String> {
        let (shared, path) = (self.shared.clone(), self.path());
        blocking(move || ops::readlink(&shared, &path)).await
    }

    async fn link(&self, target: &Arc<dyn Node>, name: &str) -> Result<()> {
        self.shared.writable()?;
        check_name(name)?;
        let target = self.same_tree(target)?.path();
        let (shared, dir, name) = (self.shared.clone(), self.path(), name.to_owned());
        blocking(move || ops::link(&shared, &target, &dir, &name)).await
    }

    async fn statfs(&self) -> Result<Statfs> {
        let shared = self.shared.clone();
        blocking(move || ops::statfs(&shared)).await
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// Runs `f` on tokio's blocking pool. The syscall is not cancelled if the
/// future is dropped (Tflush): it completes and its result is discarded.
pub(crate) async fn blocking<T, F>(f: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> io::Result<T> + Send + 'static,
{
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r.map_err(Error::from),
        Err(e) => Err(Error::io(format!("export: blocking task failed: {e}"))),
    }
}

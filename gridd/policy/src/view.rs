//! [`PolicyView`]: one peer's view of my namespace, enforcing its grant.
//!
//! Every node of the view wraps a node of the namespace and knows its path
//! from the namespace root. Each operation reads the peer's [`LiveGrant`]
//! afresh and decides from the path alone:
//!
//! - a path that is neither granted nor on the way to a grant does not
//!   exist: walks to it answer "file not found", listings leave it out, and
//!   a node already walked there (before a withdrawal) answers
//!   `policy: grant withdrawn`;
//! - a directory on the way to a grant lists only the names that lead on
//!   (a file is never on the way: a grant beneath a file grants nothing);
//! - inside a grant everything is visible;
//! - a change (open for write, truncate or append, create, remove, unlink,
//!   rename, setattr, link) needs an `rw` grant covering what changes, else
//!   EACCES `policy: peer NAME may not write /PATH`. Creating, removing or
//!   renaming an entry changes its directory, so the root of a grant cannot
//!   itself be removed or renamed;
//! - a rename or hard link stays within one `rw` grant (EXDEV otherwise, so
//!   `mv` falls back to copy and remove, each checked on its own);
//! - symbolic links are never followed on the server's side (opening one
//!   is ELOOP; 9P2000.L and .u clients resolve links themselves, with walks
//!   that are checked), and a new link may only point inside its grant.
//!
//! Open handles check the grant before every read, write and fsync, and a
//! read that waited checks again before it returns, so a withdrawal stops
//! data at once. Paths follow renames made through the view (a registry
//! of live nodes is rewritten, as `ninep-export` does for its own nodes).

use std::any::Any;
use std::sync::{Arc, Mutex, PoisonError, Weak};

use async_trait::async_trait;
use ninep::{qt, Qid};
use ninep_server::tree::mode::{S_IFLNK, S_IFMT};
use ninep_server::{
    Attr, CreateKind, DirEntry, Error, Handle, Node, OpenMode, Opened, Result, SetAttr, Statfs,
};

use crate::audit::{Audit, Op};
use crate::live::LiveGrant;
use crate::policy::{within, Access, Policy};

/// A peer's view of a namespace: a [`Node`] that wraps the namespace root
/// (and, as it is walked, every node beneath it) and lets through only what
/// the peer's [`LiveGrant`] allows, counting everything in its [`Audit`].
///
/// Serve it as the root of the peer's 9P sessions
/// (`ninep_server::Server::for_tree(view, ..)`); attaching with an `aname`
/// such as `files/pub` starts at that granted subtree, and the session's
/// `..` never climbs above it. Use one view per peer (or per connection)
/// for all its attaches: renames and links work between nodes of one view.
pub struct PolicyView {
    inner: Arc<dyn Node>,
    path: Arc<PathCell>,
    ctx: Arc<Ctx>,
}

impl PolicyView {
    /// The view of `root` for the peer called `peer`, under `grant`.
    pub fn new(
        root: Arc<dyn Node>,
        peer: &str,
        grant: LiveGrant,
        audit: Arc<Audit>,
    ) -> Arc<PolicyView> {
        Arc::new(PolicyView {
            inner: root,
            path: Arc::new(PathCell::new(String::new())),
            ctx: Arc::new(Ctx {
                peer: peer.to_owned(),
                grant,
                audit,
                registry: Registry::default(),
            }),
        })
    }

    /// The peer's name, as denials show it.
    pub fn peer(&self) -> &str {
        &self.ctx.peer
    }

    /// This node's path in the namespace, as `/files/pub` (`/` for the root).
    pub fn path(&self) -> String {
        format!("/{}", self.path.get())
    }

    /// The grant this view enforces.
    pub fn grant(&self) -> &LiveGrant {
        &self.ctx.grant
    }

    /// The counters this view updates.
    pub fn audit(&self) -> &Arc<Audit> {
        &self.ctx.audit
    }

    /// Counts `op`, then checks this node is still visible under the
    /// grant in force; returns the grant, the path and the access.
    fn enter(&self, op: Op) -> Result<(Arc<Policy>, Arc<str>, Access)> {
        self.ctx.audit.op(op);
        let path = self.path.get();
        let (policy, access) = self.ctx.check(&path)?;
        Ok((policy, path, access))
    }

    /// A view node for `inner`, found at `path`.
    fn child(&self, inner: Arc<dyn Node>, path: String) -> Arc<PolicyView> {
        let cell = Arc::new(PathCell::new(path));
        self.ctx.registry.add(&cell);
        Arc::new(PolicyView {
            inner,
            path: cell,
            ctx: self.ctx.clone(),
        })
    }

    /// Wraps what the inner node's open returned: a checking handle, and a
    /// view of the node the fid becomes (the clone idiom), which keeps this
    /// node's path: its own name is not known to the view.
    fn wrap(&self, opened: Opened) -> Opened {
        let becomes = opened
            .becomes
            .map(|node| self.child(node, self.path.get().to_string()));
        let path = becomes
            .as_ref()
            .map_or_else(|| self.path.clone(), |b| b.path.clone());
        Opened {
            handle: Arc::new(ViewHandle {
                inner: opened.handle,
                path,
                ctx: self.ctx.clone(),
            }),
            becomes: becomes.map(|b| b as Arc<dyn Node>),
            iounit: opened.iounit,
        }
    }

    /// `node` as a node of this same view, or EXDEV.
    fn same_view<'a>(&self, node: &'a Arc<dyn Node>) -> Result<&'a PolicyView> {
        match node.as_any().downcast_ref::<PolicyView>() {
            Some(v) if Arc::ptr_eq(&v.ctx, &self.ctx) => Ok(v),
            _ => Err(Error::new(libc::EXDEV, "policy: not a node of this view")),
        }
    }

    async fn is_symlink(&self) -> Result<bool> {
        if self.inner.qid().ty & qt::SYMLINK != 0 {
            return Ok(true);
        }
        // The qid is from the walk; the file may have been replaced since.
        Ok(self.inner.attr().await?.mode & S_IFMT == S_IFLNK)
    }
}

#[async_trait]
impl Node for PolicyView {
    fn qid(&self) -> Qid {
        self.inner.qid()
    }

    async fn attr(&self) -> Result<Attr> {
        self.enter(Op::Attr)?;
        self.inner.attr().await
    }

    async fn walk(&self, name: &str) -> Result<Arc<dyn Node>> {
        let (policy, path, _) = self.enter(Op::Walk)?;
        let child = join(&path, name);
        let access = policy.access(&child);
        if access == Access::Hidden {
            self.ctx.audit.hid();
            return Err(Error::not_found());
        }
        let node = self.inner.walk(name).await?;
        // Only a directory can be on the way to a grant (`status/x r`
        // grants nothing of `status` if that is a file).
        if access == Access::Transit && !node.qid().is_dir() {
            self.ctx.audit.hid();
            return Err(Error::not_found());
        }
        Ok(self.child(node, child))
    }

    async fn open(&self, mode: OpenMode) -> Result<Opened> {
        let (policy, path, _) = self.enter(Op::Open)?;
        if mode.write || mode.truncate || mode.append {
            self.ctx.rw_root(&policy, &path, &path)?;
        }
        if self.is_symlink().await? {
            return Err(self.ctx.deny(Error::new(
                libc::ELOOP,
                "policy: symbolic links are not followed for peers",
            )));
        }
        let opened = self.inner.open(mode).await?;
        Ok(self.wrap(opened))
    }

    async fn readdir(&self) -> Result<Vec<DirEntry>> {
        let (policy, path, access) = self.enter(Op::Readdir)?;
        if access != Access::Transit {
            return self.inner.readdir().await;
        }
        // Only the names that lead on to grants; the rest of the
        // directory is never read, so its size and names do not leak.
        let mut entries = Vec::new();
        for name in policy.transit_names(&path) {
            let Ok(node) = self.inner.walk(&name).await else {
                continue;
            };
            let granted = policy.access(&join(&path, &name)) != Access::Transit;
            if !granted && !node.qid().is_dir() {
                continue;
            }
            if let Ok(attr) = node.attr().await {
                entries.push(DirEntry { name, attr });
            }
        }
        Ok(entries)
    }

    async fn create(
        &self,
        name: &str,
        kind: CreateKind,
        open: Option<OpenMode>,
    ) -> Result<(Arc<dyn Node>, Option<Opened>)> {
        let (policy, path, _) = self.enter(Op::Create)?;
        let child = join(&path, name);
        let root = self.ctx.rw_root(&policy, &path, &child)?;
        if let CreateKind::Symlink { target } = &kind {
            if !link_stays_in(&root, &path, target) {
                return Err(self.ctx.deny(Error::new(
                    libc::EACCES,
                    format!(
                        "policy: peer {} may not link /{child} to {target}: it points outside /{root}",
                        self.ctx.peer
                    ),
                )));
            }
        }
        let (node, opened) = self.inner.create(name, kind, open).await?;
        let node = self.child(node, child);
        let opened = opened.map(|o| node.wrap(o));
        Ok((node, opened))
    }

    async fn remove(&self) -> Result<()> {
        let (policy, path, _) = self.enter(Op::Remove)?;
        let parent = path.rsplit_once('/').map_or("", |(dir, _)| dir);
        if path.is_empty() || policy.rw_root(parent).is_none() {
            return Err(self.ctx.may_not_write(&path));
        }
        self.inner.remove().await
    }

    async fn unlink(&self, name: &str, is_dir: bool) -> Result<()> {
        let (policy, path, _) = self.enter(Op::Unlink)?;
        self.ctx.rw_root(&policy, &path, &join(&path, name))?;
        self.inner.unlink(name, is_dir).await
    }

    async fn rename(&self, from: &str, to_dir: &Arc<dyn Node>, to: &str) -> Result<()> {
        let (policy, path, _) = self.enter(Op::Rename)?;
        let dst = self.same_view(to_dir)?;
        let dst_dir = dst.path.get();
        if policy.access(&dst_dir) == Access::Hidden {
            return Err(self.ctx.withdrawn());
        }
        let (from_path, to_path) = (join(&path, from), join(&dst_dir, to));
        let src_root = self.ctx.rw_root(&policy, &path, &from_path)?;
        let dst_root = self.ctx.rw_root(&policy, &dst_dir, &to_path)?;
        if src_root != dst_root {
            return Err(self.ctx.deny(Error::new(
                libc::EXDEV,
                format!(
                    "policy: peer {} may not move /{from_path} out of /{src_root}",
                    self.ctx.peer
                ),
            )));
        }
        self.inner.rename(from, &dst.inner, to).await?;
        self.ctx.registry.moved(&from_path, &to_path);
        Ok(())
    }

    async fn setattr(&self, set: SetAttr) -> Result<()> {
        let (policy, path, _) = self.enter(Op::Setattr)?;
        // A change of nothing asks for a sync, which reading allows.
        if !set.is_empty() {
            self.ctx.rw_root(&policy, &path, &path)?;
        }
        self.inner.setattr(set).await
    }

    async fn readlink(&self) -> Result<String> {
        self.enter(Op::Readlink)?;
        self.inner.readlink().await
    }

    async fn link(&self, target: &Arc<dyn Node>, name: &str) -> Result<()> {
        let (policy, path, _) = self.enter(Op::Link)?;
        let target = self.same_view(target)?;
        let root = self.ctx.rw_root(&policy, &path, &join(&path, name))?;
        let target_path = target.path.get();
        if policy.access(&target_path) == Access::Hidden {
            return Err(self.ctx.withdrawn());
        }
        // A second name for a file is a way to write it.
        let target_root = self.ctx.rw_root(&policy, &target_path, &target_path)?;
        if target_root != root {
            return Err(self.ctx.deny(Error::new(
                libc::EXDEV,
                format!(
                    "policy: peer {} may not link /{target_path} out of /{target_root}",
                    self.ctx.peer
                ),
            )));
        }
        self.inner.link(&target.inner, name).await
    }

    async fn statfs(&self) -> Result<Statfs> {
        self.enter(Op::Statfs)?;
        self.inner.statfs().await
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// An open file of the view: the inner handle, checked on every use.
struct ViewHandle {
    inner: Arc<dyn Handle>,
    path: Arc<PathCell>,
    ctx: Arc<Ctx>,
}

#[async_trait]
impl Handle for ViewHandle {
    async fn read(&self, offset: u64, count: u32) -> Result<Vec<u8>> {
        self.ctx.audit.op(Op::Read);
        self.ctx.check(&self.path.get())?;
        let data = self.inner.read(offset, count).await?;
        // A read may have waited (an event file); what it got after a
        // withdrawal is no longer the peer's to see.
        self.ctx.check(&self.path.get())?;
        self.ctx.audit.read(data.len());
        Ok(data)
    }

    async fn write(&self, offset: u64, data: &[u8]) -> Result<u32> {
        self.ctx.audit.op(Op::Write);
        let path = self.path.get();
        let (policy, _) = self.ctx.check(&path)?;
        self.ctx.rw_root(&policy, &path, &path)?;
        let n = self.inner.write(offset, data).await?;
        self.ctx.audit.wrote(n);
        Ok(n)
    }

    async fn fsync(&self) -> Result<()> {
        self.ctx.audit.op(Op::Fsync);
        self.ctx.check(&self.path.get())?;
        self.inner.fsync().await
    }

    async fn clunk(&self) {
        self.inner.clunk().await
    }
}

/// What all nodes of one view share.
struct Ctx {
    peer: String,
    grant: LiveGrant,
    audit: Arc<Audit>,
    registry: Registry,
}

impl Ctx {
    /// The grant in force, if `path` is still visible under it.
    fn check(&self, path: &str) -> Result<(Arc<Policy>, Access)> {
        let Some(policy) = self.grant.current() else {
            return Err(self.withdrawn());
        };
        match policy.access(path) {
            Access::Hidden => Err(self.withdrawn()),
            access => Ok((policy, access)),
        }
    }

    /// The root of the `rw` grant covering `path`, or the write denial
    /// naming `shown` (what the peer tried to change).
    fn rw_root(&self, policy: &Policy, path: &str, shown: &str) -> Result<String> {
        policy
            .rw_root(path)
            .map(str::to_owned)
            .ok_or_else(|| self.may_not_write(shown))
    }

    fn may_not_write(&self, path: &str) -> Error {
        self.deny(Error::new(
            libc::EACCES,
            format!("policy: peer {} may not write /{path}", self.peer),
        ))
    }

    fn withdrawn(&self) -> Error {
        self.deny(Error::new(libc::EACCES, "policy: grant withdrawn"))
    }

    /// Records a denial in the audit and returns it.
    fn deny(&self, e: Error) -> Error {
        self.audit.denied(&e.msg);
        e
    }
}

/// A node's path, shared with its open handles and rewritten by renames.
struct PathCell(Mutex<Arc<str>>);

impl PathCell {
    fn new(path: String) -> PathCell {
        PathCell(Mutex::new(path.into()))
    }

    fn get(&self) -> Arc<str> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn set(&self, path: Arc<str>) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = path;
    }
}

/// The paths of a view's live nodes, so that a rename through the view
/// moves the nodes (and handles) beneath what was renamed.
#[derive(Default)]
struct Registry(Mutex<Cells>);

#[derive(Default)]
struct Cells {
    cells: Vec<Weak<PathCell>>,
    /// Dead cells are dropped when the list reaches this length, so it
    /// stays within twice the live nodes (amortized O(1) per walk).
    prune_at: usize,
}

impl Registry {
    fn add(&self, cell: &Arc<PathCell>) {
        let mut c = self.lock();
        if c.cells.len() >= c.prune_at {
            c.cells.retain(|w| w.strong_count() > 0);
            c.prune_at = (c.cells.len() * 2).max(64);
        }
        c.cells.push(Arc::downgrade(cell));
    }

    /// `from` is now called `to`: so is everything beneath it.
    fn moved(&self, from: &str, to: &str) {
        let c = self.lock();
        for cell in c.cells.iter().filter_map(Weak::upgrade) {
            let path = cell.get();
            if within(&path, from) {
                cell.set(format!("{to}{}", &path[from.len()..]).into());
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Cells> {
        // Pushes and retains leave the list whole; a poisoned lock is safe to reuse.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_owned()
    } else {
        format!("{dir}/{name}")
    }
}

/// Whether a symbolic link in `dir` pointing at `target`, read as a path
/// (`..` taken lexically, which is what it means here: the view never
/// walks through links, so every directory above `dir` is a real one),
/// stays inside the grant rooted at `root`. Absolute targets never do.
fn link_stays_in(root: &str, dir: &str, target: &str) -> bool {
    if target.starts_with('/') {
        return false;
    }
    let mut parts: Vec<&str> = dir.split('/').filter(|s| !s.is_empty()).collect();
    for element in target.split('/') {
        match element {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    return false;
                }
            }
            name => parts.push(name),
        }
    }
    within(&parts.join("/"), root)
}

#[cfg(test)]
mod tests;

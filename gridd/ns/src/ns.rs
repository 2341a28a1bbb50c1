//! [`Namespace`]: bind, mount and unmount, the evaluation of paths
//! through the mount table, and the namespace's root as a node.

use std::any::Any;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard, Weak};

use async_trait::async_trait;
use ninep::Qid;
use ninep_server::{
    Attr, CreateKind, DirEntry, Error, Node, OpenMode, Opened, Result, SetAttr, Statfs,
};

use crate::node::{
    is_hollow, is_virtual, made_up_path, mount_view, root_view, root_view_under, walk_traced,
};
use crate::op::{Flags, Pos};
use crate::path::{clean, elems};
use crate::table::{Member, Source, Table};

/// A Plan 9 namespace over a root tree: a mount table and the operations
/// that change it. Cloning gives another handle to the same namespace.
///
/// It is a [`Node`] (its root, as the mount table makes it now), so it can
/// be served as it is: `Server::for_tree(ns.root(), config)`.
#[derive(Clone)]
pub struct Namespace {
    pub(crate) inner: Arc<Inner>,
}

/// The shared state. Views hold it weakly, so bound views in the table do
/// not keep it alive through a cycle.
pub(crate) struct Inner {
    pub(crate) root: Arc<dyn Node>,
    table: RwLock<Table>,
    /// Serializes operations, so each sees the table the one before left
    /// and `/ns` lists them in the order they took effect. Walks do not
    /// take it.
    pub(crate) ops: tokio::sync::Mutex<()>,
}

impl Inner {
    pub(crate) fn read(&self) -> RwLockReadGuard<'_, Table> {
        self.table.read().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn write(&self) -> RwLockWriteGuard<'_, Table> {
        self.table.write().unwrap_or_else(|p| p.into_inner())
    }
}

impl Namespace {
    /// A namespace showing `root` and nothing bound or mounted.
    pub fn new(root: Arc<dyn Node>) -> Namespace {
        Namespace {
            inner: Arc::new(Inner {
                root,
                table: RwLock::new(Table::default()),
                ops: tokio::sync::Mutex::new(()),
            }),
        }
    }

    /// The root of the namespace as a node of its own (a clone of this
    /// handle), for serving.
    pub fn root(&self) -> Arc<dyn Node> {
        Arc::new(self.clone())
    }

    /// The node `path` names now.
    pub async fn resolve(&self, path: &str) -> Result<Arc<dyn Node>> {
        let path = clean(path)?;
        let w = self.walk_to(&path, false).await?;
        match w.missing {
            Some(e) => Err(e),
            None => Ok(w.node),
        }
    }

    /// `bind [flags] new old`: `old` shows the file `new` names now.
    pub async fn bind(&self, new: &str, old: &str, flags: Flags) -> Result<()> {
        let _op = self.inner.ops.lock().await;
        self.bind_locked(new, old, flags)
            .await
            .map_err(Failure::error)
    }

    /// `mount [flags] label old spec`: `old` shows `source`, the tree the
    /// peer `label` serves under `spec`. `label` and `spec` are what `/ns`
    /// prints.
    pub async fn mount(
        &self,
        source: Arc<dyn Node>,
        label: &str,
        old: &str,
        flags: Flags,
        spec: &str,
    ) -> Result<()> {
        let _op = self.inner.ops.lock().await;
        self.mount_locked(Some(source), label, old, flags, spec, None)
            .await
    }

    /// `unmount [new] old`: without `new`, removes everything at `old`;
    /// with it, the members bound from the path `new` or mounted from the
    /// peer `new`, or failing those, the members with the qid `new` names.
    pub async fn unmount(&self, new: Option<&str>, old: &str) -> Result<()> {
        let _op = self.inner.ops.lock().await;
        self.unmount_locked(new, old).await
    }

    pub(crate) async fn unmount_locked(&self, new: Option<&str>, old: &str) -> Result<()> {
        let old = clean(old)?;
        let not_mounted =
            || Error::invalid_arg(format!("ns: unmount: {}: not mounted", cmdbuf::quote(&old)));
        let Some(new) = new else {
            return match self.inner.write().mounts.remove(&old) {
                Some(_) => Ok(()),
                None => Err(not_mounted()),
            };
        };
        let (path, qid) = if new.starts_with('/') {
            let path = clean(new)?;
            let qid = match self.walk_to(&path, false).await {
                Ok(w) if w.missing.is_none() => Some(w.node.qid()),
                _ => None,
            };
            (Some(path), qid)
        } else {
            (None, None)
        };
        let mut table = self.inner.write();
        let Some(list) = table.mounts.get_mut(&old) else {
            return Err(not_mounted());
        };
        let before = list.len();
        list.retain(|m| match (&m.source, &path) {
            (Source::Bind(p), Some(path)) => p != path,
            (Source::Mount { peer, .. }, None) => peer != new,
            _ => true,
        });
        if list.len() == before {
            if let Some(qid) = qid {
                list.retain(|m| m.node.as_ref().map(|n| n.qid()) != Some(qid));
            }
        }
        if list.len() == before {
            return Err(Error::invalid_arg(format!(
                "ns: unmount: {}: not mounted on {}",
                cmdbuf::quote(new),
                cmdbuf::quote(&old)
            )));
        }
        if list.is_empty() {
            table.mounts.remove(&old);
        }
        Ok(())
    }

    /// The namespace in namespace(6) form (see the crate docs).
    pub fn text(&self) -> String {
        self.inner.read().text()
    }

    /// The root as the mount table makes it now.
    pub(crate) fn root_view(&self) -> Arc<dyn Node> {
        root_view(&self.inner).0
    }

    /// Whether `ns` is this namespace.
    pub(crate) fn is(&self, ns: &Weak<Inner>) -> bool {
        std::ptr::eq(Arc::as_ptr(&self.inner), ns.as_ptr())
    }

    pub(crate) fn downgrade(&self) -> Weak<Inner> {
        Arc::downgrade(&self.inner)
    }

    pub(crate) fn upgrade(weak: &Weak<Inner>) -> Option<Namespace> {
        weak.upgrade().map(|inner| Namespace { inner })
    }

    pub(crate) async fn bind_locked(&self, new: &str, old: &str, flags: Flags) -> Fallible<()> {
        let new = clean(new)?;
        clean(old)?;
        let (node, deps) = self.walk_source(&new).await?;
        let source = Source::Bind(new);
        Ok(self.add(old, Some(node), deps, flags, source, None).await?)
    }

    /// Evaluates a bind's source, and what it went through.
    pub(crate) async fn walk_source(&self, new: &str) -> Fallible<(Arc<dyn Node>, Vec<u64>)> {
        let w = self
            .walk_to(new, false)
            .await
            .map_err(|e| Failure::Source(with_path(new, e), Vec::new()))?;
        if let Some(e) = w.missing {
            return Err(Failure::Source(e, w.deps));
        }
        let mut deps = w.deps;
        if let Some(path) = made_up_path(&w.node) {
            // It exists only while something is mounted below it.
            deps.extend(self.inner.read().seqs_below(&path));
        }
        Ok((w.node, deps))
    }

    pub(crate) async fn mount_locked(
        &self,
        source: Option<Arc<dyn Node>>,
        label: &str,
        old: &str,
        flags: Flags,
        spec: &str,
        pending: Option<String>,
    ) -> Result<()> {
        if label.is_empty() || label.starts_with('-') || label.starts_with('/') {
            return Err(Error::invalid_arg(format!(
                "ns: mount: bad peer name {}",
                cmdbuf::quote(label)
            )));
        }
        if let Some(s) = &source {
            if !s.qid().is_dir() {
                return Err(Error::new(
                    libc::ENOTDIR,
                    format!("ns: mount {}: not a directory", cmdbuf::quote(label)),
                ));
            }
        }
        let source_desc = Source::Mount {
            peer: label.to_owned(),
            spec: spec.to_owned(),
        };
        self.add(old, source, Vec::new(), flags, source_desc, pending)
            .await
    }

    /// Adds a member at `old`: `node`, or nothing yet when pending.
    /// `deps` are the members the source's evaluation went through.
    pub(crate) async fn add(
        &self,
        old: &str,
        node: Option<Arc<dyn Node>>,
        mut deps: Vec<u64>,
        flags: Flags,
        source: Source,
        pending: Option<String>,
    ) -> Result<()> {
        let old = clean(old)?;
        let target = self.target(&old).await?;
        for d in &target.at.deps {
            if !deps.contains(d) {
                deps.push(*d);
            }
        }
        let is_dir = match (&node, &source) {
            (Some(node), _) => Some(node.qid().is_dir()),
            (None, Source::Mount { .. }) => Some(true),
            (None, Source::Bind(_)) => None,
        };
        if let Some(is_dir) = is_dir {
            target.check(&old, &source, flags, is_dir)?;
        }
        let Target { at, covered, .. } = target;
        let mut table = self.inner.write();
        let original = match (flags.pos, covered) {
            (Pos::Before | Pos::After, Some(node)) if !table.mounts.contains_key(&old) => {
                Some(Member {
                    seq: table.seq(),
                    pos: Pos::Replace,
                    create: false,
                    source: Source::Bind(old.clone()),
                    node: Some(node),
                    pending: None,
                    deps: at.deps,
                })
            }
            _ => None,
        };
        let member = Member {
            seq: table.seq(),
            pos: flags.pos,
            create: flags.create,
            source,
            node,
            pending,
            deps,
        };
        table.insert(&old, member, original);
        Ok(())
    }

    /// What a new member at `old` would join.
    pub(crate) async fn target(&self, old: &str) -> Result<Target> {
        // What `old` covers: what it names when nothing is mounted on it,
        // unless that is only a name on the way to other mount points (or
        // nothing at all). Its evaluation decides the checks and the first
        // member of a new union, so a new member depends on it.
        let at = self
            .walk_to(old, true)
            .await
            .map_err(|e| with_path(old, e))?;
        let covered = match &at.missing {
            None => (!is_virtual(&at.node)).then(|| at.node.clone()),
            Some(e) if e.errno == libc::ENOENT => None,
            Some(e) => return Err(e.clone()),
        };
        let existing = match mount_view(&self.inner, old) {
            Some((view, _)) if !is_hollow(&view) => Some(view),
            _ => covered.clone(),
        };
        Ok(Target {
            at,
            covered,
            existing,
        })
    }

    /// Evaluates a cleaned path from the root, as far as it exists. With
    /// `under`, the last element is what a mount point there covers.
    pub(crate) async fn walk_to(&self, path: &str, under: bool) -> Result<Walked> {
        let (mut node, mut deps) = if under && path == "/" {
            root_view_under(&self.inner)
        } else {
            root_view(&self.inner)
        };
        let mut walked = String::new();
        let mut names = elems(path).peekable();
        while let Some(name) = names.next() {
            if !node.qid().is_dir() {
                let e = Error::new(
                    libc::ENOTDIR,
                    format!("ns: {}: not a directory", cmdbuf::quote(&walked)),
                );
                return Ok(Walked {
                    node,
                    deps,
                    missing: Some(e),
                });
            }
            walked.push('/');
            walked.push_str(name);
            let last = names.peek().is_none();
            match walk_traced(&node, name, under && last).await {
                Ok((next, next_deps)) => {
                    node = next;
                    deps = next_deps;
                }
                Err(e) if e.errno == libc::ENOENT => {
                    return Ok(Walked {
                        node,
                        deps,
                        missing: Some(not_found(path)),
                    })
                }
                Err(e) => return Err(with_path(&walked, e)),
            }
        }
        Ok(Walked {
            node,
            deps,
            missing: None,
        })
    }
}

pub(crate) fn source_name(source: &Source) -> String {
    match source {
        Source::Bind(path) => cmdbuf::quote(path).into_owned(),
        Source::Mount { peer, .. } => format!("mount {}", cmdbuf::quote(peer)),
    }
}

pub(crate) fn mount_error(peer: &str, e: Error) -> Error {
    if e.msg.starts_with("ns: ") {
        return e;
    }
    Error::new(
        e.errno,
        format!("ns: mount {}: {}", cmdbuf::quote(peer), e.msg),
    )
}

/// The namespace's root, as the mount table makes it at each call.
#[async_trait]
impl Node for Namespace {
    fn qid(&self) -> Qid {
        self.root_view().qid()
    }

    async fn attr(&self) -> Result<Attr> {
        self.root_view().attr().await
    }

    async fn walk(&self, name: &str) -> Result<Arc<dyn Node>> {
        self.root_view().walk(name).await
    }

    async fn open(&self, mode: OpenMode) -> Result<Opened> {
        self.root_view().open(mode).await
    }

    async fn readdir(&self) -> Result<Vec<DirEntry>> {
        self.root_view().readdir().await
    }

    async fn create(
        &self,
        name: &str,
        kind: CreateKind,
        open: Option<OpenMode>,
    ) -> Result<(Arc<dyn Node>, Option<Opened>)> {
        self.root_view().create(name, kind, open).await
    }

    async fn remove(&self) -> Result<()> {
        Err(Error::new(libc::EBUSY, "ns: cannot remove the root"))
    }

    async fn unlink(&self, name: &str, is_dir: bool) -> Result<()> {
        self.root_view().unlink(name, is_dir).await
    }

    async fn rename(&self, from: &str, to_dir: &Arc<dyn Node>, to: &str) -> Result<()> {
        self.root_view().rename(from, to_dir, to).await
    }

    async fn setattr(&self, set: SetAttr) -> Result<()> {
        self.root_view().setattr(set).await
    }

    async fn link(&self, target: &Arc<dyn Node>, name: &str) -> Result<()> {
        self.root_view().link(target, name).await
    }

    async fn statfs(&self) -> Result<Statfs> {
        self.root_view().statfs().await
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// A path evaluated as far as it exists.
pub(crate) struct Walked {
    node: Arc<dyn Node>,
    /// Members the evaluation went through.
    deps: Vec<u64>,
    /// Why it stopped short, if it did: an element was not found, or was
    /// not a directory. `node` is then the last element found.
    missing: Option<Error>,
}

/// What is at a mount point before a member is added.
pub(crate) struct Target {
    /// The evaluation of what the mount point covers.
    at: Walked,
    /// What it covers, if anything.
    covered: Option<Arc<dyn Node>>,
    /// What it shows now: its members, or else what it covers.
    existing: Option<Arc<dyn Node>>,
}

impl Target {
    /// Plan 9's rules: `-a` and `-b` join directories; a directory goes
    /// on a directory and a file on a file. Both what the mount point
    /// shows and what it covers count: they differ only when a mount point
    /// was made where nothing was, and what it covers changed since.
    pub(crate) fn check(
        &self,
        old: &str,
        source: &Source,
        flags: Flags,
        is_dir: bool,
    ) -> Result<()> {
        if flags.pos != Pos::Replace && !is_dir {
            return Err(Error::new(
                libc::ENOTDIR,
                format!("ns: {}: not a directory", source_name(source)),
            ));
        }
        let clash =
            |n: &Option<Arc<dyn Node>>| n.as_ref().is_some_and(|n| n.qid().is_dir() != is_dir);
        if clash(&self.existing) || clash(&self.covered) {
            return Err(Error::invalid_arg(format!(
                "ns: {}: inconsistent mount",
                cmdbuf::quote(old)
            )));
        }
        Ok(())
    }
}

/// Why an operation failed: its source was unavailable (replay keeps it
/// pending, with the members its evaluation went through), or anything
/// else.
pub(crate) enum Failure {
    Source(Error, Vec<u64>),
    Other(Error),
}

pub(crate) type Fallible<T> = std::result::Result<T, Failure>;

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure::Other(e)
    }
}

impl Failure {
    pub(crate) fn error(self) -> Error {
        match self {
            Failure::Source(e, _) | Failure::Other(e) => e,
        }
    }
}

pub(crate) fn with_path(path: &str, e: Error) -> Error {
    if e.msg.starts_with("ns: ") {
        return e;
    }
    Error::new(e.errno, format!("ns: {}: {}", cmdbuf::quote(path), e.msg))
}

pub(crate) fn not_found(path: &str) -> Error {
    with_path(path, Error::not_found())
}

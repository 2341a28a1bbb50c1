//! A directory seen through the mount table.
//!
//! An [`NsNode`] is what a walk in the namespace returns for a directory:
//! its path (so the walk below it can consult the mount table), and the
//! directories it is made of (`slots`): one for a plain directory, the
//! members of the union for a mount point, none for a directory that
//! exists only on the way to a mount point. Files are returned as the
//! trees made them, so their handles and downcasts are untouched.
//!
//! Each slot carries the sequence numbers of the members its evaluation
//! went through (`deps`), so the `/ns` text can tell when a bind's source
//! name no longer leads where it did.

use std::any::Any;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Weak};

use async_trait::async_trait;
use ninep::{qt, Qid};
use ninep_server::{
    Attr, CreateKind, DirEntry, Error, NoIo, Node, OpenMode, Opened, Result, SetAttr, Statfs,
};

use crate::ns::{Inner, Namespace};
use crate::path::{join, virtual_qid_path};

/// One directory a view is made of.
#[derive(Clone)]
pub(crate) struct Slot {
    pub(crate) node: Arc<dyn Node>,
    /// Creation allowed (always, for a plain directory).
    pub(crate) create: bool,
    pub(crate) deps: Vec<u64>,
}

/// A directory of the namespace.
pub(crate) struct NsNode {
    ns: Weak<Inner>,
    path: String,
    slots: Vec<Slot>,
    /// A mount point: creation needs a `-c` member.
    mounted: bool,
    qid: Qid,
    /// What a directory made up below this one depends on, unless this
    /// is a plain directory (then it is the slot's `deps`): for a mount
    /// point, all its members (without them, what it covers shows, which
    /// may have the name); for a made-up directory, its parent's chain.
    chain: Vec<u64>,
}

/// What a name in a directory resolves to.
enum Found {
    /// A mount point (a view, or a bound file), and its members.
    Mount(Arc<dyn Node>, Vec<u64>),
    /// The child of slot `.0`, as that slot's walk returned it, and the
    /// members the walk went through inside it.
    Member(usize, Arc<dyn Node>, Vec<u64>),
    /// Nothing, but something is mounted below it.
    Virtual,
}

type Walk<'a> = Pin<Box<dyn Future<Output = Result<(Arc<dyn Node>, Vec<u64>)>> + Send + 'a>>;

/// Walks `node` to `name`, and through which members, when `node` is one
/// of ours (a bound directory); other trees report none. With `under`,
/// a mount point at `name` is passed over: the result is what it covers.
pub(crate) fn walk_traced<'a>(node: &'a Arc<dyn Node>, name: &'a str, under: bool) -> Walk<'a> {
    Box::pin(async move {
        if let Some(view) = node.as_any().downcast_ref::<NsNode>() {
            return view.step(name, under).await;
        }
        Ok((node.walk(name).await?, Vec::new()))
    })
}

/// What is mounted at `path`, if anything: a view of the union (empty
/// while every member is pending), or the file bound there; and the
/// members' sequence numbers.
pub(crate) fn mount_view(ns: &Arc<Inner>, path: &str) -> Option<(Arc<dyn Node>, Vec<u64>)> {
    // The view depends on every member, pending ones too: they make it
    // what it is (hollow, say) as much as the others.
    let (slots, deps): (Vec<Slot>, Vec<u64>) = {
        let table = ns.read();
        let members = table.mounts.get(path)?;
        let slots = members
            .iter()
            .filter_map(|m| {
                m.node.clone().map(|node| Slot {
                    node,
                    create: m.create,
                    deps: vec![m.seq],
                })
            })
            .collect();
        (slots, members.iter().map(|m| m.seq).collect())
    };
    if let [only] = slots.as_slice() {
        if !only.node.qid().is_dir() {
            return Some((only.node.clone(), deps));
        }
    }
    let view = NsNode::new(
        Arc::downgrade(ns),
        path.to_owned(),
        slots,
        true,
        deps.clone(),
    );
    Some((Arc::new(view), deps))
}

/// The root of the namespace as it is now.
pub(crate) fn root_view(ns: &Arc<Inner>) -> (Arc<dyn Node>, Vec<u64>) {
    mount_view(ns, "/").unwrap_or_else(|| root_view_under(ns))
}

/// The root tree as it is under anything mounted on `/`.
pub(crate) fn root_view_under(ns: &Arc<Inner>) -> (Arc<dyn Node>, Vec<u64>) {
    let slot = Slot {
        node: ns.root.clone(),
        create: true,
        deps: Vec::new(),
    };
    let view = NsNode::new(
        Arc::downgrade(ns),
        "/".into(),
        vec![slot],
        false,
        Vec::new(),
    );
    (Arc::new(view), Vec::new())
}

/// If `node` is a directory that exists only because something is
/// mounted below it, the path of that directory (seen through plain
/// directories of bound views, which wrap it under other names).
pub(crate) fn made_up_path(node: &Arc<dyn Node>) -> Option<String> {
    let mut view = node.as_any().downcast_ref::<NsNode>()?;
    loop {
        match (view.mounted, view.slots.as_slice()) {
            (false, []) => return Some(view.path.clone()),
            (false, [only]) => view = only.node.as_any().downcast_ref::<NsNode>()?,
            _ => return None,
        }
    }
}

/// Whether `node` is a directory that exists only because something is
/// mounted below it.
pub(crate) fn is_virtual(node: &Arc<dyn Node>) -> bool {
    made_up_path(node).is_some()
}

/// Whether `node` is a directory of ours with nothing in it: made up, or
/// a mount point whose members are all pending.
pub(crate) fn is_hollow(node: &Arc<dyn Node>) -> bool {
    node.as_any()
        .downcast_ref::<NsNode>()
        .is_some_and(|v| v.slots.is_empty())
}

/// The node of the tree underneath `node`: what another tree's rename or
/// link can downcast.
pub(crate) fn primary(node: &Arc<dyn Node>) -> Arc<dyn Node> {
    let mut node = node.clone();
    loop {
        let next = if let Some(view) = node.as_any().downcast_ref::<NsNode>() {
            view.slots.first().map(|s| s.node.clone())
        } else {
            node.as_any()
                .downcast_ref::<Namespace>()
                .map(Namespace::root_view)
        };
        match next {
            Some(next) => node = next,
            None => return node,
        }
    }
}

fn virtual_qid(path: &str) -> Qid {
    Qid {
        ty: qt::DIR,
        version: 0,
        path: virtual_qid_path(path),
    }
}

fn no_create() -> Error {
    Error::new(libc::EACCES, "ns: no create permission in union")
}

impl NsNode {
    fn new(
        ns: Weak<Inner>,
        path: String,
        slots: Vec<Slot>,
        mounted: bool,
        chain: Vec<u64>,
    ) -> Self {
        let qid = match slots.first() {
            Some(s) => s.node.qid(),
            None => virtual_qid(&path),
        };
        NsNode {
            ns,
            path,
            slots,
            mounted,
            qid,
            chain,
        }
    }

    /// The members a directory made up below this one depends on.
    fn chain_deps(&self) -> Vec<u64> {
        match self.slots.first() {
            Some(slot) if !self.mounted => slot.deps.clone(),
            _ => self.chain.clone(),
        }
    }

    /// The walk to `name`, with the members it went through (see
    /// [`walk_traced`] for `under`).
    pub(crate) async fn step(&self, name: &str, under: bool) -> Result<(Arc<dyn Node>, Vec<u64>)> {
        match self.find(name, under).await? {
            Found::Mount(node, deps) => Ok((node, deps)),
            Found::Member(i, node, nested) => {
                let mut deps = self
                    .slots
                    .get(i)
                    .map(|s| s.deps.clone())
                    .unwrap_or_default();
                for d in nested {
                    if !deps.contains(&d) {
                        deps.push(d);
                    }
                }
                Ok((self.plain(name, node, deps.clone()), deps))
            }
            Found::Virtual => {
                let chain = self.chain_deps();
                let path = join(&self.path, name);
                let view = NsNode::new(self.ns.clone(), path, Vec::new(), false, chain.clone());
                Ok((Arc::new(view), chain))
            }
        }
    }

    async fn find(&self, name: &str, under: bool) -> Result<Found> {
        let child = join(&self.path, name);
        let ns = self.ns.upgrade();
        if !under {
            if let Some((node, deps)) = ns.as_ref().and_then(|ns| mount_view(ns, &child)) {
                return Ok(Found::Mount(node, deps));
            }
        }
        let mut failure = None;
        for (i, slot) in self.slots.iter().enumerate() {
            match walk_traced(&slot.node, name, false).await {
                Ok((node, nested)) => return Ok(Found::Member(i, node, nested)),
                Err(e) if e.errno == libc::ENOENT => {}
                Err(e) => {
                    failure.get_or_insert(e);
                }
            }
        }
        if ns.is_some_and(|ns| ns.read().has_below(&child)) {
            return Ok(Found::Virtual);
        }
        Err(failure.unwrap_or_else(Error::not_found))
    }

    /// `node`, found as `name` in one of our slots: a directory is wrapped
    /// so walks below it see mount points; a file is returned as it is.
    fn plain(&self, name: &str, node: Arc<dyn Node>, deps: Vec<u64>) -> Arc<dyn Node> {
        if !node.qid().is_dir() {
            return node;
        }
        let slot = Slot {
            node,
            create: true,
            deps,
        };
        Arc::new(NsNode::new(
            self.ns.clone(),
            join(&self.path, name),
            vec![slot],
            false,
            Vec::new(),
        ))
    }

    /// The slot a create or link in this directory goes to.
    async fn create_slot(&self, name: &str) -> Result<&Slot> {
        if !self.mounted {
            if let Some(slot) = self.slots.first() {
                let child = join(&self.path, name);
                let shadowed = self
                    .ns
                    .upgrade()
                    .is_some_and(|ns| ns.read().mounts.contains_key(&child));
                return if shadowed {
                    Err(Error::exists())
                } else {
                    Ok(slot)
                };
            }
        }
        if self.find(name, false).await.is_ok() {
            return Err(Error::exists());
        }
        self.slots.iter().find(|s| s.create).ok_or_else(no_create)
    }

    /// Whether `dir`, given as a rename's target, is this directory.
    fn is_same_dir(&self, dir: &Arc<dyn Node>) -> bool {
        if let Some(view) = dir.as_any().downcast_ref::<NsNode>() {
            return std::ptr::eq(view, self) || view.path == self.path;
        }
        dir.as_any()
            .downcast_ref::<Namespace>()
            .is_some_and(|ns| self.path == "/" && ns.is(&self.ns))
    }

    async fn child_attr(&self, ns: &Arc<Inner>, child: &str) -> Attr {
        if let Some((node, _)) = mount_view(ns, child) {
            if let Ok(attr) = node.attr().await {
                return attr;
            }
        }
        Attr::synthetic(virtual_qid(child), 0o555)
    }
}

#[async_trait]
impl Node for NsNode {
    fn qid(&self) -> Qid {
        self.qid
    }

    /// The first member's attributes; in a union whose first member does
    /// not answer (a peer that is down), the next one's, with the qid
    /// walks show.
    async fn attr(&self) -> Result<Attr> {
        let mut failure = None;
        for slot in &self.slots {
            match slot.node.attr().await {
                Ok(mut attr) => {
                    attr.qid = self.qid;
                    return Ok(attr);
                }
                Err(e) => {
                    failure.get_or_insert(e);
                }
            }
        }
        match failure {
            Some(e) => Err(e),
            None => Ok(Attr::synthetic(self.qid, 0o555)),
        }
    }

    async fn walk(&self, name: &str) -> Result<Arc<dyn Node>> {
        Ok(self.step(name, false).await?.0)
    }

    /// Opens the first member that can be opened (the session reads a
    /// directory through [`Node::readdir`], so the handle only clunks).
    async fn open(&self, mode: OpenMode) -> Result<Opened> {
        let mut failure = None;
        for slot in &self.slots {
            match slot.node.open(mode).await {
                Ok(opened) => return Ok(opened),
                Err(e) => {
                    failure.get_or_insert(e);
                }
            }
        }
        match failure {
            Some(e) => Err(e),
            None => Ok(Opened::new(NoIo)),
        }
    }

    /// Each member's entries in union order, first of each name only;
    /// then mount points below this directory, as a walk shows them.
    async fn readdir(&self) -> Result<Vec<DirEntry>> {
        let mut out: Vec<DirEntry> = Vec::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        let mut failure = None;
        let mut listed = false;
        for slot in &self.slots {
            match slot.node.readdir().await {
                Ok(entries) => {
                    listed = true;
                    for e in entries {
                        if !index.contains_key(&e.name) {
                            index.insert(e.name.clone(), out.len());
                            out.push(e);
                        }
                    }
                }
                Err(e) => {
                    failure.get_or_insert(e);
                }
            }
        }
        let ns = self.ns.upgrade();
        let children = match &ns {
            Some(ns) => ns.read().children(&self.path),
            None => Vec::new(),
        };
        if let (false, true, Some(e)) = (listed, children.is_empty(), failure) {
            return Err(e);
        }
        let Some(ns) = ns else {
            return Ok(out);
        };
        for (name, is_mount) in children {
            let existing = index.get(&name).copied();
            if existing.is_some() && !is_mount {
                // Walks find the member's directory before the made-up one.
                continue;
            }
            let attr = self.child_attr(&ns, &join(&self.path, &name)).await;
            match existing.and_then(|i| out.get_mut(i)) {
                Some(entry) => entry.attr = attr,
                None => out.push(DirEntry { name, attr }),
            }
        }
        Ok(out)
    }

    async fn create(
        &self,
        name: &str,
        kind: CreateKind,
        open: Option<OpenMode>,
    ) -> Result<(Arc<dyn Node>, Option<Opened>)> {
        let slot = self.create_slot(name).await?;
        let (node, opened) = slot.node.create(name, kind, open).await?;
        Ok((self.plain(name, node, slot.deps.clone()), opened))
    }

    async fn remove(&self) -> Result<()> {
        match self.slots.first() {
            Some(s) => s.node.remove().await,
            None => Err(Error::no_remove()),
        }
    }

    async fn unlink(&self, name: &str, is_dir: bool) -> Result<()> {
        match self.find(name, false).await? {
            Found::Member(i, node, _) => match self.slots.get(i) {
                Some(slot) => slot.node.unlink(name, is_dir).await,
                None => node.remove().await,
            },
            Found::Mount(node, _) => node.remove().await,
            Found::Virtual => Err(Error::no_remove()),
        }
    }

    async fn rename(&self, from: &str, to_dir: &Arc<dyn Node>, to: &str) -> Result<()> {
        let Found::Member(i, _, _) = self.find(from, false).await? else {
            return Err(Error::new(
                libc::EBUSY,
                format!("ns: {}: is a mount point", join(&self.path, from)),
            ));
        };
        let Some(slot) = self.slots.get(i) else {
            return Err(Error::botch());
        };
        // Within one directory, the rename stays in the member that has
        // the file; elsewhere, it goes to the tree under the target.
        let target = if self.is_same_dir(to_dir) {
            slot.node.clone()
        } else {
            primary(to_dir)
        };
        slot.node.rename(from, &target, to).await
    }

    async fn setattr(&self, set: SetAttr) -> Result<()> {
        match self.slots.first() {
            Some(s) => s.node.setattr(set).await,
            None => Err(Error::no_wstat()),
        }
    }

    async fn readlink(&self) -> Result<String> {
        match self.slots.first() {
            Some(s) => s.node.readlink().await,
            None => Err(Error::invalid()),
        }
    }

    async fn link(&self, target: &Arc<dyn Node>, name: &str) -> Result<()> {
        let slot = self.create_slot(name).await?;
        slot.node.link(&primary(target), name).await
    }

    async fn statfs(&self) -> Result<Statfs> {
        match self.slots.first() {
            Some(s) => s.node.statfs().await,
            None => Ok(Statfs::synthetic()),
        }
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

//! Synthetic file trees, as small as lib9p's `Srv`.
//!
//! - [`Dir`]: a directory of named nodes (a Dirtab that can change at run time).
//! - [`GenDir`]: a directory whose entries a [`Generator`] produces on demand (`/cpu/N`).
//! - [`TextFile`]: a read-only file whose text is produced at open, so every
//!   reader of one open sees one consistent snapshot.
//! - [`CtlFile`]: a control file: writes are lines of `verb arg...` checked
//!   against a [`cmdbuf::Cmd`] table, reads return a text.
//! - [`CloneFile`]: Plan 9's clone idiom: opening it creates a new
//!   directory and the fid becomes that directory's `ctl`.
//! - [`read_at`]: the offset/count slice every text file needs.
//!
//! Qid paths of synthetic nodes come from [`next_qid_path`], which sets the
//! top bit so they never collide with exported inode numbers (which clear it).

use std::any::Any;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use cmdbuf::Cmd;
use ninep::{qt, Qid};

use crate::error::{Error, Result};
use crate::tree::*;

/// The qid path bit reserved for synthetic nodes.
pub const SYNTHETIC_QID_BIT: u64 = 1 << 63;

/// A fresh qid path for a synthetic node, unique in this process.
pub fn next_qid_path() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    SYNTHETIC_QID_BIT | NEXT.fetch_add(1, Ordering::Relaxed)
}

/// A qid for a new synthetic directory.
pub fn dir_qid() -> Qid {
    Qid {
        ty: qt::DIR,
        version: 0,
        path: next_qid_path(),
    }
}

/// A qid for a new synthetic file.
pub fn file_qid() -> Qid {
    Qid {
        ty: qt::FILE,
        version: 0,
        path: next_qid_path(),
    }
}

/// `count` bytes of `data` from `offset`: what a read of a text returns.
pub fn read_at(data: &[u8], offset: u64, count: u32) -> Vec<u8> {
    let start = usize::try_from(offset)
        .unwrap_or(usize::MAX)
        .min(data.len());
    let end = start.saturating_add(count as usize).min(data.len());
    data[start..end].to_vec()
}

/// A directory of named nodes; entries can be added and removed while served.
pub struct Dir {
    qid: Qid,
    perm: u32,
    entries: RwLock<BTreeMap<String, Arc<dyn Node>>>,
}

impl Dir {
    /// An empty directory with permission bits `perm` (e.g. 0o555).
    pub fn new(perm: u32) -> Self {
        Dir {
            qid: dir_qid(),
            perm,
            entries: RwLock::new(BTreeMap::new()),
        }
    }

    /// Adds (or replaces) an entry; builder style.
    pub fn with(self, name: &str, node: Arc<dyn Node>) -> Self {
        self.insert(name, node);
        self
    }

    /// Adds (or replaces) an entry.
    pub fn insert(&self, name: &str, node: Arc<dyn Node>) {
        self.write().insert(name.to_owned(), node);
    }

    /// Removes an entry, returning it.
    pub fn take(&self, name: &str) -> Option<Arc<dyn Node>> {
        self.write().remove(name)
    }

    /// The entry called `name`.
    pub fn get(&self, name: &str) -> Option<Arc<dyn Node>> {
        self.read().get(name).cloned()
    }

    /// Entry names in order.
    pub fn names(&self) -> Vec<String> {
        self.read().keys().cloned().collect()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Arc<dyn Node>>> {
        self.entries.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, Arc<dyn Node>>> {
        self.entries.write().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl Node for Dir {
    fn qid(&self) -> Qid {
        self.qid
    }

    async fn attr(&self) -> Result<Attr> {
        Ok(Attr::synthetic(self.qid, self.perm))
    }

    async fn walk(&self, name: &str) -> Result<Arc<dyn Node>> {
        self.get(name).ok_or_else(Error::not_found)
    }

    async fn readdir(&self) -> Result<Vec<DirEntry>> {
        let entries: Vec<_> = self
            .read()
            .iter()
            .map(|(n, e)| (n.clone(), e.clone()))
            .collect();
        entries_with_attrs(entries).await
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// Attributes for each named node; entries that fail to stat (gone
/// meanwhile) are left out rather than failing the whole listing.
pub async fn entries_with_attrs(entries: Vec<(String, Arc<dyn Node>)>) -> Result<Vec<DirEntry>> {
    let mut out = Vec::with_capacity(entries.len());
    for (name, node) in entries {
        if let Ok(attr) = node.attr().await {
            out.push(DirEntry { name, attr });
        }
    }
    Ok(out)
}

/// Produces a directory's entries on demand.
#[async_trait]
pub trait Generator: Send + Sync + 'static {
    /// Every entry, in order.
    async fn list(&self) -> Result<Vec<(String, Arc<dyn Node>)>>;

    /// The entry called `name`; by default, a search of [`Generator::list`].
    async fn lookup(&self, name: &str) -> Result<Arc<dyn Node>> {
        self.list()
            .await?
            .into_iter()
            .find(|(n, _)| n == name)
            .map(|(_, node)| node)
            .ok_or_else(Error::not_found)
    }
}

/// A directory whose entries come from a [`Generator`].
pub struct GenDir<G> {
    qid: Qid,
    perm: u32,
    gen: G,
}

impl<G: Generator> GenDir<G> {
    /// A generated directory with permission bits `perm`.
    pub fn new(perm: u32, gen: G) -> Self {
        GenDir {
            qid: dir_qid(),
            perm,
            gen,
        }
    }
}

#[async_trait]
impl<G: Generator> Node for GenDir<G> {
    fn qid(&self) -> Qid {
        self.qid
    }

    async fn attr(&self) -> Result<Attr> {
        Ok(Attr::synthetic(self.qid, self.perm))
    }

    async fn walk(&self, name: &str) -> Result<Arc<dyn Node>> {
        self.gen.lookup(name).await
    }

    async fn readdir(&self) -> Result<Vec<DirEntry>> {
        entries_with_attrs(self.gen.list().await?).await
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

type TextFn = dyn Fn() -> String + Send + Sync;

/// A read-only file whose text is produced when it is opened.
pub struct TextFile {
    qid: Qid,
    text: Box<TextFn>,
}

impl TextFile {
    /// A file (mode 0444) whose contents are `text()` at each open.
    pub fn new(text: impl Fn() -> String + Send + Sync + 'static) -> Self {
        TextFile {
            qid: file_qid(),
            text: Box::new(text),
        }
    }
}

#[async_trait]
impl Node for TextFile {
    fn qid(&self) -> Qid {
        self.qid
    }

    async fn attr(&self) -> Result<Attr> {
        let mut attr = Attr::synthetic(self.qid, 0o444);
        attr.size = (self.text)().len() as u64;
        Ok(attr)
    }

    async fn open(&self, _mode: OpenMode) -> Result<Opened> {
        Ok(Opened::new(Snapshot((self.text)().into_bytes())))
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// A handle over bytes fixed at open.
pub struct Snapshot(pub Vec<u8>);

#[async_trait]
impl Handle for Snapshot {
    async fn read(&self, offset: u64, count: u32) -> Result<Vec<u8>> {
        Ok(read_at(&self.0, offset, count))
    }
}

/// What a control file does with its messages.
#[async_trait]
pub trait CtlHandler: Send + Sync + 'static {
    /// The verbs this file accepts.
    fn table(&self) -> &'static [Cmd];

    /// Carries out one message whose verb and argument count already
    /// matched `cmd`. `fields[0]` is the verb.
    async fn ctl(&self, cmd: &Cmd, fields: &[String]) -> Result<()>;

    /// What a read of the file returns (by default the usage text).
    fn read(&self) -> String {
        cmdbuf::usage_text(self.table())
    }
}

/// A control file: each written line is a message for a [`CtlHandler`].
///
/// One write may carry several lines, applied in order; the first bad line
/// stops the write with an error that names it, and lines before it stay
/// applied (as when they are written one at a time).
pub struct CtlFile<H> {
    qid: Qid,
    perm: u32,
    handler: Arc<H>,
    /// Error prefix, e.g. "ctl".
    prefix: &'static str,
}

impl<H: CtlHandler> CtlFile<H> {
    /// A control file (mode 0664) whose errors begin `prefix: `.
    pub fn new(prefix: &'static str, handler: Arc<H>) -> Self {
        CtlFile {
            qid: file_qid(),
            perm: 0o664,
            handler,
            prefix,
        }
    }
}

#[async_trait]
impl<H: CtlHandler> Node for CtlFile<H> {
    fn qid(&self) -> Qid {
        self.qid
    }

    async fn attr(&self) -> Result<Attr> {
        Ok(Attr::synthetic(self.qid, self.perm))
    }

    async fn open(&self, _mode: OpenMode) -> Result<Opened> {
        Ok(Opened::new(CtlHandle {
            handler: self.handler.clone(),
            prefix: self.prefix,
            text: self.handler.read().into_bytes(),
        }))
    }

    // Shells truncate on `echo x > ctl`; a control file has nothing to truncate.
    async fn setattr(&self, set: SetAttr) -> Result<()> {
        if set.mode.is_some() || set.uid.is_some() || set.gid.is_some() {
            return Err(Error::no_wstat());
        }
        Ok(())
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

struct CtlHandle<H> {
    handler: Arc<H>,
    prefix: &'static str,
    text: Vec<u8>,
}

#[async_trait]
impl<H: CtlHandler> Handle for CtlHandle<H> {
    async fn read(&self, offset: u64, count: u32) -> Result<Vec<u8>> {
        Ok(read_at(&self.text, offset, count))
    }

    async fn write(&self, _offset: u64, data: &[u8]) -> Result<u32> {
        run_ctl(&*self.handler, self.prefix, data).await?;
        Ok(data.len() as u32)
    }
}

/// Parses `data` as control lines and runs each through `handler`.
pub async fn run_ctl<H: CtlHandler + ?Sized>(handler: &H, prefix: &str, data: &[u8]) -> Result<()> {
    let bad = |e: &dyn std::fmt::Display| Error::invalid_arg(format!("{prefix}: {e}"));
    let lines = cmdbuf::lines(data).map_err(|e| bad(&e))?;
    for line in lines {
        let fields = cmdbuf::parse(&line).map_err(|e| bad(&e))?;
        if fields.is_empty() {
            continue;
        }
        let cmd = cmdbuf::lookup(handler.table(), &fields).map_err(|e| bad(&e))?;
        handler.ctl(cmd, &fields).await.map_err(|e| Error {
            errno: e.errno,
            msg: if e.msg.starts_with(prefix) {
                e.msg
            } else {
                format!("{prefix}: {}", e.msg).into()
            },
        })?;
    }
    Ok(())
}

type CloneFn = dyn Fn() -> Result<Arc<dyn Node>> + Send + Sync;

/// Plan 9's clone file (`/net/tcp/clone`): opening it calls the factory,
/// which makes a new resource and returns its `ctl` node; the open fid
/// becomes that ctl, so one descriptor reads the number and writes commands.
pub struct CloneFile {
    qid: Qid,
    make: Box<CloneFn>,
}

impl CloneFile {
    /// A clone file whose opens call `make`.
    pub fn new(make: impl Fn() -> Result<Arc<dyn Node>> + Send + Sync + 'static) -> Self {
        CloneFile {
            qid: file_qid(),
            make: Box::new(make),
        }
    }
}

#[async_trait]
impl Node for CloneFile {
    fn qid(&self) -> Qid {
        self.qid
    }

    async fn attr(&self) -> Result<Attr> {
        Ok(Attr::synthetic(self.qid, 0o666))
    }

    async fn open(&self, mode: OpenMode) -> Result<Opened> {
        let ctl = (self.make)()?;
        let mut opened = ctl.open(mode).await?;
        opened.becomes = Some(ctl);
        Ok(opened)
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_at_clamps() {
        assert_eq!(read_at(b"hello", 1, 3), b"ell");
        assert_eq!(read_at(b"hello", 4, 100), b"o");
        assert_eq!(read_at(b"hello", 5, 1), b"");
        assert_eq!(read_at(b"hello", u64::MAX, u32::MAX), b"");
    }

    #[test]
    fn synthetic_qids_never_collide_with_inodes() {
        let a = next_qid_path();
        let b = next_qid_path();
        assert_ne!(a, b);
        assert!(a & SYNTHETIC_QID_BIT != 0);
    }
}

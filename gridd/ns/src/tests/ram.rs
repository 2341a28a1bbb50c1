//! A small writable in-memory tree for the tests: directories and files
//! that can be created, written, removed and renamed.

use std::any::Any;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, Weak};

use async_trait::async_trait;
use ninep::Qid;
use ninep_server::synth::{dir_qid, file_qid, read_at};
use ninep_server::{
    Attr, CreateKind, DirEntry, Error, Handle, NoIo, Node, OpenMode, Opened, Result, SetAttr,
};

pub(crate) struct RamDir {
    qid: Qid,
    me: Weak<RamDir>,
    parent: Mutex<Option<(Weak<RamDir>, String)>>,
    entries: Mutex<BTreeMap<String, Arc<dyn Node>>>,
    perm: Mutex<u32>,
}

pub(crate) struct RamFile {
    qid: Qid,
    parent: Mutex<Option<(Weak<RamDir>, String)>>,
    data: Arc<Mutex<Vec<u8>>>,
}

impl RamDir {
    pub(crate) fn new() -> Arc<RamDir> {
        Arc::new_cyclic(|me| RamDir {
            qid: dir_qid(),
            me: me.clone(),
            parent: Mutex::new(None),
            entries: Mutex::new(BTreeMap::new()),
            perm: Mutex::new(0o755),
        })
    }

    /// Adds an empty subdirectory and returns it.
    pub(crate) fn dir(&self, name: &str) -> Arc<RamDir> {
        let d = RamDir::new();
        *lock(&d.parent) = Some((self.me.clone(), name.to_owned()));
        lock(&self.entries).insert(name.to_owned(), d.clone());
        d
    }

    /// Adds a file with `text`.
    pub(crate) fn file(&self, name: &str, text: &str) -> Arc<RamFile> {
        let f = Arc::new(RamFile {
            qid: file_qid(),
            parent: Mutex::new(Some((self.me.clone(), name.to_owned()))),
            data: Arc::new(Mutex::new(text.as_bytes().to_vec())),
        });
        lock(&self.entries).insert(name.to_owned(), f.clone());
        f
    }

    /// Adds any node.
    pub(crate) fn insert(&self, name: &str, node: Arc<dyn Node>) {
        lock(&self.entries).insert(name.to_owned(), node);
    }

    pub(crate) fn names(&self) -> Vec<String> {
        lock(&self.entries).keys().cloned().collect()
    }

    pub(crate) fn get(&self, name: &str) -> Option<Arc<dyn Node>> {
        lock(&self.entries).get(name).cloned()
    }
}

impl RamFile {
    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&lock(&self.data)).into_owned()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn detach(parent: &Mutex<Option<(Weak<RamDir>, String)>>) -> Result<()> {
    let Some((dir, name)) = lock(parent).take() else {
        return Err(Error::no_remove());
    };
    if let Some(dir) = dir.upgrade() {
        lock(&dir.entries).remove(&name);
    }
    Ok(())
}

#[async_trait]
impl Node for RamDir {
    fn qid(&self) -> Qid {
        self.qid
    }

    async fn attr(&self) -> Result<Attr> {
        Ok(Attr::synthetic(self.qid, *lock(&self.perm)))
    }

    async fn walk(&self, name: &str) -> Result<Arc<dyn Node>> {
        self.get(name).ok_or_else(Error::not_found)
    }

    async fn readdir(&self) -> Result<Vec<DirEntry>> {
        let entries: Vec<_> = lock(&self.entries)
            .iter()
            .map(|(n, e)| (n.clone(), e.clone()))
            .collect();
        let mut out = Vec::new();
        for (name, node) in entries {
            out.push(DirEntry {
                name,
                attr: node.attr().await?,
            });
        }
        Ok(out)
    }

    async fn create(
        &self,
        name: &str,
        kind: CreateKind,
        open: Option<OpenMode>,
    ) -> Result<(Arc<dyn Node>, Option<Opened>)> {
        if self.get(name).is_some() {
            return Err(Error::exists());
        }
        match kind {
            CreateKind::Dir { .. } => Ok((self.dir(name), None)),
            CreateKind::File { .. } => {
                let f = self.file(name, "");
                let opened = match open {
                    Some(mode) => Some(f.open(mode).await?),
                    None => None,
                };
                Ok((f, opened))
            }
            _ => Err(Error::not_supported()),
        }
    }

    async fn remove(&self) -> Result<()> {
        if !lock(&self.entries).is_empty() {
            return Err(Error::not_empty());
        }
        detach(&self.parent)
    }

    async fn rename(&self, from: &str, to_dir: &Arc<dyn Node>, to: &str) -> Result<()> {
        let Some(target) = to_dir.as_any().downcast_ref::<RamDir>() else {
            return Err(Error::new(libc::EXDEV, "cross-tree rename"));
        };
        let node = lock(&self.entries)
            .remove(from)
            .ok_or_else(Error::not_found)?;
        let parent = (target.me.clone(), to.to_owned());
        if let Some(f) = node.as_any().downcast_ref::<RamFile>() {
            *lock(&f.parent) = Some(parent);
        } else if let Some(d) = node.as_any().downcast_ref::<RamDir>() {
            *lock(&d.parent) = Some(parent);
        }
        lock(&target.entries).insert(to.to_owned(), node);
        Ok(())
    }

    async fn setattr(&self, set: SetAttr) -> Result<()> {
        if let Some(mode) = set.mode {
            *lock(&self.perm) = mode;
        }
        Ok(())
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

struct RamHandle(Arc<Mutex<Vec<u8>>>);

#[async_trait]
impl Handle for RamHandle {
    async fn read(&self, offset: u64, count: u32) -> Result<Vec<u8>> {
        Ok(read_at(&lock(&self.0), offset, count))
    }

    async fn write(&self, offset: u64, data: &[u8]) -> Result<u32> {
        let mut buf = lock(&self.0);
        let at = usize::try_from(offset).map_err(|_| Error::invalid())?;
        if buf.len() < at + data.len() {
            buf.resize(at + data.len(), 0);
        }
        buf[at..at + data.len()].copy_from_slice(data);
        Ok(data.len() as u32)
    }
}

#[async_trait]
impl Node for RamFile {
    fn qid(&self) -> Qid {
        self.qid
    }

    async fn attr(&self) -> Result<Attr> {
        let mut a = Attr::synthetic(self.qid, 0o644);
        a.size = lock(&self.data).len() as u64;
        Ok(a)
    }

    async fn open(&self, mode: OpenMode) -> Result<Opened> {
        if mode.truncate {
            lock(&self.data).clear();
        }
        Ok(Opened::new(RamHandle(self.data.clone())))
    }

    async fn remove(&self) -> Result<()> {
        detach(&self.parent)
    }

    async fn setattr(&self, set: SetAttr) -> Result<()> {
        if let Some(size) = set.size {
            lock(&self.data).resize(size as usize, 0);
        }
        Ok(())
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// A directory that cannot be reached: every operation fails with EIO,
/// like a peer that is down.
pub(crate) struct Down(pub(crate) Qid);

#[async_trait]
impl Node for Down {
    fn qid(&self) -> Qid {
        self.0
    }

    async fn attr(&self) -> Result<Attr> {
        Err(Error::io("peer unreachable"))
    }

    async fn walk(&self, _name: &str) -> Result<Arc<dyn Node>> {
        Err(Error::io("peer unreachable"))
    }

    async fn open(&self, _mode: OpenMode) -> Result<Opened> {
        Ok(Opened::new(NoIo))
    }

    async fn readdir(&self) -> Result<Vec<DirEntry>> {
        Err(Error::io("peer unreachable"))
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

//! The per-connection protocol state machine: fids, dialect, msize, and one
//! function per request that checks it (lib9p's `sX`) before calling the
//! tree, then says what the reply changes in the fid table (lib9p's `rX`).
//!
//! Handlers never touch the fid table directly. They return an [`Effect`]
//! that the connection applies in the same critical section in which it
//! queues the reply, so a request cancelled by Tflush leaves no trace in the
//! table (flush(5): a flushed request is "treated as though it had never
//! been sent").

use std::collections::HashMap;
use std::sync::Arc;

use ninep::*;

use crate::convert::*;
use crate::error::{Error, Result};
use crate::tree::*;

mod mutate;

/// The negotiated protocol of a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Version {
    pub(crate) dialect: Dialect,
    pub(crate) msize: u32,
}

impl Version {
    /// The largest payload of one Tread/Twrite.
    pub(crate) fn max_io(&self) -> u32 {
        self.msize.saturating_sub(IOHDRSZ)
    }
}

/// What a fid refers to. Immutable: a change (walk, open, create) makes a
/// new `Fid` that replaces the old one when the reply is sent.
pub(crate) struct Fid {
    /// Nodes from the attach root down to the file; never empty for file
    /// fids (auth fids have an empty path).
    path: Vec<Arc<dyn Node>>,
    /// `names[i]` is the name of `path[i + 1]`.
    names: Vec<String>,
    qid: Qid,
    open: Option<Arc<OpenFile>>,
    /// Set for an authentication fid (Tauth).
    auth: Option<Arc<dyn Handle>>,
}

pub(crate) struct OpenFile {
    handle: Arc<dyn Handle>,
    mode: OpenMode,
    /// 9P2000 ORCLOSE: remove the file when the fid is clunked.
    remove_on_clunk: bool,
    is_dir: bool,
    iounit: u32,
    dir: tokio::sync::Mutex<DirCursor>,
}

/// Directory reads page through one listing taken at offset 0.
#[derive(Default)]
struct DirCursor {
    entries: Vec<DirEntry>,
    /// 9P2000: the byte offset the next read must ask for, and the entry it starts at.
    next_offset: u64,
    next_index: usize,
}

impl Fid {
    fn node(&self) -> Result<&Arc<dyn Node>> {
        self.path.last().ok_or_else(Error::botch)
    }

    fn name(&self) -> &str {
        self.names.last().map(String::as_str).unwrap_or("/")
    }

    fn parent(&self) -> Option<&Arc<dyn Node>> {
        self.path.len().checked_sub(2).map(|i| &self.path[i])
    }

    fn with_open(&self, open: OpenFile, becomes: Option<Arc<dyn Node>>) -> Fid {
        let mut path = self.path.clone();
        let mut qid = self.qid;
        if let Some(node) = becomes {
            qid = node.qid();
            if let Some(last) = path.last_mut() {
                *last = node;
            }
        }
        Fid {
            path,
            names: self.names.clone(),
            qid,
            open: Some(Arc::new(open)),
            auth: None,
        }
    }

    /// Releases what the fid holds: the handle's clunk, and ORCLOSE removal.
    pub(crate) async fn release(&self) {
        if let Some(open) = &self.open {
            open.handle.clunk().await;
            if open.remove_on_clunk {
                if let Ok(node) = self.node() {
                    let _ = node.remove().await;
                }
            }
        }
        if let Some(auth) = &self.auth {
            auth.clunk().await;
        }
    }
}

/// A change to the fid table that takes effect when the reply is sent.
pub(crate) enum Effect {
    None,
    /// Add a fid (attach, auth, walk to a new fid). Fails if it appeared meanwhile.
    Insert(u32, Arc<Fid>),
    /// Replace a fid (walk onto itself, open, create, rename).
    Replace(u32, Arc<Fid>),
    /// Drop a fid (clunk, remove).
    Remove(u32),
}

/// Authentication hook: when set, Tauth opens an authentication file whose
/// reads and writes carry the conversation, and Tattach must present it.
#[async_trait::async_trait]
pub trait Auth: Send + Sync + 'static {
    /// Starts an authentication conversation for `info` (aname, uname).
    async fn start(&self, info: &AttachInfo) -> Result<Arc<dyn Handle>>;
    /// Whether the conversation on `afid` authenticated `info`.
    async fn verify(&self, afid: &Arc<dyn Handle>, info: &AttachInfo) -> Result<()>;
}

/// Fids and the tree of one connection.
pub(crate) struct Session {
    pub(crate) fs: Arc<dyn FileServer>,
    pub(crate) auth: Option<Arc<dyn Auth>>,
    pub(crate) peer: PeerInfo,
    /// The connection's id, for [`AttachInfo::conn`].
    pub(crate) conn: u64,
    pub(crate) fids: std::sync::Mutex<HashMap<u32, Arc<Fid>>>,
}

impl Session {
    fn fid(&self, fid: u32) -> Result<Arc<Fid>> {
        self.lock_fids()
            .get(&fid)
            .cloned()
            .ok_or_else(Error::unknown_fid)
    }

    fn fid_unused(&self, fid: u32) -> Result<()> {
        if self.lock_fids().contains_key(&fid) {
            Err(Error::dup_fid())
        } else {
            Ok(())
        }
    }

    pub(crate) fn lock_fids(&self) -> std::sync::MutexGuard<'_, HashMap<u32, Arc<Fid>>> {
        // A poisoned lock means a panic elsewhere while holding it; the map
        // itself is always consistent (single inserts/removes), so go on.
        self.fids.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Applies `effect` to the fid table. Called with the reply about to be sent.
    pub(crate) fn apply(fids: &mut HashMap<u32, Arc<Fid>>, effect: Effect) -> Result<()> {
        match effect {
            Effect::None => Ok(()),
            Effect::Insert(n, fid) => {
                if fids.contains_key(&n) {
                    return Err(Error::dup_fid());
                }
                fids.insert(n, fid);
                Ok(())
            }
            Effect::Replace(n, fid) => {
                if let Some(slot) = fids.get_mut(&n) {
                    *slot = fid;
                }
                Ok(())
            }
            Effect::Remove(n) => {
                fids.remove(&n);
                Ok(())
            }
        }
    }

    /// Handles every request but Tversion and Tflush (the connection's).
    pub(crate) async fn handle(&self, v: Version, body: Fcall) -> Result<(Fcall, Effect)> {
        match body {
            Fcall::Tauth(m) => self.auth(v, m).await,
            Fcall::Tattach(m) => self.attach(v, m).await,
            Fcall::Twalk(m) => self.walk(m).await,
            Fcall::Topen(m) => {
                let fid = m.fid;
                let (qid, iounit, effect) = self
                    .open(v, fid, OpenMode::from_9p(m.mode), m.mode & om::RCLOSE != 0)
                    .await?;
                Ok((Ropen { qid, iounit }.into(), effect))
            }
            Fcall::Tlopen(m) => {
                let (qid, iounit, effect) = self
                    .open(v, m.fid, OpenMode::from_linux(m.flags), false)
                    .await?;
                Ok((Rlopen { qid, iounit }.into(), effect))
            }
            Fcall::Tcreate(m) => self.create(v, m).await,
            Fcall::Tlcreate(m) => self.lcreate(v, m).await,
            Fcall::Tmkdir(m) => {
                let dir = self.dir_fid(m.dfid)?;
                let kind = CreateKind::Dir {
                    perm: m.mode & 0o7777,
                };
                let (node, _) = dir
                    .node()?
                    .create(checked_name(&m.name)?, kind, None)
                    .await?;
                Ok((Rmkdir { qid: node.qid() }.into(), Effect::None))
            }
            Fcall::Tsymlink(m) => {
                let dir = self.dir_fid(m.fid)?;
                let kind = CreateKind::Symlink { target: m.symtgt };
                let (node, _) = dir
                    .node()?
                    .create(checked_name(&m.name)?, kind, None)
                    .await?;
                Ok((Rsymlink { qid: node.qid() }.into(), Effect::None))
            }
            Fcall::Tmknod(m) => {
                let dir = self.dir_fid(m.dfid)?;
                let kind = CreateKind::Special {
                    mode: m.mode,
                    major: m.major,
                    minor: m.minor,
                };
                let (node, _) = dir
                    .node()?
                    .create(checked_name(&m.name)?, kind, None)
                    .await?;
                Ok((Rmknod { qid: node.qid() }.into(), Effect::None))
            }
            Fcall::Tread(m) => self.read(v, m).await,
            Fcall::Treaddir(m) => self.readdir(v, m).await,
            Fcall::Twrite(m) => self.write(m).await,
            Fcall::Tclunk(m) => {
                let fid = self.fid(m.fid)?;
                fid.release().await;
                Ok((Rclunk {}.into(), Effect::Remove(m.fid)))
            }
            Fcall::Tremove(m) => self.remove(m.fid).await,
            Fcall::Tstat(m) => {
                let fid = self.fid(m.fid)?;
                let attr = fid.node()?.attr().await?;
                let stat = attr.to_stat(fid.name(), v.dialect);
                Ok((Rstat { stat }.into(), Effect::None))
            }
            Fcall::Twstat(m) => self.wstat(m).await,
            Fcall::Tgetattr(m) => {
                let fid = self.fid(m.fid)?;
                let attr = fid.node()?.attr().await?;
                Ok((getattr_reply(&attr).into(), Effect::None))
            }
            Fcall::Tsetattr(m) => {
                let fid = self.fid(m.fid)?;
                fid.node()?.setattr(setattr_from_l(&m)?).await?;
                Ok((Rsetattr {}.into(), Effect::None))
            }
            Fcall::Tstatfs(m) => {
                let fid = self.fid(m.fid)?;
                let s = fid.node()?.statfs().await?;
                let reply = Rstatfs {
                    ty: s.ty,
                    bsize: s.bsize,
                    blocks: s.blocks,
                    bfree: s.bfree,
                    bavail: s.bavail,
                    files: s.files,
                    ffree: s.ffree,
                    fsid: s.fsid,
                    namelen: s.namelen,
                };
                Ok((reply.into(), Effect::None))
            }
            Fcall::Treadlink(m) => {
                let fid = self.fid(m.fid)?;
                let target = fid.node()?.readlink().await?;
                Ok((Rreadlink { target }.into(), Effect::None))
            }
            Fcall::Trename(m) => self.rename(m).await,
            Fcall::Trenameat(m) => {
                let from = self.dir_fid(m.olddirfid)?;
                let to = self.dir_fid(m.newdirfid)?;
                from.node()?
                    .rename(
                        checked_name(&m.oldname)?,
                        to.node()?,
                        checked_name(&m.newname)?,
                    )
                    .await?;
                Ok((Rrenameat {}.into(), Effect::None))
            }
            Fcall::Tunlinkat(m) => {
                let dir = self.dir_fid(m.dirfd)?;
                let is_dir = m.flags & l::AT_REMOVEDIR != 0;
                dir.node()?.unlink(checked_name(&m.name)?, is_dir).await?;
                Ok((Runlinkat {}.into(), Effect::None))
            }
            Fcall::Tlink(m) => {
                let dir = self.dir_fid(m.dfid)?;
                let target = self.fid(m.fid)?;
                dir.node()?
                    .link(target.node()?, checked_name(&m.name)?)
                    .await?;
                Ok((Rlink {}.into(), Effect::None))
            }
            Fcall::Tfsync(m) => {
                let fid = self.fid(m.fid)?;
                if let Some(open) = &fid.open {
                    open.handle.fsync().await?;
                }
                Ok((Rfsync {}.into(), Effect::None))
            }
            // Locks are advisory and local to each client: grant them, as
            // diod and QEMU do for exports without a lock manager.
            Fcall::Tlock(m) => {
                self.fid(m.fid)?;
                Ok((
                    Rlock {
                        status: l::lock::SUCCESS,
                    }
                    .into(),
                    Effect::None,
                ))
            }
            Fcall::Tgetlock(m) => {
                self.fid(m.fid)?;
                let reply = Rgetlock {
                    ty: l::lock::UNLCK,
                    start: m.start,
                    length: m.length,
                    proc_id: m.proc_id,
                    client_id: m.client_id,
                };
                Ok((reply.into(), Effect::None))
            }
            Fcall::Txattrwalk(_) | Fcall::Txattrcreate(_) => Err(Error::not_supported()),
            Fcall::Tversion(_) | Fcall::Tflush(_) => Err(Error::botch()),
            _ => Err(Error::new(libc::EPROTO, "9P protocol botch: not a request")),
        }
    }

    async fn auth(&self, v: Version, m: Tauth) -> Result<(Fcall, Effect)> {
        let Some(auth) = &self.auth else {
            return Err(Error::no_auth());
        };
        self.fid_unused(m.afid)?;
        let info = self.attach_info(v, m.uname, m.aname, m.n_uname);
        let handle = auth.start(&info).await?;
        let aqid = Qid {
            ty: qt::AUTH,
            version: 0,
            path: 0,
        };
        let fid = Fid {
            path: Vec::new(),
            names: Vec::new(),
            qid: aqid,
            open: None,
            auth: Some(handle),
        };
        Ok((Rauth { aqid }.into(), Effect::Insert(m.afid, Arc::new(fid))))
    }

    fn attach_info(&self, v: Version, uname: String, aname: String, n_uname: u32) -> AttachInfo {
        AttachInfo {
            uname,
            aname,
            n_uname,
            dialect: v.dialect,
            peer: self.peer.clone(),
            conn: self.conn,
        }
    }

    async fn attach(&self, v: Version, m: Tattach) -> Result<(Fcall, Effect)> {
        self.fid_unused(m.fid)?;
        let info = self.attach_info(v, m.uname, m.aname, m.n_uname);
        match (&self.auth, m.afid) {
            (None, NOFID) => {}
            (None, _) => return Err(Error::no_auth()),
            (Some(_), NOFID) => return Err(Error::new(libc::EACCES, "authentication required")),
            (Some(auth), afid) => {
                let afid = self.fid(afid)?;
                let handle = afid.auth.as_ref().ok_or_else(Error::botch)?;
                auth.verify(handle, &info).await?;
            }
        }
        let root = self.fs.attach(&info).await?;
        let qid = root.qid();
        let fid = Fid {
            path: vec![root],
            names: Vec::new(),
            qid,
            open: None,
            auth: None,
        };
        Ok((Rattach { qid }.into(), Effect::Insert(m.fid, Arc::new(fid))))
    }

    async fn walk(&self, m: Twalk) -> Result<(Fcall, Effect)> {
        let fid = self.fid(m.fid)?;
        if fid.open.is_some() {
            return Err(Error::fid_open());
        }
        if fid.auth.is_some() {
            return Err(Error::botch());
        }
        if m.newfid != m.fid {
            self.fid_unused(m.newfid)?;
        }
        if !m.wnames.is_empty() && !fid.qid.is_dir() {
            return Err(Error::new(libc::ENOTDIR, "walk in non-directory"));
        }
        let mut path = fid.path.clone();
        let mut names = fid.names.clone();
        let mut wqids = Vec::with_capacity(m.wnames.len());
        for (i, name) in m.wnames.iter().enumerate() {
            let step = self.step(&mut path, &mut names, name).await;
            match step {
                Ok(qid) => wqids.push(qid),
                // walk(5): an error on the first name is an Rerror; after
                // that, a short Rwalk and the newfid is not created.
                Err(e) if i == 0 => return Err(e),
                Err(_) => return Ok((Rwalk { wqids }.into(), Effect::None)),
            }
        }
        let qid = match path.last() {
            Some(node) => node.qid(),
            None => return Err(Error::botch()),
        };
        let newfid = Arc::new(Fid {
            path,
            names,
            qid,
            open: None,
            auth: None,
        });
        let effect = if m.newfid == m.fid {
            Effect::Replace(m.fid, newfid)
        } else {
            Effect::Insert(m.newfid, newfid)
        };
        Ok((Rwalk { wqids }.into(), effect))
    }

    /// One walk step. `..` pops the path but never above the attach root.
    async fn step(
        &self,
        path: &mut Vec<Arc<dyn Node>>,
        names: &mut Vec<String>,
        name: &str,
    ) -> Result<Qid> {
        let cur = path.last().ok_or_else(Error::botch)?.clone();
        if !cur.qid().is_dir() {
            return Err(Error::new(libc::ENOTDIR, "walk in non-directory"));
        }
        match name {
            ".." => {
                if path.len() > 1 {
                    path.pop();
                    names.pop();
                }
            }
            "." => {}
            _ => {
                let next = cur.walk(checked_name(name)?).await?;
                path.push(next);
                names.push(name.to_owned());
            }
        }
        path.last().map(|n| n.qid()).ok_or_else(Error::botch)
    }

    async fn open(
        &self,
        v: Version,
        fid_no: u32,
        mode: OpenMode,
        remove_on_clunk: bool,
    ) -> Result<(Qid, u32, Effect)> {
        let fid = self.fid(fid_no)?;
        if fid.open.is_some() || fid.auth.is_some() {
            return Err(Error::fid_open());
        }
        let node = fid.node()?;
        let attr = node.attr().await?;
        check_open(&attr, mode)?;
        let opened = node.open(mode).await?;
        let is_dir = attr.is_dir();
        let open = OpenFile {
            handle: opened.handle,
            mode,
            remove_on_clunk,
            is_dir,
            iounit: clamp_iounit(opened.iounit, v),
            dir: Default::default(),
        };
        let iounit = open.iounit;
        let newfid = fid.with_open(open, opened.becomes);
        let qid = newfid.qid;
        Ok((qid, iounit, Effect::Replace(fid_no, Arc::new(newfid))))
    }

    /// A fid that is a directory and not open, for the create family.
    fn dir_fid(&self, fid: u32) -> Result<Arc<Fid>> {
        let fid = self.fid(fid)?;
        if fid.open.is_some() {
            return Err(Error::fid_open());
        }
        if !fid.qid.is_dir() {
            return Err(Error::not_dir());
        }
        Ok(fid)
    }

    async fn read(&self, v: Version, m: Tread) -> Result<(Fcall, Effect)> {
        let fid = self.fid(m.fid)?;
        let count = m.count.min(v.max_io());
        if let Some(auth) = &fid.auth {
            let data = auth.read(m.offset, count).await?;
            return Ok((Rread { data }.into(), Effect::None));
        }
        let open = fid.open.as_ref().ok_or_else(Error::not_open)?;
        if !open.mode.read {
            return Err(Error::not_open());
        }
        let count = count.min(open.iounit);
        let data = if open.is_dir {
            self.read_dir_stats(&fid, open, m.offset, count, v.dialect)
                .await?
        } else {
            let mut data = open.handle.read(m.offset, count).await?;
            // A handler must not return more than was asked; never let it
            // overflow the frame.
            data.truncate(count as usize);
            data
        };
        Ok((Rread { data }.into(), Effect::None))
    }

    /// 9P2000 directory read: whole stat records, at offset 0 or where the last read ended.
    async fn read_dir_stats(
        &self,
        fid: &Fid,
        open: &OpenFile,
        offset: u64,
        count: u32,
        dialect: Dialect,
    ) -> Result<Vec<u8>> {
        let mut cur = open.dir.lock().await;
        if offset == 0 {
            *cur = DirCursor {
                entries: fid.node()?.readdir().await?,
                ..DirCursor::default()
            };
        } else if offset != cur.next_offset {
            return Err(Error::bad_dir_offset());
        }
        let mut out = Vec::new();
        let mut w = wire::Writer::new(&mut out, dialect);
        while let Some(entry) = cur.entries.get(cur.next_index) {
            let stat = entry.attr.to_stat(&entry.name, dialect);
            if w.len() + stat.entry_len(dialect) > count as usize {
                break;
            }
            stat.encode_entry(&mut w)
                .map_err(|e| Error::io(e.to_string()))?;
            cur.next_index += 1;
        }
        // When the next entry does not fit, the read is short, possibly
        // empty, as lib9p's dirread9p and QEMU do: Linux fills its buffer
        // with a second read for the bytes left and treats the empty reply
        // as "buffer done", then reads again at the same offset.
        cur.next_offset += out.len() as u64;
        Ok(out)
    }

    async fn readdir(&self, v: Version, m: Treaddir) -> Result<(Fcall, Effect)> {
        let fid = self.fid(m.fid)?;
        let open = fid.open.as_ref().ok_or_else(Error::not_open)?;
        if !open.is_dir {
            return Err(Error::not_dir());
        }
        let count = m.count.min(v.max_io()).min(open.iounit) as usize;
        let mut cur = open.dir.lock().await;
        if m.offset == 0 || cur.entries.is_empty() {
            let node = fid.node()?;
            let parent = fid.parent().unwrap_or(node);
            let mut entries = vec![
                DirEntry {
                    name: ".".into(),
                    attr: node.attr().await?,
                },
                DirEntry {
                    name: "..".into(),
                    attr: parent.attr().await?,
                },
            ];
            entries.extend(node.readdir().await?);
            cur.entries = entries;
        }
        // Cookies are entry indexes plus one: stable for this listing, and a
        // client may resume from any cookie it was given.
        let mut data = Vec::new();
        let start = usize::try_from(m.offset).unwrap_or(usize::MAX);
        for (i, entry) in cur.entries.iter().enumerate().skip(start) {
            let d = Dirent {
                qid: entry.attr.qid,
                offset: i as u64 + 1,
                ty: entry.attr.dtype(),
                name: entry.name.clone(),
            };
            if data.len() + d.len() > count {
                break;
            }
            d.encode(&mut data).map_err(|e| Error::io(e.to_string()))?;
        }
        if data.is_empty() && start < cur.entries.len() {
            return Err(Error::invalid_arg("readdir count too small for an entry"));
        }
        Ok((Rreaddir { data }.into(), Effect::None))
    }

    async fn write(&self, m: Twrite) -> Result<(Fcall, Effect)> {
        let fid = self.fid(m.fid)?;
        if let Some(auth) = &fid.auth {
            let count = auth.write(m.offset, &m.data).await?;
            return Ok((Rwrite { count }.into(), Effect::None));
        }
        let open = fid.open.as_ref().ok_or_else(Error::not_open)?;
        if !open.mode.write {
            return Err(Error::not_open());
        }
        if open.is_dir {
            return Err(Error::is_dir());
        }
        let count = open.handle.write(m.offset, &m.data).await?;
        let count = count.min(m.data.len() as u32);
        Ok((Rwrite { count }.into(), Effect::None))
    }

    async fn remove(&self, fid_no: u32) -> Result<(Fcall, Effect)> {
        let fid = self.fid(fid_no)?;
        // remove(5): the fid is clunked whether or not the remove succeeds.
        let result = match (fid.node(), fid.path.len()) {
            (Ok(_), 1) => Err(Error::new(libc::EBUSY, "cannot remove the root")),
            (Ok(node), _) => node.remove().await,
            (Err(e), _) => Err(e),
        };
        if let Some(open) = &fid.open {
            open.handle.clunk().await;
        }
        match result {
            Ok(()) => Ok((Rremove {}.into(), Effect::Remove(fid_no))),
            Err(e) => {
                self.lock_fids().remove(&fid_no);
                Err(e)
            }
        }
    }
}

impl Error {
    fn not_supported_msg(what: &'static str) -> Error {
        Error::new(libc::EOPNOTSUPP, format!("{what} is not supported"))
    }
}

//! [`Fid`]: a handle on one file of the server.
//!
//! Methods named after a message (`topen`, `lopen`, `tcreate`, `lcreate`,
//! `stat`, `getattr`, `wstat`, `statfs`) send exactly that message and fail
//! with [`Error::Unsupported`] outside its dialect. The others (`open`,
//! `create`, `mkdir`, `metadata`, `setattr`, `readdir`, `fsync`, ...) pick
//! the right messages for the dialect in force.

use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::Ordering;

use ninep::{
    dm, l, om, qt, Dialect, Dirent, Fcall, Qid, Rgetattr, Rstatfs, Stat, IOHDRSZ, MAXWELEM,
    NONUNAME,
};

use crate::conn::{Effect, FidNum, Pending, Reply};
pub use crate::types::{DirEntry, FileKind, Metadata, OpenFlags, SetAttr, SetTime};
use crate::{unexpected, Client, Error, Result};

/// How many bytes [`Fid::read_all`] and [`Fid::write_all`] try to keep in
/// flight; the number of chunks is this over the iounit, within 2..=64.
const PIPELINE_BYTES: usize = 4 << 20;
/// Entries whose attributes [`Fid::readdir`] fetches at once in 9P2000.L.
const ATTR_BATCH: usize = 32;
/// Linux errnos that say a server lacks a request.
const ENOSYS: u32 = 38;
const EOPNOTSUPP: u32 = 95;

/// A fid: the client's handle on one file of the server.
///
/// Dropping a `Fid` clunks it in the background; [`Fid::clunk`] does the
/// same and waits for the reply. The methods take `&self` unless they
/// change what the fid is, so one `Fid` can serve many tasks at once.
pub struct Fid {
    // Before `client`: dropping it queues the Tclunk while the connection
    // is surely still up, even if this fid holds the last `Client`.
    num: FidNum,
    client: Client,
    qid: Qid,
    iounit: u32,
    opened: bool,
}

impl fmt::Debug for Fid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fid")
            .field("fid", &self.num.get())
            .field("qid", &self.qid)
            .field("opened", &self.opened)
            .finish()
    }
}

macro_rules! expect {
    ($reply:expr, $variant:ident, $request:literal) => {
        match $reply.body {
            Fcall::$variant(r) => r,
            other => return Err(unexpected(&other, $request)),
        }
    };
}

impl Fid {
    pub(crate) fn new(client: Client, num: FidNum, qid: Qid) -> Fid {
        Fid {
            client,
            num,
            qid,
            iounit: 0,
            opened: false,
        }
    }

    /// The fid number on the wire, for requests sent with [`Client::rpc`].
    pub fn number(&self) -> u32 {
        self.num.get()
    }

    /// The file's qid, as of the walk, open or create that made this fid.
    pub fn qid(&self) -> Qid {
        self.qid
    }

    /// Whether the fid has been opened (or created).
    pub fn is_open(&self) -> bool {
        self.opened
    }

    /// The most bytes one read or write moves: the iounit of the open
    /// reply, or msize minus the I/O header when that is 0.
    pub fn iounit(&self) -> u32 {
        let max = self.client.msize().saturating_sub(IOHDRSZ);
        match self.iounit {
            0 => max,
            n => n.min(max),
        }
    }

    /// The session this fid belongs to.
    pub fn client(&self) -> &Client {
        &self.client
    }

    // ---- walking ----

    /// Walks from this fid through `names` to a new fid; this one is left
    /// as it is. Any number of names may be given (they are sent 16 to a
    /// Twalk); none makes a clone. Fails unless every name is walked.
    pub async fn walk<S: AsRef<str>>(&self, names: &[S]) -> Result<Fid> {
        let names: Vec<String> = names.iter().map(|s| s.as_ref().to_owned()).collect();
        match self.walk_names(&names).await {
            Err(Error::WalkIncomplete {
                name,
                walked,
                total,
            }) => Err(self.why_not(&names[..walked], name, total).await),
            r => r,
        }
    }

    /// Why a walk stopped at `name` after `walked`: 9P's Rwalk with fewer
    /// qids than names carries no error (walk(5)), so the server's reason
    /// (a peer unreachable, a policy) would be lost. Walking to the last
    /// name reached and then `name` alone gets its Rerror. Costs two
    /// round trips, on the error path only; if `name` now walks, the
    /// plain "not found" stands, as it does when the reason is only
    /// that the name does not exist.
    async fn why_not(&self, walked: &[String], name: String, total: usize) -> Error {
        let incomplete = Error::WalkIncomplete {
            name: name.clone(),
            walked: walked.len(),
            total,
        };
        // `walk_names` does not ask why again: one probe at most.
        let Ok(last) = self.walk_names(walked).await else {
            return incomplete;
        };
        match last.start_walk(vec![name]).await {
            Ok(pending) => match pending.await {
                // A plain "does not exist" is said better by the walk
                // error, which names the element and the depth.
                Err(e @ Error::Remote { .. })
                    if std::io::Error::from(e.duplicate()).kind()
                        != std::io::ErrorKind::NotFound =>
                {
                    e
                }
                // A fid the probe made is clunked as the reply drops.
                _ => incomplete,
            },
            Err(_) => incomplete,
        }
    }

    /// [`Fid::walk`] without asking why a walk stopped.
    async fn walk_names(&self, names: &[String]) -> Result<Fid> {
        let mut chunks = names.chunks(MAXWELEM);
        let first = chunks.next().unwrap_or_default().to_vec();
        let mut fid = self.finish_walk(self.start_walk(first).await?.await, names, 0)?;
        let mut walked = MAXWELEM.min(names.len());
        for chunk in chunks {
            let body = ninep::Twalk {
                fid: fid.number(),
                newfid: fid.number(),
                wnames: chunk.to_vec(),
            };
            let r = expect!(self.client.call(body.into()).await?, Rwalk, "Twalk");
            if r.wqids.len() != chunk.len() {
                return Err(walk_error(names, walked, chunk.len(), r.wqids.len()));
            }
            if let Some(q) = r.wqids.last() {
                fid.qid = *q;
            }
            walked += chunk.len();
        }
        Ok(fid)
    }

    /// Walks a slash-separated path; empty elements and `.` are skipped.
    pub async fn walk_path(&self, path: &str) -> Result<Fid> {
        let names: Vec<&str> = path
            .split('/')
            .filter(|s| !s.is_empty() && *s != ".")
            .collect();
        self.walk(&names).await
    }

    /// A new fid for the same file (a walk of no names). It is not open.
    #[doc(alias = "clone")]
    pub async fn try_clone(&self) -> Result<Fid> {
        self.walk::<&str>(&[]).await
    }

    /// Sends one Twalk of at most 16 names to a new fid.
    async fn start_walk(&self, wnames: Vec<String>) -> Result<Pending> {
        let shared = self.client.shared();
        let newfid = shared.reserve_fid()?;
        let nwname = wnames.len();
        let body = ninep::Twalk {
            fid: self.number(),
            newfid: newfid.get(),
            wnames,
        };
        shared
            .start(body.into(), Effect::Creates(newfid, nwname), true)
            .await
    }

    /// The fid a Twalk of `names[done..]` (at most 16) made.
    fn finish_walk(&self, reply: Result<Reply>, names: &[String], done: usize) -> Result<Fid> {
        let reply = reply?;
        let fid = reply.fid;
        let r = expect!(reply, Rwalk, "Twalk");
        let asked = names.len().saturating_sub(done).min(MAXWELEM);
        match fid {
            Some(num) => {
                let qid = r.wqids.last().copied().unwrap_or(self.qid);
                Ok(Fid::new(self.client.clone(), num, qid))
            }
            None => Err(walk_error(names, done, asked, r.wqids.len())),
        }
    }

    // ---- opening and creating ----

    /// Opens the fid: Tlopen in 9P2000.L, Topen otherwise.
    pub async fn open(&mut self, flags: OpenFlags) -> Result<Qid> {
        match self.dialect() {
            Dialect::L => self.lopen(flags.lflags()).await,
            _ => self.topen(flags.mode()).await,
        }
    }

    /// Topen with a 9P2000 mode ([`ninep::om`]).
    pub async fn topen(&mut self, mode: u8) -> Result<Qid> {
        self.not_in_l("Topen")?;
        let body = ninep::Topen {
            fid: self.number(),
            mode,
        };
        let r = expect!(self.client.call(body.into()).await?, Ropen, "Topen");
        self.set_open(r.qid, r.iounit);
        Ok(r.qid)
    }

    /// Tlopen with Linux open flags ([`ninep::l::open`]).
    pub async fn lopen(&mut self, flags: u32) -> Result<Qid> {
        self.only_in_l("Tlopen")?;
        let body = ninep::Tlopen {
            fid: self.number(),
            flags,
        };
        let r = expect!(self.client.call(body.into()).await?, Rlopen, "Tlopen");
        self.set_open(r.qid, r.iounit);
        Ok(r.qid)
    }

    /// Creates and opens `name` in this directory, returning a new fid for
    /// it; this one stays the directory. Tlcreate in 9P2000.L (with the
    /// caller's group), Tcreate otherwise.
    pub async fn create(&self, name: &str, perm: u32, flags: OpenFlags) -> Result<Fid> {
        let mut f = self.try_clone().await?;
        match self.dialect() {
            Dialect::L => {
                let flags = flags.lflags() | l::open::CREAT;
                f.lcreate(name, flags, perm, NONUNAME).await?
            }
            _ => f.tcreate(name, perm, flags.mode(), "").await?,
        };
        Ok(f)
    }

    /// Tcreate: creates `name` in this directory and makes this fid the new,
    /// open file. `extension` is sent only in 9P2000.u.
    pub async fn tcreate(
        &mut self,
        name: &str,
        perm: u32,
        mode: u8,
        extension: &str,
    ) -> Result<Qid> {
        self.not_in_l("Tcreate")?;
        let body = ninep::Tcreate {
            fid: self.number(),
            name: name.into(),
            perm,
            mode,
            extension: extension.into(),
        };
        let r = expect!(self.client.call(body.into()).await?, Rcreate, "Tcreate");
        self.set_open(r.qid, r.iounit);
        Ok(r.qid)
    }

    /// Tlcreate: creates `name` in this directory and makes this fid the
    /// new, open file.
    pub async fn lcreate(&mut self, name: &str, flags: u32, mode: u32, gid: u32) -> Result<Qid> {
        self.only_in_l("Tlcreate")?;
        let body = ninep::Tlcreate {
            fid: self.number(),
            name: name.into(),
            flags,
            mode,
            gid,
        };
        let r = expect!(self.client.call(body.into()).await?, Rlcreate, "Tlcreate");
        self.set_open(r.qid, r.iounit);
        Ok(r.qid)
    }

    /// Makes directory `name` in this directory: Tmkdir in 9P2000.L,
    /// Tcreate with DMDIR (on a clone) otherwise.
    pub async fn mkdir(&self, name: &str, perm: u32) -> Result<Qid> {
        if self.dialect() == Dialect::L {
            let body = ninep::Tmkdir {
                dfid: self.number(),
                name: name.into(),
                mode: perm,
                gid: NONUNAME,
            };
            let r = expect!(self.client.call(body.into()).await?, Rmkdir, "Tmkdir");
            return Ok(r.qid);
        }
        let mut f = self.try_clone().await?;
        f.tcreate(name, perm | dm::DIR, om::READ, "").await
    }

    // ---- reading and writing ----

    /// One Tread of at most `count` bytes (clamped to the iounit).
    pub async fn read(&self, offset: u64, count: u32) -> Result<Vec<u8>> {
        let count = count.min(self.iounit());
        rread(self.start_read(offset, count).await?.await, count)
    }

    /// One Twrite of as much of `data` as the iounit allows; returns the
    /// count the server wrote.
    pub async fn write(&self, offset: u64, data: &[u8]) -> Result<u32> {
        let n = data.len().min(self.iounit() as usize);
        rwrite(self.start_write(offset, &data[..n]).await?.await, n)
    }

    /// Reads from offset 0 until a read returns nothing.
    ///
    /// Once a read comes back full, several iounit-sized reads are kept in
    /// flight; a short read stops that and goes on from where it ended, so
    /// files that return less than asked (synthetic files, streams) read
    /// correctly. Directories are read one chunk at a time, as 9P requires.
    pub async fn read_all(&self) -> Result<Vec<u8>> {
        let unit = self.iounit();
        let depth = if self.qid.is_dir() { 1 } else { depth(unit) };
        let mut out = Vec::new();
        let mut window: VecDeque<(u64, Pending)> = VecDeque::new();
        let mut next = 0u64;
        let mut pipelining = false;
        loop {
            let want = if pipelining { depth } else { 1 };
            while window.len() < want {
                window.push_back((next, self.start_read(next, unit).await?));
                next += u64::from(unit);
            }
            let Some((at, p)) = window.pop_front() else {
                return Ok(out);
            };
            let data = rread(p.await, unit)?;
            let n = data.len();
            out.extend_from_slice(&data);
            if n == unit as usize {
                pipelining = true;
                continue;
            }
            // Short or empty: whatever is in flight was aimed at offsets
            // past a gap. Collect those replies (cheaper than flushing).
            for (_, p) in window.drain(..) {
                let _ = p.await;
            }
            if n == 0 {
                return Ok(out);
            }
            next = at + n as u64;
            pipelining = false;
        }
    }

    /// Writes all of `data` at `offset`, several iounit-sized Twrites in
    /// flight at once (one at a time for append-only files, whose offsets
    /// the server ignores). A short write is completed by writing the rest.
    pub async fn write_all(&self, offset: u64, data: &[u8]) -> Result<()> {
        let unit = self.iounit() as usize;
        let depth = if self.qid.ty & qt::APPEND != 0 {
            1
        } else {
            depth(unit as u32)
        };
        let mut window: VecDeque<(usize, usize, Pending)> = VecDeque::new();
        let mut pos = 0;
        loop {
            while window.len() < depth && pos < data.len() {
                let n = (data.len() - pos).min(unit);
                let p = self
                    .start_write(offset + pos as u64, &data[pos..pos + n])
                    .await?;
                window.push_back((pos, n, p));
                pos += n;
            }
            let Some((at, n, p)) = window.pop_front() else {
                return Ok(());
            };
            let wrote = rwrite(p.await, n)? as usize;
            let mut rest = &data[at + wrote..at + n];
            let mut off = offset + (at + wrote) as u64;
            while !rest.is_empty() {
                let wrote = self.write(off, rest).await? as usize;
                if wrote == 0 {
                    return Err(std::io::Error::from(std::io::ErrorKind::WriteZero).into());
                }
                rest = &rest[wrote..];
                off += wrote as u64;
            }
        }
    }

    async fn start_read(&self, offset: u64, count: u32) -> Result<Pending> {
        let body = ninep::Tread {
            fid: self.number(),
            offset,
            count,
        };
        self.start(body.into()).await
    }

    async fn start_write(&self, offset: u64, data: &[u8]) -> Result<Pending> {
        let body = ninep::Twrite {
            fid: self.number(),
            offset,
            data: data.to_vec(),
        };
        self.start(body.into()).await
    }

    // ---- metadata ----

    /// Tstat (9P2000 and .u).
    pub async fn stat(&self) -> Result<Stat> {
        self.not_in_l("Tstat")?;
        let body = ninep::Tstat { fid: self.number() };
        Ok(expect!(self.client.call(body.into()).await?, Rstat, "Tstat").stat)
    }

    /// Twstat (9P2000 and .u); start from [`Stat::dont_touch`].
    pub async fn wstat(&self, stat: &Stat) -> Result<()> {
        self.not_in_l("Twstat")?;
        let body = ninep::Twstat {
            fid: self.number(),
            stat: stat.clone(),
        };
        expect!(self.client.call(body.into()).await?, Rwstat, "Twstat");
        Ok(())
    }

    /// Tgetattr (9P2000.L) for the fields in `mask` ([`ninep::l::getattr`]).
    pub async fn getattr(&self, mask: u64) -> Result<Rgetattr> {
        self.only_in_l("Tgetattr")?;
        let body = ninep::Tgetattr {
            fid: self.number(),
            request_mask: mask,
        };
        Ok(expect!(
            self.client.call(body.into()).await?,
            Rgetattr,
            "Tgetattr"
        ))
    }

    /// The file's metadata: Tgetattr in 9P2000.L, Tstat otherwise.
    pub async fn metadata(&self) -> Result<Metadata> {
        match self.dialect() {
            Dialect::L => Ok(Metadata::from_getattr(
                &self.getattr(l::getattr::BASIC).await?,
            )),
            _ => Ok(Metadata::from_stat(&self.stat().await?)),
        }
    }

    /// Changes attributes: one Tsetattr in 9P2000.L; otherwise a Twstat
    /// (preceded by a Tstat when `perm` is set, to keep the file's type
    /// bits). Numeric owners need .L or .u.
    pub async fn setattr(&self, attr: &SetAttr) -> Result<()> {
        if self.dialect() == Dialect::L {
            let body = attr.to_tsetattr(self.number());
            expect!(self.client.call(body.into()).await?, Rsetattr, "Tsetattr");
            return Ok(());
        }
        let mut st = Stat::dont_touch();
        if let Some(perm) = attr.perm {
            let cur = self.stat().await?;
            let keep = cur.mode & !(0o777 | dm::SETUID | dm::SETGID);
            st.mode = keep | (perm & 0o777);
            if perm & 0o4000 != 0 {
                st.mode |= dm::SETUID;
            }
            if perm & 0o2000 != 0 {
                st.mode |= dm::SETGID;
            }
        }
        if attr.uid.is_some() || attr.gid.is_some() {
            if self.dialect() != Dialect::U {
                return Err(self.unsupported("Twstat of numeric owners"));
            }
            st.n_uid = attr.uid.unwrap_or(!0);
            st.n_gid = attr.gid.unwrap_or(!0);
        }
        if let Some(size) = attr.size {
            st.length = size;
        }
        if let Some(t) = attr.atime {
            st.atime = t.stat_seconds();
        }
        if let Some(t) = attr.mtime {
            st.mtime = t.stat_seconds();
        }
        self.wstat(&st).await
    }

    /// Tstatfs (9P2000.L).
    pub async fn statfs(&self) -> Result<Rstatfs> {
        self.only_in_l("Tstatfs")?;
        let body = ninep::Tstatfs { fid: self.number() };
        Ok(expect!(
            self.client.call(body.into()).await?,
            Rstatfs,
            "Tstatfs"
        ))
    }

    /// Commits the file to stable storage: Tfsync in 9P2000.L, a Twstat
    /// that changes nothing otherwise (stat(5)).
    pub async fn fsync(&self) -> Result<()> {
        if self.dialect() != Dialect::L {
            return self.wstat(&Stat::dont_touch()).await;
        }
        let body = ninep::Tfsync {
            fid: self.number(),
            datasync: 0,
        };
        expect!(self.client.call(body.into()).await?, Rfsync, "Tfsync");
        Ok(())
    }

    // ---- directories ----

    /// Lists the directory, without `.` and `..`, with each entry's
    /// metadata.
    ///
    /// Call it on a directory fid that is not open: it opens a clone to
    /// read (9P2000 also accepts a fid opened for reading). In 9P2000 the
    /// entries are stat records; in 9P2000.L they come from Treaddir, and
    /// their metadata from a walk and Tgetattr of each, pipelined (an entry
    /// removed meanwhile is left out).
    pub async fn readdir(&self) -> Result<Vec<DirEntry>> {
        if self.dialect() == Dialect::L {
            if self.opened {
                return Err(Error::Invalid(
                    "readdir needs a directory fid that is not open in 9P2000.L".into(),
                ));
            }
            let mut dir = self.try_clone().await?;
            dir.lopen(l::open::RDONLY | l::open::DIRECTORY).await?;
            let names = dir.readdir_l().await?;
            drop(dir);
            return self.attrs_of(names).await;
        }
        let opened;
        let dir = if self.opened {
            self
        } else {
            let mut d = self.try_clone().await?;
            d.topen(om::READ).await?;
            opened = d;
            &opened
        };
        let mut out = Vec::new();
        let mut offset = 0u64;
        loop {
            let data = dir.read(offset, dir.iounit()).await?;
            if data.is_empty() {
                return Ok(out);
            }
            offset += data.len() as u64;
            let stats = Stat::decode_dir(&data, self.dialect())
                .map_err(|e| Error::Protocol(format!("directory read: {e}")))?;
            out.extend(
                stats
                    .into_iter()
                    .filter(|s| s.name != "." && s.name != "..")
                    .map(DirEntry::from_stat),
            );
        }
    }

    /// Every entry of an open .L directory, by Treaddir.
    async fn readdir_l(&self) -> Result<Vec<Dirent>> {
        let mut out = Vec::new();
        let mut cookie = 0u64;
        loop {
            let body = ninep::Treaddir {
                fid: self.number(),
                offset: cookie,
                count: self.iounit(),
            };
            let r = expect!(self.client.call(body.into()).await?, Rreaddir, "Treaddir");
            let ents = Dirent::decode_all(&r.data)
                .map_err(|e| Error::Protocol(format!("Rreaddir: {e}")))?;
            let Some(last) = ents.last() else {
                return Ok(out);
            };
            if last.offset == cookie {
                return Err(Error::Protocol(format!(
                    "Rreaddir did not advance past offset {cookie}"
                )));
            }
            cookie = last.offset;
            out.extend(ents.into_iter().filter(|d| d.name != "." && d.name != ".."));
        }
    }

    /// Walks to and gets the attributes of each entry, a batch at a time.
    async fn attrs_of(&self, ents: Vec<Dirent>) -> Result<Vec<DirEntry>> {
        let mut out = Vec::with_capacity(ents.len());
        for batch in ents.chunks(ATTR_BATCH) {
            let mut walks = Vec::with_capacity(batch.len());
            for d in batch {
                walks.push(self.start_walk(vec![d.name.clone()]).await?);
            }
            let mut fids = Vec::with_capacity(batch.len());
            for w in walks {
                fids.push(w.await.ok().and_then(|r| r.fid));
            }
            let mut attrs = Vec::with_capacity(batch.len());
            for f in &fids {
                let body = |fid| ninep::Tgetattr {
                    fid,
                    request_mask: l::getattr::BASIC,
                };
                attrs.push(match f {
                    Some(f) => Some(self.start(body(f.get()).into()).await?),
                    None => None,
                });
            }
            for (d, a) in batch.iter().zip(attrs) {
                let Some(a) = a else { continue };
                let meta = match a.await {
                    Ok(Reply {
                        body: Fcall::Rgetattr(r),
                        ..
                    }) => Metadata::from_getattr(&r),
                    Ok(reply) => return Err(unexpected(&reply.body, "Tgetattr")),
                    Err(Error::Remote { .. }) => continue,
                    Err(e) => return Err(e),
                };
                out.push(DirEntry {
                    name: d.name.clone(),
                    meta,
                });
            }
            // `fids` drops here: the walked fids are clunked, pipelined.
        }
        Ok(out)
    }

    // ---- removing and renaming ----

    /// Tremove: removes the file; the fid is clunked even if that fails.
    pub async fn remove(self) -> Result<()> {
        let Fid { client, num, .. } = self;
        let body = ninep::Tremove { fid: num.get() };
        let reply = client
            .shared()
            .start(body.into(), Effect::Clunks(num), false)
            .await?
            .await?;
        expect!(reply, Rremove, "Tremove");
        Ok(())
    }

    /// Removes `name` from this directory: Tunlinkat in 9P2000.L (`flags`
    /// may hold [`ninep::l::AT_REMOVEDIR`]); a walk and Tremove otherwise,
    /// or when the server does not implement Tunlinkat (diod answers
    /// EOPNOTSUPP; the client remembers and stops asking).
    pub async fn unlinkat(&self, name: &str, flags: u32) -> Result<()> {
        let lacks = &self.client.shared().lacks.unlinkat;
        if self.dialect() == Dialect::L && !lacks.load(Ordering::Relaxed) {
            let body = ninep::Tunlinkat {
                dirfd: self.number(),
                name: name.into(),
                flags,
            };
            match self.client.call(body.into()).await {
                Ok(reply) => {
                    expect!(reply, Runlinkat, "Tunlinkat");
                    return Ok(());
                }
                Err(e) if lacks_request(&e) => lacks.store(true, Ordering::Relaxed),
                Err(e) => return Err(e),
            }
        }
        self.walk(&[name]).await?.remove().await
    }

    /// Trename (9P2000.L): moves this file into `newdir` as `name`.
    pub async fn rename(&self, newdir: &Fid, name: &str) -> Result<()> {
        self.only_in_l("Trename")?;
        let body = ninep::Trename {
            fid: self.number(),
            dfid: newdir.number(),
            name: name.into(),
        };
        expect!(self.client.call(body.into()).await?, Rrename, "Trename");
        Ok(())
    }

    /// Trenameat (9P2000.L): renames `oldname` in this directory to
    /// `newname` in `newdir`. If the server does not implement Trenameat
    /// (diod), walks to `oldname` and sends Trename.
    pub async fn renameat(&self, oldname: &str, newdir: &Fid, newname: &str) -> Result<()> {
        self.only_in_l("Trenameat")?;
        let lacks = &self.client.shared().lacks.renameat;
        if !lacks.load(Ordering::Relaxed) {
            let body = ninep::Trenameat {
                olddirfid: self.number(),
                oldname: oldname.into(),
                newdirfid: newdir.number(),
                newname: newname.into(),
            };
            match self.client.call(body.into()).await {
                Ok(reply) => {
                    expect!(reply, Rrenameat, "Trenameat");
                    return Ok(());
                }
                Err(e) if lacks_request(&e) => lacks.store(true, Ordering::Relaxed),
                Err(e) => return Err(e),
            }
        }
        self.walk(&[oldname]).await?.rename(newdir, newname).await
    }

    /// Tclunk, waiting for the reply. The fid is gone whatever it says.
    pub async fn clunk(self) -> Result<()> {
        let Fid { client, num, .. } = self;
        let body = ninep::Tclunk { fid: num.get() };
        let reply = client
            .shared()
            .start(body.into(), Effect::Clunks(num), false)
            .await?
            .await?;
        expect!(reply, Rclunk, "Tclunk");
        Ok(())
    }

    // ---- helpers ----

    fn dialect(&self) -> Dialect {
        self.client.dialect()
    }

    fn set_open(&mut self, qid: Qid, iounit: u32) {
        self.qid = qid;
        self.iounit = iounit;
        self.opened = true;
    }

    async fn start(&self, body: Fcall) -> Result<Pending> {
        self.client.shared().start(body, Effect::None, true).await
    }

    fn unsupported(&self, op: &'static str) -> Error {
        Error::Unsupported {
            op,
            dialect: self.dialect(),
        }
    }

    fn only_in_l(&self, op: &'static str) -> Result<()> {
        match self.dialect() {
            Dialect::L => Ok(()),
            _ => Err(self.unsupported(op)),
        }
    }

    fn not_in_l(&self, op: &'static str) -> Result<()> {
        match self.dialect() {
            Dialect::L => Err(self.unsupported(op)),
            _ => Ok(()),
        }
    }
}

/// Chunks kept in flight for a given iounit.
fn depth(unit: u32) -> usize {
    (PIPELINE_BYTES / (unit.max(1) as usize)).clamp(2, 64)
}

fn rread(reply: Result<Reply>, count: u32) -> Result<Vec<u8>> {
    let r = expect!(reply?, Rread, "Tread");
    if r.data.len() > count as usize {
        return Err(Error::Protocol(format!(
            "Rread of {} bytes for a Tread of {count}",
            r.data.len()
        )));
    }
    Ok(r.data)
}

fn rwrite(reply: Result<Reply>, len: usize) -> Result<u32> {
    let r = expect!(reply?, Rwrite, "Twrite");
    if r.count as usize > len {
        return Err(Error::Protocol(format!(
            "Rwrite of {} bytes for a Twrite of {len}",
            r.count
        )));
    }
    Ok(r.count)
}

/// The error for a Twalk of `asked` of `names`, after `done` were walked
/// before it, that walked only `got`.
fn walk_error(names: &[String], done: usize, asked: usize, got: usize) -> Error {
    let walked = done + got;
    match names.get(walked) {
        Some(name) if got < asked => Error::WalkIncomplete {
            name: name.clone(),
            walked,
            total: names.len(),
        },
        _ => Error::Protocol(format!("Rwalk with {got} qids for a walk of {asked} names")),
    }
}

/// Whether `e` says the server does not implement the request.
fn lacks_request(e: &Error) -> bool {
    matches!(e.errno(), Some(ENOSYS | EOPNOTSUPP))
}

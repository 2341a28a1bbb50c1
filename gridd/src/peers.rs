//! Other grids: the peer table, what each may see of this grid, and what
//! this grid sees of each (gridfs(4): `/n`, `/net/peers`).
//!
//! Each configured peer (`[peers.NAME]` in grid.toml, or `peer add` on
//! `/ctl`) has, from the moment it is added:
//!
//! - its key in the [`KnownKeys`] the QUIC endpoint accepts clients by;
//! - a [`LiveGrant`] and an [`Audit`]: its sessions are served through a
//!   [`PolicyView`] of the namespace root under that grant ([`GridFs`]),
//!   in which `cpu` is its own `/cpu` (its jobs, its grant's share), and
//!   its jobs are killed when its last connection ends;
//! - a [`RemoteTree`], `/n/NAME`, dialed on first use.
//!
//! The grant in force is my offer to the peer (its own, united with its
//! groups' offers) intersected with what the peer requests of me, as the
//! two grids exchange them (`negotiate`). Until the peer's proposal has
//! been heard, the grant in force is my offer alone: the peer can never
//! get more than that, and the request only narrows it.
//!
//! Removing a peer removes its key (which closes its live connections),
//! withdraws its grant (open fids fail at once) and drops its import.

use std::collections::BTreeMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use grid_policy::{Agreement, Audit, Book, LiveGrant, Policy, PolicyView, Proposal};
use grid_transport::{Endpoint, ImportConfig, KnownKeys, PublicKey, RemoteTree};
use ninep::{Addr, Qid};
use ninep_server::synth::{dir_qid, Dir, GenDir, Generator, TextFile};
use ninep_server::{
    walk_path, AttachInfo, Attr, DirEntry, Error, FileServer, Node, PeerInfo, Result,
};

use crate::config::{GroupConfig, PeerConfig};

/// One peer's live state.
struct Peer {
    cfg: PeerConfig,
    /// The peer's proposal to me, once heard.
    theirs: Option<Proposal>,
    grant: LiveGrant,
    audit: Arc<Audit>,
    remote: Option<RemoteTree>,
    /// The LAN addresses `remote` was last given (a peer with no
    /// configured address is dialed where it was seen on the LAN).
    lan_addrs: Vec<SocketAddr>,
}

#[derive(Default)]
struct Table {
    peers: BTreeMap<String, Peer>,
    groups: BTreeMap<String, GroupConfig>,
}

/// The peer table.
pub struct Peers {
    known: KnownKeys,
    table: Mutex<Table>,
    /// Jobs peers run here (`/cpu`), and which peer each live 9P
    /// connection attached as, so a peer's jobs end with its last one.
    cpu: PeerCpu,
    endpoint: Mutex<Option<Endpoint>>,
    on_heard: Mutex<Option<OnHeard>>,
    /// Grids seen on the LAN (`lan`): dial hints for peers with no address.
    lan: Arc<crate::lan::LanTable>,
    /// This grid's overlay address, once `overlay.rs` has checked that it
    /// is the grid key's: imports then dial peers' overlay addresses over
    /// plain TCP from it.
    overlay_source: Mutex<Option<std::net::Ipv6Addr>>,
}

/// Called after a peer's proposal has been heard.
type OnHeard = Arc<dyn Fn() + Send + Sync>;

/// Why a peer could not be added or changed.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    /// The name is taken.
    #[error("peer '{0}' exists; remove it first")]
    Exists(String),
    /// Another peer has the key.
    #[error("key is already peer '{0}'")]
    SameKey(String),
    /// No such peer.
    #[error("no peer '{0}'")]
    Unknown(String),
    /// A group it names is not configured.
    #[error("no group '{0}'")]
    NoGroup(String),
    /// The name is one `/cpu` uses for this grid's own jobs.
    #[error("'{0}' names this grid's own jobs in /cpu; choose another peer name")]
    Reserved(String),
}

/// Locks `m`, going on past a panic of another holder.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Peers {
    /// A table with `groups` and no peers yet.
    pub fn new(groups: BTreeMap<String, GroupConfig>) -> Arc<Peers> {
        Arc::new(Peers {
            known: KnownKeys::new(),
            table: Mutex::new(Table {
                peers: BTreeMap::new(),
                groups,
            }),
            cpu: PeerCpu::default(),
            endpoint: Mutex::new(None),
            on_heard: Mutex::new(None),
            lan: Arc::new(crate::lan::LanTable::new()),
            overlay_source: Mutex::new(None),
        })
    }

    /// Sets this grid's own overlay address (the grid key's, checked by
    /// the caller), for every import made and to be made.
    pub fn set_overlay_source(&self, addr: Option<std::net::Ipv6Addr>) {
        *lock(&self.overlay_source) = addr;
        let t = lock(&self.table);
        for r in t.peers.values().filter_map(|p| p.remote.as_ref()) {
            r.set_overlay_source(addr);
        }
    }

    /// The grids seen on the LAN.
    pub fn lan(&self) -> Arc<crate::lan::LanTable> {
        self.lan.clone()
    }

    /// Where to dial a peer: its configured addresses, else where the LAN
    /// saw its key (only a hint: the handshake still proves the key).
    fn addrs_for(&self, cfg: &PeerConfig) -> Vec<SocketAddr> {
        if cfg.addrs.is_empty() {
            self.lan.addrs_of(&cfg.key)
        } else {
            socket_addrs(&cfg.addrs)
        }
    }

    /// Replaces the groups (at start, before peers are added).
    pub fn set_groups(&self, groups: BTreeMap<String, GroupConfig>) {
        let mut t = lock(&self.table);
        t.groups = groups;
        let names: Vec<String> = t.peers.keys().cloned().collect();
        for n in names {
            refresh(&t, &n);
        }
    }

    /// The keys the QUIC endpoint accepts: those of the peers.
    pub fn known_keys(&self) -> KnownKeys {
        self.known.clone()
    }

    /// Sets the endpoint peers are dialed from.
    pub fn set_endpoint(&self, ep: Endpoint) {
        *lock(&self.endpoint) = Some(ep);
    }

    /// The endpoint peers are dialed from, if one is bound.
    pub fn endpoint(&self) -> Option<Endpoint> {
        lock(&self.endpoint).clone()
    }

    /// The configured peers' names, in order.
    pub fn names(&self) -> Vec<String> {
        lock(&self.table).peers.keys().cloned().collect()
    }

    /// A peer's configuration.
    pub fn config(&self, name: &str) -> Option<PeerConfig> {
        lock(&self.table).peers.get(name).map(|p| p.cfg.clone())
    }

    /// Adds a peer: its key is accepted from now on, under its offer.
    pub fn add(&self, name: &str, cfg: PeerConfig) -> std::result::Result<(), PeerError> {
        if name == grid_cpu::Reader::owner().name {
            return Err(PeerError::Reserved(name.to_owned()));
        }
        let mut t = lock(&self.table);
        if t.peers.contains_key(name) {
            return Err(PeerError::Exists(name.to_owned()));
        }
        if let Some((other, _)) = t.peers.iter().find(|(_, p)| p.cfg.key == cfg.key) {
            return Err(PeerError::SameKey(other.clone()));
        }
        if let Some(g) = cfg.groups.iter().find(|g| !t.groups.contains_key(*g)) {
            return Err(PeerError::NoGroup(g.clone()));
        }
        let peer = Peer {
            cfg,
            theirs: None,
            grant: LiveGrant::withdrawn(),
            audit: Arc::new(Audit::new()),
            remote: None,
            lan_addrs: Vec::new(),
        };
        self.known.insert(peer.cfg.key, name);
        t.peers.insert(name.to_owned(), peer);
        refresh(&t, name);
        Ok(())
    }

    /// Removes a peer at once: its connections close, its grant is
    /// withdrawn, its import is dropped.
    pub fn remove(&self, name: &str) -> std::result::Result<PeerConfig, PeerError> {
        let peer = lock(&self.table)
            .peers
            .remove(name)
            .ok_or_else(|| PeerError::Unknown(name.to_owned()))?;
        peer.grant.withdraw();
        self.known.remove(&peer.cfg.key);
        if let Some(r) = &peer.remote {
            r.disconnect();
        }
        Ok(peer.cfg)
    }

    /// Changes what I offer `name` (`offer`) or request of it (`request`);
    /// the grant in force follows at once. Returns the new configuration.
    pub fn set_proposal(
        &self,
        name: &str,
        offer: Option<Policy>,
        request: Option<Policy>,
    ) -> std::result::Result<PeerConfig, PeerError> {
        let mut t = lock(&self.table);
        let peer = t
            .peers
            .get_mut(name)
            .ok_or_else(|| PeerError::Unknown(name.to_owned()))?;
        if let Some(o) = offer {
            peer.cfg.offer = o;
        }
        if let Some(r) = request {
            peer.cfg.request = r;
        }
        let cfg = peer.cfg.clone();
        refresh(&t, name);
        Ok(cfg)
    }

    /// The name of the peer with `key`.
    pub fn name_of(&self, key: &PublicKey) -> Option<String> {
        lock(&self.table)
            .peers
            .iter()
            .find(|(_, p)| p.cfg.key == *key)
            .map(|(n, _)| n.clone())
    }

    /// The key of the configured peer whose Yggdrasil node address is
    /// exactly `addr` (a grid's overlay node key is its grid key, so the
    /// address names the key; gridd's plain-TCP 9P on the overlay is
    /// taken only from these).
    pub fn key_at_overlay_address(&self, addr: &std::net::Ipv6Addr) -> Option<PublicKey> {
        lock(&self.table)
            .peers
            .values()
            .map(|p| p.cfg.key)
            .find(|k| grid_overlay::address_for_key(k.as_bytes()) == *addr)
    }

    /// My proposal to `name`: my offer (with its groups') and my request.
    pub fn mine(&self, name: &str) -> Option<Proposal> {
        let t = lock(&self.table);
        t.peers
            .contains_key(name)
            .then(|| book(&t, name).proposal(name))
    }

    /// Calls `f` whenever a peer's proposal has been heard (gridd retries
    /// its pending mounts: what the peer grants may have changed).
    pub fn on_heard(&self, f: impl Fn() + Send + Sync + 'static) {
        *lock(&self.on_heard) = Some(Arc::new(f));
    }

    /// Records the proposal `name` sent me; the grant follows at once.
    pub fn heard(&self, name: &str, theirs: Proposal) {
        {
            let mut t = lock(&self.table);
            let Some(p) = t.peers.get_mut(name) else {
                return;
            };
            p.theirs = Some(theirs);
            refresh(&t, name);
        }
        let hook = lock(&self.on_heard).clone();
        if let Some(f) = hook {
            f();
        }
    }

    /// The key and socket addresses to dial `name` at.
    pub fn dial_info(&self, name: &str) -> Option<(PublicKey, Vec<SocketAddr>)> {
        let addrs = {
            let t = lock(&self.table);
            let p = t.peers.get(name)?;
            p.cfg.clone()
        };
        Some((addrs.key, self.addrs_for(&addrs)))
    }

    /// The name of the peer with `key` (hex), if it is one.
    fn by_key(&self, key: &str) -> Option<(String, LiveGrant, Arc<Audit>)> {
        let key: PublicKey = key.parse().ok()?;
        let t = lock(&self.table);
        t.peers
            .iter()
            .find(|(_, p)| p.cfg.key == key)
            .map(|(n, p)| (n.clone(), p.grant.clone(), p.audit.clone()))
    }

    /// `/n/NAME`: the import of the peer, made on first use.
    pub fn remote(&self, name: &str) -> Result<RemoteTree> {
        let mut t = lock(&self.table);
        let peer = t.peers.get_mut(name).ok_or_else(Error::not_found)?;
        if let Some(r) = &peer.remote {
            if peer.cfg.addrs.is_empty() {
                // Follow the LAN; a change also ends the backoff.
                let lan = self.lan.addrs_of(&peer.cfg.key);
                if lan != peer.lan_addrs {
                    r.set_addrs(lan.clone());
                    peer.lan_addrs = lan;
                }
            }
            return Ok(r.clone());
        }
        let ep = self
            .endpoint()
            .ok_or_else(|| Error::io(format!("peer {name} unreachable: no quic endpoint")))?;
        let addrs = self.addrs_for(&peer.cfg);
        if peer.cfg.addrs.is_empty() {
            peer.lan_addrs = addrs.clone();
        }
        let remote = RemoteTree::new(
            ep,
            grid_transport::Peer {
                name: name.to_owned(),
                key: peer.cfg.key,
                addrs,
            },
            ImportConfig::default(),
        );
        remote.set_overlay_source(*lock(&self.overlay_source));
        peer.remote = Some(remote.clone());
        Ok(remote)
    }

    /// The text of `/net/peers/NAME/FILE`.
    fn text(&self, name: &str, file: &str) -> String {
        let t = lock(&self.table);
        let Some(p) = t.peers.get(name) else {
            return String::new();
        };
        let status = p.remote.as_ref().map(|r| r.status());
        match file {
            "status" => match &status {
                Some(s) if s.connected => connected_line(s),
                Some(s) => match (&s.last_error, s.retry_in) {
                    (Some(e), Some(d)) => {
                        format!("unreachable: {e} (retry in {}ms)\n", d.as_millis())
                    }
                    (Some(e), None) => format!("unreachable: {e}\n"),
                    _ => "idle\n".to_owned(),
                },
                None => "idle\n".to_owned(),
            },
            "addr" => p.cfg.addrs.iter().map(|a| format!("{a}\n")).collect(),
            "key" => format!("{}\n", p.cfg.key.to_hex()),
            "rtt" => match status.and_then(|s| s.rtt) {
                Some(d) => format!("{}\n", d.as_micros()),
                None => "none\n".to_owned(),
            },
            "policy" => {
                let mine = book(&t, name).proposal(name);
                let grant = p
                    .grant
                    .current()
                    .map_or_else(|| "withdrawn".to_owned(), |g| g.to_string());
                let (theirs, received) = match (&p.theirs, agreement(&t, name)) {
                    (Some(th), Some(a)) => (
                        format!("their-offer {}\ntheir-request {}\n", th.offer, th.request),
                        a.received.to_string(),
                    ),
                    _ => (String::new(), "unknown".to_owned()),
                };
                format!(
                    "offer {}\nrequest {}\n{theirs}grant {grant}\nreceived {received}\n",
                    mine.offer, mine.request
                )
            }
            "audit" => p.audit.text(),
            _ => String::new(),
        }
    }
}

/// `connected`, and `tcp!ADDR!PORT` when the session is plain 9P over
/// TCP on the overlay rather than QUIC.
fn connected_line(s: &grid_transport::ImportStatus) -> String {
    match (s.via, s.addr) {
        (Some(grid_transport::Via::Tcp), Some(a)) => {
            format!("connected tcp!{}!{}\n", a.ip(), a.port())
        }
        _ => "connected\n".to_owned(),
    }
}

/// The book of my proposals: the groups, and peer `name` in its groups.
fn book(t: &Table, name: &str) -> Book {
    let mut book = Book::new();
    for (g, cfg) in &t.groups {
        let _ = book.set_group(
            g,
            Proposal {
                offer: cfg.offer.clone(),
                request: Policy::none(),
            },
        );
    }
    if let Some(peer) = t.peers.get(name) {
        let _ = book.set_peer(
            name,
            Proposal {
                offer: peer.cfg.offer.clone(),
                request: peer.cfg.request.clone(),
            },
        );
        for g in &peer.cfg.groups {
            let _ = book.join(g, name);
        }
    }
    book
}

/// The agreement with `name`: `None` until its proposal is heard.
fn agreement(t: &Table, name: &str) -> Option<Agreement> {
    let theirs = t.peers.get(name)?.theirs.as_ref()?;
    Some(book(t, name).agree(name, theirs))
}

/// Recomputes the grant in force for `name`: my offer ∩ its request once
/// heard, my offer until then.
fn refresh(t: &Table, name: &str) {
    let Some(peer) = t.peers.get(name) else {
        return;
    };
    let grant = match agreement(t, name) {
        Some(a) => a.granted,
        None => book(t, name).proposal(name).offer,
    };
    peer.grant.set(grant);
}

/// The socket addresses of `quic!HOST!PORT` dial strings; names are looked
/// up now, and ones that do not resolve are left out.
fn socket_addrs(addrs: &[Addr]) -> Vec<SocketAddr> {
    addrs
        .iter()
        .filter_map(Addr::socket_addr_string)
        .filter_map(|s| s.to_socket_addrs().ok())
        .flatten()
        .collect()
}

/// The files of `/net/peers/NAME`. gridfs(4) documents each.
pub const PEER_FILES: &[&str] = &["status", "addr", "key", "rtt", "policy", "audit"];

/// `/net`: `peers/NAME/{status,addr,key,rtt,policy,audit}`, and `lan`
/// (the grids seen on the LAN, `lan.rs`).
pub fn net_dir(peers: &Arc<Peers>) -> Arc<dyn Node> {
    Arc::new(
        Dir::new(0o555)
            .with(
                "peers",
                Arc::new(GenDir::new(0o555, PeerDirs(peers.clone()))),
            )
            .with("lan", crate::lan::lan_file(peers)),
    )
}

struct PeerDirs(Arc<Peers>);

#[async_trait]
impl Generator for PeerDirs {
    async fn list(&self) -> Result<Vec<(String, Arc<dyn Node>)>> {
        Ok(self
            .0
            .names()
            .into_iter()
            .map(|n| (n.clone(), peer_dir(&self.0, &n)))
            .collect())
    }

    async fn lookup(&self, name: &str) -> Result<Arc<dyn Node>> {
        if self.0.config(name).is_none() {
            return Err(Error::not_found());
        }
        Ok(peer_dir(&self.0, name))
    }
}

fn peer_dir(peers: &Arc<Peers>, name: &str) -> Arc<dyn Node> {
    let dir = Dir::new(0o555);
    for file in PEER_FILES {
        let peers = peers.clone();
        let name = name.to_owned();
        dir.insert(
            file,
            Arc::new(TextFile::new(move || peers.text(&name, file))),
        );
    }
    Arc::new(dir)
}

/// `/n`: one directory per configured peer, its tree as it lets me see
/// it. Listing does not dial; walking into a peer does.
pub struct NDir {
    peers: Arc<Peers>,
    qid: Qid,
}

impl NDir {
    /// `/n` over `peers`.
    pub fn new(peers: Arc<Peers>) -> NDir {
        NDir {
            peers,
            qid: dir_qid(),
        }
    }
}

#[async_trait]
impl Node for NDir {
    fn qid(&self) -> Qid {
        self.qid
    }

    async fn attr(&self) -> Result<Attr> {
        Ok(Attr::synthetic(self.qid, 0o555))
    }

    async fn walk(&self, name: &str) -> Result<Arc<dyn Node>> {
        self.peers.remote(name)?.root().await
    }

    async fn readdir(&self) -> Result<Vec<DirEntry>> {
        Ok(self
            .peers
            .names()
            .into_iter()
            .map(|name| DirEntry {
                name,
                attr: Attr::synthetic(dir_qid(), 0o555),
            })
            .collect())
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

/// Mount sources for grid-ns: `mount PEER OLD [SPEC]` mounts the peer's
/// tree (at SPEC inside it).
pub struct PeerResolver(pub Arc<Peers>);

#[async_trait]
impl grid_ns::Resolver for PeerResolver {
    async fn resolve(&self, peer: &str, spec: &str) -> Result<Arc<dyn Node>> {
        if self.0.config(peer).is_none() {
            return Err(Error::new(libc::ENOENT, format!("unknown peer '{peer}'")));
        }
        let root = self.0.remote(peer)?.root().await?;
        walk_path(root, spec).await
    }
}

/// gridd's file server: the owner (unix socket, plain TCP) gets the whole
/// namespace; a grid peer gets a [`PolicyView`] of it under its grant.
pub struct GridFs {
    /// The namespace root.
    pub root: Arc<dyn Node>,
    /// The peer table.
    pub peers: Arc<Peers>,
}

#[async_trait]
impl FileServer for GridFs {
    async fn attach(&self, info: &AttachInfo) -> Result<Arc<dyn Node>> {
        match &info.peer {
            PeerInfo::Grid { key, .. } => {
                let (name, grant, audit) = self.peers.by_key(key).ok_or_else(|| {
                    Error::new(libc::EACCES, format!("key {key} is not a known peer"))
                })?;
                self.peers.cpu.attached(info.conn, &name);
                let root = PeerRoot::new(self.root.clone(), &name, &grant, &self.peers.cpu);
                let view: Arc<dyn Node> = PolicyView::new(root, &name, grant, audit);
                walk_path(view, &info.aname).await
            }
            _ => walk_path(self.root.clone(), &info.aname).await,
        }
    }

    /// A peer's jobs end with its last connection: nobody is left to read
    /// their output or wait for them.
    async fn disconnect(&self, conn: u64) {
        let Some(name) = self.peers.cpu.detached(conn) else {
            return;
        };
        if let Some(cpu) = self.peers.cpu.service() {
            // On a task of its own: the caller may be cancelled (a QUIC
            // connection's sessions go with it) before every job is down.
            let _ = tokio::spawn(async move { cpu.kill_jobs_of(&name).await }).await;
        }
    }
}

/// The processes one job of a peer may have when nothing else bounds them,
/// so that a fork bomb from a peer is always contained.
pub const PEER_PROCS: u32 = 256;

/// The share a peer's grant gives it of `/cpu` (grid-policy(7)): `cores`
/// for all its jobs together, `jobs` at once, `mem` and `time` for each
/// job, at most [`PEER_PROCS`] processes per job, and always confined.
pub fn peer_share(cpu: &grid_policy::Cpu) -> grid_cpu::Share {
    grid_cpu::Share {
        cores: cpu.cores.map(|c| c.get().saturating_mul(1000)),
        jobs: cpu.jobs.map(|j| j.get()),
        mem: cpu.mem.map(|m| m.get()),
        time: cpu.time_limit(),
        procs: Some(PEER_PROCS),
        confine: grid_cpu::Confine::Required,
        root: grid_cpu::RootView::System,
    }
}

/// `/cpu` as peers get it: the service, and which peer each live 9P
/// connection attached as.
#[derive(Default)]
struct PeerCpu {
    service: Mutex<Option<grid_cpu::Cpu>>,
    conns: Mutex<BTreeMap<u64, String>>,
}

impl PeerCpu {
    fn service(&self) -> Option<grid_cpu::Cpu> {
        lock(&self.service).clone()
    }

    fn attached(&self, conn: u64, peer: &str) {
        lock(&self.conns).insert(conn, peer.to_owned());
    }

    /// Forgets `conn`; returns its peer if that was the peer's last one.
    fn detached(&self, conn: u64) -> Option<String> {
        let mut conns = lock(&self.conns);
        let peer = conns.remove(&conn)?;
        (!conns.values().any(|p| *p == peer)).then_some(peer)
    }
}

impl Peers {
    /// The jobs service peers get their own `/cpu` of (gridd's, when it
    /// started): each peer sees only its jobs, under its grant's share.
    pub fn set_cpu(&self, cpu: grid_cpu::Cpu) {
        *lock(&self.cpu.service) = Some(cpu);
    }
}

/// The namespace root as one peer reaches it, beneath its [`PolicyView`]:
/// `cpu` is the peer's own `/cpu` (its jobs only, its grant's share, read
/// afresh at each clone), never the owner's; everything else is the
/// root's. The view above still decides whether `cpu` exists at all.
struct PeerRoot {
    inner: Arc<dyn Node>,
    cpu: Option<Arc<dyn Node>>,
}

impl PeerRoot {
    fn new(inner: Arc<dyn Node>, name: &str, grant: &LiveGrant, cpu: &PeerCpu) -> Arc<PeerRoot> {
        let cpu = cpu.service().map(|service| {
            let (name, grant) = (name.to_owned(), grant.clone());
            service.live_tree(move || {
                let policy = grant.current()?;
                Some(grid_cpu::Reader {
                    name: name.clone(),
                    share: peer_share(policy.cpu()?),
                    sees_all: false,
                })
            })
        });
        Arc::new(PeerRoot { inner, cpu })
    }
}

#[async_trait]
impl Node for PeerRoot {
    fn qid(&self) -> Qid {
        self.inner.qid()
    }

    async fn attr(&self) -> Result<Attr> {
        self.inner.attr().await
    }

    async fn walk(&self, name: &str) -> Result<Arc<dyn Node>> {
        match (name, &self.cpu) {
            ("cpu", Some(cpu)) => Ok(cpu.clone()),
            // No jobs service here: never the owner's tree either.
            ("cpu", None) => Err(Error::not_found()),
            _ => self.inner.walk(name).await,
        }
    }

    async fn open(&self, mode: ninep_server::OpenMode) -> Result<ninep_server::Opened> {
        self.inner.open(mode).await
    }

    async fn readdir(&self) -> Result<Vec<DirEntry>> {
        self.inner.readdir().await
    }

    async fn create(
        &self,
        name: &str,
        kind: ninep_server::CreateKind,
        open: Option<ninep_server::OpenMode>,
    ) -> Result<(Arc<dyn Node>, Option<ninep_server::Opened>)> {
        self.inner.create(name, kind, open).await
    }

    async fn unlink(&self, name: &str, is_dir: bool) -> Result<()> {
        self.inner.unlink(name, is_dir).await
    }

    async fn rename(&self, from: &str, to_dir: &Arc<dyn Node>, to: &str) -> Result<()> {
        self.inner.rename(from, to_dir, to).await
    }

    async fn setattr(&self, set: ninep_server::SetAttr) -> Result<()> {
        self.inner.setattr(set).await
    }

    async fn link(&self, target: &Arc<dyn Node>, name: &str) -> Result<()> {
        self.inner.link(target, name).await
    }

    async fn statfs(&self) -> Result<ninep_server::Statfs> {
        self.inner.statfs().await
    }

    /// The root's own, so that nodes handed to the root (rename, link)
    /// downcast as they would without this wrapper.
    fn as_any(&self) -> &dyn std::any::Any {
        self.inner.as_any()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::namespace::Grid;
    use ninep::Dialect;
    use ninep_server::OpenMode;

    const ALICE: &str = "3b6a27bcceb6a42d62a3a8d02a6f0d73653215771de243a63ac048a18b59da29";

    fn info(key: &str, aname: &str) -> AttachInfo {
        AttachInfo {
            uname: "none".into(),
            aname: aname.into(),
            n_uname: ninep::NONUNAME,
            dialect: Dialect::U,
            peer: PeerInfo::Grid {
                key: key.into(),
                addr: "127.0.0.1:9".parse().expect("addr"),
            },
            conn: 1,
        }
    }

    #[tokio::test]
    async fn peers_see_their_grant_and_lose_it_on_removal() {
        let dir = tempfile::tempdir().expect("tempdir");
        for sub in ["pub", "priv"] {
            std::fs::create_dir(dir.path().join(sub)).expect("mkdir");
            std::fs::write(dir.path().join(sub).join("f"), "x").expect("write");
        }
        let cfg_path = dir.path().join("grid.toml");
        std::fs::write(&cfg_path, crate::config::default_text("t", dir.path())).expect("cfg");
        let exports = [("pub", "pub"), ("priv", "priv")]
            .into_iter()
            .map(|(n, d)| {
                let e = crate::config::Export {
                    path: dir.path().join(d),
                    read_only: false,
                };
                (n.to_owned(), e)
            })
            .collect();
        let (grid, problems) = Grid::new("t".into(), "k".into(), cfg_path, &exports);
        assert!(problems.is_empty(), "{problems:?}");
        let mut groups = BTreeMap::new();
        groups.insert(
            "club".to_owned(),
            GroupConfig {
                offer: "files/priv r".parse().expect("policy"),
            },
        );
        grid.peers.set_groups(groups);
        let alice = PeerConfig {
            key: ALICE.parse().expect("key"),
            addrs: Vec::new(),
            offer: "files/pub r".parse().expect("policy"),
            request: Policy::none(),
            groups: Vec::new(),
        };
        grid.peers.add("alice", alice.clone()).expect("add");
        assert!(matches!(
            grid.peers.add("alice2", alice.clone()),
            Err(PeerError::SameKey(_))
        ));
        let fs = GridFs {
            root: grid.root(),
            peers: grid.peers.clone(),
        };

        let root = fs.attach(&info(ALICE, "")).await.expect("attach");
        let names: Vec<String> = root
            .readdir()
            .await
            .expect("readdir")
            .into_iter()
            .map(|e| e.name)
            .collect();
        assert_eq!(names, vec!["files".to_owned()]);
        let f = walk_path(root.clone(), "files/pub/f").await.expect("walk");
        let mode = OpenMode {
            read: false,
            write: true,
            truncate: false,
            append: false,
            exclusive: false,
        };
        let e = f.open(mode).await.err().expect("write refused");
        assert_eq!(e.errno, libc::EACCES);
        assert_eq!(e.msg, "policy: peer alice may not write /files/pub/f");
        assert!(walk_path(root.clone(), "files/priv").await.is_err());
        assert!(fs.attach(&info(&"1".repeat(64), "")).await.is_err());

        // The group's offer is added to the peer's own.
        grid.peers.remove("alice").expect("rm");
        grid.peers
            .add(
                "alice",
                PeerConfig {
                    groups: vec!["club".into()],
                    ..alice
                },
            )
            .expect("add again");
        let root = fs.attach(&info(ALICE, "")).await.expect("attach");
        walk_path(root.clone(), "files/priv/f")
            .await
            .expect("group grant");
        let policy = grid.peers.text("alice", "policy");
        assert!(
            policy.contains("grant files/priv r; files/pub r"),
            "{policy}"
        );

        // Once the peer's request is heard, the grant is the overlap.
        grid.peers.heard(
            "alice",
            Proposal {
                offer: "files/x r".parse().expect("offer"),
                request: "files/pub rw; files/other r".parse().expect("request"),
            },
        );
        let policy = grid.peers.text("alice", "policy");
        assert!(policy.contains("\ngrant files/pub r\n"), "{policy}");
        // My request of alice is empty: she grants me nothing (the empty
        // policy's canonical form is the empty text).
        assert!(policy.contains("\nreceived \n"), "{policy}");
        assert!(walk_path(root.clone(), "files/priv").await.is_err());
        walk_path(root.clone(), "files/pub/f")
            .await
            .expect("still granted");

        // Removal withdraws the grant: held nodes fail at once.
        grid.peers.remove("alice").expect("rm");
        assert!(root.walk("files").await.is_err());
        assert!(fs.attach(&info(ALICE, "")).await.is_err());
    }

    async fn read_text(node: Arc<dyn Node>) -> String {
        let mode = OpenMode {
            read: true,
            write: false,
            truncate: false,
            append: false,
            exclusive: false,
        };
        let opened = node.open(mode).await.expect("open");
        let data = opened.handle.read(0, 1 << 16).await.expect("read");
        String::from_utf8(data).expect("utf8")
    }

    #[test]
    fn a_grant_maps_to_a_confined_share() {
        let policy: Policy = "cpu cores=2 jobs=3 mem=256M time=10m"
            .parse()
            .expect("policy");
        let share = peer_share(policy.cpu().expect("cpu"));
        assert_eq!(
            share.text(),
            "cores=2 jobs=3 mem=256M time=10m procs=256 confine=required"
        );
        let bare: Policy = "cpu".parse().expect("policy");
        assert_eq!(
            peer_share(bare.cpu().expect("cpu")).text(),
            "cores=unlimited jobs=unlimited mem=unlimited time=unlimited procs=256 confine=required"
        );
    }

    #[tokio::test]
    async fn a_peer_gets_its_own_cpu_under_its_grant_in_force() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg_path = dir.path().join("grid.toml");
        std::fs::write(&cfg_path, crate::config::default_text("t", dir.path())).expect("cfg");
        let (grid, _) = Grid::new("t".into(), "k".into(), cfg_path, &BTreeMap::new());
        if grid.cpu.is_none() {
            eprintln!("SKIP: no cpu service here");
            return;
        }
        assert!(matches!(
            grid.peers.add(
                "owner",
                PeerConfig {
                    key: ALICE.parse().expect("key"),
                    addrs: Vec::new(),
                    offer: Policy::none(),
                    request: Policy::none(),
                    groups: Vec::new(),
                }
            ),
            Err(PeerError::Reserved(_))
        ));
        grid.peers
            .add(
                "alice",
                PeerConfig {
                    key: ALICE.parse().expect("key"),
                    addrs: Vec::new(),
                    offer: "cpu jobs=2 mem=256M".parse().expect("policy"),
                    request: Policy::none(),
                    groups: Vec::new(),
                },
            )
            .expect("add");
        let fs = GridFs {
            root: grid.root(),
            peers: grid.peers.clone(),
        };
        let root = fs.attach(&info(ALICE, "")).await.expect("attach");
        let info_text = read_text(walk_path(root.clone(), "cpu/info").await.expect("info")).await;
        assert!(
            info_text.contains(
                "share cores=unlimited jobs=2 mem=256M time=unlimited procs=256 confine=required\n"
            ),
            "{info_text}"
        );
        // The share follows the grant in force.
        grid.peers
            .set_proposal("alice", Some("cpu jobs=1".parse().expect("p")), None)
            .expect("offer");
        let info_text = read_text(walk_path(root.clone(), "cpu/info").await.expect("info")).await;
        assert!(
            info_text.contains("share cores=unlimited jobs=1 "),
            "{info_text}"
        );
        // Without a cpu grant there is no cpu, not even the owner's.
        grid.peers
            .set_proposal("alice", Some(Policy::none()), None)
            .expect("offer");
        assert!(walk_path(root.clone(), "cpu").await.is_err());

        // The last connection's end is the peer's end; one of two is not.
        fs.peers.cpu.attached(2, "alice");
        assert_eq!(fs.peers.cpu.detached(1), None);
        assert_eq!(fs.peers.cpu.detached(2).as_deref(), Some("alice"));
        assert_eq!(fs.peers.cpu.detached(2), None);
    }
}

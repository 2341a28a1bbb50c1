//! Other grids: the peer table, what each may see of this grid, and what
//! this grid sees of each (gridfs(4): `/n`, `/net/peers`).
//!
//! Each configured peer (`[peers.NAME]` in grid.toml, or `peer add` on
//! `/ctl`) has, from the moment it is added:
//!
//! - its key in the [`KnownKeys`] the QUIC endpoint accepts clients by;
//! - a [`LiveGrant`] and an [`Audit`]: its sessions are served through a
//!   [`PolicyView`] of the namespace root under that grant ([`GridFs`]);
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
    endpoint: Mutex<Option<Endpoint>>,
    on_heard: Mutex<Option<OnHeard>>,
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
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
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
            endpoint: Mutex::new(None),
            on_heard: Mutex::new(None),
        })
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
            (p.cfg.key, p.cfg.addrs.clone())
        };
        Some((addrs.0, socket_addrs(&addrs.1)))
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
            return Ok(r.clone());
        }
        let ep = self
            .endpoint()
            .ok_or_else(|| Error::io(format!("peer {name} unreachable: no quic endpoint")))?;
        let remote = RemoteTree::new(
            ep,
            grid_transport::Peer {
                name: name.to_owned(),
                key: peer.cfg.key,
                addrs: socket_addrs(&peer.cfg.addrs),
            },
            ImportConfig::default(),
        );
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
                Some(s) if s.connected => "connected\n".to_owned(),
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

/// `/net`: `peers/NAME/{status,addr,key,rtt,policy,audit}`.
pub fn net_dir(peers: &Arc<Peers>) -> Arc<dyn Node> {
    Arc::new(Dir::new(0o555).with(
        "peers",
        Arc::new(GenDir::new(0o555, PeerDirs(peers.clone()))),
    ))
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
                let view: Arc<dyn Node> = PolicyView::new(self.root.clone(), &name, grant, audit);
                walk_path(view, &info.aname).await
            }
            _ => walk_path(self.root.clone(), &info.aname).await,
        }
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
}

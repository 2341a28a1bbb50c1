//! import(4): a peer's exported tree as a local [`Node`] graph.
//!
//! A [`RemoteTree`] stands for one attach of one peer. Its nodes send
//! every operation to the peer through `ninep-client` over a `grid-9p/1`
//! stream (9P2000.L: walk, getattr, lopen, read, write, readdir, lcreate,
//! mkdir, symlink, mknod, remove, unlinkat, renameat, setattr, readlink,
//! link, statfs), and answer with the peer's qids and the peer's errors
//! (errno and text kept). Served again through a local `ninep-server`, the
//! peer's tree appears inside ours, as `/n/alice`.
//!
//! # Connection
//!
//! Nothing is dialed until the first operation. A dial tries every known
//! address of the peer at once and is bounded by
//! [`ImportConfig::dial_timeout`]; if it fails, operations fail at once
//! with `peer alice unreachable` until the backoff (doubling from
//! [`ImportConfig::backoff_min`] to [`ImportConfig::backoff_max`]) has
//! passed, and the next operation after that dials again. Nothing waits
//! longer than one dial.
//!
//! When the connection is lost (the peer restarted, a link went down for
//! longer than the idle timeout), the next operation reconnects. Nodes
//! remember the path they were walked by, and walk it again from the new
//! root, so a `/n/alice` fid held across a restart of alice keeps working.
//! Operations that can safely be repeated (walk, getattr, open, readdir,
//! readlink, statfs, setattr) are retried once on a new connection when
//! the old one fails under them; the others (create, remove, rename,
//! write, ...) report `peer alice: connection lost`, since they may have
//! happened. Open files are not reopened: reads and writes on a file
//! opened before the loss fail, as in Plan 9.
//!
//! # Transport
//!
//! Sessions run on a QUIC stream (`grid-9p/1`), except between two grids
//! on the Yggdrasil overlay: once [`RemoteTree::set_overlay_source`] has
//! given this grid's overlay address, a peer address that is the overlay
//! address of the peer's key is dialed over plain TCP first, QUIC after a
//! head start or when TCP fails (see [`link`] for why that is safe and
//! faster). [`ImportStatus::via`] says which carries the session.
//!
//! # Limits
//!
//! 9P2000.L carries only an errno (Rlerror), so a peer's own error text
//! ("policy: peer bob may not write /store") reaches us as the errno's
//! text ("permission denied"). Qids are the peer's: mounting several
//! trees in one namespace needs the mount layer to keep them apart, as
//! Plan 9's mount driver does with its device number. Nodes renamed by
//! another client are not followed across a reconnect.

pub mod link;
mod node;

use std::net::{Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use ninep::Dialect;
use ninep_client::{Client, ClientConfig, Fid};
use ninep_server::{AttachInfo, FileServer, Node};
use tokio::time::Instant;

use crate::{Endpoint, PublicKey};
pub use link::{overlay_tcp_targets, Via};
use link::{Link, Plan};
use node::RemoteNode;

/// Who to import from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// The local name of the peer, used in errors (`peer alice unreachable`).
    pub name: String,
    /// Its key: the server must prove it holds this one.
    pub key: PublicKey,
    /// Where it may be; all are tried at once.
    pub addrs: Vec<SocketAddr>,
}

/// How to import.
#[derive(Debug, Clone)]
pub struct ImportConfig {
    /// The attach name at the peer (which tree, or which path of it).
    pub aname: String,
    /// The attach user name.
    pub uname: String,
    /// Bound on one dial: QUIC handshake, Tversion and Tattach.
    pub dial_timeout: Duration,
    /// Wait after the first failed dial before the next.
    pub backoff_min: Duration,
    /// The longest wait between dials.
    pub backoff_max: Duration,
    /// The msize asked for.
    pub msize: u32,
    /// The TCP port of the peer's plain 9P on its overlay address (gridd's
    /// `[overlay] port`, 564 by default); 0 keeps the import on QUIC.
    pub overlay_port: u16,
    /// How long TCP to an overlay address is tried alone before QUIC is
    /// dialed too (at once if every TCP attempt fails first).
    pub tcp_head_start: Duration,
}

impl Default for ImportConfig {
    fn default() -> Self {
        ImportConfig {
            aname: String::new(),
            uname: "none".into(),
            dial_timeout: Duration::from_secs(2),
            backoff_min: Duration::from_millis(500),
            backoff_max: Duration::from_secs(30),
            msize: ninep_client::DEFAULT_MSIZE,
            overlay_port: DEFAULT_OVERLAY_PORT,
            tcp_head_start: Duration::from_millis(500),
        }
    }
}

/// 9P's registered TCP port, where gridd serves plain 9P on its overlay
/// address unless configured otherwise.
pub const DEFAULT_OVERLAY_PORT: u16 = 564;

/// What an import is doing, for `/net/peers/NAME/status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportStatus {
    /// Whether a session is up.
    pub connected: bool,
    /// The peer's address, while connected.
    pub addr: Option<SocketAddr>,
    /// What carries the session, while connected.
    pub via: Option<Via>,
    /// The round-trip time, while connected: QUIC's estimate, or over TCP
    /// the Tversion round trip when the session began.
    pub rtt: Option<Duration>,
    /// Sessions made so far (1 after the first connect; more after reconnects).
    pub connects: u64,
    /// Why the last dial or session failed.
    pub last_error: Option<String>,
    /// How long until the next dial is allowed, while backing off.
    pub retry_in: Option<Duration>,
}

/// A peer's tree, imported. Cheap to clone; clones share the session.
///
/// It is also a [`FileServer`]: attaching to it (the attach name is taken
/// as a path inside the import) gives its root, so a local
/// `ninep_server::Server` can serve the peer's tree again.
#[derive(Clone)]
pub struct RemoteTree {
    imp: Arc<Import>,
}

impl std::fmt::Debug for RemoteTree {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteTree")
            .field("peer", &self.imp.name())
            .finish_non_exhaustive()
    }
}

impl RemoteTree {
    /// An import of `peer` through `endpoint`. Nothing is dialed yet.
    pub fn new(endpoint: Endpoint, peer: Peer, config: ImportConfig) -> RemoteTree {
        RemoteTree {
            imp: Arc::new(Import {
                endpoint,
                peer: RwLock::new(peer),
                source: RwLock::new(None),
                config,
                state: Mutex::new(State::default()),
                dialing: tokio::sync::Mutex::new(()),
            }),
        }
    }

    /// The root of the peer's tree, connecting first if need be. Fails
    /// with `peer NAME unreachable` (EHOSTUNREACH) within the dial timeout
    /// when the peer cannot be reached.
    pub async fn root(&self) -> ninep_server::Result<Arc<dyn Node>> {
        let s = self.imp.session().await?;
        Ok(Arc::new(RemoteNode::root(self.imp.clone(), &s)))
    }

    /// The peer's local name.
    pub fn name(&self) -> String {
        self.imp.name()
    }

    /// Replaces the peer's addresses (learned again from the overlay or the
    /// LAN), and allows a dial at once.
    pub fn set_addrs(&self, addrs: Vec<SocketAddr>) {
        write(&self.imp.peer).addrs = addrs;
        self.retry_now();
    }

    /// Sets this grid's own overlay address (`None`: not on the overlay).
    /// Only the address of the grid's own key may be given: peers take
    /// plain TCP from it as from us. A change allows a dial at once; a
    /// live session is kept.
    pub fn set_overlay_source(&self, source: Option<Ipv6Addr>) {
        let changed = std::mem::replace(&mut *write(&self.imp.source), source) != source;
        if changed {
            self.retry_now();
        }
    }

    /// Forgets the backoff, so the next operation dials.
    pub fn retry_now(&self) {
        let mut st = self.imp.state();
        st.failures = 0;
        st.retry_at = None;
    }

    /// Ends the session (the peer was removed, or the daemon stops). Open
    /// files fail from now on; the next operation dials again.
    pub fn disconnect(&self) {
        if let Some(s) = self.imp.state().session.take() {
            s.link.close();
        }
    }

    /// What the import is doing.
    pub fn status(&self) -> ImportStatus {
        let st = self.imp.state();
        let live = st.session.as_ref().filter(|s| s.alive());
        let now = Instant::now();
        ImportStatus {
            connected: live.is_some(),
            addr: live.map(|s| s.link.remote_addr()),
            via: live.map(|s| s.link.via()),
            rtt: live.map(|s| s.link.rtt()),
            connects: st.connects,
            last_error: st.last_error.clone(),
            retry_in: st.retry_at.filter(|t| *t > now).map(|t| t - now),
        }
    }
}

#[async_trait]
impl FileServer for RemoteTree {
    async fn attach(&self, info: &AttachInfo) -> ninep_server::Result<Arc<dyn Node>> {
        ninep_server::walk_path(self.root().await?, &info.aname).await
    }
}

/// The shared state of one import.
struct Import {
    endpoint: Endpoint,
    peer: RwLock<Peer>,
    /// Our overlay address, when this grid is on the overlay.
    source: RwLock<Option<Ipv6Addr>>,
    config: ImportConfig,
    state: Mutex<State>,
    /// Held while dialing, so concurrent operations make one dial.
    dialing: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct State {
    session: Option<Arc<Session>>,
    /// Sessions made so far; each session's `gen` is its number.
    connects: u64,
    /// Dials failed in a row.
    failures: u32,
    /// No dial before this.
    retry_at: Option<Instant>,
    last_error: Option<String>,
}

/// One 9P session with the peer, and its attach.
struct Session {
    gen: u64,
    link: Link,
    root: Arc<Fid>,
    // Kept so the session outlives its last fid until replaced.
    client: Client,
}

impl Session {
    fn alive(&self) -> bool {
        !self.client.is_closed() && self.link.close_reason().is_none()
    }
}

/// Why a dial failed: the text for the status file, and whether a key was
/// refused (as opposed to nobody answering).
struct DialFailure {
    auth: bool,
    detail: String,
}

impl Import {
    fn name(&self) -> String {
        read(&self.peer).name.clone()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A live session: the current one, or a new one if none is up and
    /// the backoff allows a dial.
    async fn session(&self) -> ninep_server::Result<Arc<Session>> {
        if let Some(s) = self.current()? {
            return Ok(s);
        }
        let _dialing = self.dialing.lock().await;
        // Whoever held the lock may have connected, or failed and set a backoff.
        if let Some(s) = self.current()? {
            return Ok(s);
        }
        let result = tokio::time::timeout(self.config.dial_timeout, self.dial())
            .await
            .unwrap_or_else(|_| {
                Err(DialFailure {
                    auth: false,
                    detail: format!("no answer within {:?}", self.config.dial_timeout),
                })
            });
        let mut st = self.state();
        match result {
            Ok((link, client, root)) => {
                st.connects += 1;
                st.failures = 0;
                st.retry_at = None;
                let s = Arc::new(Session {
                    gen: st.connects,
                    link,
                    root: Arc::new(root),
                    client,
                });
                st.session = Some(s.clone());
                Ok(s)
            }
            Err(f) => {
                st.failures = st.failures.saturating_add(1);
                let delay = self.backoff(st.failures);
                st.retry_at = Some(Instant::now() + delay);
                st.last_error = Some(f.detail);
                Err(if f.auth {
                    self.auth_failed()
                } else {
                    self.unreachable()
                })
            }
        }
    }

    /// The live session, `None` if a dial is due, or the unreachable error
    /// while backing off.
    fn current(&self) -> ninep_server::Result<Option<Arc<Session>>> {
        let mut st = self.state();
        if let Some(s) = &st.session {
            if s.alive() {
                return Ok(Some(s.clone()));
            }
            let reason = s.link.close_reason();
            st.last_error = Some(format!(
                "connection lost: {}",
                reason.as_deref().unwrap_or("9P session closed")
            ));
            st.session = None;
        }
        match st.retry_at {
            Some(t) if t > Instant::now() => Err(self.unreachable()),
            _ => Ok(None),
        }
    }

    fn backoff(&self, failures: u32) -> Duration {
        let doublings = failures.saturating_sub(1).min(20);
        self.config
            .backoff_min
            .saturating_mul(1 << doublings)
            .min(self.config.backoff_max)
    }

    /// Connects over the first transport and address that answers (see
    /// [`link`]), then checks the dialect and attaches.
    async fn dial(&self) -> Result<(Link, Client, Fid), DialFailure> {
        let plan = self.plan();
        let (link, client) = link::connect(&self.endpoint, plan).await?;
        let fail = |detail: String| DialFailure {
            auth: false,
            detail,
        };
        if client.dialect() != Dialect::L {
            let v = client.dialect().version_string();
            return Err(fail(format!("peer speaks {v}, not 9P2000.L")));
        }
        let root = client
            .attach(&self.config.uname, &self.config.aname)
            .await
            .map_err(|e| fail(format!("attach: {e}")))?;
        Ok((link, client, root))
    }

    /// Where to dial now: the peer's addresses over QUIC, and over TCP
    /// those that are its key's overlay address, if we are on the overlay.
    fn plan(&self) -> Plan {
        let (key, quic) = {
            let p = read(&self.peer);
            (p.key, p.addrs.clone())
        };
        let source = *read(&self.source);
        let targets = overlay_tcp_targets(&key, &quic, source, self.config.overlay_port);
        Plan {
            key,
            tcp: source.filter(|_| !targets.is_empty()).map(|s| (s, targets)),
            quic,
            tcp_head_start: self.config.tcp_head_start,
            client: ClientConfig {
                msize: self.config.msize,
                dialect: Dialect::L,
            },
        }
    }

    fn unreachable(&self) -> ninep_server::Error {
        ninep_server::Error::new(
            libc::EHOSTUNREACH,
            format!("peer {} unreachable", self.name()),
        )
    }

    fn auth_failed(&self) -> ninep_server::Error {
        ninep_server::Error::new(
            libc::EACCES,
            format!("peer {}: authentication failed", self.name()),
        )
    }

    fn lost(&self) -> ninep_server::Error {
        ninep_server::Error::new(libc::EIO, format!("peer {}: connection lost", self.name()))
    }

    /// The peer's error as ours: its errno and text, or ours for failures
    /// of the connection.
    fn map_err(&self, e: ninep_client::Error) -> ninep_server::Error {
        use ninep_client::Error as C;
        match e {
            C::Remote { errno, msg } => {
                let errno = errno
                    .and_then(|n| i32::try_from(n).ok())
                    .unwrap_or(libc::EIO);
                ninep_server::Error::new(errno, msg)
            }
            C::WalkIncomplete { .. } => ninep_server::Error::not_found(),
            C::Invalid(m) => ninep_server::Error::invalid_arg(m),
            C::Unsupported { .. } => ninep_server::Error::not_supported(),
            C::Closed | C::Io(_) => self.lost(),
            other => ninep_server::Error::io(format!("peer {}: {other}", self.name())),
        }
    }
}

/// Whether an error means the session is gone (so a retry on a new one
/// may succeed).
fn is_connection_failure(e: &ninep_client::Error, s: &Session) -> bool {
    use ninep_client::Error as C;
    matches!(e, C::Closed | C::Io(_) | C::Protocol(_)) || !s.alive()
}

fn read<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(PoisonError::into_inner)
}

fn write<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(PoisonError::into_inner)
}

//! gridd on the Yggdrasil overlay (gridd(8) OVERLAY, grid.toml(5)
//! `[overlay]`).
//!
//! When a yggdrasil daemon's admin socket answers, gridd asks it for the
//! node's address (`getSelf`). The daemon must run with the grid's own key
//! as its node key (`gridd --yggdrasil-config` writes such a config): then
//! the overlay address is derived from the grid key, and an overlay source
//! address proves which key sent a packet. Only then does gridd listen on
//! `[ADDRESS]:port` for plain 9P over TCP and `[ADDRESS]:quic_port` for
//! QUIC, and advertise the address in `/status`.
//!
//! Plain-TCP 9P on the overlay is taken only from the overlay address of
//! a configured peer's key, and served under that peer's policy, exactly
//! as if it had come over QUIC; anything else is closed at once (logged,
//! at most [`REFUSAL_LOG_BURST`] lines per [`REFUSAL_LOG_EVERY`]).
//!
//! Once the address is known, `/n/PEER` dials a peer's overlay address
//! (its key's) over plain TCP from it, QUIC after a head start or when
//! TCP fails (`grid_transport::import::link`).
//!
//! The daemon may start after gridd: joining is retried in the background
//! with a backoff capped at [`MAX_BACKOFF`], and each distinct problem is
//! logged once.
//!
//! Once the daemon answers, gridd keeps the configured `links` up: every
//! [`LINK_CHECK_EVERY`] it reads `getPeers` and redials (`removePeer` +
//! `addPeer`) each link that is not up. Debian 12's yggdrasil 0.4.7
//! redials a lost peer only every 60 s by itself, so without this a link
//! that returns leaves `/n/PEER` unreachable for up to a minute.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use grid_overlay::{address_for_key, is_overlay, Admin, AdminAddr, YggConfig};
use grid_transport::{Connection, Endpoint, PublicKey};
use ninep::Addr;
use ninep_server::{PeerInfo, Server};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use crate::namespace::Grid;
use crate::peers::Peers;

/// The default TCP port for 9P on the overlay (9P's registered port).
pub const DEFAULT_PORT: u16 = 564;
/// The default UDP port for QUIC on the overlay.
pub const DEFAULT_QUIC_PORT: u16 = 5640;
/// Where `yggdrasil = "auto"` looks for the admin socket: Debian's
/// packaged daemon (0.4.7 in Debian 12, and 0.5 in bookworm-backports,
/// whose built-in default is the same; their systemd unit runs in
/// `/var/run/yggdrasil`), then the upstream default of 0.4 and 0.5.
pub const AUTO_SOCKETS: &[&str] = &[
    "/var/run/yggdrasil/yggdrasil.sock",
    "/var/run/yggdrasil.sock",
];
/// The longest wait between two attempts to join.
pub const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// The first wait between two attempts to join.
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
/// At most [`REFUSAL_LOG_BURST`] "refused" log lines per this long.
pub const REFUSAL_LOG_EVERY: Duration = Duration::from_secs(10);
/// How many "refused" lines may be logged per [`REFUSAL_LOG_EVERY`].
pub const REFUSAL_LOG_BURST: u32 = 5;
/// How often gridd checks that its configured `links` are up.
pub const LINK_CHECK_EVERY: Duration = Duration::from_secs(5);
/// The link schemes yggdrasil 0.4 and 0.5 dial.
const LINK_SCHEMES: &[&str] = &[
    "tcp", "tls", "quic", "socks", "sockstls", "ws", "wss", "unix",
];

/// Which yggdrasil daemon to use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Yggdrasil {
    /// The first of [`AUTO_SOCKETS`] that exists; none is not an error.
    Auto,
    /// Stay off the overlay.
    Off,
    /// This admin endpoint (`unix:///PATH` or `tcp://HOST:PORT`).
    Admin(AdminAddr),
}

impl Yggdrasil {
    /// Parses `auto`, `off`, or an admin endpoint.
    pub fn parse(s: &str) -> Result<Yggdrasil, String> {
        match s {
            "auto" => Ok(Yggdrasil::Auto),
            "off" => Ok(Yggdrasil::Off),
            _ => AdminAddr::parse(s).map(Yggdrasil::Admin).map_err(|_| {
                format!("'{s}': want \"auto\", \"off\", unix:///PATH or tcp://HOST:PORT")
            }),
        }
    }
}

impl fmt::Display for Yggdrasil {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Yggdrasil::Auto => f.write_str("auto"),
            Yggdrasil::Off => f.write_str("off"),
            Yggdrasil::Admin(a) => write!(f, "{a}"),
        }
    }
}

/// The `[overlay]` table of grid.toml.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverlayConfig {
    /// The daemon to ask for the overlay address.
    pub yggdrasil: Yggdrasil,
    /// TCP port for plain 9P on the overlay address; 0 turns it off.
    pub port: u16,
    /// UDP port for QUIC on the overlay address; 0 turns it off.
    pub quic_port: u16,
    /// Peering links (`tls://HOST:PORT`, …) gridd keeps up through the
    /// admin socket.
    pub links: Vec<String>,
}

impl Default for OverlayConfig {
    fn default() -> Self {
        OverlayConfig {
            yggdrasil: Yggdrasil::Auto,
            port: DEFAULT_PORT,
            quic_port: DEFAULT_QUIC_PORT,
            links: Vec::new(),
        }
    }
}

/// Checks a peering link URI as yggdrasil takes it: `SCHEME://HOST:PORT`
/// (a known scheme, a port number), optionally with `?query` options;
/// `unix://PATH` for unix sockets.
pub fn check_link(uri: &str) -> Result<(), String> {
    let want = "want SCHEME://HOST:PORT, such as tls://198.51.100.7:443";
    let (scheme, rest) = uri
        .split_once("://")
        .ok_or_else(|| format!("'{uri}': {want}"))?;
    if !LINK_SCHEMES.contains(&scheme) {
        return Err(format!(
            "'{uri}': unknown scheme '{scheme}' (yggdrasil dials {})",
            LINK_SCHEMES.join(", ")
        ));
    }
    if uri.chars().any(char::is_whitespace) {
        return Err(format!("'{uri}': has white space"));
    }
    let authority = link_authority(rest);
    if scheme == "unix" {
        return if authority.is_empty() {
            Err(format!("'{uri}': want unix:///PATH"))
        } else {
            Ok(())
        };
    }
    match authority.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => Ok(()),
        _ => Err(format!("'{uri}': {want}")),
    }
}

/// The `HOST:PORT` (or path) of a link URI after its `SCHEME://`: without
/// `?query` options (0.4.7's `remote` has none; 0.5's keeps them).
fn link_authority(rest: &str) -> &str {
    rest.split(['?', '#']).next().unwrap_or(rest)
}

/// The yggdrasil config for a grid key, as `gridd --yggdrasil-config`
/// prints it: the grid key as node key (so the overlay address is the
/// grid's), the admin socket where Debian's unit and `auto` look, LAN
/// peering by multicast on, and no peers or listeners (add your own).
pub fn yggdrasil_config(key: &ed25519_dalek::SigningKey) -> String {
    let mut cfg = YggConfig::for_key(key);
    cfg.admin_listen = format!("unix://{}", AUTO_SOCKETS[0]);
    cfg.multicast_interfaces = vec![grid_overlay::MulticastInterface {
        regex: ".*".into(),
        beacon: true,
        listen: true,
        port: 0,
    }];
    let mut text = cfg.to_json();
    text.push('\n');
    text
}

/// [`yggdrasil_config`] for the grid whose state directory is `state`
/// (its key is made there, as on a first start, if it is missing).
pub fn yggdrasil_config_in(state: &std::path::Path) -> anyhow::Result<String> {
    use anyhow::Context;
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(state)
        .with_context(|| format!("{}: cannot create state directory", state.display()))?;
    let identity = crate::identity::Identity::load_or_create(&state.join("identity.key"))?;
    Ok(yggdrasil_config(identity.signing_key()))
}

/// What joining the overlay needs from the daemon.
pub struct Join {
    /// The `[overlay]` settings.
    pub config: OverlayConfig,
    /// The grid's identity key (the QUIC listener's, and the node key the
    /// daemon must have).
    pub key: ed25519_dalek::SigningKey,
    /// The grid, for `/status` and the listen list.
    pub grid: Arc<Grid>,
    /// The 9P server both listeners hand sessions to.
    pub server: Server,
    /// Where QUIC connections of other protocols (grid-sync) go.
    pub sync: mpsc::Sender<Connection>,
    /// Becomes true at shutdown.
    pub stop: watch::Receiver<bool>,
}

/// Starts joining the overlay in the background, unless it is off.
pub fn spawn(join: Join) {
    if join.config.yggdrasil == Yggdrasil::Off
        || (join.config.port == 0 && join.config.quic_port == 0)
    {
        return;
    }
    tokio::spawn(run(join));
}

/// Why an attempt to join did not (fully) succeed.
enum Problem {
    /// No admin socket to ask (auto, none present): stay quiet.
    NoDaemon,
    /// Worth one log line.
    Say(String),
}

/// Tries to join until both listeners run (or shutdown), then serves.
async fn run(join: Join) {
    let mut stop = join.stop.clone();
    let mut backoff = FIRST_BACKOFF;
    let mut said = String::new();
    let mut bound = Bound::default();
    let mut tasks = JoinSet::new();
    loop {
        match attempt(&join, &mut bound, &mut tasks).await {
            Ok(()) => break,
            Err(Problem::NoDaemon) => {}
            Err(Problem::Say(msg)) => {
                if msg != said {
                    eprintln!("gridd: overlay: {msg}; retrying in the background");
                    if bound.addr.is_none() {
                        set_status(&join.grid, Some(format!("waiting: {msg}")));
                    }
                    said = msg;
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
    while tasks.join_next().await.is_some() {}
}

/// The listeners bound so far.
#[derive(Default)]
struct Bound {
    addr: Option<Ipv6Addr>,
    tcp: bool,
    quic: bool,
}

/// One attempt: ask the daemon, check its key, bind what is not bound
/// yet and start serving it. `Ok` once everything configured runs.
async fn attempt(join: &Join, bound: &mut Bound, tasks: &mut JoinSet<()>) -> Result<(), Problem> {
    let addr = match bound.addr {
        Some(a) => a,
        None => {
            let (a, admin) = overlay_address(join).await?;
            bound.addr = Some(a);
            if !join.config.links.is_empty() {
                tasks.spawn(keep_links(
                    Admin::new(admin),
                    join.config.links.clone(),
                    join.stop.clone(),
                ));
            }
            // The grid key's own address: /n/PEER may now reach peers'
            // overlay addresses over plain TCP, from it.
            join.grid.peers.set_overlay_source(Some(a));
            set_status(&join.grid, Some(a.to_string()));
            a
        }
    };
    let mut problems = Vec::new();
    if join.config.port != 0 && !bound.tcp {
        let sa = SocketAddr::new(IpAddr::V6(addr), join.config.port);
        match TcpListener::bind(sa).await {
            Ok(l) => {
                bound.tcp = true;
                announce(
                    join,
                    tcp_addr(addr, l.local_addr().map_or(sa.port(), |a| a.port())),
                );
                tasks.spawn(serve_tcp(
                    l,
                    join.server.clone(),
                    join.grid.peers.clone(),
                    join.stop.clone(),
                ));
            }
            Err(e) => problems.push(format!("cannot listen on tcp!{addr}!{}: {e}", sa.port())),
        }
    }
    if join.config.quic_port != 0 && !bound.quic {
        let quic = Addr::Quic {
            host: addr.to_string(),
            port: join.config.quic_port,
        };
        match crate::daemon::bind_quic_key(&quic, &join.key, join.grid.peers.known_keys()).await {
            Ok(ep) => {
                bound.quic = true;
                let port = ep.local_addr().map_or(join.config.quic_port, |a| a.port());
                announce(
                    join,
                    Addr::Quic {
                        host: addr.to_string(),
                        port,
                    },
                );
                tasks.spawn(serve_quic(
                    ep,
                    join.server.clone(),
                    join.sync.clone(),
                    join.stop.clone(),
                ));
            }
            Err(e) => problems.push(format!("{e:#}")),
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Problem::Say(problems.join("; ")))
    }
}

/// Asks the daemon for its address and checks that it is this grid's;
/// returns it and the admin socket that answered.
async fn overlay_address(join: &Join) -> Result<(Ipv6Addr, AdminAddr), Problem> {
    let admin = match &join.config.yggdrasil {
        Yggdrasil::Off => return Err(Problem::NoDaemon),
        Yggdrasil::Admin(a) => a.clone(),
        Yggdrasil::Auto => AUTO_SOCKETS
            .iter()
            .map(std::path::Path::new)
            .find(|p| p.exists())
            .map(|p| AdminAddr::Unix(p.to_owned()))
            .ok_or(Problem::NoDaemon)?,
    };
    let me = Admin::new(admin.clone())
        .get_self()
        .await
        .map_err(|e| Problem::Say(e.to_string()))?;
    let mine = address_for_key(join.key.verifying_key().as_bytes());
    if me.address != mine {
        return Err(Problem::Say(format!(
            "yggdrasil at {admin} runs with another key (its address {}, this grid's is {mine}), \
             so overlay source addresses would not prove peers' keys: not serving on the overlay. \
             Give it this grid's key: `gridd --yggdrasil-config > /etc/yggdrasil/yggdrasil.conf` \
             (then add your Peers and Listen back) and restart yggdrasil",
            me.address
        )));
    }
    Ok((mine, admin))
}

/// Keeps the configured links up until shutdown: checks them every
/// [`LINK_CHECK_EVERY`] and redials those that are down.
async fn keep_links(admin: Admin, links: Vec<String>, mut stop: watch::Receiver<bool>) {
    let mut keeper = LinkKeeper::new(links);
    loop {
        keeper.check(&admin).await;
        tokio::select! {
            _ = tokio::time::sleep(LINK_CHECK_EVERY) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

/// What gridd last saw of a configured link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LinkState {
    /// Not checked yet.
    Unknown,
    Up,
    Down,
}

/// The configured links and what was last seen and said of each: every
/// line is logged once per change, however often the check runs.
struct LinkKeeper {
    links: Vec<KeptLink>,
    /// The last admin-socket problem logged ("" after a good answer).
    said: String,
}

struct KeptLink {
    uri: String,
    state: LinkState,
    /// The last redial error logged for it.
    said: String,
}

impl LinkKeeper {
    fn new(links: Vec<String>) -> LinkKeeper {
        LinkKeeper {
            links: links
                .into_iter()
                .map(|uri| KeptLink {
                    uri,
                    state: LinkState::Unknown,
                    said: String::new(),
                })
                .collect(),
            said: String::new(),
        }
    }

    /// One round: reads getPeers, redials each link that is not up.
    async fn check(&mut self, admin: &Admin) {
        let remotes = match admin.get_peers().await {
            Ok(peers) => {
                self.said.clear();
                up_remotes(&peers)
            }
            Err(e) => {
                let msg = format!("cannot check links: {e}");
                if msg != self.said {
                    eprintln!("gridd: overlay: {msg}");
                    self.said = msg;
                }
                return;
            }
        };
        for link in &mut self.links {
            let up = link_is_up(&link.uri, &remotes).await;
            let now = if up { LinkState::Up } else { LinkState::Down };
            if let Some(line) = link_change_line(&link.uri, link.state, now) {
                eprintln!("gridd: overlay: {line}");
            }
            link.state = now;
            if up {
                link.said.clear();
                continue;
            }
            if let Err(e) = admin.redial(&link.uri).await {
                let msg = format!("redialing link {}: {e}", link.uri);
                if msg != link.said {
                    eprintln!("gridd: overlay: {msg}");
                    link.said = msg;
                }
            }
        }
    }
}

/// The line to log when a link goes from `was` to `now`, if any.
fn link_change_line(uri: &str, was: LinkState, now: LinkState) -> Option<String> {
    let every = LINK_CHECK_EVERY.as_secs();
    match (was, now) {
        (LinkState::Unknown, LinkState::Up) => Some(format!("link {uri} is up")),
        (LinkState::Down, LinkState::Up) => Some(format!("link {uri} is up again")),
        (LinkState::Unknown | LinkState::Up, LinkState::Down) => {
            Some(format!("link {uri} is down; redialing it every {every}s"))
        }
        _ => None,
    }
}

/// The `remote` URIs of the links that are up, split into scheme and
/// address (inbound links are the peer's: its remote is not one of ours).
fn up_remotes(peers: &[grid_overlay::PeerInfo]) -> Vec<(String, String)> {
    peers
        .iter()
        .filter(|p| p.up && p.inbound != Some(true))
        .filter_map(|p| p.remote.as_deref())
        .filter_map(split_link)
        .collect()
}

/// `SCHEME://AUTHORITY?…` as lower-case scheme and authority.
fn split_link(uri: &str) -> Option<(String, String)> {
    let (scheme, rest) = uri.split_once("://")?;
    Some((
        scheme.to_ascii_lowercase(),
        link_authority(rest).to_ascii_lowercase(),
    ))
}

/// Whether `uri` is among the `remotes` that are up: by its address as
/// written, or, for a host name, by any address it resolves to (0.4.7's
/// `remote` is the address it dialed).
async fn link_is_up(uri: &str, remotes: &[(String, String)]) -> bool {
    let Some((scheme, authority)) = split_link(uri) else {
        return false;
    };
    let same_scheme: Vec<&str> = remotes
        .iter()
        .filter(|(s, _)| *s == scheme)
        .map(|(_, a)| a.as_str())
        .collect();
    if same_scheme.contains(&authority.as_str()) {
        return true;
    }
    let remote_addrs: Vec<SocketAddr> = same_scheme.iter().filter_map(|a| a.parse().ok()).collect();
    if remote_addrs.is_empty() {
        return false;
    }
    if let Ok(sa) = authority.parse::<SocketAddr>() {
        return remote_addrs.contains(&sa);
    }
    match tokio::net::lookup_host(authority).await {
        Ok(mut addrs) => addrs.any(|sa| remote_addrs.contains(&sa)),
        Err(_) => false,
    }
}

fn tcp_addr(addr: Ipv6Addr, port: u16) -> Addr {
    Addr::Tcp {
        host: addr.to_string(),
        port,
    }
}

/// Adds a listener to `/status` and says so, as for every listener.
fn announce(join: &Join, addr: Addr) {
    eprintln!("gridd: {} serving {addr}", join.grid.name);
    join.grid
        .listen
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(addr);
}

fn set_status(grid: &Grid, line: Option<String>) {
    *grid.overlay.lock().unwrap_or_else(|p| p.into_inner()) = line;
}

/// The configured peer whose key owns this TCP source address, if any:
/// an overlay address, and exactly the node address of the peer's key.
pub fn peer_for_source(peers: &Peers, from: &SocketAddr) -> Option<PublicKey> {
    let ip = match from.ip() {
        IpAddr::V6(ip) => ip,
        IpAddr::V4(_) => return None,
    };
    if !is_overlay(&ip) {
        return None;
    }
    peers.key_at_overlay_address(&ip)
}

/// Plain 9P over TCP on the overlay address: known peers only, each
/// under its policy; a connection ends when its peer is removed.
async fn serve_tcp(
    listener: TcpListener,
    server: Server,
    peers: Arc<Peers>,
    mut stop: watch::Receiver<bool>,
) {
    let mut conns = JoinSet::new();
    let mut refused = RefusalLog::default();
    loop {
        let accepted = tokio::select! {
            _ = stop.wait_for(|s| *s) => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => continue,
            a = listener.accept() => a,
        };
        let Ok((stream, from)) = accepted else {
            // EMFILE and friends: back off instead of spinning.
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let Some(key) = peer_for_source(&peers, &from) else {
            drop(stream);
            refused.note(from.ip());
            continue;
        };
        let _ = stream.set_nodelay(true);
        let server = server.clone();
        let known = peers.known_keys();
        conns.spawn(async move {
            let peer = PeerInfo::Grid {
                key: key.to_hex(),
                addr: from,
            };
            tokio::select! {
                _ = server.serve_conn(stream, peer) => {}
                _ = known.removed(&key) => {}
            }
        });
    }
    // Dropping `conns` aborts the sessions still open.
}

/// QUIC on the overlay address: the same services as gridd's other QUIC
/// listeners.
async fn serve_quic(
    ep: Endpoint,
    server: Server,
    sync: mpsc::Sender<Connection>,
    mut stop: watch::Receiver<bool>,
) {
    let services = grid_transport::Services {
        ninep: Some(server),
        other: Some(sync),
    };
    let stopped = async move {
        let _ = stop.wait_for(|s| *s).await;
    };
    grid_transport::serve_services(&ep, services, stopped).await;
    ep.close();
}

/// Logs refused connections: at most [`REFUSAL_LOG_BURST`] lines per
/// [`REFUSAL_LOG_EVERY`], and the count of those left out on the next line
/// (a scan of the port cannot flood the log).
#[derive(Default)]
struct RefusalLog {
    /// When the current window began, and the lines logged in it.
    window: Option<(Instant, u32)>,
    /// Refusals not logged since the last line.
    unreported: u64,
}

impl RefusalLog {
    fn note(&mut self, from: IpAddr) {
        if let Some(line) = self.line(from, Instant::now()) {
            eprintln!("gridd: overlay: {line}");
        }
    }

    /// The line to log for a refusal of `from` at `now`, if any.
    fn line(&mut self, from: IpAddr, now: Instant) -> Option<String> {
        let (start, lines) = match self.window {
            Some((start, n)) if now.duration_since(start) < REFUSAL_LOG_EVERY => (start, n),
            _ => (now, 0),
        };
        if lines >= REFUSAL_LOG_BURST {
            self.unreported += 1;
            return None;
        }
        self.window = Some((start, lines + 1));
        let more = match std::mem::take(&mut self.unreported) {
            0 => String::new(),
            n => format!(" ({n} more refused and not reported)"),
        };
        Some(format!("refused 9P from {from}: not a known peer{more}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yggdrasil_setting_parses() {
        assert_eq!(Yggdrasil::parse("auto"), Ok(Yggdrasil::Auto));
        assert_eq!(Yggdrasil::parse("off"), Ok(Yggdrasil::Off));
        let y = Yggdrasil::parse("unix:///run/y.sock").expect("unix");
        assert_eq!(y.to_string(), "unix:///run/y.sock");
        assert!(Yggdrasil::parse("tcp://localhost:9001").is_ok());
        let e = Yggdrasil::parse("yes").expect_err("bad");
        assert!(e.contains("want \"auto\""), "{e}");
    }

    #[test]
    fn refusals_are_logged_in_bursts_and_counted() {
        let mut log = RefusalLog::default();
        let from: IpAddr = "200::1".parse().expect("ip");
        let t0 = Instant::now();
        for i in 0..REFUSAL_LOG_BURST {
            let line = log.line(from, t0).expect("logged");
            assert_eq!(line, "refused 9P from 200::1: not a known peer", "{i}");
        }
        assert_eq!(log.line(from, t0 + Duration::from_secs(1)), None);
        assert_eq!(log.line(from, t0 + Duration::from_secs(2)), None);
        let line = log.line(from, t0 + REFUSAL_LOG_EVERY).expect("new window");
        assert!(
            line.ends_with("(2 more refused and not reported)"),
            "{line}"
        );
    }

    #[test]
    fn link_uris_are_checked() {
        for ok in [
            "tls://198.51.100.7:443",
            "tcp://[fd00::1]:7000",
            "quic://node.example:9000?key=ab",
            "unix:///run/peer.sock",
        ] {
            assert_eq!(check_link(ok), Ok(()), "{ok}");
        }
        for bad in [
            "198.51.100.7:443",
            "http://h:1",
            "tls://h",
            "tls://:1",
            "tls://h:x",
        ] {
            assert!(check_link(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn link_changes_are_logged_once() {
        use LinkState::*;
        let uri = "tcp://10.0.0.2:7000";
        assert_eq!(
            link_change_line(uri, Unknown, Up).as_deref(),
            Some("link tcp://10.0.0.2:7000 is up")
        );
        assert!(link_change_line(uri, Up, Down).is_some());
        assert!(link_change_line(uri, Unknown, Down).is_some());
        assert_eq!(link_change_line(uri, Down, Down), None);
        assert_eq!(link_change_line(uri, Up, Up), None);
        assert_eq!(
            link_change_line(uri, Down, Up).as_deref(),
            Some("link tcp://10.0.0.2:7000 is up again")
        );
    }

    fn peer(remote: &str, up: bool, inbound: Option<bool>) -> grid_overlay::PeerInfo {
        let key = [7u8; 32];
        grid_overlay::PeerInfo {
            address: address_for_key(&key),
            key,
            remote: Some(remote.into()),
            up,
            inbound,
        }
    }

    #[tokio::test]
    async fn links_match_the_remotes_that_are_up() {
        let peers = [
            peer("tcp://10.0.0.2:7000", true, None),
            peer("TLS://[fd00::2]:443", true, Some(false)),
            peer("tcp://10.0.0.9:7000", false, Some(false)),
            peer("tcp://10.0.0.5:41234", true, Some(true)),
            peer("tcp://127.0.0.1:7001", true, None),
        ];
        let remotes = up_remotes(&peers);
        assert!(link_is_up("tcp://10.0.0.2:7000", &remotes).await);
        // 0.5 keeps the query in its remote; 0.4.7 does not.
        assert!(link_is_up("tls://[fd00::2]:443?key=ab", &remotes).await);
        // Down, or the wrong scheme, or only inbound: not up.
        assert!(!link_is_up("tcp://10.0.0.9:7000", &remotes).await);
        assert!(!link_is_up("tls://10.0.0.2:7000", &remotes).await);
        assert!(!link_is_up("tcp://10.0.0.5:41234", &remotes).await);
        // A host name matches the address 0.4.7 dialed for it.
        assert!(link_is_up("tcp://localhost:7001", &remotes).await);
    }

    #[test]
    fn the_printed_config_has_the_grid_key_and_the_auto_socket() {
        let key = ed25519_dalek::SigningKey::from_bytes(&[9u8; 32]);
        let text = yggdrasil_config(&key);
        let public: String = key
            .verifying_key()
            .as_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert!(
            text.contains(&format!("\"PublicKey\": \"{public}\"")),
            "{text}"
        );
        assert!(
            text.contains("\"AdminListen\": \"unix:///var/run/yggdrasil/yggdrasil.sock\""),
            "{text}"
        );
    }
}

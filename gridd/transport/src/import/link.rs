//! How an import reaches its peer: 9P on a QUIC stream, or 9P over plain
//! TCP when both grids are on the Yggdrasil overlay.
//!
//! Yggdrasil is bound by packets per second, and QUIC's packets are small:
//! across three namespaces (`bench/overlay.sh`) 9P over TCP ran at 77–98%
//! of iperf3 on the overlay, 9P over QUIC at 26–44%. So when this grid
//! knows its own overlay address (gridd sets it once the daemon is seen to
//! run with the grid key) and one of the peer's addresses is the overlay
//! address of the peer's key, the import dials 9P over TCP to that address
//! (port [`ImportConfig::overlay_port`](super::ImportConfig)), from ours.
//!
//! That is still authenticated both ways, without TLS: the overlay routes
//! an address only to the node holding the key it derives from and
//! encrypts end to end, so only the peer answers; and the peer takes
//! plain TCP only from the overlay address of a key it knows, so it
//! knows us by our source address. An overlay address that is not the
//! peer's key's is never dialed over TCP.
//!
//! TCP gets a head start ([`ImportConfig::tcp_head_start`](super::ImportConfig));
//! QUIC is dialed after it, or at once when every TCP attempt has failed
//! (nothing listens, or the peer refused us), and the first 9P session up
//! wins. A dead TCP connection is noticed as a QUIC one is: keep-alive
//! probes after the endpoint's keep-alive interval, and `TCP_USER_TIMEOUT`
//! at its idle timeout, after which the next operation redials.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use ninep_client::{Client, ClientConfig};
use socket2::{SockRef, TcpKeepalive};
use tokio::net::{TcpSocket, TcpStream};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::DialFailure;
use crate::{Alpn, Connection, Endpoint, PublicKey};

/// What carries an import's 9P session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// A stream of a `grid-9p/1` QUIC connection.
    Quic,
    /// Plain TCP between the two grids' overlay addresses.
    Tcp,
}

/// The addresses to dial 9P over TCP at: each of `addrs` that is the
/// overlay address of `key` (or in its routed subnet), at `port`. None
/// unless this grid is on the overlay (`source`), and none when `port`
/// is 0.
pub fn overlay_tcp_targets(
    key: &PublicKey,
    addrs: &[SocketAddr],
    source: Option<Ipv6Addr>,
    port: u16,
) -> Vec<SocketAddr> {
    if source.is_none() || port == 0 {
        return Vec::new();
    }
    let mut targets: Vec<SocketAddr> = Vec::new();
    for addr in addrs {
        let IpAddr::V6(ip) = addr.ip() else { continue };
        if !grid_overlay::is_overlay(&ip) || !grid_overlay::address_matches_key(&ip, key.as_bytes())
        {
            continue;
        }
        let target = SocketAddr::new(IpAddr::V6(ip), port);
        if !targets.contains(&target) {
            targets.push(target);
        }
    }
    targets
}

/// A live link to the peer. The 9P client owns the stream; this keeps
/// what status and shutdown need.
pub(super) enum Link {
    Quic(Connection),
    Tcp(TcpLink),
}

pub(super) struct TcpLink {
    addr: SocketAddr,
    /// The Tversion round trip when the session began.
    rtt: Duration,
    /// The same socket as the client's stream, to shut it down.
    socket: socket2::Socket,
}

impl Link {
    pub(super) fn via(&self) -> Via {
        match self {
            Link::Quic(_) => Via::Quic,
            Link::Tcp(_) => Via::Tcp,
        }
    }

    pub(super) fn remote_addr(&self) -> SocketAddr {
        match self {
            Link::Quic(c) => c.remote_addr(),
            Link::Tcp(t) => t.addr,
        }
    }

    /// QUIC's current estimate; over TCP, the Tversion round trip.
    pub(super) fn rtt(&self) -> Duration {
        match self {
            Link::Quic(c) => c.rtt(),
            Link::Tcp(t) => t.rtt,
        }
    }

    /// Why the link closed, if it is known to have. (A TCP link's end is
    /// seen by its 9P client.)
    pub(super) fn close_reason(&self) -> Option<String> {
        match self {
            Link::Quic(c) => c.close_reason().map(|e| e.to_string()),
            Link::Tcp(_) => None,
        }
    }

    /// Ends the link; the peer is told.
    pub(super) fn close(&self) {
        match self {
            Link::Quic(c) => c.close(crate::close::DONE, "import ended"),
            Link::Tcp(t) => {
                let _ = t.socket.shutdown(std::net::Shutdown::Both);
            }
        }
    }
}

/// Where and how to dial one peer.
pub(super) struct Plan {
    pub key: PublicKey,
    pub quic: Vec<SocketAddr>,
    /// Our overlay address, and the peer's overlay 9P addresses.
    pub tcp: Option<(Ipv6Addr, Vec<SocketAddr>)>,
    pub tcp_head_start: Duration,
    pub client: ClientConfig,
}

type Attempt = Result<(Link, Client), DialFailure>;

/// Dials every address of `plan` (TCP first, QUIC after the head start
/// or once TCP has failed everywhere) and returns the first 9P session
/// that comes up; the other attempts are dropped.
pub(super) async fn connect(endpoint: &Endpoint, plan: Plan) -> Attempt {
    let mut tcp = JoinSet::new();
    if let Some((source, targets)) = plan.tcp {
        let limits = TcpLimits::of(endpoint);
        for addr in targets {
            tcp.spawn(dial_tcp(source, addr, plan.client, limits));
        }
    }
    let mut quic = JoinSet::new();
    let mut quic_due = Some(plan.quic);
    if tcp.is_empty() {
        start_quic(&mut quic, endpoint, plan.key, plan.client, quic_due.take());
    }
    let head_start = tokio::time::sleep(plan.tcp_head_start);
    tokio::pin!(head_start);
    let mut failures = Failures::default();
    loop {
        let done = tokio::select! {
            Some(r) = tcp.join_next() => r,
            Some(r) = quic.join_next() => r,
            _ = &mut head_start, if quic_due.is_some() => {
                start_quic(&mut quic, endpoint, plan.key, plan.client, quic_due.take());
                continue;
            }
            else => return Err(failures.into_failure()),
        };
        match done {
            Ok(Ok(won)) => return Ok(won),
            Ok(Err(f)) => failures.add(f),
            Err(e) => failures.add(DialFailure {
                auth: false,
                detail: format!("dial task: {e}"),
            }),
        }
        if tcp.is_empty() && quic_due.is_some() {
            start_quic(&mut quic, endpoint, plan.key, plan.client, quic_due.take());
        }
    }
}

fn start_quic(
    set: &mut JoinSet<Attempt>,
    endpoint: &Endpoint,
    key: PublicKey,
    config: ClientConfig,
    addrs: Option<Vec<SocketAddr>>,
) {
    for addr in addrs.unwrap_or_default() {
        set.spawn(dial_quic(endpoint.clone(), addr, key, config));
    }
}

async fn dial_quic(
    endpoint: Endpoint,
    addr: SocketAddr,
    key: PublicKey,
    config: ClientConfig,
) -> Attempt {
    let conn = endpoint
        .connect(addr, &key, Alpn::NineP)
        .await
        .map_err(|e| DialFailure {
            auth: e.is_authentication(),
            detail: e.to_string(),
        })?;
    let client = conn.open_9p(config).await.map_err(|e| DialFailure {
        auth: false,
        detail: e.to_string(),
    })?;
    Ok((Link::Quic(conn), client))
}

/// How a TCP link notices that the peer is gone: the endpoint's QUIC
/// keep-alive interval and idle timeout.
#[derive(Clone, Copy)]
struct TcpLimits {
    keep_alive: Duration,
    user_timeout: Duration,
}

impl TcpLimits {
    fn of(endpoint: &Endpoint) -> TcpLimits {
        let c = endpoint.config();
        TcpLimits {
            keep_alive: c.keep_alive,
            user_timeout: c.idle_timeout,
        }
    }
}

/// 9P over TCP from our overlay address `source` to `addr`: connect and
/// Tversion (timed, as the link's rtt).
async fn dial_tcp(
    source: Ipv6Addr,
    addr: SocketAddr,
    config: ClientConfig,
    limits: TcpLimits,
) -> Attempt {
    let fail = |what: String| DialFailure {
        auth: false,
        detail: format!("tcp!{}!{}: {what}", addr.ip(), addr.port()),
    };
    let socket = TcpSocket::new_v6().map_err(|e| fail(format!("socket: {e}")))?;
    socket
        .bind(SocketAddr::new(IpAddr::V6(source), 0))
        .map_err(|e| fail(format!("cannot bind our overlay address {source}: {e}")))?;
    let stream = socket
        .connect(addr)
        .await
        .map_err(|e| fail(e.to_string()))?;
    let handle = tune(&stream, limits).map_err(|e| fail(format!("socket options: {e}")))?;
    let start = Instant::now();
    let client = Client::connect(stream, config)
        .await
        .map_err(|e| fail(format!("9P version: {e}")))?;
    let link = TcpLink {
        addr,
        rtt: start.elapsed(),
        socket: handle,
    };
    Ok((Link::Tcp(link), client))
}

/// No Nagle delay, keep-alive probes and a bound on unacknowledged data;
/// returns a second handle on the socket, for shutdown.
fn tune(stream: &TcpStream, limits: TcpLimits) -> std::io::Result<socket2::Socket> {
    stream.set_nodelay(true)?;
    let sock = SockRef::from(stream);
    let probes = TcpKeepalive::new()
        .with_time(limits.keep_alive)
        .with_interval(limits.keep_alive);
    sock.set_tcp_keepalive(&probes)?;
    sock.set_tcp_user_timeout(Some(limits.user_timeout))?;
    sock.try_clone()
}

/// The failures of one dial, for `/net/peers/NAME/status`.
#[derive(Default)]
struct Failures {
    auth: bool,
    details: Vec<String>,
}

impl Failures {
    fn add(&mut self, f: DialFailure) {
        self.auth |= f.auth;
        if !self.details.contains(&f.detail) {
            self.details.push(f.detail);
        }
    }

    fn into_failure(self) -> DialFailure {
        DialFailure {
            auth: self.auth,
            detail: if self.details.is_empty() {
                "no address known".into()
            } else {
                self.details.join("; ")
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(seed: u8) -> PublicKey {
        PublicKey::of(&ed25519_dalek::SigningKey::from_bytes(&[seed; 32]))
    }

    fn overlay_of(k: &PublicKey) -> Ipv6Addr {
        grid_overlay::address_for_key(k.as_bytes())
    }

    fn at(ip: Ipv6Addr, port: u16) -> SocketAddr {
        SocketAddr::new(IpAddr::V6(ip), port)
    }

    #[test]
    fn tcp_goes_to_the_peer_keys_overlay_address_on_the_9p_port() {
        let peer = key(1);
        let me = overlay_of(&key(2));
        let addrs = [
            "127.0.0.1:5640".parse().expect("addr"),
            at(overlay_of(&peer), 5640),
        ];
        let targets = overlay_tcp_targets(&peer, &addrs, Some(me), 564);
        assert_eq!(targets, [at(overlay_of(&peer), 564)]);
    }

    #[test]
    fn no_tcp_unless_we_are_on_the_overlay_or_with_port_zero() {
        let peer = key(1);
        let addrs = [at(overlay_of(&peer), 5640)];
        assert!(overlay_tcp_targets(&peer, &addrs, None, 564).is_empty());
        let me = Some(overlay_of(&key(2)));
        assert!(overlay_tcp_targets(&peer, &addrs, me, 0).is_empty());
    }

    #[test]
    fn no_tcp_to_addresses_that_are_not_the_peer_keys() {
        let peer = key(1);
        let me = Some(overlay_of(&key(2)));
        // Another key's overlay address: the overlay would route it to
        // someone else, so only QUIC (which proves the key) may go there.
        let other = at(overlay_of(&key(3)), 5640);
        let lan: SocketAddr = "[fd00::1]:5640".parse().expect("addr");
        let loopback: SocketAddr = "[::1]:5640".parse().expect("addr");
        assert!(overlay_tcp_targets(&peer, &[other, lan, loopback], me, 564).is_empty());
    }

    #[test]
    fn tcp_targets_are_listed_once() {
        let peer = key(1);
        let me = Some(overlay_of(&key(2)));
        let a = overlay_of(&peer);
        let targets = overlay_tcp_targets(&peer, &[at(a, 5640), at(a, 5641)], me, 564);
        assert_eq!(targets, [at(a, 564)]);
    }

    /// Alice's endpoint (knowing bob) and bob's, serving a one-file tree
    /// over QUIC until the returned sender is dropped.
    struct Grids {
        alice: Endpoint,
        bob: PublicKey,
        bob_quic: SocketAddr,
        server: ninep_server::Server,
        _dir: tempfile::TempDir,
        _stop: tokio::sync::oneshot::Sender<()>,
    }

    fn grids() -> Grids {
        let (ka, kb) = (
            ed25519_dalek::SigningKey::from_bytes(&[1; 32]),
            ed25519_dalek::SigningKey::from_bytes(&[2; 32]),
        );
        let (a, b) = (PublicKey::of(&ka), PublicKey::of(&kb));
        let bind = |key, peer: PublicKey| {
            let known = crate::KnownKeys::new();
            known.insert(peer, "peer");
            let any = "127.0.0.1:0".parse().expect("addr");
            Endpoint::bind(any, key, known, crate::Config::default()).expect("bind")
        };
        let (alice, eb) = (bind(&ka, b), bind(&kb, a));
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("hello"), "hello\n").expect("write");
        let root = ninep_export::export(dir.path(), Default::default()).expect("export");
        let server = ninep_server::Server::for_tree(root, Default::default());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let bob_quic = eb.local_addr().expect("local addr");
        let s = server.clone();
        tokio::spawn(async move {
            crate::serve(&eb, s, async {
                let _ = stopped.await;
            })
            .await;
        });
        Grids {
            alice,
            bob: b,
            bob_quic,
            server,
            _dir: dir,
            _stop: stop,
        }
    }

    /// A TCP listener on IPv6 loopback, or `None` (said on stderr) where
    /// the host has no IPv6.
    async fn tcp_on_loopback() -> Option<tokio::net::TcpListener> {
        match tokio::net::TcpListener::bind("[::1]:0").await {
            Ok(l) => Some(l),
            Err(e) => {
                eprintln!("SKIP: no IPv6 loopback here ({e})");
                None
            }
        }
    }

    /// Dials bob over TCP at `tcp` from ::1 (standing in for our overlay
    /// address) and over QUIC; QUIC's head start is long enough that it
    /// only runs if TCP fails.
    async fn dial(g: &Grids, tcp: SocketAddr) -> Attempt {
        let plan = Plan {
            key: g.bob,
            quic: vec![g.bob_quic],
            tcp: Some((Ipv6Addr::LOCALHOST, vec![tcp])),
            tcp_head_start: Duration::from_secs(3600),
            client: ClientConfig::default(),
        };
        // A bound on a hang, not a measurement.
        tokio::time::timeout(Duration::from_secs(30), connect(&g.alice, plan))
            .await
            .expect("the dial hung")
    }

    #[tokio::test]
    async fn a_peer_that_answers_9p_over_tcp_gets_tcp() {
        let g = grids();
        let Some(listener) = tcp_on_loopback().await else {
            return;
        };
        let tcp = listener.local_addr().expect("local addr");
        let server = g.server.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let server = server.clone();
                tokio::spawn(async move { server.serve_conn(stream, Default::default()).await });
            }
        });
        let (link, client) = match dial(&g, tcp).await {
            Ok(won) => won,
            Err(f) => panic!("dial failed: {}", f.detail),
        };
        assert_eq!(link.via(), Via::Tcp);
        assert_eq!(link.remote_addr(), tcp);
        let root = client.attach("none", "").await.expect("attach over TCP");
        root.walk(&["hello".to_owned()]).await.expect("walk");
        // A dead link is noticed as a QUIC one is: after the idle timeout.
        let Link::Tcp(t) = &link else { unreachable!() };
        assert_eq!(
            t.socket.tcp_user_timeout().expect("getsockopt"),
            Some(crate::Config::default().idle_timeout)
        );
        // Closing the link ends the session.
        link.close();
        let closed = root.walk(&["hello".to_owned()]).await;
        assert!(closed.is_err(), "a walk worked on a closed link");
        assert!(client.is_closed());
    }

    #[tokio::test]
    async fn quic_is_dialed_at_once_when_nothing_listens_on_tcp() {
        let g = grids();
        let Some(listener) = tcp_on_loopback().await else {
            return;
        };
        let closed = listener.local_addr().expect("local addr");
        drop(listener);
        let (link, _client) = match dial(&g, closed).await {
            Ok(won) => won,
            Err(f) => panic!("no fallback to QUIC: {}", f.detail),
        };
        assert_eq!(link.via(), Via::Quic);
        assert_eq!(link.remote_addr(), g.bob_quic);
    }

    #[tokio::test]
    async fn quic_is_dialed_at_once_when_the_peer_refuses_tcp() {
        // As gridd does to a source address that is not a known peer's:
        // accept, then close.
        let g = grids();
        let Some(listener) = tcp_on_loopback().await else {
            return;
        };
        let tcp = listener.local_addr().expect("local addr");
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                drop(stream);
            }
        });
        let (link, _client) = match dial(&g, tcp).await {
            Ok(won) => won,
            Err(f) => panic!("no fallback to QUIC: {}", f.detail),
        };
        assert_eq!(link.via(), Via::Quic);
    }

    #[tokio::test]
    async fn when_both_fail_the_status_says_why_for_each() {
        let g = grids();
        let Some(listener) = tcp_on_loopback().await else {
            return;
        };
        let closed = listener.local_addr().expect("local addr");
        drop(listener);
        let plan = Plan {
            key: g.bob,
            quic: Vec::new(),
            tcp: Some((Ipv6Addr::LOCALHOST, vec![closed])),
            tcp_head_start: Duration::from_secs(3600),
            client: ClientConfig::default(),
        };
        let Err(f) = connect(&g.alice, plan).await else {
            panic!("dialed a closed port");
        };
        assert!(!f.auth);
        assert!(
            f.detail
                .starts_with(&format!("tcp!::1!{}: ", closed.port())),
            "{}",
            f.detail
        );
    }

    #[test]
    fn a_dial_reports_every_distinct_failure_and_any_refused_key() {
        let mut f = Failures::default();
        assert!(!f.auth);
        for (auth, detail) in [
            (false, "tcp: refused"),
            (true, "bad key"),
            (false, "bad key"),
        ] {
            f.add(DialFailure {
                auth,
                detail: detail.into(),
            });
        }
        let d = f.into_failure();
        assert!(d.auth);
        assert_eq!(d.detail, "tcp: refused; bad key");
        assert_eq!(
            Failures::default().into_failure().detail,
            "no address known"
        );
    }
}

//! One QUIC endpoint per grid: a UDP socket that both dials peers and
//! accepts them, and the connections and streams it makes.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use ed25519_dalek::SigningKey;
use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use rustls::pki_types::CertificateDer;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::key::{Credentials, PublicKey};
use crate::verify::{self, KnownKeys};
use crate::{close, Alpn, Error};

/// The TLS server name we send. SNI is off and nobody checks it; quinn
/// only wants a syntactically valid name.
const SERVER_NAME: &str = "grid";

/// The largest UDP payload that can be sent with segmentation offload
/// (GSO): quinn 0.11 batches up to 10 packets in one send, and the kernel
/// refuses a batch over 65507 bytes (64 KiB less the IPv4 and UDP headers)
/// with EMSGSIZE, which quinn-udp ignores, so the whole batch is lost.
const GSO_MAX_PAYLOAD: u16 = 6550;

/// Endpoint settings. The defaults suit loopback, the overlay and the
/// internet alike; the transport numbers were chosen with
/// `bench/src/bin/quic_bench.rs`:
///
/// - windows of several MiB, so a 9P session with several MiB of reads
///   in flight is not held back by flow control on a long path;
/// - kernel socket buffers of 4 MiB, because at the default 208 KiB a
///   receiver that falls behind for a moment drops datagrams, which the
///   sender takes for congestion and, repeated, for an MTU black hole;
/// - MTU discovery up to 6144 bytes: on loopback, 4 KiB packets cost about
///   a third less CPU per byte than 1452-byte ones and 6 KiB ones about a
///   sixth less again. Bigger ones do not fit quinn's batches: it hands the
///   kernel up to 10 packets in one GSO send, which may not exceed 64 KiB,
///   so at 8 KiB whole batches were refused (EMSGSIZE, which quinn drops
///   silently, taking it for an MTU probe) and black-hole detection went
///   back to 1200 bytes.
#[derive(Debug, Clone)]
pub struct Config {
    /// Protocols offered to connections we accept.
    pub alpns: Vec<Alpn>,
    /// How long a handshake may take, dialing or accepting; a dial to an
    /// unreachable address fails after this.
    pub handshake_timeout: Duration,
    /// A connection with no packets from the peer for this long is dead.
    pub idle_timeout: Duration,
    /// Send a keep-alive after this much quiet, so an idle but healthy
    /// connection never reaches `idle_timeout`.
    pub keep_alive: Duration,
    /// Bytes a peer may send on one stream before we read them.
    pub stream_window: u32,
    /// Bytes a peer may send on all streams of a connection before we read them.
    pub connection_window: u32,
    /// Bytes of written data kept until acknowledged, per connection.
    pub send_window: u64,
    /// The largest UDP payload MTU discovery tries, and the largest we
    /// accept. Loopback and Yggdrasil carry more than Ethernet's 1452; on a
    /// path that does not, the probes are lost and nothing else is. Above
    /// 6550 bytes segmentation offload is turned off (quinn's batches of
    /// such packets exceed 64 KiB), which costs more CPU per byte than the
    /// bigger packets save.
    pub max_udp_payload: u16,
    /// The UDP payload size used before MTU discovery has run (at least
    /// 1200, QUIC's minimum). Raise it only for paths known to carry it:
    /// if they do not, the first packets are lost and black-hole detection
    /// falls back to 1200.
    pub initial_mtu: u16,
    /// Bidirectional streams (9P sessions) a peer may have open at once.
    pub max_streams: u32,
    /// Kernel socket buffer asked for, each way (capped by the system).
    pub socket_buffer: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            alpns: vec![Alpn::NineP],
            handshake_timeout: Duration::from_secs(2),
            idle_timeout: Duration::from_secs(10),
            keep_alive: Duration::from_secs(3),
            stream_window: 8 << 20,
            connection_window: 16 << 20,
            send_window: 16 << 20,
            max_udp_payload: 6144,
            initial_mtu: 1200,
            max_streams: 256,
            socket_buffer: 4 << 20,
        }
    }
}

impl Config {
    fn transport(&self) -> quinn::TransportConfig {
        let mut t = quinn::TransportConfig::default();
        t.max_concurrent_bidi_streams(self.max_streams.into())
            .max_concurrent_uni_streams(self.max_streams.into())
            .max_idle_timeout(quinn::IdleTimeout::try_from(self.idle_timeout).ok())
            .keep_alive_interval(Some(self.keep_alive))
            .stream_receive_window(self.stream_window.into())
            .receive_window(self.connection_window.into())
            .send_window(self.send_window);
        t.initial_mtu(self.initial_mtu.min(self.max_udp_payload));
        let mut mtu = quinn::MtuDiscoveryConfig::default();
        mtu.upper_bound(self.max_udp_payload);
        t.mtu_discovery_config(Some(mtu));
        if self.max_udp_payload > GSO_MAX_PAYLOAD {
            // Batches of such packets would exceed 64 KiB and be dropped.
            t.enable_segmentation_offload(false);
        }
        t
    }
}

/// A grid's QUIC endpoint: one UDP socket, this grid's key, the peers
/// allowed in. Cheap to clone; clones share the socket.
#[derive(Clone)]
pub struct Endpoint {
    quinn: quinn::Endpoint,
    creds: Arc<Credentials>,
    known: KnownKeys,
    transport: Arc<quinn::TransportConfig>,
    config: Arc<Config>,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("key", &self.creds.public)
            .field("addr", &self.quinn.local_addr().ok())
            .finish_non_exhaustive()
    }
}

impl Endpoint {
    /// Binds `addr` (port 0 picks one) for grid `key`, accepting clients
    /// whose keys are in `known`. Call within a tokio runtime.
    pub fn bind(
        addr: SocketAddr,
        key: &SigningKey,
        known: KnownKeys,
        config: Config,
    ) -> Result<Endpoint, Error> {
        let creds = Credentials::new(key)?;
        let transport = Arc::new(config.transport());
        let tls = verify::server_tls(&creds, known.clone(), &config.alpns)?;
        let crypto = QuicServerConfig::try_from(tls).map_err(no_initial_suite)?;
        let mut server = quinn::ServerConfig::with_crypto(Arc::new(crypto));
        server.transport_config(transport.clone());
        let socket =
            std::net::UdpSocket::bind(addr).map_err(|source| Error::Bind { addr, source })?;
        size_buffers(&socket, config.socket_buffer);
        let (reset, cid_key) = restart_keys(key);
        let mut endpoint_config = quinn::EndpointConfig::new(Arc::new(reset));
        endpoint_config.cid_generator(move || {
            Box::new(quinn_proto::HashedConnectionIdGenerator::from_key(cid_key))
        });
        // What we tell peers we can receive; MTU discovery on their side
        // stops here (quinn's default is Ethernet's 1472).
        endpoint_config
            .max_udp_payload_size(config.max_udp_payload)
            .map_err(|_| Error::Bind {
                addr,
                source: std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "max_udp_payload must be 1200 to 65527",
                ),
            })?;
        let quinn = quinn::Endpoint::new(
            endpoint_config,
            Some(server),
            socket,
            Arc::new(quinn::TokioRuntime),
        )
        .map_err(|source| Error::Bind { addr, source })?;
        Ok(Endpoint {
            quinn,
            creds: Arc::new(creds),
            known,
            transport,
            config: Arc::new(config),
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> Result<SocketAddr, Error> {
        Ok(self.quinn.local_addr()?)
    }

    /// This grid's key.
    pub fn public_key(&self) -> PublicKey {
        self.creds.public
    }

    /// The keys allowed in.
    pub fn known_keys(&self) -> &KnownKeys {
        &self.known
    }

    /// The settings it was bound with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Dials the grid `expected` at `addr` for `alpn`. Fails if the server
    /// presents any other key, refuses ours, or does not answer within
    /// [`Config::handshake_timeout`].
    pub async fn connect(
        &self,
        addr: SocketAddr,
        expected: &PublicKey,
        alpn: Alpn,
    ) -> Result<Connection, Error> {
        let tls = verify::client_tls(&self.creds, *expected, alpn)?;
        let crypto = QuicClientConfig::try_from(tls).map_err(no_initial_suite)?;
        let mut client = quinn::ClientConfig::new(Arc::new(crypto));
        client.transport_config(self.transport.clone());
        let connecting = self
            .quinn
            .connect_with(client, addr, SERVER_NAME)
            .map_err(|source| Error::Dial { addr, source })?;
        let after = self.config.handshake_timeout;
        let conn = tokio::time::timeout(after, connecting)
            .await
            .map_err(|_| Error::Timeout { addr, after })?
            .map_err(|source| Error::Handshake { addr, source })?;
        Connection::established(conn)
    }

    /// The next incoming connection, before its handshake; `None` once the
    /// endpoint is closed.
    pub async fn accept(&self) -> Option<Incoming> {
        let inner = self.quinn.accept().await?;
        Some(Incoming {
            inner,
            known: self.known.clone(),
            timeout: self.config.handshake_timeout,
        })
    }

    /// Closes every connection and stops accepting.
    pub fn close(&self) {
        self.quinn.close(close::SHUTDOWN.into(), b"endpoint closed");
    }

    /// Waits until every connection has been closed and its peer told.
    pub async fn wait_idle(&self) {
        self.quinn.wait_idle().await;
    }
}

/// Asks for `bytes` of kernel buffer each way. Best effort: Linux caps
/// the request at net.core.rmem_max / wmem_max (often 208 KiB, which
/// overflows at a few hundred MB/s and looks like loss to the sender),
/// and a refusal only costs speed.
fn size_buffers(socket: &std::net::UdpSocket, bytes: usize) {
    if let Ok(state) = quinn::udp::UdpSocketState::new(socket.into()) {
        let _ = state.set_recv_buffer_size(socket.into(), bytes);
        let _ = state.set_send_buffer_size(socket.into(), bytes);
    }
}

/// The stateless-reset key and the connection-ID key, both derived from
/// the grid key, so that after a restart this grid still recognizes the
/// connection IDs it handed out and can tell their peers "that connection
/// is gone" (a stateless reset, RFC 9000 §10.3). They then reconnect at
/// once instead of waiting out their idle timeout.
fn restart_keys(key: &SigningKey) -> (ring::hmac::Key, u64) {
    let seed = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key.as_bytes());
    let reset = ring::hmac::sign(&seed, b"grid-transport stateless reset v1");
    let cid = ring::hmac::sign(&seed, b"grid-transport connection id v1");
    let mut cid_key = [0u8; 8];
    cid_key.copy_from_slice(&cid.as_ref()[..8]);
    (
        ring::hmac::Key::new(ring::hmac::HMAC_SHA256, reset.as_ref()),
        u64::from_le_bytes(cid_key),
    )
}

fn no_initial_suite(_: quinn::crypto::rustls::NoInitialCipherSuite) -> Error {
    Error::Tls(rustls::Error::General(
        "provider lacks TLS13_AES_128_GCM_SHA256, which QUIC needs".into(),
    ))
}

/// A connection attempt that has not finished its handshake.
pub struct Incoming {
    inner: quinn::Incoming,
    known: KnownKeys,
    timeout: Duration,
}

impl Incoming {
    /// Where it comes from.
    pub fn remote_addr(&self) -> SocketAddr {
        self.inner.remote_address()
    }

    /// Runs the handshake (bounded by [`Config::handshake_timeout`]). A key
    /// that got through only because pairing is open may speak only
    /// [`Alpn::Pair`]; anything else is closed here.
    pub async fn handshake(self) -> Result<Connection, Error> {
        let addr = self.remote_addr();
        let connecting = self
            .inner
            .accept()
            .map_err(|source| Error::Handshake { addr, source })?;
        let conn = tokio::time::timeout(self.timeout, connecting)
            .await
            .map_err(|_| Error::Timeout {
                addr,
                after: self.timeout,
            })?
            .map_err(|source| Error::Handshake { addr, source })?;
        let conn = Connection::established(conn)?;
        if conn.alpn != Alpn::Pair && !self.known.contains(&conn.peer) {
            conn.close(close::UNKNOWN_PEER, "unknown peer");
            return Err(Error::UnknownPeer(conn.peer));
        }
        Ok(conn)
    }

    /// Refuses it without a handshake.
    pub fn refuse(self) {
        self.inner.refuse();
    }
}

/// An authenticated connection to another grid.
#[derive(Clone, Debug)]
pub struct Connection {
    inner: quinn::Connection,
    peer: PublicKey,
    alpn: Alpn,
}

impl Connection {
    /// Reads what the handshake established: the peer's key and the
    /// protocol. The verifiers already checked both; a connection without
    /// them is closed.
    fn established(inner: quinn::Connection) -> Result<Connection, Error> {
        let addr = inner.remote_address();
        let peer = inner
            .peer_identity()
            .and_then(|id| id.downcast::<Vec<CertificateDer<'static>>>().ok())
            .and_then(|certs| certs.first().map(PublicKey::from_cert));
        let alpn = inner
            .handshake_data()
            .and_then(|d| d.downcast::<quinn::crypto::rustls::HandshakeData>().ok())
            .and_then(|d| d.protocol)
            .and_then(|p| Alpn::from_bytes(&p));
        let fail = |what| {
            inner.close(close::DONE.into(), b"handshake incomplete");
            Err(Error::Peer { addr, what })
        };
        match (peer, alpn) {
            (Some(Ok(peer)), Some(alpn)) => {
                crate::overlay_check::enforce(&inner, &peer)?;
                Ok(Connection { inner, peer, alpn })
            }
            (Some(Err(e)), _) => {
                inner.close(close::DONE.into(), b"bad certificate");
                Err(e.into())
            }
            (None, _) => fail("no certificate"),
            (_, None) => fail("no protocol"),
        }
    }

    /// The peer's key, as the handshake proved it.
    pub fn peer_key(&self) -> PublicKey {
        self.peer
    }

    /// The protocol this connection carries.
    pub fn alpn(&self) -> Alpn {
        self.alpn
    }

    /// The peer's current address.
    pub fn remote_addr(&self) -> SocketAddr {
        self.inner.remote_address()
    }

    /// The current round-trip time estimate.
    pub fn rtt(&self) -> Duration {
        self.inner.rtt()
    }

    /// Opens a bidirectional stream.
    pub async fn open_stream(&self) -> Result<Stream, Error> {
        let (send, recv) = self.inner.open_bi().await.map_err(|e| self.lost(e))?;
        Ok(Stream { send, recv })
    }

    /// Waits for the peer to open a bidirectional stream.
    pub async fn accept_stream(&self) -> Result<Stream, Error> {
        let (send, recv) = self.inner.accept_bi().await.map_err(|e| self.lost(e))?;
        Ok(Stream { send, recv })
    }

    /// Closes the connection with an application code and a reason the
    /// peer sees.
    pub fn close(&self, code: u32, reason: &str) {
        self.inner.close(code.into(), reason.as_bytes());
    }

    /// Why the connection closed, if it has.
    pub fn close_reason(&self) -> Option<quinn::ConnectionError> {
        self.inner.close_reason()
    }

    /// Resolves when the connection closes, with the reason.
    pub async fn closed(&self) -> quinn::ConnectionError {
        self.inner.closed().await
    }

    /// The quinn connection, for what this type does not wrap (datagrams,
    /// unidirectional streams, statistics).
    pub fn quinn(&self) -> &quinn::Connection {
        &self.inner
    }

    fn lost(&self, source: quinn::ConnectionError) -> Error {
        Error::Connection {
            addr: self.remote_addr(),
            source,
        }
    }
}

/// One bidirectional QUIC stream as a byte stream (`AsyncRead +
/// AsyncWrite`), for a 9P client or server. Dropping it finishes the
/// sending half and stops the receiving half.
#[derive(Debug)]
pub struct Stream {
    send: quinn::SendStream,
    recv: quinn::RecvStream,
}

impl AsyncRead for Stream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.recv).poll_read(cx, buf)
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        AsyncWrite::poll_write(Pin::new(&mut self.send), cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        AsyncWrite::poll_flush(Pin::new(&mut self.send), cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        AsyncWrite::poll_shutdown(Pin::new(&mut self.send), cx)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::expect_used, clippy::unwrap_used)]

    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Sends `bytes` from one endpoint to another over loopback, with
    /// packets of `payload` bytes from the start; returns the sender's
    /// path MTU and lost packets at the end, once the receiver has all.
    async fn bulk_send(payload: u16, bytes: usize) -> (u16, u64) {
        let (ka, kb) = (
            SigningKey::from_bytes(&[7; 32]),
            SigningKey::from_bytes(&[8; 32]),
        );
        let config = Config {
            max_udp_payload: payload,
            initial_mtu: payload,
            ..Config::default()
        };
        let bind = |key: &SigningKey, peer: &SigningKey| {
            let known = KnownKeys::new();
            known.insert(PublicKey::of(peer), "peer");
            Endpoint::bind("127.0.0.1:0".parse().unwrap(), key, known, config.clone())
                .expect("bind")
        };
        let (ea, eb) = (bind(&ka, &kb), bind(&kb, &ka));
        let addr = eb.local_addr().unwrap();
        let receiver = tokio::spawn(async move {
            let conn = eb
                .accept()
                .await
                .unwrap()
                .handshake()
                .await
                .expect("accept");
            let mut stream = conn.accept_stream().await.unwrap();
            let mut got = Vec::new();
            stream.read_to_end(&mut got).await.unwrap();
            // The connection too, so that it stays open until we are done.
            (got.len(), conn, eb)
        });
        let conn = ea
            .connect(addr, &PublicKey::of(&kb), Alpn::NineP)
            .await
            .expect("dial");
        let mut stream = conn.open_stream().await.unwrap();
        stream.write_all(&vec![0x5a; bytes]).await.unwrap();
        stream.shutdown().await.unwrap();
        let (got, _conn, _eb) = receiver.await.unwrap();
        assert_eq!(got, bytes);
        let path = conn.quinn().stats().path;
        (path.current_mtu, path.lost_packets)
    }

    /// The default packet size goes through quinn's GSO batches whole: were
    /// a batch over 64 KiB, it would be dropped without an error, and the
    /// loss would send black-hole detection back to 1200-byte packets.
    #[tokio::test]
    async fn default_max_payload_survives_a_bulk_transfer() {
        let payload = Config::default().max_udp_payload;
        assert!(payload <= GSO_MAX_PAYLOAD);
        let run = bulk_send(payload, 32 << 20);
        let (mtu, lost) = tokio::time::timeout(Duration::from_secs(60), run)
            .await
            .expect("bulk transfer finished in time");
        assert_eq!(mtu, payload, "path MTU fell back ({lost} packets lost)");
    }

    /// Packets too big for a GSO batch are sent one at a time instead of
    /// being lost in bulk.
    #[tokio::test]
    async fn payload_above_the_gso_limit_still_carries() {
        let run = bulk_send(8192, 32 << 20);
        let (mtu, lost) = tokio::time::timeout(Duration::from_secs(60), run)
            .await
            .expect("bulk transfer finished in time");
        assert_eq!(mtu, 8192, "path MTU fell back ({lost} packets lost)");
    }
}

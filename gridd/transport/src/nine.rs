//! 9P over QUIC: each bidirectional stream of a `grid-9p/1` connection is
//! one 9P session, served by the ordinary `ninep-server` core.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use ninep_server::{PeerInfo, Server};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use crate::endpoint::{Connection, Endpoint, Incoming};
use crate::{close, Alpn, Error, KnownKeys, PublicKey};

/// How long [`serve_services`] waits, once shut down, for its connection
/// tasks to close their connections.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(1);

/// What an endpoint serves, by protocol.
#[derive(Default)]
pub struct Services {
    /// The 9P server for `grid-9p/1` connections.
    pub ninep: Option<Server>,
    /// Where connections of every other protocol go (pairing, sync),
    /// already authenticated. Without it they are closed.
    pub other: Option<mpsc::Sender<Connection>>,
}

/// Serves 9P on `endpoint` until `shutdown` resolves: every bidirectional
/// stream of every `grid-9p/1` connection from a known peer becomes a
/// session of `server`, whose trees see the peer as
/// [`PeerInfo::Grid`]. Connections of other protocols are refused.
///
/// A peer removed from [`KnownKeys`] is disconnected at once. At shutdown
/// the connections accepted here are closed (their peers are told); the
/// endpoint itself stays open for dialing.
pub async fn serve(endpoint: &Endpoint, server: Server, shutdown: impl Future<Output = ()>) {
    let services = Services {
        ninep: Some(server),
        other: None,
    };
    serve_services(endpoint, services, shutdown).await;
}

/// [`serve`] for several protocols.
pub async fn serve_services(
    endpoint: &Endpoint,
    services: Services,
    shutdown: impl Future<Output = ()>,
) {
    let services = Arc::new(services);
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut conns = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            incoming = endpoint.accept() => {
                let Some(incoming) = incoming else { break };
                conns.spawn(serve_connection(
                    incoming,
                    services.clone(),
                    endpoint.known_keys().clone(),
                    stop_rx.clone(),
                ));
            }
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
    let _ = stop_tx.send(true);
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while conns.join_next().await.is_some() {}
    })
    .await;
}

/// One accepted connection: handshake, then hand it to its protocol.
async fn serve_connection(
    incoming: Incoming,
    services: Arc<Services>,
    known: KnownKeys,
    stop: watch::Receiver<bool>,
) {
    // A failed handshake (unknown key, wrong protocol, timeout) has
    // already been answered with the TLS alert or close that says why.
    let Ok(conn) = incoming.handshake().await else {
        return;
    };
    match (conn.alpn(), &services.ninep, &services.other) {
        (Alpn::NineP, Some(server), _) => serve_9p(conn, server.clone(), known, stop).await,
        (Alpn::NineP, None, _) | (_, _, None) => {
            conn.close(close::NO_SERVICE, "protocol not served here");
        }
        (_, _, Some(tx)) => {
            if let Err(mpsc::error::SendError(conn)) = tx.send(conn).await {
                conn.close(close::NO_SERVICE, "protocol not served here");
            }
        }
    }
}

/// The streams of one 9P connection, each a session, until the peer goes,
/// is removed, or the server stops.
async fn serve_9p(
    conn: Connection,
    server: Server,
    known: KnownKeys,
    mut stop: watch::Receiver<bool>,
) {
    let key = conn.peer_key();
    let mut sessions = JoinSet::new();
    loop {
        let peer = PeerInfo::Grid {
            key: key.to_hex(),
            addr: conn.remote_addr(),
        };
        tokio::select! {
            stream = conn.accept_stream() => match stream {
                Ok(stream) => {
                    let server = server.clone();
                    sessions.spawn(async move { server.serve_conn(stream, peer).await });
                }
                Err(_) => break,
            },
            _ = known.removed(&key) => {
                conn.close(close::REMOVED, "peer removed");
                break;
            }
            _ = stop.wait_for(|stopped| *stopped) => {
                conn.close(close::SHUTDOWN, "server shutting down");
                break;
            }
            Some(_) = sessions.join_next(), if !sessions.is_empty() => {}
        }
    }
    // Dropping `sessions` aborts what is left; the connection is closed.
}

/// Dials grid `expected` at `addr` and starts a 9P session on a new
/// stream, with the default [`ninep_client::ClientConfig`] (9P2000.L).
pub async fn dial(
    endpoint: &Endpoint,
    addr: SocketAddr,
    expected: &PublicKey,
) -> Result<ninep_client::Client, Error> {
    dial_with(
        endpoint,
        addr,
        expected,
        ninep_client::ClientConfig::default(),
    )
    .await
}

/// [`dial`] with a chosen 9P client configuration. The whole dial,
/// handshake and Tversion, is bounded by the endpoint's handshake timeout.
pub async fn dial_with(
    endpoint: &Endpoint,
    addr: SocketAddr,
    expected: &PublicKey,
    config: ninep_client::ClientConfig,
) -> Result<ninep_client::Client, Error> {
    let conn = endpoint.connect(addr, expected, Alpn::NineP).await?;
    let after = endpoint.config().handshake_timeout;
    tokio::time::timeout(after, conn.open_9p(config))
        .await
        .map_err(|_| Error::Timeout { addr, after })?
}

impl Connection {
    /// Starts a 9P session on a new stream of this connection. The session
    /// keeps the connection open for as long as it lives.
    pub async fn open_9p(
        &self,
        config: ninep_client::ClientConfig,
    ) -> Result<ninep_client::Client, Error> {
        let stream = self.open_stream().await?;
        Ok(ninep_client::Client::connect(stream, config).await?)
    }
}

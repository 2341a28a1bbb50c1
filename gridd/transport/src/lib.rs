//! Grid-to-grid transport: QUIC with key-pinned mutual TLS, 9P sessions on
//! QUIC streams, and import(4) of a peer's tree.
//!
//! A grid is its Ed25519 key. Two grids talk QUIC (quinn, rustls with the
//! `ring` provider), each presenting a self-signed certificate for its key;
//! no CA and no host names are involved. The accepting side takes a client
//! only if its key is in [`KnownKeys`], the set the daemon keeps of its
//! peers; the dialing side takes a server only if its key is the one it
//! expected for that peer. Each 9P session is one bidirectional stream of
//! a connection whose ALPN is `grid-9p/1`, served by the unchanged
//! `ninep-server` core and spoken by the unchanged `ninep-client`.
//!
//! ```no_run
//! # async fn demo(key: ed25519_dalek::SigningKey, alice: grid_transport::PublicKey,
//! #     tree: std::sync::Arc<dyn ninep_server::Node>) -> Result<(), grid_transport::Error> {
//! use grid_transport::{Config, Endpoint, KnownKeys};
//!
//! let known = KnownKeys::new();
//! known.insert(alice, "alice");
//! let ep = Endpoint::bind("[::]:5640".parse().unwrap(), &key, known, Config::default())?;
//! let server = ninep_server::Server::for_tree(tree, Default::default());
//! tokio::spawn({
//!     let ep = ep.clone();
//!     async move { grid_transport::serve(&ep, server, std::future::pending()).await }
//! });
//! let client = grid_transport::dial(&ep, "192.0.2.7:5640".parse().unwrap(), &alice).await?;
//! let root = client.attach("me", "").await?;
//! # Ok(()) }
//! ```
//!
//! # Layout
//!
//! - [`key`]: [`PublicKey`] (hex, from a certificate) and the self-signed
//!   certificate built from a signing key.
//! - `verify`: [`KnownKeys`] and the two rustls verifiers (pinned server
//!   key; known client keys), TLS 1.3 and Ed25519 only.
//! - `endpoint`: [`Endpoint`] (one UDP socket, both dialing and accepting),
//!   [`Incoming`], [`Connection`], [`Stream`], [`Config`] and the QUIC
//!   transport tuning.
//! - `nine`: [`serve`] (9P sessions on accepted streams, with
//!   [`ninep_server::PeerInfo::Grid`]) and [`dial`].
//! - `overlay_check`: a connection whose remote address is on the
//!   Yggdrasil overlay must come from an address of the key it proved.
//! - [`import`]: [`RemoteTree`], a peer's tree as a local
//!   [`ninep_server::Node`] graph, with lazy connection, reconnect and
//!   backoff.
//!
//! # Not here
//!
//! The peers table, policies, pairing tokens, addresses from Yggdrasil or
//! mDNS, and the `/n` directory: the daemon owns those and hands this crate
//! keys, addresses and trees. This crate authenticates keys; what a key may
//! see is the serving side's policy, enforced by the tree it serves.

#![warn(missing_docs, unreachable_pub)]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
// Unit tests may unwrap: a panic there is a failed test, not a crash.
#![cfg_attr(
    test,
    allow(
        clippy::expect_used,
        clippy::unwrap_used,
        clippy::panic,
        clippy::err_expect
    )
)]

mod endpoint;
pub mod import;
pub mod key;
mod nine;
mod overlay_check;
mod verify;

use std::net::SocketAddr;
use std::time::Duration;

pub use endpoint::{Config, Connection, Endpoint, Incoming, Stream};
pub use import::{ImportConfig, ImportStatus, Peer, RemoteTree, Via};
pub use key::{KeyError, PublicKey};
pub use nine::{dial, dial_with, serve, serve_services, Services};
pub use verify::KnownKeys;

/// The protocols a grid connection can carry, by TLS ALPN. One connection
/// carries one of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Alpn {
    /// `grid-9p/1`: each bidirectional stream is one 9P session.
    NineP,
    /// `grid-pair/1`: pairing two grids (the only protocol an unknown key
    /// may speak, and only while [`KnownKeys::set_pairing`] is open).
    Pair,
    /// `grid-sync/1`: replication and gossip.
    Sync,
}

impl Alpn {
    /// Every protocol, in order of preference.
    pub const ALL: [Alpn; 3] = [Alpn::NineP, Alpn::Pair, Alpn::Sync];

    /// The ALPN identifier on the wire.
    pub fn as_bytes(self) -> &'static [u8] {
        match self {
            Alpn::NineP => b"grid-9p/1",
            Alpn::Pair => b"grid-pair/1",
            Alpn::Sync => b"grid-sync/1",
        }
    }

    /// The protocol named by an ALPN identifier.
    pub fn from_bytes(b: &[u8]) -> Option<Alpn> {
        Alpn::ALL.into_iter().find(|a| a.as_bytes() == b)
    }
}

impl std::fmt::Display for Alpn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&String::from_utf8_lossy(self.as_bytes()))
    }
}

/// Application close codes on grid connections.
pub mod close {
    /// A normal close.
    pub const DONE: u32 = 0;
    /// The key is not (or no longer) a known peer.
    pub const UNKNOWN_PEER: u32 = 1;
    /// The peer was removed while connected.
    pub const REMOVED: u32 = 2;
    /// Nothing here serves the connection's protocol.
    pub const NO_SERVICE: u32 = 3;
    /// The server is shutting down.
    pub const SHUTDOWN: u32 = 4;
}

/// Why a transport operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A key or certificate was refused.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The TLS configuration could not be built.
    #[error("tls: {0}")]
    Tls(#[from] rustls::Error),
    /// The UDP socket could not be set up.
    #[error("cannot bind {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The dial could not start (bad address, endpoint closed).
    #[error("cannot dial {addr}: {source}")]
    Dial {
        /// The address dialed.
        addr: SocketAddr,
        /// Why.
        source: quinn::ConnectError,
    },
    /// The handshake did not finish in time.
    #[error("no answer from {addr} within {after:?}")]
    Timeout {
        /// The peer's address.
        addr: SocketAddr,
        /// How long we waited.
        after: Duration,
    },
    /// The handshake failed: wrong or unknown key, no common protocol, or
    /// the connection was lost.
    #[error("handshake with {addr} failed: {source}")]
    Handshake {
        /// The peer's address.
        addr: SocketAddr,
        /// Why.
        source: quinn::ConnectionError,
    },
    /// An established connection failed.
    #[error("connection to {addr}: {source}")]
    Connection {
        /// The peer's address.
        addr: SocketAddr,
        /// Why.
        source: quinn::ConnectionError,
    },
    /// The peer finished the handshake without a usable certificate or
    /// protocol (cannot happen with our verifiers; checked anyway).
    #[error("peer {addr}: {what}")]
    Peer {
        /// The peer's address.
        addr: SocketAddr,
        /// What was missing.
        what: &'static str,
    },
    /// The key passed the handshake only because pairing was open, and
    /// asked for a protocol other than pairing.
    #[error("key {0} is not a known peer")]
    UnknownPeer(PublicKey),
    /// The 9P session on the stream failed.
    #[error("9P: {0}")]
    NineP(#[from] ninep_client::Error),
    /// A socket call failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

impl Error {
    /// Whether the failure was an authentication one: either side's
    /// verifier refused the other's key (a wrong key, an unknown key), as
    /// opposed to the peer being unreachable.
    pub fn is_authentication(&self) -> bool {
        let source = match self {
            Error::Handshake { source, .. } | Error::Connection { source, .. } => source,
            Error::UnknownPeer(_) | Error::Key(_) => return true,
            _ => return false,
        };
        match source {
            quinn::ConnectionError::TransportError(e) => is_crypto(e.code.into()),
            quinn::ConnectionError::ConnectionClosed(c) => is_crypto(c.error_code.into()),
            quinn::ConnectionError::ApplicationClosed(c) => {
                c.error_code == quinn::VarInt::from_u32(close::UNKNOWN_PEER)
            }
            _ => false,
        }
    }
}

impl Error {
    /// Whether our own verifier refused the peer: it presented a key other
    /// than the one we dialed it for (a wrong address, a forged invite, a
    /// man in the middle). Only the dialing side pins a key, so this is a
    /// dial's error.
    pub fn is_wrong_key(&self) -> bool {
        match self {
            // A locally detected TLS failure: our verifier's alert.
            Error::Handshake {
                source: quinn::ConnectionError::TransportError(e),
                ..
            }
            | Error::Connection {
                source: quinn::ConnectionError::TransportError(e),
                ..
            } => is_crypto(e.code.into()),
            _ => false,
        }
    }

    /// Whether the peer refused our key: its verifier sent a TLS alert, or
    /// it closed the connection as from an unknown peer. With TLS 1.3 a
    /// dial may succeed before the server has checked the client's
    /// certificate, so this can also arrive on an established connection.
    pub fn is_refused_by_peer(&self) -> bool {
        let source = match self {
            Error::Handshake { source, .. } | Error::Connection { source, .. } => source,
            _ => return false,
        };
        match source {
            quinn::ConnectionError::ConnectionClosed(c) => is_crypto(c.error_code.into()),
            quinn::ConnectionError::ApplicationClosed(c) => {
                c.error_code == quinn::VarInt::from_u32(close::UNKNOWN_PEER)
            }
            _ => false,
        }
    }
}

/// QUIC carries TLS alerts as transport codes 0x100-0x1ff (RFC 9001 §4.8).
fn is_crypto(code: u64) -> bool {
    (0x100..0x200).contains(&code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alpn_round_trips() {
        for a in Alpn::ALL {
            assert_eq!(Alpn::from_bytes(a.as_bytes()), Some(a));
        }
        assert_eq!(Alpn::from_bytes(b"h3"), None);
        assert_eq!(Alpn::NineP.to_string(), "grid-9p/1");
    }
}

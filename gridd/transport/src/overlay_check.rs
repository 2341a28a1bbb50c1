//! The overlay handshake check: a connection whose remote address is on
//! the Yggdrasil overlay (200::/7) must come from the key it proved.
//!
//! A grid's overlay node key is its grid key, so its overlay address is
//! derived from the key its TLS certificate carries. A peer that proves
//! key K but talks from an overlay address that is not K's (its node
//! address or an address in its routed /64) is not who the address says:
//! the connection is closed, both when we dial and when we accept.

use std::net::{IpAddr, SocketAddr};

use crate::{close, Error, PublicKey};

/// What the peer is told when the check fails.
const REASON: &str = "key does not match overlay address";

/// Whether a peer that proved `key` may talk from `remote`: always off
/// the overlay; on it, only from an address derived from `key`.
pub(crate) fn key_fits_address(remote: &SocketAddr, key: &PublicKey) -> bool {
    let ip = match remote.ip() {
        IpAddr::V6(ip) => ip,
        IpAddr::V4(_) => return true,
    };
    !grid_overlay::is_overlay(&ip) || grid_overlay::address_matches_key(&ip, key.as_bytes())
}

/// Closes `conn` with a clear reason if its peer's key does not fit its
/// overlay address.
pub(crate) fn enforce(conn: &quinn::Connection, key: &PublicKey) -> Result<(), Error> {
    let addr = conn.remote_address();
    if key_fits_address(&addr, key) {
        return Ok(());
    }
    conn.close(close::UNKNOWN_PEER.into(), REASON.as_bytes());
    Err(Error::Peer {
        addr,
        what: "its key does not derive to its Yggdrasil overlay address",
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv6Addr;

    fn key(byte: u8) -> PublicKey {
        let sk = ed25519_dalek::SigningKey::from_bytes(&[byte; 32]);
        PublicKey::of(&sk)
    }

    #[test]
    fn overlay_sources_must_be_their_keys() {
        let (a, b) = (key(1), key(2));
        let at = |ip: Ipv6Addr| SocketAddr::new(IpAddr::V6(ip), 5640);
        let addr_a = grid_overlay::address_for_key(a.as_bytes());
        assert!(key_fits_address(&at(addr_a), &a));
        assert!(!key_fits_address(&at(addr_a), &b), "b from a's address");
        // An address in a's routed /64 is a's too.
        let mut host = grid_overlay::subnet_for_key(a.as_bytes()).octets();
        host[15] = 9;
        assert!(key_fits_address(&at(Ipv6Addr::from(host)), &a));
        assert!(!key_fits_address(&at(Ipv6Addr::from(host)), &b));
        // Off the overlay the address proves nothing and is not checked.
        assert!(key_fits_address(&at(Ipv6Addr::LOCALHOST), &b));
        assert!(key_fits_address(&"10.0.0.1:5640".parse().expect("v4"), &b));
        assert!(key_fits_address(&at("fd77::1".parse().expect("ula")), &b));
    }
}

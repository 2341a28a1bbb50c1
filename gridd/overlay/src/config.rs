//! The yggdrasil daemon's configuration for a grid.
//!
//! The node key is the grid's own Ed25519 key, so the grid's overlay
//! address is derived from its grid key. Both 0.4 and 0.5 read HJSON,
//! of which JSON is a subset, and take `PrivateKey` as the hex of the
//! 64-byte Ed25519 private key: the 32-byte seed, then the public key.
//!
//! One config serves both versions (checked with real 0.4.7 and 0.5.12
//! daemons): 0.5 ignores `PublicKey`, which 0.4 reads; 0.5's
//! `MulticastInterfaces` entries also take a `Password`, left out here
//! (no password, as in 0.4); every other key written here means the same
//! in both. 0.5 also reads `PrivateKeyPath` (the key from a PEM file),
//! which 0.4 lacks and which is not written.

use ed25519_dalek::SigningKey;
use serde::Serialize;
use std::net::Ipv6Addr;

/// A yggdrasil config. Fields not set here keep the daemon's defaults.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct YggConfig {
    /// Hex of seed || public key.
    private_key: String,
    /// Hex of the public key (0.4 reads it; 0.5 ignores it).
    public_key: String,
    /// Peers to dial, as URIs: `tcp://10.0.0.2:7000`, `tls://…`.
    pub peers: Vec<String>,
    /// Addresses to listen on for peers: `tcp://0.0.0.0:7000`.
    pub listen: Vec<String>,
    /// The admin socket: `unix:///run/yggdrasil.sock`,
    /// `tcp://localhost:9001`, or `none`.
    pub admin_listen: String,
    /// The TUN interface name, `auto`, or `none` (no TUN: routing only).
    pub if_name: String,
    /// The TUN MTU.
    #[serde(rename = "IfMTU")]
    pub if_mtu: u32,
    /// Multicast (LAN) peer discovery; empty turns it off.
    pub multicast_interfaces: Vec<MulticastInterface>,
    /// Only these keys may peer with us; empty allows any.
    pub allowed_public_keys: Vec<String>,
    /// Whether to hide the build details in NodeInfo.
    pub node_info_privacy: bool,
    #[serde(skip)]
    key: [u8; 32],
}

/// One `MulticastInterfaces` entry.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct MulticastInterface {
    /// Interfaces whose name matches this regular expression.
    pub regex: String,
    /// Send beacons.
    pub beacon: bool,
    /// Listen for beacons and accept peerings.
    pub listen: bool,
    /// The TCP port for peerings found this way (0: any).
    pub port: u16,
}

impl YggConfig {
    /// A config whose node key is `key`: no peers, no listeners, no
    /// multicast, admin socket off, TUN named by the daemon.
    pub fn for_key(key: &SigningKey) -> YggConfig {
        YggConfig {
            private_key: hex(&key.to_keypair_bytes()),
            public_key: hex(key.verifying_key().as_bytes()),
            peers: Vec::new(),
            listen: Vec::new(),
            admin_listen: "none".to_owned(),
            if_name: "auto".to_owned(),
            if_mtu: 65535,
            multicast_interfaces: Vec::new(),
            allowed_public_keys: Vec::new(),
            node_info_privacy: true,
            key: key.verifying_key().to_bytes(),
        }
    }

    /// The same, from the key's 32-byte seed.
    pub fn for_seed(seed: &[u8; 32]) -> YggConfig {
        Self::for_key(&SigningKey::from_bytes(seed))
    }

    /// The node's public key.
    pub fn public_key(&self) -> [u8; 32] {
        self.key
    }

    /// The overlay address the daemon will take with this config.
    pub fn address(&self) -> Ipv6Addr {
        crate::address_for_key(&self.public_key())
    }

    /// The config as the daemon reads it (`-useconffile`, or `-useconf`
    /// on stdin).
    pub fn to_json(&self) -> String {
        // Serializing plain strings, numbers and vectors cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_is_seed_then_public_and_address_follows() {
        let seed = [7u8; 32];
        let cfg = YggConfig::for_seed(&seed);
        let json: serde_json::Value = serde_json::from_str(&cfg.to_json()).expect("json");
        let sk = json["PrivateKey"].as_str().expect("PrivateKey");
        assert_eq!(sk.len(), 128);
        assert_eq!(&sk[..64], hex(&seed));
        assert_eq!(&sk[64..], json["PublicKey"].as_str().expect("PublicKey"));
        assert_eq!(json["IfMTU"], 65535);
        assert_eq!(json["MulticastInterfaces"], serde_json::json!([]));
        let pk = SigningKey::from_bytes(&seed).verifying_key().to_bytes();
        assert_eq!(cfg.public_key(), pk);
        assert_eq!(cfg.address(), crate::address_for_key(&pk));
    }
}

//! Overlay addresses from keys, as Yggdrasil derives them.
//!
//! Invert the 32-byte Ed25519 public key, count its leading one bits
//! (`ones`), drop them and the zero bit that ends them, and pack the
//! remaining bits after two bytes: the prefix (`0x02` for a node address
//! in 200::/8, `0x03` for its routed /64 in 300::/8) and `ones`. A key
//! with more leading zero bits gets a "higher" address, which is how
//! Yggdrasil makes address squatting expensive. The count is a byte, so
//! the all-zero key (256 ones) wraps to 0, as the daemon's does.
//!
//! The derivation is a hash-like one-way map that keeps only the first
//! ~112 bits after the ones: an address does not give back its key, so
//! check a claimed key against an address with [`address_matches_key`].

use std::net::Ipv6Addr;

/// The first byte of a node address (200::/8, inside Yggdrasil's 200::/7).
const ADDR_PREFIX: u8 = 0x02;
/// The first byte of a node's routed subnet (300::/8).
const SUBNET_PREFIX: u8 = 0x03;

/// The Yggdrasil node address (in 200::/7) for an Ed25519 public key.
pub fn address_for_key(key: &[u8; 32]) -> Ipv6Addr {
    Ipv6Addr::from(derive(key, ADDR_PREFIX))
}

/// The Yggdrasil /64 subnet routed to the node with this key: its
/// network address (the prefix length is always 64).
pub fn subnet_for_key(key: &[u8; 32]) -> Ipv6Addr {
    let full = derive(key, SUBNET_PREFIX);
    let mut net = [0u8; 16];
    net[..8].copy_from_slice(&full[..8]);
    Ipv6Addr::from(net)
}

/// Whether `addr` is the overlay address of `key`, or an address in the
/// key's routed /64 subnet. This is how a peer's overlay source address
/// and the key it proved in a handshake authenticate each other.
pub fn address_matches_key(addr: &Ipv6Addr, key: &[u8; 32]) -> bool {
    if *addr == address_for_key(key) {
        return true;
    }
    let octets = addr.octets();
    octets[0] == SUBNET_PREFIX && octets[..8] == subnet_for_key(key).octets()[..8]
}

/// Whether `addr` is in Yggdrasil's 200::/7 (a node address or a subnet
/// address).
pub fn is_overlay(addr: &Ipv6Addr) -> bool {
    addr.octets()[0] & 0xfe == ADDR_PREFIX
}

fn derive(key: &[u8; 32], prefix: u8) -> [u8; 16] {
    let mut out = [0u8; 16];
    out[0] = prefix;
    let mut ones: u8 = 0;
    let mut counting = true;
    // Bits after the ones and their terminating zero, packed from out[2].
    let mut pos = 16; // bit index into `out`
    for i in 0..256 {
        let bit = (!key[i / 8] >> (7 - i % 8)) & 1;
        if counting {
            if bit == 1 {
                ones = ones.wrapping_add(1);
            } else {
                counting = false;
            }
            continue;
        }
        if pos >= 128 {
            break;
        }
        out[pos / 8] |= bit << (7 - pos % 8);
        pos += 1;
    }
    out[1] = ones;
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(hex: &str) -> [u8; 32] {
        let mut k = [0u8; 32];
        for (i, b) in k.iter_mut().enumerate() {
            *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).expect("hex");
        }
        k
    }

    /// (public key, `yggdrasil -address`, `yggdrasil -subnet`), from the
    /// Debian 12 daemon 0.4.7: keys from `yggdrasil -genconf`, and chosen
    /// keys put in a config's PrivateKey (whose second half is the public
    /// key).
    const VECTORS: &[(&str, &str, &str)] = &[
        (
            "2ab497b8982ce61c6b7593b8d5246aaa577f482ba214dce13ce9e4b2ec531dc7",
            "202:aa5b:423b:3e98:cf1c:a453:6239:56dc",
            "302:aa5b:423b:3e98::",
        ),
        (
            "f5fdda2befc479fb745e0fc85a0157c9559d10127bf5def2d22ac1c9190497eb",
            "200:1404:4ba8:2077:c09:1743:e06f:4bfd",
            "300:1404:4ba8:2077::",
        ),
        (
            "e1b6b6b3dbbb76ff07e9c50249154c2d810244ec961359198e3d325aba5070f5",
            "200:3c92:9298:4889:1201:f02c:75fb:6dd5",
            "300:3c92:9298:4889::",
        ),
        (
            "4d0c1164f218cd29265288068f8ec6b5885267bb1630066bf9ecad2c297003c6",
            "201:cbcf:ba6c:379c:cb5b:66b5:dfe5:c1c4",
            "301:cbcf:ba6c:379c::",
        ),
        (
            "b4bbb67f09103ac5eba2eea15a795f8c72c80d2234b3954d4a8081f34a8bc75d",
            "200:9688:9301:eddf:8a74:28ba:22bd:4b0d",
            "300:9688:9301:eddf::",
        ),
        (
            "fc13300ba05f2dfef4f8e221e8e8096c496686aaf5833a5a8f18240221ed6f84",
            "200:7d9:9fe8:bf41:a402:160e:3bbc:2e2f",
            "300:7d9:9fe8:bf41::",
        ),
        (
            "0000000000000000000000000000000000000000000000000000000000000000",
            "200::",
            "300::",
        ),
        (
            "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
            "200::",
            "300::",
        ),
        (
            "7f00000000000000000000000000000000000000000000000000000000000000",
            "201:3ff:ffff:ffff:ffff:ffff:ffff:ffff",
            "301:3ff:ffff:ffff::",
        ),
        (
            "00ff111111111111111111111111111111111111111111111111111111111111",
            "208:1dd:dddd:dddd:dddd:dddd:dddd:dddd",
            "308:1dd:dddd:dddd::",
        ),
        (
            "0123456789abcdeffedcba98765432100123456789abcdeffedcba9876543210",
            "207:dcba:9876:5432:1001:2345:6789:abcd",
            "307:dcba:9876:5432::",
        ),
        (
            "e7f91e8584ed5ec6f263438e5a6eae0f1df64f95aa9d788eb8197e4fb846c64c",
            "200:300d:c2f4:f625:4272:1b39:78e3:4b22",
            "300:300d:c2f4:f625::",
        ),
    ];

    #[test]
    fn matches_the_daemon() {
        for (k, addr, subnet) in VECTORS {
            let k = key(k);
            assert_eq!(
                address_for_key(&k).to_string(),
                *addr,
                "address of {k:02x?}"
            );
            assert_eq!(
                subnet_for_key(&k).to_string(),
                *subnet,
                "subnet of {k:02x?}"
            );
        }
    }

    #[test]
    fn addresses_match_only_their_key() {
        let a = key(VECTORS[0].0);
        let b = key(VECTORS[1].0);
        let addr_a = address_for_key(&a);
        assert!(address_matches_key(&addr_a, &a));
        assert!(!address_matches_key(&addr_a, &b));
        let mut host = subnet_for_key(&a).octets();
        host[15] = 7;
        assert!(address_matches_key(&Ipv6Addr::from(host), &a));
        assert!(!address_matches_key(&Ipv6Addr::from(host), &b));
        assert!(is_overlay(&addr_a) && is_overlay(&Ipv6Addr::from(host)));
        assert!(!is_overlay(&Ipv6Addr::LOCALHOST));
        // A subnet address is not a node address: 0x02 prefixes never match
        // by /64 alone.
        let mut near = addr_a.octets();
        near[15] ^= 1;
        assert!(!address_matches_key(&Ipv6Addr::from(near), &a));
    }
}

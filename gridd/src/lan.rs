//! LAN discovery of other grids with mDNS/DNS-SD (gridfs(4): `/net/lan`;
//! grid.toml(5): `[lan]`).
//!
//! When `[lan] discover = true` and at least one QUIC listener is not
//! loopback-only, gridd advertises one `_grid._udp.local.` service per such
//! listener (instance name: the grid name; port: the QUIC port; TXT
//! `key=HEX`, `name=NAME`, `v=1`) and browses for the same service type. The
//! grids it sees, but itself, are kept in a [`LanTable`], by key, and served
//! as `/net/lan`. mdns-sd expires an instance when its records' TTL runs out
//! or its goodbye packet arrives; gridd sends goodbyes when it stops.
//!
//! An announcement is not authenticated: anyone on the LAN can claim any
//! key and any name. So what is learned here is only ever a hint where to
//! dial a key that is already a peer (`peers::Peers::dial_info`, `/n/NAME`);
//! the QUIC handshake still proves the key, and nothing here adds a peer,
//! names one, or changes what one may do.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr, SocketAddrV6};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use grid_transport::PublicKey;
use mdns_sd::{IfKind, ResolvedService, ScopedIp, ServiceDaemon, ServiceEvent, ServiceInfo};
use ninep::Addr;
use ninep_server::synth::TextFile;
use ninep_server::Node;

use crate::peers::Peers;

/// The DNS-SD service type grids advertise: QUIC, over UDP.
pub const SERVICE: &str = "_grid._udp.local.";
/// The TXT `v` this version writes and reads.
pub const VERSION: &str = "1";
/// At most this many announcements are kept: a noisy LAN cannot grow the
/// table without bound.
const MAX_INSTANCES: usize = 256;
/// At most this many addresses are kept per announcement.
const MAX_ADDRS: usize = 16;
/// How long stopping waits for mdns-sd to send its goodbyes.
const GOODBYE_WAIT: Duration = Duration::from_secs(1);

/// One announcement, checked: a grid's claimed key and name, and where it
/// says it listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announcement {
    /// The key it claims (TXT `key`).
    pub key: PublicKey,
    /// The grid name it claims (TXT `name`).
    pub name: String,
    /// Where to dial it.
    pub addrs: BTreeSet<SocketAddr>,
}

/// Why an announcement is ignored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadAnnouncement {
    /// A TXT field is missing.
    #[error("no TXT '{0}'")]
    Missing(&'static str),
    /// The TXT `v` is not one this version reads.
    #[error("version '{0}' is not {VERSION}")]
    Version(String),
    /// The TXT `key` is not a usable Ed25519 key.
    #[error("{0}")]
    Key(String),
    /// The TXT `name` is not a grid name.
    #[error("bad name '{0}'")]
    Name(String),
    /// Port 0, or no address a LAN grid can be dialed at.
    #[error("no address to dial")]
    NoAddress,
}

/// Checks a resolved `_grid._udp` service. Anything missing or malformed
/// makes the whole announcement ignored.
pub fn parse_announcement(r: &ResolvedService) -> Result<Announcement, BadAnnouncement> {
    let txt = |k: &'static str| {
        r.get_property_val_str(k)
            .filter(|v| !v.is_empty())
            .ok_or(BadAnnouncement::Missing(k))
    };
    let v = txt("v")?;
    if v != VERSION {
        return Err(BadAnnouncement::Version(v.chars().take(16).collect()));
    }
    let key: PublicKey = txt("key")?
        .parse()
        .map_err(|e: grid_transport::KeyError| BadAnnouncement::Key(e.to_string()))?;
    let name = txt("name")?;
    if grid_policy::check_name(name).is_err() {
        return Err(BadAnnouncement::Name(name.chars().take(64).collect()));
    }
    let port = r.get_port();
    let addrs: BTreeSet<SocketAddr> = if port == 0 {
        BTreeSet::new()
    } else {
        r.get_addresses()
            .iter()
            .filter_map(|ip| dialable(ip, port))
            .take(MAX_ADDRS)
            .collect()
    };
    if addrs.is_empty() {
        return Err(BadAnnouncement::NoAddress);
    }
    Ok(Announcement {
        key,
        name: name.to_owned(),
        addrs,
    })
}

/// The socket address to dial `ip` at, if it is one a LAN grid can have:
/// never loopback, unspecified or multicast (a LAN announcement must not
/// point gridd at this host's own services), and IPv6 link-local only with
/// the interface it was heard on.
fn dialable(ip: &ScopedIp, port: u16) -> Option<SocketAddr> {
    let addr = ip.to_ip_addr();
    if addr.is_loopback() || addr.is_unspecified() || addr.is_multicast() {
        return None;
    }
    match ip {
        ScopedIp::V6(v6) if v6.addr().is_unicast_link_local() => {
            let scope = v6.scope_id().index;
            (scope != 0).then(|| SocketAddr::V6(SocketAddrV6::new(*v6.addr(), port, 0, scope)))
        }
        _ => match addr {
            IpAddr::V4(v4) if v4.is_broadcast() => None,
            _ => Some(SocketAddr::new(addr, port)),
        },
    }
}

/// A grid seen on the LAN: every announcement with its key, merged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    /// Its key.
    pub key: PublicKey,
    /// The name it gives itself (of its latest announcement).
    pub name: String,
    /// Every address it announced, in order.
    pub addrs: Vec<SocketAddr>,
    /// When an announcement of it was last resolved.
    pub last_seen: Instant,
}

#[derive(Default)]
struct TableInner {
    /// Announcements by instance (the lowercased DNS-SD full name).
    instances: BTreeMap<String, (Announcement, Instant)>,
}

impl TableInner {
    /// Every address announced with `key`, in order.
    fn addrs_of(&self, key: &PublicKey) -> BTreeSet<SocketAddr> {
        self.instances
            .values()
            .filter(|(a, _)| a.key == *key)
            .flat_map(|(a, _)| a.addrs.iter().copied())
            .collect()
    }
}

/// The grids seen on the LAN. Empty while discovery is off.
#[derive(Default)]
pub struct LanTable {
    inner: Mutex<TableInner>,
}

impl LanTable {
    /// An empty table.
    pub fn new() -> LanTable {
        LanTable::default()
    }

    fn lock(&self) -> MutexGuard<'_, TableInner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records the announcement of `instance`, replacing its last one.
    /// Returns whether its key is new to the table (or has new addresses).
    pub fn announce(&self, instance: &str, ann: Announcement) -> bool {
        let mut t = self.lock();
        let instance = instance.to_lowercase();
        if !t.instances.contains_key(&instance) && t.instances.len() >= MAX_INSTANCES {
            return false;
        }
        let changed = !ann.addrs.is_subset(&t.addrs_of(&ann.key));
        t.instances.insert(instance, (ann, Instant::now()));
        changed
    }

    /// Forgets `instance` (its goodbye arrived, or its records expired).
    pub fn remove(&self, instance: &str) {
        self.lock().instances.remove(&instance.to_lowercase());
    }

    /// Forgets everything (discovery stopped).
    pub fn clear(&self) {
        self.lock().instances.clear();
    }

    /// The grids seen, by key.
    pub fn grids(&self) -> Vec<Seen> {
        let t = self.lock();
        let mut by_key: BTreeMap<PublicKey, Seen> = BTreeMap::new();
        for (ann, at) in t.instances.values() {
            let seen = by_key.entry(ann.key).or_insert_with(|| Seen {
                key: ann.key,
                name: ann.name.clone(),
                addrs: Vec::new(),
                last_seen: *at,
            });
            if *at >= seen.last_seen {
                seen.name = ann.name.clone();
                seen.last_seen = *at;
            }
            seen.addrs.extend(ann.addrs.iter().copied());
        }
        let mut grids: Vec<Seen> = by_key.into_values().collect();
        for g in &mut grids {
            g.addrs.sort();
            g.addrs.dedup();
        }
        grids.sort_by(|a, b| (&a.name, a.key).cmp(&(&b.name, b.key)));
        grids
    }

    /// Where the grid with `key` was seen; empty when it was not.
    pub fn addrs_of(&self, key: &PublicKey) -> Vec<SocketAddr> {
        self.lock().addrs_of(key).into_iter().collect()
    }

    /// The text of `/net/lan`: `NAME KEY quic!ADDR!PORT... [peer NAME]`,
    /// one line per grid; `peer_of` names the peer a key is, if any.
    pub fn text(&self, peer_of: impl Fn(&PublicKey) -> Option<String>) -> String {
        let mut out = String::new();
        for g in self.grids() {
            out.push_str(&g.name);
            out.push(' ');
            out.push_str(&g.key.to_hex());
            for a in &g.addrs {
                out.push(' ');
                out.push_str(&dial_string(a));
            }
            if let Some(peer) = peer_of(&g.key) {
                out.push_str(" peer ");
                out.push_str(&peer);
            }
            out.push('\n');
        }
        out
    }
}

/// `quic!HOST!PORT` for a socket address; an IPv6 scope is kept as
/// `%INDEX`, which `Addr` parsing and dialing accept.
fn dial_string(a: &SocketAddr) -> String {
    let host = match a {
        SocketAddr::V4(v4) => v4.ip().to_string(),
        SocketAddr::V6(v6) if v6.scope_id() != 0 => format!("{}%{}", v6.ip(), v6.scope_id()),
        SocketAddr::V6(v6) => v6.ip().to_string(),
    };
    Addr::Quic {
        host,
        port: a.port(),
    }
    .to_string()
}

/// `/net/lan`: the grids seen on the LAN, each marked with the peer it is.
pub fn lan_file(peers: &Arc<Peers>) -> Arc<dyn Node> {
    let peers = peers.clone();
    Arc::new(TextFile::new(move || {
        peers.lan().text(|key| peers.name_of(key))
    }))
}

/// Who this grid is, for its announcements.
#[derive(Debug, Clone)]
pub struct Me {
    /// The grid name.
    pub name: String,
    /// Its key.
    pub key: PublicKey,
}

/// The services to advertise for QUIC listeners bound at `bound`: one per
/// listener that is not loopback-only. Empty when there is nothing to
/// advertise (then discovery does not run at all).
pub fn adverts(me: &Me, bound: &[SocketAddr]) -> Vec<ServiceInfo> {
    let listeners: Vec<&SocketAddr> = bound.iter().filter(|a| !a.ip().is_loopback()).collect();
    let host = format!("grid-{}.local.", &me.key.to_hex()[..16]);
    let props = [
        ("key", me.key.to_hex()),
        ("name", me.name.clone()),
        ("v", VERSION.to_owned()),
    ];
    let mut out = Vec::new();
    for a in &listeners {
        // Several listeners need several instance names; one keeps the
        // grid's own.
        let instance = if listeners.len() == 1 {
            me.name.clone()
        } else {
            format!("{} {}", me.name, a.port())
        };
        let ip = a.ip();
        let info = if ip.is_unspecified() {
            ServiceInfo::new(SERVICE, &instance, &host, (), a.port(), &props[..]).map(|info| {
                // Every address of every (non-loopback) interface, of the
                // listener's family; a [::] socket takes IPv4 too.
                let mut info = info.enable_addr_auto();
                info.set_interfaces(vec![if ip.is_ipv4() {
                    IfKind::IPv4
                } else {
                    IfKind::All
                }]);
                info
            })
        } else {
            ServiceInfo::new(SERVICE, &instance, &host, ip, a.port(), &props[..]).map(|mut info| {
                info.set_interfaces(vec![IfKind::Addr(ip)]);
                info
            })
        };
        match info {
            Ok(info) => out.push(info),
            Err(e) => eprintln!("gridd: lan: cannot advertise {a}: {e}"),
        }
    }
    out
}

/// Discovery at work: the mDNS responder and browser. Dropping it without
/// [`Lan::stop`] leaves the announcements to expire by their TTL.
pub struct Lan {
    daemon: ServiceDaemon,
    table: Arc<LanTable>,
}

impl Lan {
    /// Starts advertising the QUIC listeners bound at `bound` (see
    /// [`adverts`]) and browsing for other grids into `table`; `on_new` is
    /// called with a key that appears (or shows new addresses). Returns
    /// `None` when there is nothing to advertise. Never fails gridd: when
    /// mDNS cannot run here (no multicast, no socket), it says so once and
    /// returns `None`.
    pub fn start(
        me: &Me,
        bound: &[SocketAddr],
        table: Arc<LanTable>,
        on_new: impl Fn(PublicKey) + Send + 'static,
    ) -> Option<Lan> {
        let services = adverts(me, bound);
        if services.is_empty() {
            return None;
        }
        // IPv4 listeners alone cannot use what IPv6 would find.
        let ipv6 = bound.iter().any(|a| a.is_ipv6() && !a.ip().is_loopback());
        let daemon = match start_daemon(ipv6) {
            Ok(d) => d,
            Err(e) => {
                eprintln!("gridd: lan: discovery off: {e}");
                return None;
            }
        };
        for info in services {
            let name = info.get_fullname().to_owned();
            if let Err(e) = daemon.register(info) {
                eprintln!("gridd: lan: cannot advertise {name}: {e}");
            }
        }
        let events = match daemon.browse(SERVICE) {
            Ok(rx) => rx,
            Err(e) => {
                eprintln!("gridd: lan: cannot browse: {e}");
                let _ = daemon.shutdown();
                return None;
            }
        };
        let own = me.key;
        let t = table.clone();
        tokio::spawn(async move {
            while let Ok(event) = events.recv_async().await {
                handle(&t, own, event, &on_new);
            }
        });
        eprintln!("gridd: lan: advertising {SERVICE} and browsing");
        Some(Lan { daemon, table })
    }

    /// Sends goodbyes (so the other grids drop this one at once) and stops;
    /// waits for that at most a second.
    pub async fn stop(self) {
        if let Ok(done) = self.daemon.shutdown() {
            let _ = tokio::time::timeout(GOODBYE_WAIT, done.recv_async()).await;
        }
        self.table.clear();
    }
}

fn start_daemon(ipv6: bool) -> Result<ServiceDaemon, mdns_sd::Error> {
    let daemon = ServiceDaemon::new()?;
    // Loopback-only grids are not advertised, and nothing is learned from
    // this host's own loopback.
    daemon.disable_interface(vec![IfKind::LoopbackV4, IfKind::LoopbackV6])?;
    if !ipv6 {
        daemon.disable_interface(IfKind::IPv6)?;
    }
    Ok(daemon)
}

/// Applies one browse event to the table.
fn handle(table: &LanTable, own: PublicKey, event: ServiceEvent, on_new: &impl Fn(PublicKey)) {
    match event {
        ServiceEvent::ServiceResolved(r) => match parse_announcement(&r) {
            Ok(ann) if ann.key == own => {}
            Ok(ann) => {
                let key = ann.key;
                if table.announce(r.get_fullname(), ann) {
                    on_new(key);
                }
            }
            // Ignored: anything on the LAN may announce anything.
            Err(_) => table.remove(r.get_fullname()),
        },
        ServiceEvent::ServiceRemoved(_, fullname) => table.remove(&fullname),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "3b6a27bcceb6a42d62a3a8d02a6f0d73653215771de243a63ac048a18b59da29";

    fn resolved(props: &[(&str, &str)], ips: &str, port: u16) -> ResolvedService {
        ServiceInfo::new(SERVICE, "pi", "pi.local.", ips, port, props)
            .expect("service info")
            .as_resolved_service()
    }

    fn good() -> Vec<(&'static str, &'static str)> {
        vec![("key", KEY), ("name", "pi"), ("v", "1")]
    }

    #[test]
    fn a_good_announcement_parses() {
        let a =
            parse_announcement(&resolved(&good(), "192.168.1.7,10.0.0.2", 5641)).expect("parses");
        assert_eq!(a.key.to_hex(), KEY);
        assert_eq!(a.name, "pi");
        let addrs: Vec<String> = a.addrs.iter().map(ToString::to_string).collect();
        assert_eq!(addrs, ["10.0.0.2:5641", "192.168.1.7:5641"]);
    }

    #[test]
    fn bad_or_missing_fields_are_ignored() {
        let with = |k: &'static str, v: &'static str| {
            let mut p = good();
            p.retain(|(pk, _)| *pk != k);
            if !v.is_empty() {
                p.push((k, v));
            }
            parse_announcement(&resolved(&p, "192.168.1.7", 5641))
        };
        assert_eq!(with("key", ""), Err(BadAnnouncement::Missing("key")));
        assert!(matches!(with("key", "12"), Err(BadAnnouncement::Key(_))));
        // 64 hex digits, but not a usable key (all zero: a weak point).
        let zero: &'static str = Box::leak("0".repeat(64).into_boxed_str());
        assert!(matches!(with("key", zero), Err(BadAnnouncement::Key(_))));
        assert!(matches!(
            with(
                "key",
                "zz6a27bcceb6a42d62a3a8d02a6f0d73653215771de243a63ac048a18b59da29"
            ),
            Err(BadAnnouncement::Key(_))
        ));
        assert_eq!(with("name", ""), Err(BadAnnouncement::Missing("name")));
        assert!(matches!(
            with("name", "../etc"),
            Err(BadAnnouncement::Name(_))
        ));
        assert!(matches!(with("name", "a b"), Err(BadAnnouncement::Name(_))));
        assert_eq!(with("v", ""), Err(BadAnnouncement::Missing("v")));
        assert_eq!(with("v", "2"), Err(BadAnnouncement::Version("2".into())));
    }

    #[test]
    fn only_lan_addresses_are_kept() {
        let p = good();
        for ips in [
            "127.0.0.1",
            "0.0.0.0",
            "224.0.0.251",
            "255.255.255.255",
            "::1",
            "",
        ] {
            assert_eq!(
                parse_announcement(&resolved(&p, ips, 5641)),
                Err(BadAnnouncement::NoAddress),
                "{ips}"
            );
        }
        // Link-local IPv6 with no interface cannot be dialed.
        assert_eq!(
            parse_announcement(&resolved(&p, "fe80::1", 5641)),
            Err(BadAnnouncement::NoAddress)
        );
        assert_eq!(
            parse_announcement(&resolved(&p, "192.168.1.7", 0)),
            Err(BadAnnouncement::NoAddress)
        );
        let a = parse_announcement(&resolved(&p, "127.0.0.1,fd00::7", 9)).expect("one left");
        let addrs: Vec<String> = a.addrs.iter().map(ToString::to_string).collect();
        assert_eq!(addrs, ["[fd00::7]:9"]);
    }

    #[test]
    fn the_table_merges_by_key_and_forgets_removed_instances() {
        let t = LanTable::new();
        let key: PublicKey = KEY.parse().expect("key");
        let ann = |name: &str, addr: &str| Announcement {
            key,
            name: name.into(),
            addrs: [addr.parse().expect("addr")].into(),
        };
        assert!(t.announce("pi._grid._udp.local.", ann("pi", "10.0.0.2:5641")));
        assert!(!t.announce("pi._grid._udp.local.", ann("pi", "10.0.0.2:5641")));
        assert!(t.announce("Pi 9._grid._udp.local.", ann("pi", "10.0.0.3:9")));
        assert_eq!(t.grids().len(), 1);
        assert_eq!(t.addrs_of(&key).len(), 2);
        let text = t.text(|_| Some("bob".into()));
        assert_eq!(
            text,
            format!("pi {KEY} quic!10.0.0.2!5641 quic!10.0.0.3!9 peer bob\n")
        );
        t.remove("pi 9._grid._udp.local.");
        assert_eq!(t.addrs_of(&key).len(), 1);
        t.remove("pi._grid._udp.local.");
        assert!(t.grids().is_empty());
        assert_eq!(t.text(|_| None), "");
    }

    #[test]
    fn own_announcements_and_bad_ones_stay_out_of_the_table() {
        let t = LanTable::new();
        let own: PublicKey = KEY.parse().expect("key");
        let seen = std::cell::Cell::new(0);
        let on_new = |_| seen.set(seen.get() + 1);
        let r = resolved(&good(), "10.0.0.2", 5641);
        handle(&t, own, ServiceEvent::ServiceResolved(Box::new(r)), &on_new);
        assert!(t.grids().is_empty());
        let r = resolved(&[("key", KEY)], "10.0.0.2", 5641);
        handle(&t, own, ServiceEvent::ServiceResolved(Box::new(r)), &on_new);
        assert!(t.grids().is_empty());
        assert_eq!(seen.get(), 0);
    }

    #[test]
    fn a_peer_without_addresses_is_dialed_where_the_lan_saw_its_key() {
        let peers = Peers::new(BTreeMap::new());
        let key: PublicKey = KEY.parse().expect("key");
        let cfg = crate::config::PeerConfig {
            key,
            addrs: Vec::new(),
            offer: grid_policy::Policy::none(),
            request: grid_policy::Policy::none(),
            groups: Vec::new(),
        };
        peers.add("bob", cfg.clone()).expect("add");
        assert_eq!(peers.dial_info("bob"), Some((key, Vec::new())));
        let seen: SocketAddr = "10.0.0.2:5641".parse().expect("addr");
        let ann = Announcement {
            key,
            name: "robert".into(),
            addrs: [seen].into(),
        };
        peers.lan().announce("robert._grid._udp.local.", ann);
        assert_eq!(peers.dial_info("bob"), Some((key, vec![seen])));
        let text = peers.lan().text(|k| peers.name_of(k));
        assert!(text.ends_with(" peer bob\n"), "{text}");

        // Configured addresses win: the LAN is only a fallback.
        peers.remove("bob").expect("rm");
        let typed = crate::config::parse_peer_addr("quic!10.0.0.9!1").expect("addr");
        peers
            .add(
                "bob",
                crate::config::PeerConfig {
                    addrs: vec![typed],
                    ..cfg
                },
            )
            .expect("add");
        let want: SocketAddr = "10.0.0.9:1".parse().expect("addr");
        assert_eq!(peers.dial_info("bob"), Some((key, vec![want])));
    }

    #[test]
    fn loopback_only_listeners_advertise_nothing() {
        let me = Me {
            name: "pi".into(),
            key: KEY.parse().expect("key"),
        };
        let lo: Vec<SocketAddr> = vec![
            "127.0.0.1:5641".parse().expect("a"),
            "[::1]:9".parse().expect("a"),
        ];
        assert!(adverts(&me, &lo).is_empty());
        let any: Vec<SocketAddr> = vec!["0.0.0.0:5641".parse().expect("a")];
        let ads = adverts(&me, &any);
        assert_eq!(ads.len(), 1);
        assert_eq!(ads[0].get_fullname(), "pi._grid._udp.local.");
        assert_eq!(ads[0].get_port(), 5641);
        assert_eq!(ads[0].get_property_val_str("key"), Some(KEY));
        assert_eq!(ads[0].get_property_val_str("v"), Some("1"));
        let two: Vec<SocketAddr> = vec![
            "10.0.0.2:5641".parse().expect("a"),
            "127.0.0.1:1".parse().expect("a"),
            "10.0.0.2:5642".parse().expect("a"),
        ];
        let names: Vec<String> = adverts(&me, &two)
            .iter()
            .map(|i| i.get_fullname().to_owned())
            .collect();
        assert_eq!(
            names,
            ["pi 5641._grid._udp.local.", "pi 5642._grid._udp.local."]
        );
    }
}

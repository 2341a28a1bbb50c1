//! A client for the yggdrasil admin socket.
//!
//! One JSON request per connection: `{"request": NAME, "arguments": {…}}`,
//! answered by `{"status": "success", "response": {…}}` or
//! `{"status": "error", "error": "…"}`, then the daemon closes. Command
//! names are case-insensitive (`getSelf` = `getself`) in 0.4 and 0.5.
//! The replies are input: every field is checked, nothing is unwrapped.
//!
//! Tested against real daemons: 0.4.7 (Debian 12) and 0.5.12
//! (bookworm-backports), by the netns tests in `grid-tests` and by the
//! verbatim replies below. 0.5's `getSelf` has `routing_entries` instead
//! of `coords`; its `getPeers` also lists configured peers whose link is
//! down (`"up": false`, an empty `key`, `last_error`), and adds
//! `inbound`, `cost`, `latency` and rates. `addPeer`/`removePeer` take
//! the same `uri`/`interface` arguments in both.

use std::net::Ipv6Addr;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::{json, Map, Value};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The most a reply may be (a big node's getPeers is a few KB).
const MAX_REPLY: u64 = 4 << 20;

/// An admin client error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AdminError {
    /// The `AdminListen` value is not `unix://PATH` or `tcp://HOST:PORT`.
    #[error("admin address {0:?}: want unix:///path or tcp://host:port")]
    BadAddress(String),
    /// Connecting, writing or reading failed.
    #[error("yggdrasil admin {addr}: {err}")]
    Io {
        /// The admin address.
        addr: String,
        /// The error.
        err: std::io::Error,
    },
    /// No full reply within the time limit.
    #[error("yggdrasil admin {0}: no reply in time")]
    Timeout(String),
    /// The daemon answered `"status": "error"`.
    #[error("yggdrasil {request}: {message}")]
    Daemon {
        /// The request.
        request: String,
        /// The daemon's error text.
        message: String,
    },
    /// The reply is not what the request should get.
    #[error("yggdrasil {request}: bad reply: {why}")]
    BadReply {
        /// The request.
        request: String,
        /// What is wrong with it.
        why: String,
    },
}

/// Where the admin socket is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminAddr {
    /// A unix socket (reachable from any network namespace).
    Unix(PathBuf),
    /// A TCP address, `host:port`.
    Tcp(String),
}

impl AdminAddr {
    /// Parses a config's `AdminListen`: `unix:///path` or `tcp://host:port`.
    pub fn parse(s: &str) -> Result<AdminAddr, AdminError> {
        if let Some(p) = s.strip_prefix("unix://") {
            if p.is_empty() {
                return Err(AdminError::BadAddress(s.to_owned()));
            }
            return Ok(AdminAddr::Unix(PathBuf::from(p)));
        }
        if let Some(hp) = s.strip_prefix("tcp://") {
            if hp.rsplit_once(':').is_none() {
                return Err(AdminError::BadAddress(s.to_owned()));
            }
            return Ok(AdminAddr::Tcp(hp.to_owned()));
        }
        Err(AdminError::BadAddress(s.to_owned()))
    }
}

impl std::fmt::Display for AdminAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AdminAddr::Unix(p) => write!(f, "unix://{}", p.display()),
            AdminAddr::Tcp(hp) => write!(f, "tcp://{hp}"),
        }
    }
}

/// What `getSelf` says about the local node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SelfInfo {
    /// The node's overlay address.
    pub address: Ipv6Addr,
    /// The node's routed subnet (its network address; always a /64).
    pub subnet: Ipv6Addr,
    /// The node's Ed25519 public key.
    pub key: [u8; 32],
    /// `build_version` (`unknown` in Debian's 0.4.7 build).
    pub version: String,
}

/// One entry of `getPeers`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerInfo {
    /// The peer's overlay address.
    pub address: Ipv6Addr,
    /// The peer's key.
    pub key: [u8; 32],
    /// The link's URI (`tcp://10.0.0.2:7000`), when the daemon says.
    pub remote: Option<String>,
    /// Whether the link is up (0.4 lists only links that are up; 0.5's
    /// links that are down have no key yet and are left out).
    pub up: bool,
    /// Whether the peer dialed us (0.5 only; `None` on 0.4).
    pub inbound: Option<bool>,
}

/// A client for one daemon's admin socket.
#[derive(Debug, Clone)]
pub struct Admin {
    addr: AdminAddr,
    timeout: Duration,
}

impl Admin {
    /// A client for `addr`, with a 5 s limit per request.
    pub fn new(addr: AdminAddr) -> Admin {
        Admin {
            addr,
            timeout: Duration::from_secs(5),
        }
    }

    /// The same with another per-request time limit.
    pub fn with_timeout(mut self, timeout: Duration) -> Admin {
        self.timeout = timeout;
        self
    }

    /// The admin address.
    pub fn addr(&self) -> &AdminAddr {
        &self.addr
    }

    /// Sends one request and returns its `response` object.
    pub async fn request(&self, name: &str, arguments: Value) -> Result<Value, AdminError> {
        let req = json!({ "request": name, "arguments": arguments, "keepalive": false });
        let bytes = req.to_string().into_bytes();
        let fut = async {
            match &self.addr {
                AdminAddr::Unix(p) => {
                    let s = tokio::net::UnixStream::connect(p).await?;
                    exchange(s, &bytes).await
                }
                AdminAddr::Tcp(hp) => {
                    let s = tokio::net::TcpStream::connect(hp.as_str()).await?;
                    exchange(s, &bytes).await
                }
            }
        };
        let reply = tokio::time::timeout(self.timeout, fut)
            .await
            .map_err(|_| AdminError::Timeout(self.addr.to_string()))?
            .map_err(|err| AdminError::Io {
                addr: self.addr.to_string(),
                err,
            })?;
        parse_reply(name, &reply)
    }

    /// `getSelf`: this node's address, subnet, key and version.
    pub async fn get_self(&self) -> Result<SelfInfo, AdminError> {
        let r = self.request("getSelf", json!({})).await?;
        parse_self(&r)
    }

    /// `getPeers`: the directly connected peers.
    pub async fn get_peers(&self) -> Result<Vec<PeerInfo>, AdminError> {
        let r = self.request("getPeers", json!({})).await?;
        parse_peers(&r)
    }

    /// `addPeer`: adds `uri` to the peers the daemon dials, and dials it
    /// now (0.4.7 otherwise redials configured peers only every 60 s).
    pub async fn add_peer(&self, uri: &str) -> Result<(), AdminError> {
        self.request("addPeer", json!({ "uri": uri, "interface": "" }))
            .await
            .map(drop)
    }

    /// `removePeer`: stops dialing `uri` and closes its link.
    pub async fn remove_peer(&self, uri: &str) -> Result<(), AdminError> {
        self.request("removePeer", json!({ "uri": uri, "interface": "" }))
            .await
            .map(drop)
    }

    /// Redials `uri` at once: `removePeer` then `addPeer` (addPeer alone
    /// refuses a peer that is already configured).
    pub async fn redial(&self, uri: &str) -> Result<(), AdminError> {
        // Not configured yet is fine: the add below configures it.
        let _ = self.remove_peer(uri).await;
        self.add_peer(uri).await
    }
}

async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    mut s: S,
    req: &[u8],
) -> std::io::Result<Vec<u8>> {
    s.write_all(req).await?;
    s.flush().await?;
    let mut out = Vec::new();
    // The daemon closes after one reply when keepalive is off; stop at a
    // complete JSON value anyway, in case it does not.
    let mut limited = (&mut s).take(MAX_REPLY);
    let mut buf = [0u8; 8192];
    loop {
        let n = limited.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
        if serde_json::from_slice::<Value>(&out).is_ok() {
            break;
        }
    }
    Ok(out)
}

fn bad(request: &str, why: impl Into<String>) -> AdminError {
    AdminError::BadReply {
        request: request.to_owned(),
        why: why.into(),
    }
}

fn parse_reply(name: &str, reply: &[u8]) -> Result<Value, AdminError> {
    let v: Value =
        serde_json::from_slice(reply).map_err(|e| bad(name, format!("not JSON: {e}")))?;
    match v.get("status").and_then(Value::as_str) {
        Some("success") => {}
        Some("error") => {
            let message = v
                .get("error")
                .and_then(Value::as_str)
                .unwrap_or("unknown error")
                .to_owned();
            return Err(AdminError::Daemon {
                request: name.to_owned(),
                message,
            });
        }
        other => return Err(bad(name, format!("status {other:?}"))),
    }
    match v.get("response") {
        Some(r) if r.is_object() => Ok(r.clone()),
        _ => Err(bad(name, "no response object")),
    }
}

fn str_field<'a>(req: &str, o: &'a Map<String, Value>, f: &str) -> Result<&'a str, AdminError> {
    o.get(f)
        .and_then(Value::as_str)
        .ok_or_else(|| bad(req, format!("no {f}")))
}

fn parse_key(req: &str, s: &str) -> Result<[u8; 32], AdminError> {
    let b = s.as_bytes();
    if b.len() != 64 {
        return Err(bad(req, format!("key {s:?} is not 64 hex digits")));
    }
    let mut k = [0u8; 32];
    for (i, out) in k.iter_mut().enumerate() {
        let hex = std::str::from_utf8(&b[2 * i..2 * i + 2]).unwrap_or("zz");
        *out =
            u8::from_str_radix(hex, 16).map_err(|_| bad(req, format!("key {s:?} is not hex")))?;
    }
    Ok(k)
}

fn parse_addr(req: &str, s: &str) -> Result<Ipv6Addr, AdminError> {
    s.parse()
        .map_err(|_| bad(req, format!("address {s:?} is not IPv6")))
}

/// Parses a `getSelf` response. 0.4 and 0.5: a flat object with `key`,
/// `address`, `subnet` (`300:…::/64`) and `build_version`; 0.3-style
/// replies nest it under `self` keyed by address, also accepted.
pub(crate) fn parse_self(r: &Value) -> Result<SelfInfo, AdminError> {
    const REQ: &str = "getSelf";
    let mut o = r.as_object().ok_or_else(|| bad(REQ, "not an object"))?;
    if let Some(inner) = o.get("self").and_then(Value::as_object) {
        // {"self": {"ADDR": {...}}}
        if let Some((addr, v)) = inner.iter().next() {
            let mut m = v.as_object().cloned().unwrap_or_default();
            m.entry("address")
                .or_insert_with(|| Value::from(addr.clone()));
            return parse_self(&Value::Object(m));
        }
        o = inner;
    }
    let key = parse_key(REQ, str_field(REQ, o, "key")?)?;
    let address = parse_addr(REQ, str_field(REQ, o, "address")?)?;
    let subnet = str_field(REQ, o, "subnet")?;
    let subnet = parse_addr(REQ, subnet.split('/').next().unwrap_or(subnet))?;
    let version = o
        .get("build_version")
        .and_then(Value::as_str)
        .unwrap_or("unknown")
        .to_owned();
    if address != crate::address_for_key(&key) {
        return Err(bad(REQ, format!("address {address} is not the key's")));
    }
    Ok(SelfInfo {
        address,
        subnet,
        key,
        version,
    })
}

/// Parses a `getPeers` response: `{"peers": [...]}` (0.5, and 0.4's
/// list), or `{"peers": {"ADDR": {...}}}` (older 0.4 builds).
pub(crate) fn parse_peers(r: &Value) -> Result<Vec<PeerInfo>, AdminError> {
    const REQ: &str = "getPeers";
    let peers = r.get("peers").ok_or_else(|| bad(REQ, "no peers"))?;
    let entries: Vec<(Option<&str>, &Map<String, Value>)> = match peers {
        Value::Array(a) => a
            .iter()
            .map(|p| p.as_object().map(|o| (None, o)))
            .collect::<Option<_>>()
            .ok_or_else(|| bad(REQ, "a peer is not an object"))?,
        Value::Object(m) => m
            .iter()
            .map(|(addr, p)| p.as_object().map(|o| (Some(addr.as_str()), o)))
            .collect::<Option<_>>()
            .ok_or_else(|| bad(REQ, "a peer is not an object"))?,
        _ => return Err(bad(REQ, "peers is neither a list nor an object")),
    };
    let mut out = Vec::with_capacity(entries.len());
    for (addr_key, o) in entries {
        // 0.5 lists links that are down too, with no key yet.
        let up = o.get("up").and_then(Value::as_bool).unwrap_or(true);
        let key = match o.get("key").and_then(Value::as_str) {
            Some(k) if !k.is_empty() => parse_key(REQ, k)?,
            _ if !up => continue,
            _ => return Err(bad(REQ, "a peer has no key")),
        };
        let derived = crate::address_for_key(&key);
        let address = match o.get("address").and_then(Value::as_str).or(addr_key) {
            Some(a) => parse_addr(REQ, a)?,
            None => derived,
        };
        if address != derived {
            return Err(bad(REQ, format!("peer address {address} is not its key's")));
        }
        out.push(PeerInfo {
            address,
            key,
            remote: o.get("remote").and_then(Value::as_str).map(str::to_owned),
            up,
            inbound: o.get("inbound").and_then(Value::as_bool),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_addresses() {
        assert_eq!(
            AdminAddr::parse("unix:///run/y.sock").ok(),
            Some(AdminAddr::Unix("/run/y.sock".into()))
        );
        assert_eq!(
            AdminAddr::parse("tcp://[::1]:9001").ok(),
            Some(AdminAddr::Tcp("[::1]:9001".into()))
        );
        assert!(AdminAddr::parse("none").is_err());
        assert!(AdminAddr::parse("unix://").is_err());
    }

    /// Verbatim from Debian's 0.4.7.
    #[test]
    fn get_self_0_4_7() {
        let reply = br#"{"status":"success","request":null,"response":{
            "build_name":"unknown","build_version":"unknown",
            "key":"2ab497b8982ce61c6b7593b8d5246aaa577f482ba214dce13ce9e4b2ec531dc7",
            "address":"202:aa5b:423b:3e98:cf1c:a453:6239:56dc","coords":[],
            "subnet":"302:aa5b:423b:3e98::/64"}}"#;
        let r = parse_reply("getSelf", reply).expect("reply");
        let s = parse_self(&r).expect("self");
        assert_eq!(
            s.address.to_string(),
            "202:aa5b:423b:3e98:cf1c:a453:6239:56dc"
        );
        assert_eq!(s.subnet.to_string(), "302:aa5b:423b:3e98::");
        assert_eq!(s.version, "unknown");
    }

    /// Verbatim from bookworm-backports' 0.5.12.
    #[test]
    fn get_self_0_5_12() {
        let reply = br#"{"status":"success","request":{"request":"getSelf","arguments":{}},
            "response":{"build_name":"yggdrasil","build_version":"0.5.12",
            "key":"752664d2206d19f093b01b72dc20c8de83ba34790d8ff50609759e330897e4b3",
            "address":"201:2b66:6cb7:7e4b:983d:b13f:9234:8f7c","routing_entries":3,
            "subnet":"301:2b66:6cb7:7e4b::/64"}}"#;
        let r = parse_reply("getSelf", reply).expect("reply");
        let s = parse_self(&r).expect("self");
        assert_eq!(
            s.address.to_string(),
            "201:2b66:6cb7:7e4b:983d:b13f:9234:8f7c"
        );
        assert_eq!(s.subnet.to_string(), "301:2b66:6cb7:7e4b::");
        assert_eq!(s.version, "0.5.12");
    }

    /// 0.5.12's response, verbatim (the second peer's remote edited): one
    /// link up, and one configured peer whose dial failed (left out).
    #[test]
    fn get_peers_0_5_12() {
        let reply = br#"{"status":"success","request":{"request":"getPeers","arguments":{}},
            "response":{"peers":[{"remote":"tcp://10.77.2.2:7000","up":true,"inbound":false,
            "address":"201:2b66:6cb7:7e4b:983d:b13f:9234:8f7c",
            "key":"752664d2206d19f093b01b72dc20c8de83ba34790d8ff50609759e330897e4b3",
            "port":1,"priority":0,"cost":1,"bytes_recvd":1797,"bytes_sent":1329,
            "rate_recvd":969,"rate_sent":702,"uptime":4.137574686,"latency":520000},
            {"remote":"tcp://10.77.9.9:7000","up":false,"inbound":false,"key":"","port":0,
            "priority":0,"cost":0,"last_error_time":3821242542,
            "last_error":"dial tcp 10.77.9.9:7000: connect: network is unreachable"}]}}"#;
        let r = parse_reply("getPeers", reply).expect("reply");
        let p = parse_peers(&r).expect("peers");
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(
            p[0].address.to_string(),
            "201:2b66:6cb7:7e4b:983d:b13f:9234:8f7c"
        );
        assert_eq!(p[0].remote.as_deref(), Some("tcp://10.77.2.2:7000"));
        assert_eq!(p[0].inbound, Some(false));
        assert!(p[0].up);
    }

    /// Debian's 0.4.7's response, verbatim: a list, no `up`.
    #[test]
    fn get_peers_0_4_7() {
        let reply = br#"{"status":"success","request":null,"response":{"peers":[
            {"address":"200:ccb5:68a0:d132:7de0:fb25:1494:8910",
            "key":"99a54baf9766c10f826d75b5bb77cf30673ee426dabb8226b7e939f6d8afa7f1",
            "port":1,"priority":0,"coords":[1],"remote":"tcp://10.77.2.2:7000",
            "bytes_recvd":2184,"bytes_sent":2469,"uptime":0.80000699}]}}"#;
        let r = parse_reply("getPeers", reply).expect("reply");
        let p = parse_peers(&r).expect("peers");
        assert_eq!(p.len(), 1);
        assert!(p[0].up);
        assert_eq!(p[0].inbound, None);
    }

    #[test]
    fn errors_and_garbage() {
        let e = parse_reply(
            "addPeer",
            br#"{"status":"error","error":"peer already configured"}"#,
        );
        assert!(matches!(e, Err(AdminError::Daemon { .. })), "{e:?}");
        assert!(parse_reply("x", b"{").is_err());
        assert!(parse_reply("x", br#"{"status":"success"}"#).is_err());
        let lying = json!({"key": "2ab497b8982ce61c6b7593b8d5246aaa577f482ba214dce13ce9e4b2ec531dc7",
            "address": "200::1", "subnet": "300::/64"});
        assert!(parse_self(&lying).is_err());
        assert!(parse_self(&json!({"key": "zz", "address": 1})).is_err());
        assert!(parse_peers(&json!({"peers": [1]})).is_err());
        assert!(parse_peers(&json!({"peers": [{"key": "00"}]})).is_err());
    }

    #[test]
    fn peers_both_shapes() {
        let key = "2ab497b8982ce61c6b7593b8d5246aaa577f482ba214dce13ce9e4b2ec531dc7";
        let addr = "202:aa5b:423b:3e98:cf1c:a453:6239:56dc";
        let list = json!({"peers": [
            {"remote": "tcp://10.0.0.2:7000", "up": true, "inbound": false, "key": key, "address": addr},
            {"remote": "tcp://10.0.0.9:7000", "up": false, "inbound": false, "key": ""}
        ]});
        let p = parse_peers(&list).expect("list");
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].address.to_string(), addr);
        assert_eq!(p[0].inbound, Some(false));
        let map =
            json!({"peers": {addr: {"key": key, "remote": "tcp://10.0.0.2:7000", "port": 1}}});
        let p = parse_peers(&map).expect("map");
        assert_eq!(p[0].remote.as_deref(), Some("tcp://10.0.0.2:7000"));
        assert!(p[0].up);
    }
}

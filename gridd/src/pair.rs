//! Pairing by invitation: `grid peer invite` on one grid, `grid peer join
//! TOKEN` on the other (grid(1)); the files `/net/pair` and `/net/invites`
//! (gridfs(4)); the protocol `grid-pair/1`.
//!
//! # The token
//!
//! `grid1:` and the base64url (no padding) of a postcard-encoded
//! [`Token`] followed by the first 4 bytes of its SHA-256, so a token
//! damaged in copying is told apart from a wrong one. It carries the
//! inviting grid's key, the addresses its QUIC listeners can be dialed at
//! (a wildcard listener is replaced by this machine's interface
//! addresses, loopback last), a 128-bit secret from the OS's random
//! source, and the expiry in Unix seconds.
//!
//! # The exchange
//!
//! While any invite is open (unused, unexpired), the QUIC endpoint's
//! pairing window is open ([`KnownKeys::set_pairing`]): an unknown key
//! passes the TLS handshake but may speak only `grid-pair/1`. The joiner
//! dials the token's addresses with the token's key pinned, so a forged
//! token naming another grid's address fails the handshake. On one
//! bidirectional stream it sends a [`JoinRequest`] (the secret, its name
//! for itself, its offer, its addresses); the inviter checks the secret in
//! constant time against every invite, then that the invite is unused and
//! unexpired, adds the joiner as a peer (its key from the handshake), saves
//! it to grid.toml and answers with a [`JoinAnswer`] (its name for itself
//! and its offer). Each side then requests what the other offered, so the
//! grant in force is the offer, and the usual proposal exchange
//! (`negotiate`) runs. Messages are a 4-byte big-endian length and a
//! postcard body of at most [`MAX_MESSAGE`] bytes.
//!
//! Invites live in memory only: a restart of gridd forgets them.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use data_encoding::BASE64URL_NOPAD;
use grid_policy::Policy;
use grid_transport::{close, Alpn, Connection, Endpoint, KnownKeys, PublicKey};
use ninep::{Addr, Qid};
use ninep_server::synth::{file_qid, read_at, Dir};
use ninep_server::{Attr, Error, Handle, Node, OpenMode, Opened, Result, SetAttr};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::config::{self, PeerConfig};
use crate::namespace::{save_peer, Grid};
use crate::peers::lock;

/// What every token begins with (the `1` is the format's version).
pub const TOKEN_PREFIX: &str = "grid1:";
/// Bytes of secret in a token (128 bits).
pub const SECRET_LEN: usize = 16;
/// The largest `grid-pair/1` message body.
pub const MAX_MESSAGE: usize = 16 << 10;
/// How long an invite lasts unless `expires=` says otherwise.
pub const DEFAULT_EXPIRY: Duration = Duration::from_secs(3600);
/// The longest an invite may last.
pub const MAX_EXPIRY: Duration = Duration::from_secs(7 * 86400);
/// Open invites a grid holds at once.
const MAX_OPEN: usize = 32;
/// Addresses put in a token, and dialed from one.
const MAX_TOKEN_ADDRS: usize = 8;
/// Bytes of checksum at the end of a token.
const CHECK_LEN: usize = 4;
/// How long one exchange may take once connected, on either side.
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a name lookup of a token's host address may take.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(3);
/// How long used and expired invites are remembered, so that a replay is
/// told "already used" or "expired" rather than "not recognised".
const REMEMBER: Duration = Duration::from_secs(24 * 3600);

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

// ---------------------------------------------------------------------
// The token

/// An address in a token or a join request: an IP socket address, or a
/// host name and port (a listener configured by name).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TokenAddr {
    /// An IP address and UDP port.
    Ip(SocketAddr),
    /// A host name and UDP port.
    Host(String, u16),
}

impl TokenAddr {
    /// As a `quic!HOST!PORT` dial string.
    pub fn to_addr(&self) -> Addr {
        match self {
            TokenAddr::Ip(s) => Addr::Quic {
                host: s.ip().to_canonical().to_string(),
                port: s.port(),
            },
            TokenAddr::Host(h, port) => Addr::Quic {
                host: h.clone(),
                port: *port,
            },
        }
    }

    fn port(&self) -> u16 {
        match self {
            TokenAddr::Ip(s) => s.port(),
            TokenAddr::Host(_, p) => *p,
        }
    }

    /// The socket addresses to dial (a name is looked up, bounded).
    async fn resolve(&self) -> Vec<SocketAddr> {
        match self {
            TokenAddr::Ip(s) => vec![*s],
            TokenAddr::Host(h, port) => {
                let lookup = tokio::net::lookup_host((h.as_str(), *port));
                match tokio::time::timeout(LOOKUP_TIMEOUT, lookup).await {
                    Ok(Ok(addrs)) => addrs.collect(),
                    _ => Vec::new(),
                }
            }
        }
    }
}

impl fmt::Display for TokenAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.to_addr().fmt(f)
    }
}

/// What an invite token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    /// The inviting grid's key.
    pub key: PublicKey,
    /// Where to dial it.
    pub addrs: Vec<TokenAddr>,
    /// The invite's secret.
    pub secret: [u8; SECRET_LEN],
    /// When the invite expires, in Unix seconds.
    pub expires: u64,
}

/// The token's encoded form.
#[derive(Serialize, Deserialize)]
struct TokenWire {
    key: [u8; 32],
    addrs: Vec<TokenAddr>,
    secret: [u8; SECRET_LEN],
    expires: u64,
}

/// Why a token could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// It does not start with [`TOKEN_PREFIX`].
    #[error("not a grid invite: a token starts with '{TOKEN_PREFIX}'")]
    Prefix,
    /// Its text or checksum is wrong: a typo, or a line cut short.
    #[error("damaged invite ({0}): copy the whole last line `grid peer invite` printed")]
    Damaged(&'static str),
    /// The key in it is not an Ed25519 public key.
    #[error("invite names a key that is not an Ed25519 key")]
    Key,
}

impl Token {
    /// The token's text: `grid1:` and base64url.
    pub fn encode(&self) -> String {
        let wire = TokenWire {
            key: *self.key.as_bytes(),
            addrs: self.addrs.clone(),
            secret: self.secret,
            expires: self.expires,
        };
        // Serializing plain structs, strings and socket addresses into a
        // Vec cannot fail.
        let mut bytes = postcard::to_allocvec(&wire).unwrap_or_default();
        let check = checksum(&bytes);
        bytes.extend_from_slice(&check);
        format!("{TOKEN_PREFIX}{}", BASE64URL_NOPAD.encode(&bytes))
    }

    /// Reads a token's text. Blanks and line breaks inside it (a terminal
    /// that wrapped it) are ignored.
    pub fn decode(text: &str) -> std::result::Result<Token, TokenError> {
        let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
        let body = compact
            .strip_prefix(TOKEN_PREFIX)
            .ok_or(TokenError::Prefix)?;
        let bytes = BASE64URL_NOPAD
            .decode(body.as_bytes())
            .map_err(|_| TokenError::Damaged("not base64url"))?;
        if bytes.len() <= CHECK_LEN {
            return Err(TokenError::Damaged("too short"));
        }
        let (payload, check) = bytes.split_at(bytes.len() - CHECK_LEN);
        if checksum(payload) != check {
            return Err(TokenError::Damaged("checksum mismatch"));
        }
        let (wire, rest): (TokenWire, &[u8]) = postcard::take_from_bytes(payload)
            .map_err(|_| TokenError::Damaged("unreadable contents"))?;
        if !rest.is_empty() {
            return Err(TokenError::Damaged("trailing bytes"));
        }
        Ok(Token {
            key: PublicKey::from_bytes(wire.key).map_err(|_| TokenError::Key)?,
            addrs: wire.addrs,
            secret: wire.secret,
            expires: wire.expires,
        })
    }
}

fn checksum(bytes: &[u8]) -> [u8; CHECK_LEN] {
    let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
    let mut check = [0u8; CHECK_LEN];
    check.copy_from_slice(&digest.as_ref()[..CHECK_LEN]);
    check
}

/// The addresses this grid's QUIC listeners can be dialed at: a wildcard
/// host (`0.0.0.0`, `::`, `*`) becomes this machine's interface addresses
/// of that family (IPv6 link-local ones left out: they need a scope),
/// loopback ones last.
pub fn reachable_addrs(listen: &[Addr]) -> Vec<TokenAddr> {
    let mut found = Vec::new();
    let mut loopback = Vec::new();
    let mut names = Vec::new();
    let mut push = |ip: IpAddr, port: u16| {
        let a = TokenAddr::Ip(SocketAddr::new(ip, port));
        if ip.is_loopback() {
            loopback.push(a);
        } else {
            found.push(a);
        }
    };
    for addr in listen {
        let Addr::Quic { host, port } = addr else {
            continue;
        };
        match host_ip(host) {
            Some(ip) if ip.is_unspecified() => {
                for local in interface_ips(ip.is_ipv6()) {
                    push(local, *port);
                }
            }
            Some(ip) => push(ip, *port),
            None => names.push(TokenAddr::Host(host.clone(), *port)),
        }
    }
    found.extend(names);
    found.extend(loopback);
    let mut out: Vec<TokenAddr> = Vec::new();
    for a in found {
        if !out.contains(&a) && out.len() < MAX_TOKEN_ADDRS {
            out.push(a);
        }
    }
    out
}

fn host_ip(host: &str) -> Option<IpAddr> {
    if host == "*" {
        return Some(IpAddr::V6(Ipv6Addr::UNSPECIFIED));
    }
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .ok()
}

/// This machine's interface addresses: IPv4, and IPv6 too when `v6` (an
/// IPv6 wildcard socket takes IPv4 as well, unless bindv6only is set).
fn interface_ips(v6: bool) -> Vec<IpAddr> {
    let ifaces = match if_addrs::get_if_addrs() {
        Ok(i) => i,
        Err(e) => {
            eprintln!("gridd: pair: cannot list network interfaces: {e}");
            return Vec::new();
        }
    };
    ifaces
        .into_iter()
        .map(|i| i.ip())
        .filter(|ip| match ip {
            IpAddr::V4(_) => true,
            // fe80::/10 needs a scope id that means nothing elsewhere.
            IpAddr::V6(a) => v6 && !a.is_unicast_link_local(),
        })
        .collect()
}

// ---------------------------------------------------------------------
// grid-pair/1 messages

/// What the joiner sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinRequest {
    /// The token's secret.
    pub secret: [u8; SECRET_LEN],
    /// The joiner's name for itself (the inviter's default name for it).
    pub name: String,
    /// What the joiner offers the inviter (grid-policy(7), one line).
    pub offer: String,
    /// Where the joiner's QUIC listeners can be dialed.
    pub addrs: Vec<TokenAddr>,
}

/// What the inviter answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum JoinAnswer {
    /// The joiner is now a peer of the inviter.
    Paired {
        /// The inviter's name for itself (the joiner's default name for it).
        name: String,
        /// What the inviter offers the joiner (grid-policy(7), one line).
        offer: String,
    },
    /// Nothing was changed.
    Refused(Refusal),
}

/// Why an inviter refused a join. The wording is what `grid peer join`
/// prints; a wrong secret never says which part was wrong.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum Refusal {
    /// The invite's time is up.
    #[error("invite expired")]
    Expired,
    /// The invite was used (or is being used right now).
    #[error("invite already used")]
    Used,
    /// No invite has that secret.
    #[error("invite not recognised")]
    NotRecognised,
    /// Anything else, in words.
    #[error("{0}")]
    Other(String),
}

/// Why a message could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// Longer than [`MAX_MESSAGE`].
    #[error("message of {0} bytes is longer than the limit of {MAX_MESSAGE}")]
    TooLong(usize),
    /// Not a message of the expected type.
    #[error("malformed message: {0}")]
    Malformed(String),
    /// The stream failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Writes one length-prefixed message.
pub async fn write_message<T: Serialize>(
    w: &mut (impl AsyncWrite + Unpin),
    msg: &T,
) -> std::result::Result<(), WireError> {
    let body = postcard::to_allocvec(msg).map_err(|e| WireError::Malformed(e.to_string()))?;
    if body.len() > MAX_MESSAGE {
        return Err(WireError::TooLong(body.len()));
    }
    // Fits: MAX_MESSAGE is far below u32::MAX.
    let len = body.len() as u32;
    w.write_all(&len.to_be_bytes()).await?;
    w.write_all(&body).await?;
    w.flush().await?;
    Ok(())
}

/// Reads one length-prefixed message; a length over [`MAX_MESSAGE`] is
/// refused before anything more is read.
pub async fn read_message<T: DeserializeOwned>(
    r: &mut (impl AsyncRead + Unpin),
) -> std::result::Result<T, WireError> {
    let mut len = [0u8; 4];
    r.read_exact(&mut len).await?;
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_MESSAGE {
        return Err(WireError::TooLong(len));
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).await?;
    let (msg, rest) =
        postcard::take_from_bytes(&body).map_err(|e| WireError::Malformed(e.to_string()))?;
    if !rest.is_empty() {
        return Err(WireError::Malformed("trailing bytes".into()));
    }
    Ok(msg)
}

// ---------------------------------------------------------------------
// Invites

/// The invites this grid has handed out, in memory only.
pub struct Invites {
    known: KnownKeys,
    table: Mutex<Vec<Invite>>,
}

#[derive(Clone)]
struct Invite {
    name: Option<String>,
    offer: Policy,
    secret: [u8; SECRET_LEN],
    deadline: Instant,
    expires: u64,
    state: InviteState,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum InviteState {
    Open,
    /// A join is being carried out; a second one is told "already used".
    Pairing,
    Used,
}

/// An invite taken by a join in progress: [`Invites::finish`] marks it
/// used, or open again if the pairing failed.
#[derive(Debug, Clone)]
pub struct Redeemed {
    /// What the inviter will call the joiner, if the invite said.
    pub name: Option<String>,
    /// What the inviter offers the joiner.
    pub offer: Policy,
    secret: [u8; SECRET_LEN],
}

impl Invites {
    /// No invites; the pairing window of `known` is opened and closed as
    /// invites come and go.
    pub fn new(known: KnownKeys) -> Invites {
        Invites {
            known,
            table: Mutex::new(Vec::new()),
        }
    }

    /// A new invite lasting `ttl`; returns its secret and its expiry in
    /// Unix seconds. Opens the pairing window.
    pub fn create(
        self: &Arc<Self>,
        name: Option<String>,
        offer: Policy,
        ttl: Duration,
    ) -> std::result::Result<([u8; SECRET_LEN], u64), String> {
        let mut secret = [0u8; SECRET_LEN];
        getrandom::getrandom(&mut secret)
            .map_err(|e| format!("cannot get random bytes for the secret: {e}"))?;
        let now = Instant::now();
        let deadline = now + ttl;
        let expires = unix_now().saturating_add(ttl.as_secs());
        {
            let mut t = lock(&self.table);
            t.retain(|i| i.deadline + REMEMBER > now);
            let open = t.iter().filter(|i| i.is_open(now)).count();
            if open >= MAX_OPEN {
                return Err(format!(
                    "{open} invites are open already; wait for one to be used or expire"
                ));
            }
            t.push(Invite {
                name,
                offer,
                secret,
                deadline,
                expires,
                state: InviteState::Open,
            });
        }
        self.refresh();
        // Close the window when this invite's time is up.
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let weak: Weak<Invites> = Arc::downgrade(self);
            rt.spawn(async move {
                tokio::time::sleep_until(deadline.into()).await;
                if let Some(invites) = weak.upgrade() {
                    invites.refresh();
                }
            });
        }
        Ok((secret, expires))
    }

    /// Takes the invite whose secret is `secret` for a join. Every
    /// invite's secret is compared, each in constant time.
    pub fn redeem(&self, secret: &[u8; SECRET_LEN]) -> std::result::Result<Redeemed, Refusal> {
        let now = Instant::now();
        let mut t = lock(&self.table);
        let mut found = None;
        for (i, inv) in t.iter().enumerate() {
            if bool::from(inv.secret.ct_eq(secret)) {
                found = Some(i);
            }
        }
        let inv = found
            .and_then(|i| t.get_mut(i))
            .ok_or(Refusal::NotRecognised)?;
        if inv.state != InviteState::Open {
            return Err(Refusal::Used);
        }
        if now >= inv.deadline {
            return Err(Refusal::Expired);
        }
        inv.state = InviteState::Pairing;
        Ok(Redeemed {
            name: inv.name.clone(),
            offer: inv.offer.clone(),
            secret: inv.secret,
        })
    }

    /// Ends a join: the invite is used up if `paired`, open again if not.
    pub fn finish(&self, r: &Redeemed, paired: bool) {
        {
            let mut t = lock(&self.table);
            if let Some(inv) = t.iter_mut().find(|i| bool::from(i.secret.ct_eq(&r.secret))) {
                inv.state = if paired {
                    InviteState::Used
                } else {
                    InviteState::Open
                };
            }
        }
        self.refresh();
    }

    /// Whether an invite names `name` for its joiner and is still open.
    pub fn reserves(&self, name: &str) -> bool {
        let now = Instant::now();
        lock(&self.table)
            .iter()
            .any(|i| i.is_open(now) && i.name.as_deref() == Some(name))
    }

    /// The text of `/net/invites`: `NAME STATE EXPIRES` per invite, in the
    /// order made; NAME is `-` when the joiner names itself, STATE is
    /// `open`, `pairing`, `used` or `expired`, EXPIRES is Unix seconds.
    pub fn text(&self) -> String {
        let now = Instant::now();
        lock(&self.table)
            .iter()
            .map(|i| {
                let state = match i.state {
                    InviteState::Open if now >= i.deadline => "expired",
                    InviteState::Open => "open",
                    InviteState::Pairing => "pairing",
                    InviteState::Used => "used",
                };
                format!(
                    "{} {state} {}\n",
                    i.name.as_deref().unwrap_or("-"),
                    i.expires
                )
            })
            .collect()
    }

    /// Opens the pairing window while an invite is open, closes it when
    /// none is.
    fn refresh(&self) {
        let now = Instant::now();
        let open = lock(&self.table).iter().any(|i| i.is_open(now));
        if self.known.is_pairing() != open {
            self.known.set_pairing(open);
        }
    }
}

impl Invite {
    /// Not yet used up and not expired (a join in progress counts).
    fn is_open(&self, now: Instant) -> bool {
        self.state != InviteState::Used && now < self.deadline
    }
}

// ---------------------------------------------------------------------
// Names

/// A peer name made from what another grid calls itself: the characters
/// a name may hold, at most 56 of them (room for a `-N` suffix).
fn sanitize(raw: &str) -> String {
    let s: String = raw
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        .take(56)
        .collect();
    if s.is_empty() || s.chars().all(|c| c == '.') {
        "peer".to_owned()
    } else {
        s
    }
}

/// `base`, or `base-2`, `base-3`, … : the first name no peer or open
/// invite has.
fn unique_name(grid: &Grid, base: &str) -> String {
    let taken = |n: &str| grid.peers.config(n).is_some() || grid.invites.reserves(n);
    if !taken(base) {
        return base.to_owned();
    }
    (2..1000)
        .map(|i| format!("{base}-{i}"))
        .find(|n| !taken(n))
        .unwrap_or_else(|| format!("{base}-{}", unix_now()))
}

fn check_free_name(grid: &Grid, name: &str) -> std::result::Result<(), String> {
    config::check_name(name)?;
    if grid.peers.config(name).is_some() {
        return Err(format!("peer '{name}' exists; choose another name"));
    }
    Ok(())
}

// ---------------------------------------------------------------------
// The inviting side

/// Makes an invite (`invite` written to `/net/pair`) and returns its token.
pub fn invite(
    grid: &Arc<Grid>,
    name: Option<String>,
    offer: Policy,
    ttl: Duration,
) -> std::result::Result<String, String> {
    if let Some(n) = &name {
        check_free_name(grid, n)?;
        if grid.invites.reserves(n) {
            return Err(format!("an open invite already names '{n}'"));
        }
    }
    if ttl.is_zero() || ttl > MAX_EXPIRY {
        return Err(format!(
            "expires must be from 1s to {}d",
            MAX_EXPIRY.as_secs() / 86400
        ));
    }
    let key: PublicKey = grid
        .key
        .parse()
        .map_err(|e| format!("this grid's key: {e}"))?;
    let listen = lock(&grid.listen).clone();
    let addrs = reachable_addrs(&listen);
    if addrs.is_empty() {
        return Err("this grid has no QUIC listener to be joined at; \
             add one to listen in grid.toml (e.g. quic!0.0.0.0!5641) and restart gridd"
            .into());
    }
    let (secret, expires) = grid.invites.create(name, offer, ttl)?;
    Ok(Token {
        key,
        addrs,
        secret,
        expires,
    }
    .encode())
}

/// Takes the connections of protocols other than 9P from the QUIC server:
/// pairing is answered here, the rest are passed to `rest` (the proposal
/// exchange). Returns the sender the server should hand them to.
pub fn router(grid: Arc<Grid>, rest: mpsc::Sender<Connection>) -> mpsc::Sender<Connection> {
    let (tx, mut rx) = mpsc::channel::<Connection>(16);
    tokio::spawn(async move {
        while let Some(conn) = rx.recv().await {
            if conn.alpn() == Alpn::Pair {
                tokio::spawn(answer(grid.clone(), conn));
            } else if let Err(mpsc::error::SendError(conn)) = rest.send(conn).await {
                conn.close(close::NO_SERVICE, "protocol not served here");
            }
        }
    });
    tx
}

/// Answers one `grid-pair/1` connection.
async fn answer(grid: Arc<Grid>, conn: Connection) {
    let from = conn.remote_addr();
    // A joiner dials every address at once and closes the connections
    // that lost the race without opening a stream: nothing to report.
    let Ok(Ok(mut stream)) = tokio::time::timeout(EXCHANGE_TIMEOUT, conn.accept_stream()).await
    else {
        conn.close(close::DONE, "no request");
        return;
    };
    let exchange = async {
        let answer = match read_message::<JoinRequest>(&mut stream).await {
            Ok(req) => pair_with(&grid, conn.peer_key(), from, req),
            Err(e) => JoinAnswer::Refused(Refusal::Other(format!("bad join request: {e}"))),
        };
        write_message(&mut stream, &answer)
            .await
            .map_err(|e| e.to_string())?;
        stream.shutdown().await.map_err(|e| e.to_string())?;
        Ok::<JoinAnswer, String>(answer)
    };
    match tokio::time::timeout(EXCHANGE_TIMEOUT, exchange).await {
        Ok(Ok(JoinAnswer::Refused(r))) => eprintln!("gridd: pair: {from}: refused: {r}"),
        Ok(Ok(JoinAnswer::Paired { .. })) => {}
        Ok(Err(e)) => eprintln!("gridd: pair: {from}: {e}"),
        Err(_) => eprintln!("gridd: pair: {from}: timed out"),
    }
    // The joiner closes once it has the answer; closing first could lose it.
    let _ = tokio::time::timeout(EXCHANGE_TIMEOUT, conn.closed()).await;
    conn.close(close::DONE, "done");
}

/// Checks a join request and, if its invite is good, adds the joiner.
fn pair_with(grid: &Arc<Grid>, key: PublicKey, from: SocketAddr, req: JoinRequest) -> JoinAnswer {
    let invite = match grid.invites.redeem(&req.secret) {
        Ok(i) => i,
        Err(r) => return JoinAnswer::Refused(r),
    };
    match add_joiner(grid, &invite, key, from, &req) {
        Ok(name) => {
            grid.invites.finish(&invite, true);
            eprintln!("gridd: pair: {from}: paired; peer {name} key {key}");
            grid.retry_pending();
            crate::negotiate::push(&grid.peers, &name);
            JoinAnswer::Paired {
                name: grid.name.clone(),
                offer: invite.offer.to_string(),
            }
        }
        Err(msg) => {
            grid.invites.finish(&invite, false);
            JoinAnswer::Refused(Refusal::Other(msg))
        }
    }
}

fn add_joiner(
    grid: &Arc<Grid>,
    invite: &Redeemed,
    key: PublicKey,
    from: SocketAddr,
    req: &JoinRequest,
) -> std::result::Result<String, String> {
    if grid.key == key.to_hex() {
        return Err("a grid cannot pair with itself".into());
    }
    if let Some(existing) = grid.peers.name_of(&key) {
        return Err(format!(
            "already paired: the inviting grid knows this grid as peer '{existing}'"
        ));
    }
    let theirs = config::parse_policy(&req.offer).map_err(|e| format!("bad offer: {e}"))?;
    let name = match &invite.name {
        Some(n) => n.clone(),
        None => unique_name(grid, &sanitize(&req.name)),
    };
    let cfg = PeerConfig {
        key,
        addrs: joiner_addrs(&req.addrs, from),
        offer: invite.offer.clone(),
        // What the joiner offers is what this grid asks of it.
        request: theirs,
        groups: Vec::new(),
    };
    grid.peers
        .add(&name, cfg.clone())
        .map_err(|e| format!("the inviting grid cannot add this grid: {e}"))?;
    if let Err(e) = save_peer(grid, &name, Some(&cfg)) {
        eprintln!("gridd: pair: peer {name}: {}", e.msg);
    }
    Ok(name)
}

/// Where to dial a joiner: the address it came from first, when its port
/// is one the joiner listens on (the joiner dials from its first
/// listener), then the addresses it sent.
fn joiner_addrs(sent: &[TokenAddr], from: SocketAddr) -> Vec<Addr> {
    let mut out = Vec::new();
    if sent.iter().any(|a| a.port() == from.port()) {
        out.push(TokenAddr::Ip(from).to_addr());
    }
    for a in sent.iter().take(MAX_TOKEN_ADDRS) {
        let a = a.to_addr();
        if !out.contains(&a) && config::parse_peer_addr(&a.to_string()).is_ok() {
            out.push(a);
        }
    }
    out
}

// ---------------------------------------------------------------------
// The joining side

/// Joins the grid that made `token` (`join` written to `/net/pair`);
/// returns the new peer's local name.
pub async fn join(
    grid: &Arc<Grid>,
    token: &str,
    name: Option<String>,
    offer: Policy,
) -> std::result::Result<String, String> {
    let token = Token::decode(token).map_err(|e| e.to_string())?;
    if unix_now() >= token.expires {
        return Err("invite expired".into());
    }
    if grid.key == token.key.to_hex() {
        return Err("this is this grid's own invite; join it from the other grid".into());
    }
    if let Some(existing) = grid.peers.name_of(&token.key) {
        return Err(format!(
            "already paired: the inviting grid is peer '{existing}' here"
        ));
    }
    if let Some(n) = &name {
        check_free_name(grid, n)?;
    }
    let ep = grid
        .peers
        .endpoint()
        .ok_or("this grid has no QUIC endpoint to dial from")?;
    let (conn, at) = dial_inviter(&ep, &token).await?;
    let req = JoinRequest {
        secret: token.secret,
        name: grid.name.clone(),
        offer: offer.to_string(),
        addrs: reachable_addrs(&lock(&grid.listen)),
    };
    let answer = match tokio::time::timeout(EXCHANGE_TIMEOUT, ask(&conn, &req)).await {
        Ok(Ok(a)) => a,
        Ok(Err(e)) => {
            // Read why the connection ended before closing it ourselves.
            let why = exchange_failure(&conn, at, &e);
            conn.close(close::DONE, "failed");
            return Err(why);
        }
        Err(_) => {
            conn.close(close::DONE, "timed out");
            return Err(format!(
                "grid at {at} did not answer within {EXCHANGE_TIMEOUT:?}"
            ));
        }
    };
    conn.close(close::DONE, "done");
    let (their_name, their_offer) = match answer {
        JoinAnswer::Paired { name, offer } => (name, offer),
        JoinAnswer::Refused(r) => return Err(r.to_string()),
    };
    let request = config::parse_policy(&their_offer)
        .map_err(|e| format!("the inviting grid paired, but sent a bad offer: {e}"))?;
    let name = name.unwrap_or_else(|| unique_name(grid, &sanitize(&their_name)));
    let mut addrs = vec![TokenAddr::Ip(at).to_addr()];
    for a in token.addrs.iter().map(TokenAddr::to_addr) {
        if !addrs.contains(&a) {
            addrs.push(a);
        }
    }
    let cfg = PeerConfig {
        key: token.key,
        addrs,
        offer,
        request,
        groups: Vec::new(),
    };
    grid.peers
        .add(&name, cfg.clone())
        .map_err(|e| format!("the inviting grid added this one, but it cannot add it back: {e}"))?;
    if let Err(e) = save_peer(grid, &name, Some(&cfg)) {
        eprintln!("gridd: pair: peer {name}: {}", e.msg);
    }
    eprintln!("gridd: pair: joined {at}; peer {name} key {}", token.key);
    grid.retry_pending();
    crate::negotiate::push(&grid.peers, &name);
    Ok(name)
}

/// Sends the join request on a new stream and reads the answer.
async fn ask(conn: &Connection, req: &JoinRequest) -> std::result::Result<JoinAnswer, String> {
    let mut stream = conn.open_stream().await.map_err(|e| e.to_string())?;
    write_message(&mut stream, req)
        .await
        .map_err(|e| e.to_string())?;
    stream.shutdown().await.map_err(|e| e.to_string())?;
    read_message(&mut stream).await.map_err(|e| e.to_string())
}

/// Why an exchange on an established connection failed, in the user's
/// terms: TLS 1.3 lets the dial finish before the inviter has checked our
/// key, so its refusal can arrive here.
fn exchange_failure(conn: &Connection, at: SocketAddr, e: &str) -> String {
    if let Some(source) = conn.close_reason() {
        let err = grid_transport::Error::Connection { addr: at, source };
        if err.is_refused_by_peer() {
            return window_closed(at);
        }
    }
    format!("grid at {at}: pairing failed: {e}")
}

fn window_closed(at: SocketAddr) -> String {
    format!(
        "grid at {at} refused this grid: it has no open invite \
         (the invite was used or has expired, or its gridd restarted)"
    )
}

/// Dials every address of the token at once, the inviter's key pinned;
/// the first to connect wins.
async fn dial_inviter(
    ep: &Endpoint,
    token: &Token,
) -> std::result::Result<(Connection, SocketAddr), String> {
    let mut targets = Vec::new();
    for a in token.addrs.iter().take(MAX_TOKEN_ADDRS) {
        for s in a.resolve().await {
            if !targets.contains(&s) {
                targets.push(s);
            }
        }
    }
    if targets.is_empty() {
        return Err("the invite names no address this grid can dial".into());
    }
    let mut dials = JoinSet::new();
    for addr in targets {
        let ep = ep.clone();
        let key = token.key;
        dials.spawn(async move { (addr, ep.connect(addr, &key, Alpn::Pair).await) });
    }
    let mut failures = Vec::new();
    while let Some(done) = dials.join_next().await {
        let Ok((addr, result)) = done else {
            continue;
        };
        match result {
            Ok(conn) => return Ok((conn, addr)),
            Err(e) => failures.push((addr, e)),
        }
    }
    Err(dial_failure(&failures))
}

/// The most telling of the dials' failures: a wrong key, then a refusal,
/// then unreachability.
fn dial_failure(failures: &[(SocketAddr, grid_transport::Error)]) -> String {
    if let Some((addr, _)) = failures.iter().find(|(_, e)| e.is_wrong_key()) {
        return format!("grid at {addr} is not the grid the invite names");
    }
    if let Some((addr, _)) = failures.iter().find(|(_, e)| e.is_refused_by_peer()) {
        return window_closed(*addr);
    }
    let addrs: Vec<String> = failures.iter().map(|(a, _)| a.to_string()).collect();
    let last = failures
        .last()
        .map(|(_, e)| e.to_string())
        .unwrap_or_default();
    format!(
        "cannot reach the inviting grid at {}: {last}",
        addrs.join(", ")
    )
}

// ---------------------------------------------------------------------
// /net/pair and /net/invites

/// The usage a bad `/net/pair` request is told.
const PAIR_USAGE: &str = "usage: invite [name=NAME] [offer=POLICY] [expires=DURATION] | \
                          join [name=NAME] [offer=POLICY] TOKEN";

/// `/net/pair`: write one request, then read its answer on the same fid
/// (as with Plan 9's /net/cs): `invite ...` answers with the token,
/// `join ...` (which returns once pairing is done) with the peer's name.
pub fn pair_file(grid: &Arc<Grid>) -> Arc<dyn Node> {
    Arc::new(PairFile {
        qid: file_qid(),
        grid: grid.clone(),
    })
}

/// Adds `pair` and `invites` to `/net` (`net`, a [`Dir`]), and returns it.
pub fn with_files(net: Arc<dyn Node>, grid: &Arc<Grid>) -> Arc<dyn Node> {
    if let Some(dir) = net.as_any().downcast_ref::<Dir>() {
        dir.insert("pair", pair_file(grid));
        dir.insert("invites", invites_file(grid));
    }
    net
}

/// `/net/invites`: the invites, one per line (no secrets).
pub fn invites_file(grid: &Arc<Grid>) -> Arc<dyn Node> {
    let invites = grid.invites.clone();
    Arc::new(ninep_server::synth::TextFile::new(move || invites.text()))
}

struct PairFile {
    qid: Qid,
    grid: Arc<Grid>,
}

#[async_trait]
impl Node for PairFile {
    fn qid(&self) -> Qid {
        self.qid
    }

    async fn attr(&self) -> Result<Attr> {
        Ok(Attr::synthetic(self.qid, 0o600))
    }

    async fn open(&self, _mode: OpenMode) -> Result<Opened> {
        Ok(Opened::new(PairHandle {
            grid: self.grid.clone(),
            answer: Mutex::new(Vec::new()),
        }))
    }

    // `echo ... > /net/pair` truncates first; there is nothing to truncate.
    async fn setattr(&self, set: SetAttr) -> Result<()> {
        if set.mode.is_some() || set.uid.is_some() || set.gid.is_some() {
            return Err(Error::no_wstat());
        }
        Ok(())
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

struct PairHandle {
    grid: Arc<Grid>,
    answer: Mutex<Vec<u8>>,
}

#[async_trait]
impl Handle for PairHandle {
    async fn read(&self, offset: u64, count: u32) -> Result<Vec<u8>> {
        Ok(read_at(&lock(&self.answer), offset, count))
    }

    async fn write(&self, _offset: u64, data: &[u8]) -> Result<u32> {
        let request = PairRequest::parse(data).map_err(Error::invalid_arg)?;
        let answer = match request {
            PairRequest::Invite { name, offer, ttl } => invite(&self.grid, name, offer, ttl),
            PairRequest::Join { name, offer, token } => join(&self.grid, &token, name, offer).await,
        }
        .map_err(|m| Error::new(libc::EPERM, format!("pair: {m}")))?;
        *lock(&self.answer) = format!("{answer}\n").into_bytes();
        Ok(data.len() as u32)
    }
}

/// One request written to `/net/pair`.
#[derive(Debug, Clone, PartialEq)]
enum PairRequest {
    Invite {
        name: Option<String>,
        offer: Policy,
        ttl: Duration,
    },
    Join {
        name: Option<String>,
        offer: Policy,
        token: String,
    },
}

impl PairRequest {
    /// Parses `invite [name=N] [offer=P] [expires=D]` or `join [name=N]
    /// [offer=P] TOKEN`; fields are quoted as on `/ctl`.
    fn parse(data: &[u8]) -> std::result::Result<PairRequest, String> {
        let bad = |m: String| format!("pair: {m}; {PAIR_USAGE}");
        let lines = cmdbuf::lines(data).map_err(|e| bad(e.to_string()))?;
        let [line] = lines.as_slice() else {
            return Err(bad("write one request per open".into()));
        };
        let fields = cmdbuf::parse(line).map_err(|e| bad(e.to_string()))?;
        let Some((verb, args)) = fields.split_first() else {
            return Err(bad("empty request".into()));
        };
        let mut name = None;
        let mut offer = Policy::none();
        let mut ttl = None;
        let mut token = None;
        for a in args {
            match a.split_once('=') {
                Some(("name", v)) => name = Some(v.to_owned()),
                Some(("offer", v)) => {
                    offer = config::parse_policy(v).map_err(|e| bad(format!("offer: {e}")))?
                }
                Some(("expires", v)) if verb == "invite" => {
                    let d = grid_cpu::share::parse_duration(v).ok_or_else(|| {
                        bad(format!(
                            "expires: '{v}' is not a duration such as 90s, 10m or 1h"
                        ))
                    })?;
                    ttl = Some(d);
                }
                None if verb == "join" && token.is_none() => token = Some(a.clone()),
                _ => return Err(bad(format!("unexpected '{a}'"))),
            }
        }
        match verb.as_str() {
            "invite" => Ok(PairRequest::Invite {
                name,
                offer,
                ttl: ttl.unwrap_or(DEFAULT_EXPIRY),
            }),
            "join" => Ok(PairRequest::Join {
                name,
                offer,
                token: token.ok_or_else(|| bad("join: missing TOKEN".into()))?,
            }),
            other => Err(bad(format!("unknown request '{other}'"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(seed: u8) -> PublicKey {
        PublicKey::of(&ed25519_dalek::SigningKey::from_bytes(&[seed; 32]))
    }

    fn token() -> Token {
        Token {
            key: key(1),
            addrs: vec![
                TokenAddr::Ip("192.0.2.7:5641".parse().expect("addr")),
                TokenAddr::Ip("[2001:db8::1]:5641".parse().expect("addr")),
                TokenAddr::Host("grid.example".into(), 5641),
            ],
            secret: [7; SECRET_LEN],
            expires: 1_800_000_000,
        }
    }

    #[test]
    fn tokens_round_trip_and_stay_short() {
        let t = token();
        let text = t.encode();
        assert!(text.starts_with(TOKEN_PREFIX), "{text}");
        assert!(text.len() < 160, "{} chars: {text}", text.len());
        assert!(text[TOKEN_PREFIX.len()..]
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
        assert_eq!(Token::decode(&text), Ok(t.clone()));
        // A terminal that wrapped the line.
        let (a, b) = text.split_at(30);
        assert_eq!(Token::decode(&format!(" {a}\n{b}\n")), Ok(t));
    }

    #[test]
    fn damaged_tokens_are_refused_clearly() {
        let text = token().encode();
        assert_eq!(Token::decode("hello"), Err(TokenError::Prefix));
        assert_eq!(Token::decode(""), Err(TokenError::Prefix));
        assert!(matches!(
            Token::decode("grid1:"),
            Err(TokenError::Damaged(_))
        ));
        assert!(matches!(
            Token::decode("grid1:!!!!"),
            Err(TokenError::Damaged(_))
        ));
        for cut in [1, 5, text.len() / 2] {
            let short = &text[..text.len() - cut];
            assert!(
                matches!(Token::decode(short), Err(TokenError::Damaged(_))),
                "cut {cut}"
            );
        }
        // One character changed: the checksum catches it.
        let mut chars: Vec<char> = text.chars().collect();
        let i = TOKEN_PREFIX.len() + 10;
        chars[i] = if chars[i] == 'A' { 'B' } else { 'A' };
        let typo: String = chars.into_iter().collect();
        assert_eq!(
            Token::decode(&typo),
            Err(TokenError::Damaged("checksum mismatch"))
        );
        // A well-formed token with a weak key (the identity point).
        let mut identity = [0u8; 32];
        identity[0] = 1;
        let mut wire = postcard::to_allocvec(&TokenWire {
            key: identity,
            addrs: Vec::new(),
            secret: [0; SECRET_LEN],
            expires: 0,
        })
        .expect("encode");
        let check = checksum(&wire);
        wire.extend_from_slice(&check);
        let bad_key = format!("{TOKEN_PREFIX}{}", BASE64URL_NOPAD.encode(&wire));
        assert_eq!(Token::decode(&bad_key), Err(TokenError::Key));
    }

    #[tokio::test]
    async fn messages_round_trip_and_malformed_ones_are_errors() {
        let req = JoinRequest {
            secret: [3; SECRET_LEN],
            name: "bob".into(),
            offer: "files/pub r".into(),
            addrs: token().addrs,
        };
        let mut buf = Vec::new();
        write_message(&mut buf, &req).await.expect("write");
        let got: JoinRequest = read_message(&mut buf.as_slice()).await.expect("read");
        assert_eq!(got, req);

        let answer = JoinAnswer::Refused(Refusal::Used);
        let mut buf = Vec::new();
        write_message(&mut buf, &answer).await.expect("write");
        let got: JoinAnswer = read_message(&mut buf.as_slice()).await.expect("read");
        assert_eq!(got, answer);

        // Too long: refused from the length alone.
        let mut huge = ((MAX_MESSAGE + 1) as u32).to_be_bytes().to_vec();
        huge.extend_from_slice(b"xx");
        let e = read_message::<JoinRequest>(&mut huge.as_slice())
            .await
            .expect_err("too long");
        assert!(matches!(e, WireError::TooLong(_)), "{e}");
        // Cut short, garbage, trailing bytes, an unknown variant.
        let e = read_message::<JoinRequest>(&mut &b"\0\0"[..])
            .await
            .expect_err("short");
        assert!(matches!(e, WireError::Io(_)), "{e}");
        let mut garbage = 5u32.to_be_bytes().to_vec();
        garbage.extend_from_slice(&[0xff; 5]);
        let e = read_message::<JoinRequest>(&mut garbage.as_slice())
            .await
            .expect_err("garbage");
        assert!(matches!(e, WireError::Malformed(_)), "{e}");
        let mut trailing = Vec::new();
        write_message(&mut trailing, &JoinAnswer::Refused(Refusal::Expired))
            .await
            .expect("write");
        trailing[3] += 1;
        trailing.push(0);
        let e = read_message::<JoinAnswer>(&mut trailing.as_slice())
            .await
            .expect_err("trailing");
        assert!(matches!(e, WireError::Malformed(_)), "{e}");
        let mut unknown = 1u32.to_be_bytes().to_vec();
        unknown.push(9);
        assert!(read_message::<JoinAnswer>(&mut unknown.as_slice())
            .await
            .is_err());
    }

    #[tokio::test]
    async fn invites_are_one_time_and_expire_and_drive_the_window() {
        let known = KnownKeys::new();
        let invites = Arc::new(Invites::new(known.clone()));
        assert!(!known.is_pairing());
        let (secret, _) = invites
            .create(
                Some("bob".into()),
                "files/pub r".parse().expect("p"),
                DEFAULT_EXPIRY,
            )
            .expect("create");
        assert!(known.is_pairing());
        assert!(invites.reserves("bob"));
        assert_eq!(
            invites.redeem(&[0; SECRET_LEN]).err(),
            Some(Refusal::NotRecognised)
        );
        let r = invites.redeem(&secret).expect("redeem");
        assert_eq!(r.name.as_deref(), Some("bob"));
        // A second join while the first is in progress.
        assert_eq!(invites.redeem(&secret).err(), Some(Refusal::Used));
        // A failed pairing gives the invite back.
        invites.finish(&r, false);
        let r = invites.redeem(&secret).expect("again");
        invites.finish(&r, true);
        assert_eq!(invites.redeem(&secret).err(), Some(Refusal::Used));
        assert!(!known.is_pairing(), "the last invite is used");
        assert!(
            invites.text().starts_with("bob used "),
            "{}",
            invites.text()
        );

        let (short, _) = invites
            .create(None, Policy::none(), Duration::from_millis(50))
            .expect("create");
        assert!(known.is_pairing());
        // The window closes when the invite's time is up: wait for that.
        let closed = tokio::time::timeout(Duration::from_secs(10), async {
            while known.is_pairing() {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await;
        assert!(closed.is_ok(), "the window closes on expiry");
        assert_eq!(invites.redeem(&short).err(), Some(Refusal::Expired));
        assert!(invites.text().contains("- expired "), "{}", invites.text());
    }

    #[test]
    fn requests_parse_with_quoted_policies() {
        let r =
            PairRequest::parse(b"invite name=bob 'offer=files/pub r; cpu cores=1' expires=10m\n")
                .expect("invite");
        assert_eq!(
            r,
            PairRequest::Invite {
                name: Some("bob".into()),
                offer: "files/pub r; cpu cores=1".parse().expect("p"),
                ttl: Duration::from_secs(600),
            }
        );
        let r = PairRequest::parse(b"join grid1:abc").expect("join");
        assert!(matches!(r, PairRequest::Join { ref token, .. } if token == "grid1:abc"));
        for bad in [
            &b"invite expires=soon"[..],
            b"invite grid1:abc",
            b"join",
            b"join a b",
            b"join expires=1h grid1:x",
            b"frob",
            b"invite 'offer=files/pub x'",
            b"invite\ninvite\n",
        ] {
            let e = PairRequest::parse(bad).expect_err("bad");
            assert!(e.contains("usage: invite"), "{e}");
        }
    }

    /// Sends `bytes` as a join request on a new pairing connection to the
    /// inviter at `addr`, and reads the answer.
    async fn raw_join(
        ep: &Endpoint,
        addr: SocketAddr,
        key: &PublicKey,
        bytes: &[u8],
    ) -> JoinAnswer {
        let conn = ep.connect(addr, key, Alpn::Pair).await.expect("dial");
        let mut s = conn.open_stream().await.expect("stream");
        s.write_all(bytes).await.expect("write");
        s.shutdown().await.expect("finish");
        let answer = read_message(&mut s).await.expect("an answer");
        conn.close(close::DONE, "done");
        answer
    }

    #[tokio::test]
    async fn the_inviter_answers_every_request_and_pairs_only_on_the_secret() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = dir.path().join("grid.toml");
        std::fs::write(&cfg, config::default_text("a", dir.path())).expect("config");
        let ka = ed25519_dalek::SigningKey::from_bytes(&[1; 32]);
        let (grid, _) = Grid::new(
            "a".into(),
            PublicKey::of(&ka).to_hex(),
            cfg.clone(),
            &std::collections::BTreeMap::new(),
        );
        let config = grid_transport::Config {
            alpns: vec![Alpn::Pair],
            ..Default::default()
        };
        let local = "127.0.0.1:0".parse().expect("addr");
        let ea = Endpoint::bind(local, &ka, grid.peers.known_keys(), config).expect("bind");
        let addr = ea.local_addr().expect("addr");
        *lock(&grid.listen) = vec![Addr::Quic {
            host: "127.0.0.1".into(),
            port: addr.port(),
        }];
        let (sync_tx, _sync_rx) = mpsc::channel(1);
        let services = grid_transport::Services {
            ninep: None,
            other: Some(router(grid.clone(), sync_tx)),
        };
        tokio::spawn({
            let ea = ea.clone();
            async move {
                grid_transport::serve_services(&ea, services, std::future::pending()).await;
            }
        });
        let kb = ed25519_dalek::SigningKey::from_bytes(&[2; 32]);
        let eb = Endpoint::bind(local, &kb, KnownKeys::new(), Default::default()).expect("bind");

        let text = invite(
            &grid,
            Some("b".into()),
            "files/pub r".parse().expect("p"),
            DEFAULT_EXPIRY,
        )
        .expect("invite");
        let token = Token::decode(&text).expect("token");
        assert_eq!(token.addrs, vec![TokenAddr::Ip(addr)]);
        let key = token.key;
        tokio::time::timeout(Duration::from_secs(30), async {
            let bad = |a: &JoinAnswer, what: &str| {
                matches!(a, JoinAnswer::Refused(Refusal::Other(m)) if m.contains(what))
            };
            // Garbage, a length over the limit, a request cut short.
            let a = raw_join(&eb, addr, &key, &[0, 0, 0, 3, 0xff, 0xff, 0xff]).await;
            assert!(bad(&a, "bad join request: malformed"), "{a:?}");
            let a = raw_join(&eb, addr, &key, &[0xff, 0xff, 0xff, 0xff, 1]).await;
            assert!(bad(&a, "longer than the limit"), "{a:?}");
            let a = raw_join(&eb, addr, &key, &[0, 0, 1, 0, 1, 2]).await;
            assert!(bad(&a, "bad join request"), "{a:?}");

            let mut req = JoinRequest {
                secret: [0; SECRET_LEN],
                name: "bee".into(),
                offer: "files/x r".into(),
                addrs: Vec::new(),
            };
            let mut bytes = Vec::new();
            write_message(&mut bytes, &req).await.expect("encode");
            let a = raw_join(&eb, addr, &key, &bytes).await;
            assert_eq!(a, JoinAnswer::Refused(Refusal::NotRecognised));
            assert!(grid.peers.names().is_empty());

            req.secret = token.secret;
            req.offer = "files/x q".into();
            let mut bytes = Vec::new();
            write_message(&mut bytes, &req).await.expect("encode");
            let a = raw_join(&eb, addr, &key, &bytes).await;
            assert!(bad(&a, "bad offer"), "{a:?}");

            // The invite survived the failures; the right request pairs.
            req.offer = "files/x r".into();
            let mut bytes = Vec::new();
            write_message(&mut bytes, &req).await.expect("encode");
            let a = raw_join(&eb, addr, &key, &bytes).await;
            assert_eq!(
                a,
                JoinAnswer::Paired {
                    name: "a".into(),
                    offer: "files/pub r".into()
                }
            );
            let cfg_b = grid.peers.config("b").expect("peer b");
            assert_eq!(cfg_b.key, PublicKey::of(&kb));
            assert_eq!(cfg_b.request.to_string(), "files/x r");
            let saved = config::load(&cfg).expect("saved");
            assert_eq!(saved.peers.get("b"), Some(&cfg_b));
            let a = raw_join(&eb, addr, &key, &bytes).await;
            assert_eq!(a, JoinAnswer::Refused(Refusal::Used));
            assert!(!grid.peers.known_keys().is_pairing());
        })
        .await
        .expect("in time");
    }

    #[test]
    fn names_from_other_grids_are_made_safe() {
        assert_eq!(sanitize("alice"), "alice");
        assert_eq!(sanitize("al ice/../x"), "alice..x");
        assert_eq!(sanitize(".."), "peer");
        assert_eq!(sanitize(""), "peer");
        assert_eq!(sanitize(&"x".repeat(100)).len(), 56);
    }

    #[test]
    fn reachable_addrs_replace_wildcards_and_put_loopback_last() {
        let listen = vec![
            Addr::Unix("/s".into()),
            Addr::Quic {
                host: "127.0.0.1".into(),
                port: 1,
            },
            Addr::Quic {
                host: "0.0.0.0".into(),
                port: 2,
            },
            Addr::Quic {
                host: "grid.example".into(),
                port: 3,
            },
        ];
        let got = reachable_addrs(&listen);
        assert!(got.iter().all(|a| match a {
            TokenAddr::Ip(s) => !s.ip().is_unspecified(),
            TokenAddr::Host(h, _) => h == "grid.example",
        }));
        assert!(got.contains(&TokenAddr::Ip("127.0.0.1:1".parse().expect("a"))));
        assert!(got.contains(&TokenAddr::Ip("127.0.0.1:2".parse().expect("a"))));
        let first_loopback = got
            .iter()
            .position(|a| matches!(a, TokenAddr::Ip(s) if s.ip().is_loopback()))
            .expect("loopback");
        assert!(got[first_loopback..]
            .iter()
            .all(|a| matches!(a, TokenAddr::Ip(s) if s.ip().is_loopback())));
    }

    #[test]
    fn joiner_addresses_put_the_source_first_when_it_is_a_listener() {
        let sent = vec![TokenAddr::Ip("192.0.2.9:5641".parse().expect("a"))];
        let got = joiner_addrs(&sent, "198.51.100.3:5641".parse().expect("a"));
        assert_eq!(
            got.iter().map(ToString::to_string).collect::<Vec<_>>(),
            ["quic!198.51.100.3!5641", "quic!192.0.2.9!5641"]
        );
        let got = joiner_addrs(&sent, "198.51.100.3:40000".parse().expect("a"));
        assert_eq!(got.len(), 1);
    }
}

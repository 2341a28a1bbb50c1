//! `grid.toml`, the daemon's configuration (grid.toml(5)).
//!
//! On first start gridd writes [`default_text`]: every setting with its
//! default and a comment. Loading reports the first problem as
//! `FILE:LINE: KEY: what is wrong`. Run-time changes made through `/ctl`
//! (`export`, `unexport`) are written back with toml_edit, which keeps the
//! user's comments and layout.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use grid_policy::Policy;
use grid_transport::PublicKey;
use ninep::Addr;
use serde::Deserialize;
use toml::Spanned;

/// The largest msize gridd will offer.
pub const MAX_MSIZE: u32 = 16 << 20;
/// The smallest msize gridd can be configured with.
pub const MIN_MSIZE: u32 = 4096;

/// The settings, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// This grid's local name.
    pub name: String,
    /// Addresses to serve on besides the state directory's socket.
    pub listen: Vec<Addr>,
    /// Largest msize offered.
    pub msize: u32,
    /// Trace every 9P message on stderr.
    pub trace: bool,
    /// Directories served under /files.
    pub files: BTreeMap<String, Export>,
    /// Other grids this one knows, by local name (`[peers.NAME]`).
    pub peers: BTreeMap<String, PeerConfig>,
    /// Named groups of peers and what each is offered (`[groups.NAME]`).
    pub groups: BTreeMap<String, GroupConfig>,
    /// LAN discovery of other grids (`[lan]`).
    pub lan: LanConfig,
    /// The Yggdrasil overlay (`[overlay]`).
    pub overlay: crate::overlay::OverlayConfig,
}

/// The `[lan]` table: discovery of other grids on the LAN (mDNS/DNS-SD).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LanConfig {
    /// Advertise this grid and list the others in `/net/lan` (only when a
    /// QUIC listener is not loopback-only).
    pub discover: bool,
}

impl Default for LanConfig {
    fn default() -> Self {
        LanConfig { discover: true }
    }
}

/// One `[peers.NAME]` table: another grid, known by its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerConfig {
    /// Its Ed25519 public key.
    pub key: PublicKey,
    /// Where to dial it: `quic!HOST!PORT` dial strings.
    pub addrs: Vec<Addr>,
    /// What this grid grants it (grid-policy(7)).
    pub offer: Policy,
    /// What this grid asks of it (grid-policy(7)).
    pub request: Policy,
    /// The `[groups.NAME]` it belongs to; their offers add to its own.
    pub groups: Vec<String>,
}

/// One `[groups.NAME]` table: what every member of the group is offered.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GroupConfig {
    /// What this grid grants each member (grid-policy(7)).
    pub offer: Policy,
}

/// One directory served under `/files/NAME`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Export {
    /// The host directory.
    pub path: PathBuf,
    /// Refuse every change.
    pub read_only: bool,
}

impl Export {
    /// Parses `PATH` or `PATH:ro` / `PATH:rw`.
    pub fn parse(s: &str) -> Result<Export, String> {
        let (path, read_only) = match s.rsplit_once(':') {
            Some((p, "ro")) => (p, true),
            Some((p, "rw")) => (p, false),
            _ => (s, false),
        };
        if path.is_empty() {
            return Err("empty path".into());
        }
        if !path.starts_with('/') {
            return Err(format!("path '{path}' must be absolute"));
        }
        Ok(Export {
            path: PathBuf::from(path),
            read_only,
        })
    }

    /// The `PATH[:ro]` form.
    pub fn to_spec(&self) -> String {
        if self.read_only {
            format!("{}:ro", self.path.display())
        } else {
            self.path.display().to_string()
        }
    }
}

/// Checks an export or peer name: what may appear as one path element.
pub fn check_name(name: &str) -> Result<(), String> {
    // The same rule as peer and group names (grid-policy's).
    grid_policy::check_name(name)
        .map_err(|_| format!("bad name '{name}': use 1 to 64 letters, digits, '-', '_' or '.'"))
}

/// A configuration problem, located.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file.
    pub file: PathBuf,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// The key, when known.
    pub key: Option<String>,
    /// What is wrong.
    pub msg: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if let Some(key) = &self.key {
            write!(f, ": {key}")?;
        }
        write!(f, ": {}", self.msg)
    }
}

impl std::error::Error for ConfigError {}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    name: Option<Spanned<String>>,
    #[serde(default)]
    listen: Vec<Spanned<String>>,
    msize: Option<Spanned<u32>>,
    #[serde(default)]
    trace: bool,
    #[serde(default)]
    files: BTreeMap<String, Spanned<String>>,
    #[serde(default)]
    peers: BTreeMap<String, Spanned<RawPeer>>,
    #[serde(default)]
    groups: BTreeMap<String, Spanned<RawGroup>>,
    #[serde(default)]
    lan: RawLan,
    #[serde(default)]
    overlay: RawOverlay,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawOverlay {
    yggdrasil: Option<Spanned<String>>,
    port: Option<u16>,
    quic_port: Option<u16>,
    links: Option<Vec<Spanned<String>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLan {
    #[serde(default = "yes")]
    discover: bool,
}

impl Default for RawLan {
    fn default() -> Self {
        RawLan { discover: true }
    }
}

fn yes() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPeer {
    key: Spanned<String>,
    #[serde(default)]
    addrs: Vec<Spanned<String>>,
    offer: Option<Spanned<String>>,
    request: Option<Spanned<String>>,
    #[serde(default)]
    groups: Vec<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGroup {
    offer: Option<Spanned<String>>,
}

/// Parses a peer's dial string: only `quic!HOST!PORT` reaches a grid.
pub fn parse_peer_addr(s: &str) -> Result<Addr, String> {
    match Addr::parse(s).map_err(|e| e.to_string())? {
        a @ Addr::Quic { .. } => Ok(a),
        other => Err(format!(
            "'{other}': a peer's address must be quic!HOST!PORT"
        )),
    }
}

/// Parses a policy in the grid-policy(7) grammar, with the error as text.
pub fn parse_policy(s: &str) -> Result<Policy, String> {
    s.parse::<Policy>().map_err(|e| e.to_string())
}

/// Reads and checks `path`.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        file: path.to_owned(),
        line: None,
        key: None,
        msg: format!("cannot read: {e}"),
    })?;
    parse(path, &text)
}

/// Checks the text of a configuration file named `path`.
pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
    let at = |span: std::ops::Range<usize>, key: &str, msg: String| ConfigError {
        file: path.to_owned(),
        line: Some(line_of(text, span.start)),
        key: Some(key.to_owned()),
        msg,
    };
    let raw: Raw = toml::from_str(text).map_err(|e| {
        let line = e.span().map(|s| line_of(text, s.start));
        let key = line.and_then(|l| key_on_line(text, l));
        ConfigError {
            file: path.to_owned(),
            line,
            key,
            msg: e.message().trim().to_owned(),
        }
    })?;
    let name = match raw.name {
        Some(n) => {
            check_name(n.get_ref()).map_err(|m| at(n.span(), "name", m))?;
            n.into_inner()
        }
        None => host_name(),
    };
    let mut listen = Vec::new();
    for a in &raw.listen {
        let addr = Addr::parse(a.get_ref()).map_err(|e| at(a.span(), "listen", e.to_string()))?;
        listen.push(addr);
    }
    let msize = match raw.msize {
        Some(m) if *m.get_ref() < 4096 || *m.get_ref() > MAX_MSIZE => {
            return Err(at(
                m.span(),
                "msize",
                format!("must be from 4096 to {MAX_MSIZE}"),
            ))
        }
        Some(m) => m.into_inner(),
        None => ninep_server::DEFAULT_MAX_MSIZE,
    };
    let mut files = BTreeMap::new();
    for (name, spec) in raw.files {
        let key = format!("files.{name}");
        check_name(&name).map_err(|m| at(spec.span(), &key, m))?;
        let export = Export::parse(spec.get_ref()).map_err(|m| at(spec.span(), &key, m))?;
        files.insert(name, export);
    }
    let mut groups = BTreeMap::new();
    for (gname, g) in raw.groups {
        let span = g.span();
        let g = g.into_inner();
        let key = format!("groups.{gname}");
        check_name(&gname).map_err(|m| at(span.clone(), &key, m))?;
        let offer = optional_policy(&g.offer, &format!("{key}.offer"), &at)?;
        groups.insert(gname, GroupConfig { offer });
    }
    let mut peers = BTreeMap::new();
    let mut keys = BTreeMap::new();
    for (pname, p) in raw.peers {
        let span = p.span();
        let p = p.into_inner();
        let key = format!("peers.{pname}");
        check_name(&pname).map_err(|m| at(span.clone(), &key, m))?;
        let pk: PublicKey = p
            .key
            .get_ref()
            .parse()
            .map_err(|e: grid_transport::KeyError| {
                at(p.key.span(), &format!("{key}.key"), e.to_string())
            })?;
        if let Some(other) = keys.insert(pk, pname.clone()) {
            return Err(at(
                p.key.span(),
                &format!("{key}.key"),
                format!("the same key as peers.{other}"),
            ));
        }
        let mut addrs = Vec::new();
        for a in &p.addrs {
            addrs.push(
                parse_peer_addr(a.get_ref())
                    .map_err(|m| at(a.span(), &format!("{key}.addrs"), m))?,
            );
        }
        let offer = optional_policy(&p.offer, &format!("{key}.offer"), &at)?;
        let request = optional_policy(&p.request, &format!("{key}.request"), &at)?;
        let mut member_of = Vec::new();
        for g in &p.groups {
            if !groups.contains_key(g.get_ref()) {
                return Err(at(
                    g.span(),
                    &format!("{key}.groups"),
                    format!("no [groups.{}] table", g.get_ref()),
                ));
            }
            member_of.push(g.get_ref().clone());
        }
        peers.insert(
            pname,
            PeerConfig {
                key: pk,
                addrs,
                offer,
                request,
                groups: member_of,
            },
        );
    }
    Ok(Config {
        name,
        listen,
        msize,
        trace: raw.trace,
        files,
        peers,
        groups,
        lan: LanConfig {
            discover: raw.lan.discover,
        },
        overlay: overlay_config(raw.overlay, &at)?,
    })
}

/// The policy at `key`, or nothing when the key is left out.
fn optional_policy(
    o: &Option<Spanned<String>>,
    key: &str,
    at: &dyn Fn(std::ops::Range<usize>, &str, String) -> ConfigError,
) -> Result<Policy, ConfigError> {
    match o {
        Some(o) => parse_policy(o.get_ref()).map_err(|m| at(o.span(), key, m)),
        None => Ok(Policy::none()),
    }
}

/// Checks the `[overlay]` table; what it leaves out keeps its default.
fn overlay_config(
    raw: RawOverlay,
    at: &dyn Fn(std::ops::Range<usize>, &str, String) -> ConfigError,
) -> Result<crate::overlay::OverlayConfig, ConfigError> {
    let mut cfg = crate::overlay::OverlayConfig::default();
    if let Some(y) = raw.yggdrasil {
        cfg.yggdrasil = crate::overlay::Yggdrasil::parse(y.get_ref())
            .map_err(|m| at(y.span(), "overlay.yggdrasil", m))?;
    }
    cfg.port = raw.port.unwrap_or(cfg.port);
    cfg.quic_port = raw.quic_port.unwrap_or(cfg.quic_port);
    for link in raw.links.unwrap_or_default() {
        crate::overlay::check_link(link.get_ref())
            .map_err(|m| at(link.span(), "overlay.links", m))?;
        cfg.links.push(link.into_inner());
    }
    Ok(cfg)
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

fn key_on_line(text: &str, line: usize) -> Option<String> {
    let l = text.lines().nth(line.checked_sub(1)?)?;
    let (key, _) = l.split_once('=')?;
    let key = key.trim();
    (!key.is_empty() && !key.starts_with('#')).then(|| key.to_owned())
}

/// The machine's host name, the default grid name.
pub fn host_name() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: buf is valid for buf.len() bytes; gethostname NUL-terminates
    // when the name fits, and we stop at the first NUL or the end.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    let name = String::from_utf8_lossy(&buf[..end]).into_owned();
    let name: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .take(64)
        .collect();
    if rc != 0 || name.is_empty() {
        "grid".to_owned()
    } else {
        name
    }
}

/// The commented file gridd writes on first start.
pub fn default_text(name: &str, state: &Path) -> String {
    format!(
        r#"# grid.toml: settings of this grid's gridd (see grid.toml(5)).
# gridd wrote this file on first start; each setting shows its default.
# Edit it and restart gridd. Exports added with `echo export ... > /ctl`
# are written back here.

# This grid's name: a local alias, shown in /status. Default: the host name.
name = "{name}"

# Addresses to serve 9P on, as Plan 9 dial strings (tcp!HOST!PORT,
# unix!PATH, quic!HOST!PORT), besides the socket {sock},
# which is always served with mode 0600 (its owner has full access).
# quic!HOST!PORT (UDP) serves other grids: only the keys of [peers], each
# under its policy, encrypted and authenticated by key.
# 9P over plain TCP is not encrypted: keep it on loopback, or on the
# Yggdrasil overlay once federation is configured.
#   listen = ["tcp!127.0.0.1!5640"]
listen = []

# Largest 9P message size (msize) offered to clients, in bytes:
# 1 MiB of data plus the 24-byte I/O header. From 4096 to {max}.
msize = {msize}

# Print every 9P message on stderr, like lib9p's chatty9p (gridd -D).
trace = false

# Directories served under /files/NAME: NAME = "PATH" (read-write) or
# NAME = "PATH:ro" (read-only). Paths must be absolute.
[files]
#   music = "/home/me/Music:ro"

# Other grids, by local name (their /n/NAME here). key is the peer's
# public key (64 hex digits, the key line of its /status); addrs are
# quic!HOST!PORT dial strings; offer is what this grid grants it and
# request what this grid asks of it, in the grid-policy(7) grammar;
# groups names [groups.NAME] tables whose offers add to its own.
# `echo peer add ... > /ctl` writes these tables.
#   [peers.alice]
#   key = "3b6a27bcceb6a42d62a3a8d02a6f0d73653215771de243a63ac048a18b59da29"
#   addrs = ["quic!alice.example.net!5640"]
#   offer = "files/pub r"
#   request = "files/pub r"
#   groups = ["clubhouse"]

# Named groups of peers: offer is granted to every member.
#   [groups.clubhouse]
#   offer = "files/sensors r"

# Discovery of other grids on the LAN (mDNS/DNS-SD, _grid._udp): when a
# quic listener is not loopback-only, advertise this grid (name, key,
# port) and list the grids seen in /net/lan, so `peer add NAME KEY` needs
# no address. What the LAN says is only a hint where to dial: the key is
# still checked.
[lan]
discover = true

# The Yggdrasil overlay (see gridd(8)). yggdrasil is "auto" (the admin
# socket of Debian's yggdrasil, if there is one), "off", or an admin
# endpoint (unix:///PATH or tcp://HOST:PORT). The daemon must run with
# this grid's key (`gridd --yggdrasil-config` writes its config); then
# gridd serves on its overlay address: plain 9P over TCP on port (from
# configured peers only, each under its policy) and QUIC on quic_port.
# 0 turns either off. links are yggdrasil peering links (such as
# "tls://HOST:PORT") gridd keeps up through the admin socket: it redials
# any that is down every 5 s (Debian 12's 0.4.7 itself waits 60 s).
[overlay]
yggdrasil = "auto"
port = 564
quic_port = 5640
links = []
"#,
        sock = crate::paths::socket_in(state).display(),
        max = MAX_MSIZE,
        msize = ninep_server::DEFAULT_MAX_MSIZE,
    )
}

/// Sets (or with `None` removes) `files.NAME` in the file at `path`,
/// keeping everything else as the user wrote it.
pub fn set_export(path: &Path, name: &str, export: Option<&Export>) -> anyhow::Result<()> {
    edit(path, |doc| {
        let files = table(doc, "files", path)?;
        match export {
            Some(e) => {
                files.insert(name, toml_edit::value(e.to_spec()));
            }
            None => {
                files.remove(name);
            }
        }
        Ok(())
    })
}

/// Sets (or with `None` removes) the `[peers.NAME]` table in the file at
/// `path`, keeping everything else as the user wrote it.
pub fn set_peer(path: &Path, name: &str, peer: Option<&PeerConfig>) -> anyhow::Result<()> {
    edit(path, |doc| {
        let peers = table(doc, "peers", path)?;
        match peer {
            Some(p) => {
                let mut t = toml_edit::Table::new();
                t.insert("key", toml_edit::value(p.key.to_hex()));
                let mut addrs = toml_edit::Array::new();
                for a in &p.addrs {
                    addrs.push(a.to_string());
                }
                t.insert("addrs", toml_edit::value(addrs));
                t.insert("offer", toml_edit::value(p.offer.to_string()));
                t.insert("request", toml_edit::value(p.request.to_string()));
                if !p.groups.is_empty() {
                    let mut groups = toml_edit::Array::new();
                    for g in &p.groups {
                        groups.push(g.as_str());
                    }
                    t.insert("groups", toml_edit::value(groups));
                }
                peers.insert(name, toml_edit::Item::Table(t));
            }
            None => {
                peers.remove(name);
            }
        }
        Ok(())
    })
}

fn table<'a>(
    doc: &'a mut toml_edit::DocumentMut,
    key: &str,
    path: &Path,
) -> anyhow::Result<&'a mut dyn toml_edit::TableLike> {
    let item = doc.entry(key).or_insert_with(|| {
        let mut t = toml_edit::Table::new();
        t.set_implicit(true);
        toml_edit::Item::Table(t)
    });
    item.as_table_like_mut()
        .ok_or_else(|| anyhow::anyhow!("{}: {key} is not a table", path.display()))
}

/// Applies `change` to the document at `path` and writes it back.
fn edit(
    path: &Path,
    change: impl FnOnce(&mut toml_edit::DocumentMut) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(path)?;
    let mut doc: toml_edit::DocumentMut = text
        .parse()
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    change(&mut doc)?;
    write_atomic(path, doc.to_string().as_bytes())?;
    Ok(())
}

/// Replaces the file `path` leads to with `data`, atomically and durably:
/// a temporary file beside it, synced, renamed over it, and the directory
/// synced, so a crash leaves the old file or the new one, never an empty
/// one. A symlink at `path` stays a symlink; an existing file keeps its
/// permissions. gridd saves grid.toml and STATE/ns with it.
pub fn write_atomic(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let target = match std::fs::canonicalize(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => path.to_owned(),
        Err(e) => return Err(e),
    };
    let mut tmp_name = target.file_name().unwrap_or_default().to_owned();
    tmp_name.push(".new");
    let tmp = target.with_file_name(tmp_name);
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(data)?;
    if let Ok(meta) = std::fs::metadata(&target) {
        f.set_permissions(meta.permissions())?;
    }
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, &target)?;
    if let Some(dir) = target.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p() -> &'static Path {
        Path::new("/etc/grid/grid.toml")
    }

    #[test]
    fn the_default_text_loads_to_the_defaults() {
        let cfg = parse(p(), &default_text("pi", Path::new("/var/lib/grid"))).expect("loads");
        assert_eq!(cfg.name, "pi");
        assert!(cfg.listen.is_empty());
        assert_eq!(cfg.msize, ninep_server::DEFAULT_MAX_MSIZE);
        assert!(cfg.files.is_empty());
        assert!(!cfg.trace);
        assert!(cfg.lan.discover);
        assert_eq!(cfg.overlay, crate::overlay::OverlayConfig::default());
    }

    #[test]
    fn overlay_settings_load_and_errors_name_the_key() {
        let cfg = parse(
            p(),
            "[overlay]\nyggdrasil = \"unix:///run/y.sock\"\nport = 0\n",
        )
        .expect("loads");
        assert_eq!(cfg.overlay.yggdrasil.to_string(), "unix:///run/y.sock");
        assert_eq!(cfg.overlay.port, 0);
        assert_eq!(cfg.overlay.quic_port, crate::overlay::DEFAULT_QUIC_PORT);
        let e = parse(p(), "[overlay]\n\nyggdrasil = \"on\"\n").expect_err("bad");
        assert_eq!(
            (e.line, e.key.as_deref()),
            (Some(3), Some("overlay.yggdrasil")),
            "{e}"
        );
        let e = parse(p(), "[overlay]\nport = 70000\n").expect_err("range");
        assert_eq!(e.line, Some(2), "{e}");
        let e = parse(p(), "[overlay]\nprt = 1\n").expect_err("unknown key");
        assert!(e.msg.contains("unknown field `prt`"), "{e}");
    }

    #[test]
    fn overlay_links_are_checked_uris() {
        let cfg = parse(
            p(),
            "[overlay]\nlinks = [\"tls://198.51.100.7:443\", \"tcp://[fd00::1]:7000?key=ab\"]\n",
        )
        .expect("loads");
        assert_eq!(
            cfg.overlay.links,
            ["tls://198.51.100.7:443", "tcp://[fd00::1]:7000?key=ab"]
        );
        for bad in ["198.51.100.7:443", "http://h:1", "tls://h", "tls://h:port"] {
            let text = format!("[overlay]\n\nlinks = [\"{bad}\"]\n");
            let e = parse(p(), &text).expect_err(bad);
            assert_eq!(
                (e.line, e.key.as_deref()),
                (Some(3), Some("overlay.links")),
                "{e}"
            );
        }
    }

    #[test]
    fn lan_discovery_can_be_turned_off() {
        assert!(parse(p(), "").expect("empty").lan.discover);
        let cfg = parse(p(), "[lan]\ndiscover = false\n").expect("off");
        assert!(!cfg.lan.discover);
        let e = parse(p(), "[lan]\ndiscover = \"no\"\n").expect_err("type");
        assert_eq!(e.line, Some(2), "{e}");
        let e = parse(p(), "[lan]\ndiscovr = true\n").expect_err("unknown key");
        assert!(e.msg.contains("unknown field `discovr`"), "{e}");
    }

    #[test]
    fn errors_name_file_line_and_key() {
        let e = parse(p(), "name = \"a\"\nlisten = [\"tcp!h!99999\"]\n").expect_err("bad port");
        assert_eq!(e.line, Some(2));
        assert_eq!(e.key.as_deref(), Some("listen"));
        assert!(
            e.to_string()
                .starts_with("/etc/grid/grid.toml:2: listen: bad address"),
            "{e}"
        );

        let e = parse(p(), "\n\nmsize = \"big\"\n").expect_err("type");
        assert_eq!((e.line, e.key.as_deref()), (Some(3), Some("msize")), "{e}");

        let e = parse(p(), "lisen = []\n").expect_err("unknown key");
        assert_eq!(e.line, Some(1));
        assert!(e.msg.contains("unknown field `lisen`"), "{e}");

        let e = parse(p(), "[files]\npub = \"relative/path\"\n").expect_err("relative");
        assert_eq!(
            (e.line, e.key.as_deref()),
            (Some(2), Some("files.pub")),
            "{e}"
        );

        let e = parse(p(), "msize = 12\n").expect_err("small msize");
        assert!(e.to_string().contains("msize: must be from 4096"), "{e}");

        let e = parse(p(), "name = [\n").expect_err("syntax");
        assert_eq!(e.line, Some(2).or(e.line));
    }

    const KEY: &str = "3b6a27bcceb6a42d62a3a8d02a6f0d73653215771de243a63ac048a18b59da29";

    #[test]
    fn peers_and_groups_load_and_errors_name_the_key() {
        let text = format!(
            "[peers.alice]\nkey = \"{KEY}\"\naddrs = [\"quic!127.0.0.1!5640\"]\noffer = \"files/pub r\"\ngroups = [\"club\"]\n\n[groups.club]\noffer = \"files/club rw\"\n"
        );
        let cfg = parse(p(), &text).expect("loads");
        let alice = &cfg.peers["alice"];
        assert_eq!(alice.key.to_hex(), KEY);
        assert_eq!(alice.offer.to_string(), "files/pub r");
        assert!(alice.request.is_empty());
        assert_eq!(alice.groups, vec!["club".to_owned()]);
        assert_eq!(cfg.groups["club"].offer.to_string(), "files/club rw");

        let e = parse(p(), "[peers.bob]\nkey = \"12\"\n").expect_err("short key");
        assert_eq!(
            (e.line, e.key.as_deref()),
            (Some(2), Some("peers.bob.key")),
            "{e}"
        );
        let bad = format!("[peers.bob]\nkey = \"{KEY}\"\naddrs = [\"tcp!h!1\"]\n");
        let e = parse(p(), &bad).expect_err("tcp addr");
        assert_eq!(
            (e.line, e.key.as_deref()),
            (Some(3), Some("peers.bob.addrs")),
            "{e}"
        );
        let bad = format!("[peers.bob]\nkey = \"{KEY}\"\n\noffer = \"files/pub x\"\n");
        let e = parse(p(), &bad).expect_err("bad policy");
        assert_eq!(
            (e.line, e.key.as_deref()),
            (Some(4), Some("peers.bob.offer")),
            "{e}"
        );
        let bad = format!("[peers.bob]\nkey = \"{KEY}\"\ngroups = [\"nope\"]\n");
        let e = parse(p(), &bad).expect_err("no group");
        assert!(e.msg.contains("no [groups.nope]"), "{e}");
    }

    #[test]
    fn set_peer_round_trips() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("grid.toml");
        std::fs::write(&path, default_text("pi", dir.path())).expect("write");
        let peer = PeerConfig {
            key: KEY.parse().expect("key"),
            addrs: vec![parse_peer_addr("quic!127.0.0.1!9").expect("addr")],
            offer: parse_policy("files/pub rw").expect("offer"),
            request: Policy::none(),
            groups: Vec::new(),
        };
        set_peer(&path, "bob", Some(&peer)).expect("set");
        let text = std::fs::read_to_string(&path).expect("read");
        assert!(text.contains("# This grid's name"));
        assert_eq!(
            parse(&path, &text).expect("parse").peers.get("bob"),
            Some(&peer)
        );
        set_peer(&path, "bob", None).expect("unset");
        let text = std::fs::read_to_string(&path).expect("read");
        assert!(parse(&path, &text).expect("parse").peers.is_empty());
    }

    #[test]
    fn exports_parse_with_modes() {
        assert_eq!(
            Export::parse("/srv/pub:ro"),
            Ok(Export {
                path: "/srv/pub".into(),
                read_only: true
            })
        );
        assert_eq!(
            Export::parse("/srv/a:b"),
            Ok(Export {
                path: "/srv/a:b".into(),
                read_only: false
            })
        );
        assert!(Export::parse("srv").is_err());
        assert!(check_name("../x").is_err());
        assert!(check_name("music").is_ok());
    }

    #[test]
    fn set_export_keeps_comments() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("grid.toml");
        std::fs::write(&path, default_text("pi", dir.path())).expect("write");
        let e = Export {
            path: "/srv/pub".into(),
            read_only: true,
        };
        set_export(&path, "pub", Some(&e)).expect("set");
        let text = std::fs::read_to_string(&path).expect("read");
        assert!(text.contains("# This grid's name"));
        assert_eq!(
            parse(&path, &text).expect("parse").files.get("pub"),
            Some(&e)
        );
        set_export(&path, "pub", None).expect("unset");
        let text = std::fs::read_to_string(&path).expect("read");
        assert!(parse(&path, &text).expect("parse").files.is_empty());
    }
}

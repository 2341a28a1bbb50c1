//! Plan 9 dial strings: `tcp!host!port`, `unix!/path/to/socket`.
//!
//! Parsing only; connecting and listening belong to the crates that do I/O.
//! As in dial(2), `net` may stand for `tcp` and the service may be named
//! (`9fs`, `9p`). For convenience `host:port`, `[v6]:port`, `[v6]` and a
//! bare `/path` are accepted too. The 9P port, 564, is the default for
//! `tcp!host`. [`Addr::parse_dial`], for clients, also takes a bare host
//! name or address (`alice`, `::1`), as mount(8) does.

use std::fmt;
use std::path::PathBuf;

/// The registered 9P port (9pfs).
pub const DEFAULT_PORT: u16 = 564;

/// A parsed dial string.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Addr {
    /// TCP to a host name or address, or `*` (all addresses) when listening.
    Tcp {
        /// Host name or literal address (IPv6 without brackets).
        host: String,
        /// Port.
        port: u16,
    },
    /// A unix-domain socket.
    Unix(PathBuf),
    /// QUIC (UDP) to a host and port.
    Quic {
        /// Host name or literal address.
        host: String,
        /// Port.
        port: u16,
    },
}

/// A dial string that could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad address '{input}': {why}")]
pub struct AddrError {
    input: String,
    why: &'static str,
}

impl Addr {
    /// Parses a dial string.
    pub fn parse(s: &str) -> Result<Addr, AddrError> {
        let err = |why| AddrError {
            input: s.to_owned(),
            why,
        };
        let port = |p: &str| match p {
            "9fs" | "9p" => Ok(DEFAULT_PORT),
            p => p
                .parse::<u16>()
                .map_err(|_| err("port must be a number from 0 to 65535, 9fs or 9p")),
        };
        if let Some((net, rest)) = s.split_once('!') {
            let (host, p) = match rest.rsplit_once('!') {
                Some((h, p)) => (h, Some(p)),
                None => (rest, None),
            };
            return match net {
                "unix" if !rest.is_empty() => Ok(Addr::Unix(PathBuf::from(rest))),
                "unix" => Err(err("unix needs a path")),
                "tcp" | "net" | "quic" if host.is_empty() => Err(err("missing host")),
                "tcp" | "net" | "quic" if host.contains('!') => Err(err("expected net!host!port")),
                "tcp" | "net" | "quic" => {
                    let port = match p {
                        Some(p) => port(p)?,
                        None => DEFAULT_PORT,
                    };
                    let host = host.to_owned();
                    Ok(if net == "quic" {
                        Addr::Quic { host, port }
                    } else {
                        Addr::Tcp { host, port }
                    })
                }
                _ => Err(err("network must be tcp, unix or quic")),
            };
        }
        if s.starts_with('/') || s.starts_with('.') {
            return Ok(Addr::Unix(PathBuf::from(s)));
        }
        if let Some(rest) = s.strip_prefix('[') {
            let (host, tail) = rest
                .split_once(']')
                .ok_or_else(|| err("expected [address]:port"))?;
            let port = match tail.strip_prefix(':') {
                Some(p) => port(p)?,
                None if tail.is_empty() => DEFAULT_PORT,
                None => return Err(err("expected [address]:port")),
            };
            if host.is_empty() {
                return Err(err("missing host"));
            }
            return Ok(Addr::Tcp {
                host: host.to_owned(),
                port,
            });
        }
        match s.rsplit_once(':') {
            Some((host, p)) if !host.is_empty() && !host.contains(':') => Ok(Addr::Tcp {
                host: host.to_owned(),
                port: port(p)?,
            }),
            _ => Err(err("expected tcp!host!port, unix!/path or host:port")),
        }
    }

    /// [`Addr::parse`], and also a bare host name or address (`alice`,
    /// `10.0.0.2`, `::1`) for TCP to the 9P port: what a client is given
    /// on a command line. Listeners and configuration use the stricter
    /// [`Addr::parse`], where a bare word is more likely a mistake.
    pub fn parse_dial(s: &str) -> Result<Addr, AddrError> {
        let strict = Addr::parse(s);
        let bare_host = !s.is_empty()
            && !s.contains(['!', '/', '[', ']'])
            && !s.chars().any(|c| c.is_whitespace() || c.is_control())
            && (!s.contains(':') || s.parse::<std::net::Ipv6Addr>().is_ok());
        match strict {
            Err(_) if bare_host => Ok(Addr::Tcp {
                host: s.to_owned(),
                port: DEFAULT_PORT,
            }),
            r => r,
        }
    }

    /// Whether a listener on this address is reachable only from this
    /// machine (a unix socket, or a loopback or `localhost` address).
    pub fn is_loopback_or_local(&self) -> bool {
        match self {
            Addr::Unix(_) => true,
            Addr::Tcp { host, .. } | Addr::Quic { host, .. } => {
                host == "localhost"
                    || host
                        .parse::<std::net::IpAddr>()
                        .map(|ip| ip.is_loopback())
                        .unwrap_or(false)
            }
        }
    }

    /// `host:port` for the socket APIs (`*` becomes the unspecified address).
    pub fn socket_addr_string(&self) -> Option<String> {
        match self {
            Addr::Unix(_) => None,
            Addr::Tcp { host, port } | Addr::Quic { host, port } => Some(match host.as_str() {
                "*" => format!("[::]:{port}"),
                h if h.contains(':') => format!("[{h}]:{port}"),
                h => format!("{h}:{port}"),
            }),
        }
    }
}

impl fmt::Display for Addr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Addr::Tcp { host, port } => write!(f, "tcp!{host}!{port}"),
            Addr::Quic { host, port } => write!(f, "quic!{host}!{port}"),
            Addr::Unix(p) => write!(f, "unix!{}", p.display()),
        }
    }
}

impl std::str::FromStr for Addr {
    type Err = AddrError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Addr::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dial_strings() {
        let tcp = |h: &str, p| Addr::Tcp {
            host: h.into(),
            port: p,
        };
        assert_eq!(
            Addr::parse("tcp!127.0.0.1!5640"),
            Ok(tcp("127.0.0.1", 5640))
        );
        assert_eq!(Addr::parse("tcp!::1!564"), Ok(tcp("::1", 564)));
        assert_eq!(Addr::parse("tcp!alice"), Ok(tcp("alice", 564)));
        assert_eq!(Addr::parse("localhost:99"), Ok(tcp("localhost", 99)));
        assert_eq!(Addr::parse("[::1]:99"), Ok(tcp("::1", 99)));
        assert_eq!(
            Addr::parse("unix!/run/g.sock"),
            Ok(Addr::Unix("/run/g.sock".into()))
        );
        assert_eq!(
            Addr::parse("/run/g.sock"),
            Ok(Addr::Unix("/run/g.sock".into()))
        );
        assert_eq!(Addr::parse("net!h!9fs"), Ok(tcp("h", 564)));
        assert_eq!(Addr::parse("[::1]"), Ok(tcp("::1", 564)));
        assert!(Addr::parse("[]:5").is_err());
        assert!(Addr::parse("[::1]x").is_err());
        assert!(Addr::parse("a!b!c!d").is_err());
        assert!(Addr::parse("tcp!h!port").is_err());
        assert!(Addr::parse("tcp!!1").is_err());
        assert!(Addr::parse("unix!").is_err());
        assert!(Addr::parse("tcp!h!99999").is_err());
        assert!(Addr::parse("udp!h!1").is_err());
        assert!(Addr::parse("nonsense").is_err());
        assert_eq!(tcp("::1", 5).to_string(), "tcp!::1!5");
        assert_eq!(
            Addr::parse("tcp!*!564")
                .ok()
                .and_then(|a| a.socket_addr_string()),
            Some("[::]:564".into())
        );
    }

    #[test]
    fn dial_also_takes_a_bare_host() {
        let tcp = |h: &str| Addr::Tcp {
            host: h.into(),
            port: DEFAULT_PORT,
        };
        assert_eq!(Addr::parse_dial("alice"), Ok(tcp("alice")));
        assert_eq!(Addr::parse_dial("::1"), Ok(tcp("::1")));
        assert_eq!(Addr::parse_dial("10.0.0.2"), Ok(tcp("10.0.0.2")));
        assert_eq!(Addr::parse_dial("h:99"), Addr::parse("h:99"));
        for bad in [
            "",
            "udp!h!1",
            "h:99999",
            "a b",
            "x:y:z",
            "[::1",
            "tcp!h!port",
        ] {
            assert!(Addr::parse_dial(bad).is_err(), "{bad}");
        }
    }
}

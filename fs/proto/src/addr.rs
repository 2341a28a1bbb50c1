//! Plan 9 dial strings: `tcp!host!port`, `unix!/path/to/socket`.
//!
//! Parsing only; connecting and listening belong to the crates that do I/O.
//! For convenience `host:port`, `[v6]:port` and a bare `/path` are accepted
//! too. The 9P port, 564, is the default for `tcp!host`.

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
        let port = |p: &str| {
            p.parse::<u16>()
                .map_err(|_| err("port must be a number from 0 to 65535"))
        };
        if let Some((net, rest)) = s.split_once('!') {
            let (host, p) = match rest.rsplit_once('!') {
                Some((h, p)) => (h, Some(p)),
                None => (rest, None),
            };
            return match net {
                "unix" if !rest.is_empty() => Ok(Addr::Unix(PathBuf::from(rest))),
                "unix" => Err(err("unix needs a path")),
                "tcp" | "quic" if host.is_empty() => Err(err("missing host")),
                "tcp" | "quic" => {
                    let port = match p {
                        Some(p) => port(p)?,
                        None => DEFAULT_PORT,
                    };
                    let host = host.to_owned();
                    Ok(if net == "tcp" {
                        Addr::Tcp { host, port }
                    } else {
                        Addr::Quic { host, port }
                    })
                }
                _ => Err(err("network must be tcp, unix or quic")),
            };
        }
        if s.starts_with('/') || s.starts_with('.') {
            return Ok(Addr::Unix(PathBuf::from(s)));
        }
        if let Some(rest) = s.strip_prefix('[') {
            let (host, p) = rest
                .split_once("]:")
                .ok_or_else(|| err("expected [address]:port"))?;
            return Ok(Addr::Tcp {
                host: host.to_owned(),
                port: port(p)?,
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
}

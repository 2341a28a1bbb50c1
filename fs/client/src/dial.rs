//! Plan 9 dial strings (dial(2)): `net!host!service`.

use std::path::PathBuf;

use crate::{Error, Result, DEFAULT_PORT};

/// Where to connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Addr {
    Tcp {
        host: String,
        port: u16,
    },
    #[cfg(unix)]
    Unix(PathBuf),
}

/// Parses `tcp!host!port`, `tcp!host`, `net!host!port`, `unix!/path`,
/// `host:port`, `[v6addr]:port`, `host` and `/path`.
pub(crate) fn parse(addr: &str) -> Result<Addr> {
    let bad = |why: &str| Error::Invalid(format!("dial string '{addr}': {why}"));
    if addr.contains('!') {
        let parts: Vec<&str> = addr.split('!').collect();
        return match parts.as_slice() {
            ["unix", path] if !path.is_empty() => unix(path).ok_or_else(|| bad("no unix sockets")),
            ["tcp" | "net", host] if !host.is_empty() => Ok(tcp(host, DEFAULT_PORT)),
            ["tcp" | "net", host, service] if !host.is_empty() => {
                let port = port(service).ok_or_else(|| bad("bad port"))?;
                Ok(tcp(host, port))
            }
            [net, ..] if !matches!(*net, "tcp" | "net" | "unix") => {
                Err(bad(&format!("unknown network '{net}'")))
            }
            _ => Err(bad("expected tcp!host!port or unix!/path")),
        };
    }
    if addr.starts_with('/') {
        return unix(addr).ok_or_else(|| bad("no unix sockets"));
    }
    if addr.is_empty() {
        return Err(bad("empty"));
    }
    // `[::1]:564`, `host:564`, or a bare host (a bare IPv6 address has
    // several colons and no brackets).
    if let Some(rest) = addr.strip_prefix('[') {
        let (host, tail) = rest.split_once(']').ok_or_else(|| bad("unclosed '['"))?;
        let port = match tail.strip_prefix(':') {
            Some(p) => port(p).ok_or_else(|| bad("bad port"))?,
            None if tail.is_empty() => DEFAULT_PORT,
            None => return Err(bad("junk after ']'")),
        };
        return Ok(tcp(host, port));
    }
    match addr.split_once(':') {
        Some((host, p)) if !p.contains(':') => {
            let port = port(p).ok_or_else(|| bad("bad port"))?;
            Ok(tcp(host, port))
        }
        _ => Ok(tcp(addr, DEFAULT_PORT)),
    }
}

fn tcp(host: &str, port: u16) -> Addr {
    Addr::Tcp {
        host: host.to_owned(),
        port,
    }
}

#[cfg(unix)]
fn unix(path: &str) -> Option<Addr> {
    Some(Addr::Unix(PathBuf::from(path)))
}

#[cfg(not(unix))]
fn unix(_path: &str) -> Option<Addr> {
    None
}

fn port(service: &str) -> Option<u16> {
    match service {
        "9fs" | "9p" => Some(DEFAULT_PORT),
        s => s.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn t(host: &str, port: u16) -> Addr {
        tcp(host, port)
    }

    #[test]
    fn plan9_dial_strings() {
        assert_eq!(
            parse("tcp!example.org!5640").unwrap(),
            t("example.org", 5640)
        );
        assert_eq!(parse("tcp!10.0.0.1").unwrap(), t("10.0.0.1", 564));
        assert_eq!(parse("net!h!9fs").unwrap(), t("h", 564));
        assert_eq!(parse("tcp!::1!564").unwrap(), t("::1", 564));
        assert_eq!(
            parse("unix!/run/grid.sock").unwrap(),
            Addr::Unix("/run/grid.sock".into())
        );
    }

    #[test]
    fn unix_style_addresses() {
        assert_eq!(parse("localhost:564").unwrap(), t("localhost", 564));
        assert_eq!(parse("[::1]:99").unwrap(), t("::1", 99));
        assert_eq!(parse("[::1]").unwrap(), t("::1", 564));
        assert_eq!(parse("::1").unwrap(), t("::1", 564));
        assert_eq!(parse("host").unwrap(), t("host", 564));
        assert_eq!(parse("/tmp/s").unwrap(), Addr::Unix("/tmp/s".into()));
    }

    #[test]
    fn bad_dial_strings() {
        for s in [
            "",
            "udp!h!1",
            "tcp!h!port",
            "tcp!!1",
            "unix!",
            "h:99999",
            "[::1",
            "a!b!c!d",
        ] {
            let e = parse(s).unwrap_err().to_string();
            assert!(e.contains("dial string"), "{s}: {e}");
        }
        assert_eq!(
            parse("udp!h!1").unwrap_err().to_string(),
            "invalid request: dial string 'udp!h!1': unknown network 'udp'"
        );
    }
}

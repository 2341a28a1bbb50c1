//! Plan 9 dial strings (dial(2)) for the client: the parsing is
//! [`ninep::Addr::parse_dial`], shared with gridd's listeners; this keeps
//! only the networks a 9P client dials itself.

use std::path::PathBuf;

use ninep::Addr as DialString;

use crate::{Error, Result};

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

/// Parses `tcp!host!port`, `tcp!host`, `net!host!9fs`, `unix!/path`,
/// `host:port`, `[v6addr]:port`, `host` and `/path`.
pub(crate) fn parse(addr: &str) -> Result<Addr> {
    let bad = |why: String| Error::Invalid(format!("dial string '{addr}': {why}"));
    match DialString::parse_dial(addr) {
        Ok(DialString::Tcp { host, port }) => Ok(Addr::Tcp { host, port }),
        #[cfg(unix)]
        Ok(DialString::Unix(path)) => Ok(Addr::Unix(path)),
        #[cfg(not(unix))]
        Ok(DialString::Unix(_)) => Err(bad("no unix sockets here".into())),
        Ok(DialString::Quic { .. }) => Err(bad(
            "9P over QUIC is spoken between grids; dial the local gridd instead".into(),
        )),
        Err(e) => Err(bad(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn t(host: &str, port: u16) -> Addr {
        Addr::Tcp {
            host: host.to_owned(),
            port,
        }
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
            "quic!h!5640",
        ] {
            let e = parse(s).unwrap_err().to_string();
            assert!(e.contains("dial string"), "{s}: {e}");
        }
        assert_eq!(
            parse("udp!h!1").unwrap_err().to_string(),
            "invalid request: dial string 'udp!h!1': bad address 'udp!h!1': network must be tcp, unix or quic"
        );
    }
}

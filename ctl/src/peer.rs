//! `grid peer`: thin wrappers over gridd's `/ctl` and `/net/peers`
//! (gridfs(4)); everything here is a write of one control message or a
//! read of a few files.

use ninep_client::OpenFlags;

use crate::commands::Report;
use crate::ns::{Failure, Ns};

/// What `grid peer` was asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerOp {
    /// `peer add NAME KEY [ADDR...]`.
    Add {
        /// Local name.
        name: String,
        /// Public key, hex.
        key: String,
        /// `quic!HOST!PORT` dial strings.
        addrs: Vec<String>,
    },
    /// `peer rm NAME`.
    Rm {
        /// Local name.
        name: String,
    },
    /// `peer ls`: one line per peer, `NAME KEY STATUS`.
    Ls,
}

/// Runs `op` against the grid at `ns`.
pub async fn peer(ns: &Ns, op: &PeerOp) -> Report {
    let mut report = Report::default();
    let r = match op {
        PeerOp::Add { name, key, addrs } => {
            // Quoted, so a field with a blank, quote or newline stays one
            // field and cannot start a second control message.
            let mut line = format!("peer add {} {}", quote(name), quote(key));
            for a in addrs {
                line.push(' ');
                line.push_str(&quote(a));
            }
            ctl(ns, &line).await
        }
        PeerOp::Rm { name } => ctl(ns, &format!("peer rm {}", quote(name))).await,
        PeerOp::Ls => ls(ns).await,
    };
    report.step(r);
    report
}

async fn ctl(ns: &Ns, line: &str) -> Result<(), Failure> {
    let mut fid = ns.walk("/ctl").await?;
    fid.open(OpenFlags::WRITE)
        .await
        .map_err(|e| Failure::remote("/ctl", &e))?;
    crate::commands::write_message(&fid, &format!("{line}\n"))
        .await
        .map_err(|e| Failure::remote("/ctl", &e))
}

fn quote(field: &str) -> std::borrow::Cow<'_, str> {
    cmdbuf::quote(field)
}

async fn read(ns: &Ns, path: &str) -> Result<String, Failure> {
    let mut fid = ns.walk(path).await?;
    fid.open(OpenFlags::READ)
        .await
        .map_err(|e| Failure::remote(path, &e))?;
    let data = fid
        .read_all()
        .await
        .map_err(|e| Failure::remote(path, &e))?;
    Ok(String::from_utf8_lossy(&data).trim_end().to_owned())
}

async fn ls(ns: &Ns) -> Result<(), Failure> {
    let dir = ns.walk("/net/peers").await?;
    let mut names: Vec<String> = dir
        .readdir()
        .await
        .map_err(|e| Failure::remote("/net/peers", &e))?
        .into_iter()
        .map(|e| e.name)
        .collect();
    names.sort();
    let mut out = String::new();
    for n in names {
        let key = read(ns, &format!("/net/peers/{n}/key")).await?;
        let status = read(ns, &format!("/net/peers/{n}/status")).await?;
        out.push_str(&format!("{n} {key} {status}\n"));
    }
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(out.as_bytes())
        .and_then(|()| stdout.flush())
        .map_err(|e| Failure::io("standard output", &e))
}

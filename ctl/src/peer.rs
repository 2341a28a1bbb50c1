//! `grid peer`: thin wrappers over gridd's `/ctl`, `/net/peers` and
//! `/net/pair` (gridfs(4)); everything here is a write of one control
//! message or request, or a read of a few files.

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
    /// `peer invite [--name NAME] [--offer POLICY] [--expires DURATION]`:
    /// prints a one-time token as the last line.
    Invite {
        /// What this grid will call the joiner (default: its own name).
        name: Option<String>,
        /// What this grid grants the joiner (grid-policy(7)).
        offer: Option<String>,
        /// How long the token lasts (default 1h).
        expires: Option<String>,
    },
    /// `peer join [--name NAME] [--offer POLICY] TOKEN`: pairs with the
    /// grid that made TOKEN and prints the new peer's name.
    Join {
        /// What to call the inviting grid (default: its own name).
        name: Option<String>,
        /// What this grid grants the inviter (grid-policy(7)).
        offer: Option<String>,
        /// The token `peer invite` printed there.
        token: String,
    },
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
        PeerOp::Invite {
            name,
            offer,
            expires,
        } => invite(ns, name.as_deref(), offer.as_deref(), expires.as_deref()).await,
        PeerOp::Join { name, offer, token } => {
            join(ns, name.as_deref(), offer.as_deref(), token).await
        }
    };
    report.step(r);
    report
}

/// Writes one request to `/net/pair` and reads its answer on the same fid
/// (gridfs(4)); a failure is reported as `grid: peer VERB: MESSAGE`.
async fn pair_request(ns: &Ns, verb: &str, line: &str) -> Result<String, Failure> {
    let subject = format!("peer {verb}");
    let mut fid = ns.walk("/net/pair").await?;
    fid.open(OpenFlags::RDWR)
        .await
        .map_err(|e| Failure::remote("/net/pair", &e))?;
    let failed = |e: &ninep_client::Error| {
        let msg = crate::ns::message(e);
        let msg = msg.strip_prefix("pair: ").unwrap_or(&msg).to_owned();
        Failure::at(&subject, msg)
    };
    crate::commands::write_message(&fid, &format!("{line}\n"))
        .await
        .map_err(|e| failed(&e))?;
    let answer = fid.read_all().await.map_err(|e| failed(&e))?;
    Ok(String::from_utf8_lossy(&answer).trim().to_owned())
}

/// Appends ` KEY=VALUE`, quoted, when `value` is given.
fn push_opt(line: &mut String, key: &str, value: Option<&str>) {
    if let Some(v) = value {
        line.push(' ');
        line.push_str(&quote(&format!("{key}={v}")));
    }
}

async fn invite(
    ns: &Ns,
    name: Option<&str>,
    offer: Option<&str>,
    expires: Option<&str>,
) -> Result<(), Failure> {
    let mut line = "invite".to_owned();
    push_opt(&mut line, "name", name);
    push_opt(&mut line, "offer", offer);
    push_opt(&mut line, "expires", expires);
    let token = pair_request(ns, "invite", &line).await?;
    let who = name.map_or_else(|| "another grid".to_owned(), |n| format!("'{n}'"));
    print_out(&format!(
        "One-time invite for {who}, valid for {}. On that grid, run:\n  grid peer join TOKEN\nwith TOKEN the next line.\n{token}\n",
        expires.unwrap_or("1h")
    ))
}

async fn join(
    ns: &Ns,
    name: Option<&str>,
    offer: Option<&str>,
    token: &str,
) -> Result<(), Failure> {
    let mut line = "join".to_owned();
    push_opt(&mut line, "name", name);
    push_opt(&mut line, "offer", offer);
    line.push(' ');
    line.push_str(&quote(token.trim()));
    let peer = pair_request(ns, "join", &line).await?;
    print_out(&format!("{peer}\n"))
}

fn print_out(text: &str) -> Result<(), Failure> {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
        .map_err(|e| Failure::io("standard output", &e))
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
    Ok(ns.read_text(path).await?.trim_end().to_owned())
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
    print_out(&out)
}

/// `grid lan`: `/net/lan` as a table, `NAME KEY PEER ADDRESSES` (PEER is
/// `-` for a grid that is not a peer here), under a header; nothing when
/// no grid is seen.
pub async fn lan(ns: &Ns) -> Report {
    let mut report = Report::default();
    let r = async {
        let text = read(ns, "/net/lan").await?;
        print_out(&lan_table(&text))
    }
    .await;
    report.step(r);
    report
}

/// Lays out the lines of `/net/lan` (`NAME KEY ADDR... [peer PEER]`) in
/// aligned columns; a line of another shape is kept as it is.
fn lan_table(text: &str) -> String {
    let mut rows: Vec<[String; 4]> = Vec::new();
    let mut odd = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 3 {
            odd.push(line.to_owned());
            continue;
        }
        // The `peer PEER` tail is the last two fields: a grid may call
        // itself "peer", so the word is looked for only there.
        let n = f.len();
        let (addrs, peer) = if n >= 4 && f[n - 2] == "peer" {
            (&f[2..n - 2], f[n - 1])
        } else {
            (&f[2..], "-")
        };
        rows.push([
            f[0].to_owned(),
            f[1].to_owned(),
            peer.to_owned(),
            addrs.join(" "),
        ]);
    }
    let mut out = String::new();
    if !rows.is_empty() {
        rows.insert(0, ["NAME", "KEY", "PEER", "ADDRESSES"].map(str::to_owned));
        let width = |i: usize| rows.iter().map(|r| r[i].len()).max().unwrap_or(0);
        let (w0, w1, w2) = (width(0), width(1), width(2));
        for r in &rows {
            out.push_str(&format!(
                "{:w0$}  {:w1$}  {:w2$}  {}\n",
                r[0], r[1], r[2], r[3]
            ));
        }
    }
    for line in odd {
        out.push_str(&line);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod lan_tests {
    use super::lan_table;

    #[test]
    fn lan_lines_become_aligned_columns() {
        let k1 = "a".repeat(64);
        let k2 = "b".repeat(64);
        let text = format!(
            "bob {k1} quic!10.0.0.2!5641 quic!10.0.0.3!5641 peer robert\npi {k2} quic!10.0.0.9!5641\n"
        );
        let want = format!(
            "NAME  {:64}  PEER    ADDRESSES\n\
             bob   {k1}  robert  quic!10.0.0.2!5641 quic!10.0.0.3!5641\n\
             pi    {k2}  -       quic!10.0.0.9!5641\n",
            "KEY"
        );
        assert_eq!(lan_table(&text), want);
        assert_eq!(lan_table(""), "");
        assert_eq!(lan_table("odd\n"), "odd\n");
        // A grid named "peer" is not mistaken for the tail.
        let named_peer = format!("peer {k1} quic!10.0.0.2!5641 peer p\n");
        assert!(
            lan_table(&named_peer).ends_with(&format!("peer  {k1}  p     quic!10.0.0.2!5641\n"))
        );
    }
}

//! Proposal exchange between peers: each side tells the other what it
//! offers it and what it requests of it, and each computes the same
//! [`grid_policy::Agreement`] (gridfs(4), `/net/peers/NAME/policy`).
//!
//! The exchange runs on its own QUIC connection, ALPN `grid-sync/1`, one
//! bidirectional stream per exchange. The dialer writes its proposal and
//! finishes its half; the acceptor records it, answers with its own and
//! finishes. A proposal is two lines, each policy in the canonical
//! one-line form of grid-policy(7):
//!
//! ```text
//! offer files/pub r; cpu cores=2
//! request files/pub r
//! ```
//!
//! A grid sends its proposal when it starts, when a peer is added, and
//! whenever its offer or request for the peer changes; the peer answers
//! with its own, so both sides learn of every change on either side.
//! Dials are retried a few times with backoff; a peer that stays away
//! hears the proposal when it next starts (it sends its own then, and
//! gets ours in the answer).

use std::sync::Arc;
use std::time::Duration;

use grid_policy::{Policy, Proposal};
use grid_transport::{close, Alpn, Connection};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use crate::peers::Peers;

/// The largest proposal read.
const MAX_PROPOSAL: u64 = 64 << 10;
/// How long one exchange may take once connected.
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(5);
/// Attempts of one push, with the wait doubling from [`FIRST_RETRY`].
const ATTEMPTS: u32 = 6;
const FIRST_RETRY: Duration = Duration::from_millis(250);

/// Why an exchange failed.
#[derive(Debug, thiserror::Error)]
enum ExchangeError {
    #[error("{0}")]
    Transport(#[from] grid_transport::Error),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("timed out")]
    Timeout,
    #[error("no longer a peer")]
    Gone,
    #[error("bad proposal: {0}")]
    Bad(String),
}

/// The text of a proposal.
pub fn encode(p: &Proposal) -> String {
    format!("offer {}\nrequest {}\n", p.offer, p.request)
}

/// Parses the text of a proposal.
pub fn decode(text: &str) -> Result<Proposal, String> {
    let mut offer = None;
    let mut request = None;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let (word, rest) = line.split_once(' ').unwrap_or((line, ""));
        let policy = |s: &str| s.parse::<Policy>().map_err(|e| format!("{word}: {e}"));
        match word {
            "offer" if offer.is_none() => offer = Some(policy(rest)?),
            "request" if request.is_none() => request = Some(policy(rest)?),
            _ => return Err(format!("unexpected line '{line}'")),
        }
    }
    match (offer, request) {
        (Some(offer), Some(request)) => Ok(Proposal { offer, request }),
        _ => Err("needs an offer line and a request line".into()),
    }
}

/// Answers the `grid-sync/1` connections handed over by the QUIC server.
pub async fn serve(peers: Arc<Peers>, mut conns: mpsc::Receiver<Connection>) {
    while let Some(conn) = conns.recv().await {
        let peers = peers.clone();
        tokio::spawn(async move { answer(peers, conn).await });
    }
}

async fn answer(peers: Arc<Peers>, conn: Connection) {
    let Some(name) = peers.name_of(&conn.peer_key()) else {
        conn.close(close::UNKNOWN_PEER, "not a peer");
        return;
    };
    if conn.alpn() != Alpn::Sync {
        conn.close(close::NO_SERVICE, "protocol not served here");
        return;
    }
    while let Ok(mut stream) = conn.accept_stream().await {
        let exchange = async {
            let theirs = read_proposal(&mut stream).await?;
            peers.heard(&name, theirs);
            let mine = peers.mine(&name).ok_or(ExchangeError::Gone)?;
            stream.write_all(encode(&mine).as_bytes()).await?;
            stream.shutdown().await?;
            Ok::<(), ExchangeError>(())
        };
        match tokio::time::timeout(EXCHANGE_TIMEOUT, exchange).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("gridd: peer {name}: proposal: {e}"),
            Err(_) => eprintln!("gridd: peer {name}: proposal: timed out"),
        }
    }
}

async fn read_proposal(stream: &mut grid_transport::Stream) -> Result<Proposal, ExchangeError> {
    let mut buf = Vec::new();
    // One byte past the limit tells a long proposal from one that fits: a
    // long one is refused, never cut and then read as a narrower policy.
    stream.take(MAX_PROPOSAL + 1).read_to_end(&mut buf).await?;
    if buf.len() as u64 > MAX_PROPOSAL {
        return Err(ExchangeError::Bad(format!(
            "proposal longer than {MAX_PROPOSAL} bytes"
        )));
    }
    let text = String::from_utf8(buf).map_err(|_| ExchangeError::Bad("not UTF-8".into()))?;
    decode(&text).map_err(ExchangeError::Bad)
}

/// Sends my proposal to peer `name` in the background, and records its
/// answer.
pub fn push(peers: &Arc<Peers>, name: &str) {
    let peers = peers.clone();
    let name = name.to_owned();
    tokio::spawn(async move {
        let mut wait = FIRST_RETRY;
        for _ in 0..ATTEMPTS {
            // Done, or nothing to do (removed, or nowhere to dial).
            if exchange(&peers, &name).await.is_ok() {
                return;
            }
            tokio::time::sleep(wait).await;
            wait *= 2;
        }
    });
}

/// One exchange; also `Ok` when there is nothing to do (no endpoint, no
/// such peer, no address).
async fn exchange(peers: &Arc<Peers>, name: &str) -> Result<(), ExchangeError> {
    let (Some(ep), Some((key, addrs))) = (peers.endpoint(), peers.dial_info(name)) else {
        return Ok(());
    };
    let mut last = None;
    for addr in addrs {
        match ep.connect(addr, &key, Alpn::Sync).await {
            Ok(conn) => {
                let r = tokio::time::timeout(EXCHANGE_TIMEOUT, async {
                    let mine = peers.mine(name).ok_or(ExchangeError::Gone)?;
                    let mut stream = conn.open_stream().await?;
                    stream.write_all(encode(&mine).as_bytes()).await?;
                    stream.shutdown().await?;
                    let theirs = read_proposal(&mut stream).await?;
                    peers.heard(name, theirs);
                    Ok::<(), ExchangeError>(())
                })
                .await
                .unwrap_or(Err(ExchangeError::Timeout));
                conn.close(close::DONE, "done");
                return r;
            }
            Err(e) => last = Some(e),
        }
    }
    match last {
        Some(e) => Err(e.into()),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proposals_round_trip() {
        let p = Proposal {
            offer: "files/pub r; cpu cores=2".parse().expect("offer"),
            request: Policy::none(),
        };
        assert_eq!(decode(&encode(&p)), Ok(p));
        assert!(decode("offer files/pub r\n").is_err());
        assert!(decode("offer x\nrequest\nrequest\n").is_err());
        assert!(decode("hello\n").is_err());
    }
}

//! The peer verbs of `/ctl` (gridfs(4)): `peer add`, `peer rm`, `offer`
//! and `request`. Each changes the live peer table at once, is saved to
//! grid.toml's `[peers.NAME]` table, and (but `rm`) sends the peer my new
//! proposal.

use ninep_server::{Error, Result};

use crate::config::{self, PeerConfig};
use crate::namespace::{save_peer, Grid};

/// `peer add NAME KEY [ADDR...]` and `peer rm NAME`; `f[0]` is the verb.
pub(crate) fn peer(grid: &Grid, f: &[String]) -> Result<()> {
    let name = f.get(2).ok_or_else(|| usage("peer: missing NAME"))?;
    match f[1].as_str() {
        "add" => {
            config::check_name(name).map_err(|m| usage(&format!("peer add: {m}")))?;
            let key = f.get(3).ok_or_else(|| usage("peer add: missing KEY"))?;
            let key = key
                .parse()
                .map_err(|e| usage(&format!("peer add: key: {e}")))?;
            let addrs = f[4..]
                .iter()
                .map(|a| config::parse_peer_addr(a))
                .collect::<std::result::Result<Vec<_>, _>>()
                .map_err(|m| usage(&format!("peer add: {m}")))?;
            let cfg = PeerConfig {
                key,
                addrs,
                offer: grid_policy::Policy::none(),
                request: grid_policy::Policy::none(),
                groups: Vec::new(),
            };
            grid.peers
                .add(name, cfg.clone())
                .map_err(|e| Error::new(libc::EEXIST, format!("peer add: {e}")))?;
            grid.retry_pending();
            crate::negotiate::push(&grid.peers, name);
            save_peer(grid, name, Some(&cfg))
        }
        "rm" => {
            if f.len() > 3 {
                return Err(usage("peer rm: expected NAME only"));
            }
            grid.peers
                .remove(name)
                .map_err(|e| Error::new(libc::ENOENT, format!("peer rm: {e}")))?;
            save_peer(grid, name, None)
        }
        other => Err(usage(&format!("peer: expected add or rm, not '{other}'"))),
    }
}

/// `offer NAME POLICY` and `request NAME POLICY`: the policy is the rest
/// of the line, in the grid-policy(7) grammar (empty: nothing).
pub(crate) fn proposal(grid: &Grid, f: &[String]) -> Result<()> {
    let verb = f[0].as_str();
    let name = &f[1];
    let text = f[2..].join(" ");
    let policy = config::parse_policy(&text).map_err(|m| usage(&format!("{verb}: {m}")))?;
    let (offer, request) = if verb == "offer" {
        (Some(policy), None)
    } else {
        (None, Some(policy))
    };
    let cfg = grid
        .peers
        .set_proposal(name, offer, request)
        .map_err(|e| Error::new(libc::ENOENT, format!("{verb}: {e}")))?;
    crate::negotiate::push(&grid.peers, name);
    save_peer(grid, name, Some(&cfg))
}

fn usage(msg: &str) -> Error {
    Error::invalid_arg(msg.to_owned())
}

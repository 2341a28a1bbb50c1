//! gridd, the grid agent: one machine's namespace served over 9P.
//!
//! The binary (`main.rs`) only parses flags and calls [`daemon::run`]; the
//! pieces live here so tests and the `grid` command can use them.
//!
//! # Layout
//!
//! - [`alloc`]: glibc malloc thresholds for msize-sized buffers.
//! - [`paths`]: where state lives (`--state`, `/var/lib/grid`, `$XDG_DATA_HOME/grid`).
//! - [`identity`]: the grid's Ed25519 key, created on first start.
//! - [`config`]: `grid.toml`: the commented default, loading with errors
//!   that name file, line and key, and in-place edits that keep comments.
//! - [`namespace`]: the tree gridd serves: `/status`, `/ctl`, `/files/NAME`,
//!   and `/cpu` (the `grid-cpu` crate).
//! - [`peers`]: other grids: the peer table, `/n/PEER`, `/net/peers`,
//!   and the policy view each peer is served ([`peers::GridFs`]);
//!   `peers_ctl` holds their `/ctl` verbs.
//! - [`lan`]: LAN discovery of other grids (mDNS/DNS-SD), `/net/lan`.
//! - [`negotiate`]: the exchange of offers and requests between peers
//!   (ALPN `grid-sync/1`).
//! - [`pair`]: pairing invites (`/net/pair`, `/net/invites`, ALPN
//!   `grid-pair/1`).
//! - [`term`]: `/mnt/term` for peers' jobs: the caller's namespace,
//!   mounted with `grid mount` for the job's sandbox to bind.
//! - [`overlay`]: joining the Yggdrasil overlay: 9P over TCP and QUIC on
//!   the grid's overlay address, plain TCP from known peers only.
//! - [`daemon`]: start-up, listeners (QUIC for peers), signals and shutdown.
//!
//! # Non-goals (for now)
//!
//! `/store` and `/sensors` come with later work.

#![warn(missing_docs, unreachable_pub)]

pub mod alloc;
pub mod config;
pub mod daemon;
pub mod identity;
pub mod lan;
pub mod namespace;
pub mod negotiate;
pub mod overlay;
pub mod pair;
pub mod paths;
pub mod peers;
mod peers_ctl;
pub mod term;

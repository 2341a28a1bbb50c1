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
//! - [`daemon`]: start-up, listeners, signals and shutdown.
//!
//! # Non-goals (for now)
//!
//! Peers, policy, `/store`, `/sensors` and `/n` come with the
//! federation, store and sensor work; this crate is where they will be
//! wired in.

#![warn(missing_docs, unreachable_pub)]

pub mod alloc;
pub mod config;
pub mod daemon;
pub mod identity;
pub mod namespace;
pub mod paths;

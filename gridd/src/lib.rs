//! gridd, the grid agent: one machine's namespace served over 9P.
//!
//! The binary (`main.rs`) only parses flags and calls [`daemon::run`]; the
//! pieces live here so tests and the `grid` command can use them.
//!
//! # Layout
//!
//! - [`paths`]: where state lives (`--state`, `/var/lib/grid`, `$XDG_DATA_HOME/grid`).
//! - [`identity`]: the grid's Ed25519 key, created on first start.
//! - [`config`]: `grid.toml`: the commented default, loading with errors
//!   that name file, line and key, and in-place edits that keep comments.
//! - [`namespace`]: the tree gridd serves: `/status`, `/ctl`, `/files/NAME`.
//! - [`daemon`]: start-up, listeners, signals and shutdown.
//!
//! # Non-goals (for now)
//!
//! Peers, policy, `/cpu`, `/store`, `/sensors` and `/n` come with the
//! federation, cpu, store and sensor work; this crate is where they will be
//! wired in.

#![warn(missing_docs, unreachable_pub)]

pub mod config;
pub mod daemon;
pub mod identity;
pub mod namespace;
pub mod paths;

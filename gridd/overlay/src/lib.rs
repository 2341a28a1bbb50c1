//! The Yggdrasil overlay for grids.
//!
//! Yggdrasil gives every node an IPv6 address in 200::/7 derived from
//! its Ed25519 key. Run with the grid's own key as its node key, a grid's
//! overlay address *is* its grid key: a peer whose QUIC handshake proved
//! key K and whose packets come from `address_for_key(K)` is the same
//! peer, and plain-TCP 9P from an overlay source address can be tied to a
//! known peer's key without any handshake.
//!
//! This crate owns the address derivation (checked against the real
//! daemon), a client for the daemon's admin socket, and the daemon config
//! for a grid. Both are tested against real daemons of both versions
//! Debian 12 has: 0.4.7, and 0.5.12 from bookworm-backports (which does
//! not peer with 0.4).
//! It does not run the daemon, open listeners, or keep the peers table:
//! gridd does (see its docs), and the netns test harness in `grid-tests`
//! runs real daemons.
//!
//! ```no_run
//! # async fn demo() -> Result<(), grid_overlay::AdminError> {
//! use grid_overlay::{address_matches_key, Admin, AdminAddr};
//!
//! let admin = Admin::new(AdminAddr::parse("unix:///run/yggdrasil/yggdrasil.sock")?);
//! let me = admin.get_self().await?;
//! println!("listen on [{}]:564", me.address);
//! for p in admin.get_peers().await? {
//!     assert!(address_matches_key(&p.address, &p.key));
//! }
//! # Ok(()) }
//! ```
//!
//! # Layout
//!
//! - `address`: [`address_for_key`], [`subnet_for_key`],
//!   [`address_matches_key`], [`is_overlay`].
//! - `admin`: [`Admin`] (one JSON request per connection, time-limited),
//!   [`SelfInfo`], [`PeerInfo`], [`AdminError`].
//! - `config`: [`YggConfig`], the daemon's config with the grid key as
//!   node key.

#![warn(missing_docs, unreachable_pub)]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![cfg_attr(test, allow(clippy::expect_used, clippy::panic))]

mod address;
mod admin;
mod config;

pub use address::{address_for_key, address_matches_key, is_overlay, subnet_for_key};
pub use admin::{Admin, AdminAddr, AdminError, PeerInfo, SelfInfo};
pub use config::{MulticastInterface, YggConfig};

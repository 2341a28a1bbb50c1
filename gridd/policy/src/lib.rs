//! What one grid grants another, and its enforcement on the serving side.
//!
//! A [`Policy`] is a set of grants, written in the grid-policy(7) grammar:
//! subtrees of my namespace, read-only or read-write (`files/pub r`), a cpu
//! share (`cpu cores=2 mem=1G`), a store quota (`store quota=10G`), and
//! whether I carry sealed letters for the peer (`letters`).
//!
//! Each side keeps, per peer and per named group of peers, a [`Proposal`]
//! (an offer: what I grant them; a request: what I want from them) in a
//! [`Book`]. When two grids meet they exchange proposals and each computes
//! the same [`Agreement`]: what I grant is my offer ∩ their request.
//!
//! The grant lives in a [`LiveGrant`] that can be replaced or withdrawn at
//! any moment. A [`PolicyView`] wraps my namespace root for one peer and
//! checks the live grant on every operation of every node and open handle,
//! so the peer sees only its grants, cannot write outside `rw` ones, and
//! loses access at once on withdrawal. What the peer did is counted in its
//! [`Audit`], the text of `/net/peers/NAME/audit`.
//!
//! ```
//! use grid_policy::{Access, Agreement, Policy, Proposal};
//!
//! let mine = Proposal { offer: "files rw; cpu cores=4".parse()?, request: Policy::none() };
//! let theirs = Proposal { offer: Policy::none(), request: "files/pub r; cpu cores=8 jobs=2".parse()? };
//! let granted = Agreement::between(&mine, &theirs).granted;
//! assert_eq!(granted.to_string(), "files/pub r; cpu cores=4 jobs=2");
//! assert_eq!(granted.access("files/pub/notes.txt"), Access::Read);
//! assert_eq!(granted.access("files/private"), Access::Hidden);
//! # Ok::<(), grid_policy::ParseError>(())
//! ```
//!
//! # Layout
//!
//! - `policy`: [`Policy`] as a value in normal form, [`Access`] of a path,
//!   intersection and union.
//! - `parse`: the grammar: [`parse()`], `FromStr` and canonical `Display`,
//!   [`ParseError`].
//! - `agree`: [`Proposal`], [`Agreement`], [`Book`] (per-peer and group
//!   proposals).
//! - `live`: [`LiveGrant`], the replaceable grant a view reads.
//! - `view`: [`PolicyView`], the enforcing [`ninep_server::Node`].
//! - `audit`: [`Audit`] counters and their text.
//!
//! # Non-goals
//!
//! No networking, no clock-driven behaviour and no persistence: sending
//! proposals on connect, storing them in grid.toml, serving
//! `/net/peers/NAME/{policy,audit}` and choosing which view a connection
//! gets belong to gridd. The cpu share and store quota are only carried
//! here; the cpu and store trees enforce them. Access control by host user
//! is the export's (`ninep-export`), not this crate's.

#![warn(missing_docs, unreachable_pub)]

mod agree;
mod audit;
mod live;
mod parse;
mod policy;
mod view;

pub use agree::{check_name, Agreement, Book, NameError, Proposal};
pub use audit::{Audit, Op, RECENT_DENIALS};
pub use live::LiveGrant;
pub use parse::{parse, ParseError, Problem};
pub use policy::{Access, Cpu, GrantPath, Mode, PathError, Policy, Store, KEYWORDS};
pub use view::PolicyView;

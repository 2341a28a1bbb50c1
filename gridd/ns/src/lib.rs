//! Plan 9 namespace operations over 9P file trees: `bind`, `mount`,
//! `unmount` and union directories (bind(1), bind(2)), and the
//! namespace(6) text that describes a namespace and rebuilds it.
//!
//! A [`Namespace`] starts from one root tree (an `Arc<dyn Node>`) and is
//! itself a [`Node`]: gridd serves it, and walking through a mount point
//! goes to what is bound or mounted there.
//!
//! ```text
//! bind -a /n/alice/sensors /n/clubhouse/sensors
//! bind -a /n/bob/sensors   /n/clubhouse/sensors
//! mount -c alice /n/alice
//! ```
//!
//! # What it owns, and what not
//!
//! It owns the mount table, walks and directory reads through it, the
//! `/ns` text ([`Namespace::text`]), its parser ([`parse_ns_file`]) and
//! replay ([`Namespace::apply`]), and the `bind`/`mount`/`unmount` control
//! verbs ([`NsCtl`]). It does not know what a peer is: a mount's source
//! tree is handed in, or made from a peer's name by a [`Resolver`] that
//! federation provides. It does not save anything: gridd writes the text
//! to its state directory when it changes ([`NsCtl::on_change`]).
//!
//! # Semantics
//!
//! These follow Plan 9 except where noted.
//!
//! - **Names.** Paths are absolute and cleaned lexically (`.`, `..`, `//`)
//!   as Plan 9's cleanname does. A bind's `new` is evaluated when the bind
//!   is made: the bound file is what the name meant then. Mounts under the
//!   bound directory's name still show through the new name, as in Plan 9.
//! - **Mount points are names.** The mount table is keyed by path, not by
//!   the file's identity as in Plan 9's kernel. Unlike Plan 9, a mount
//!   point need not exist beforehand: missing directories on the way to
//!   one appear as empty directories (9front gets the same effect on `/n`
//!   from mntgen(4)), so `mount alice /n/alice` needs no `mkdir`. They go
//!   away with the last mount below them.
//! - **Flags.** Replace (the default) makes `old` a union of one; `-b` and
//!   `-a` put the new directory first or last in the union (the first
//!   such bind on a plain directory keeps that directory as a member, which
//!   `/ns` prints as `bind OLD OLD`); `-c` permits creation. Plan 9's `-C`
//!   (cache) and `-q` are not taken. Directories go on directories and
//!   files on files (`ns: OLD: inconsistent mount`), judged against both
//!   what `old` shows and what it covers; `-a` and `-b` need directories.
//! - **Unions.** A walk takes the first member that has the name; member
//!   subdirectories are not merged (Plan 9 unions are one level deep). A
//!   member that fails with an error other than "file not found" (a peer
//!   that is down) is passed over; the error is returned only when no
//!   other member has the name. A directory read lists each member's
//!   entries in union order, **keeping only the first entry of each name**
//!   (Plan 9 lists duplicates; we do not, because a listing then matches
//!   what walks find and Linux v9fs dislikes duplicate names). Mount
//!   points below a directory are listed with the attributes a walk to
//!   them shows. A union's attributes and open come from its first
//!   member that answers.
//! - **Create** in a mount point goes to the first member bound with `-c`
//!   (`ns: no create permission in union` if there is none, also for a
//!   union of one, as in Plan 9); a name that exists in any member is
//!   `file already exists`. Below a mount point, directories are plain.
//! - **Remove, rename, setattr, open** act on the member a walk resolved
//!   (the first member, for a mount point itself). `..` is the server
//!   core's: it keeps each fid's path.
//! - **Qids.** A mount point has the qid of its first member (the mounted
//!   tree's root); an empty mount point or a directory made up on the way
//!   to one has a synthetic qid derived from its path.
//! - **Changes** take effect for later walks; fids keep what they walked
//!   to.
//! - **Unmount** `unmount OLD` removes everything at `OLD`; `unmount NEW
//!   OLD` removes the members that were bound from `NEW` or mounted from
//!   the peer `NEW` ("undo a bind or mount with the same arguments",
//!   bind(1)), or failing that, members with the qid `NEW` walks to.
//! - **One namespace.** There are no per-process namespaces (rfork); what
//!   each peer may see of it is the policy layer's business.
//!
//! # The `/ns` text
//!
//! One operation per line, in the order the surviving operations were
//! made, quoted with [`cmdbuf::quote`]; replaying it rebuilds the
//! namespace. The root tree is implicit, and an unmount is never printed:
//! it is the absence of what it removed. Two kinds of comment lines may
//! precede an operation:
//!
//! - `# pending: REASON`: the source was unavailable (a peer that could
//!   not be resolved, or a bind source that did not exist yet). The
//!   operation keeps its place in the union and takes effect when
//!   [`Namespace::retry_pending`] finds its source (a bind's `new` is then
//!   evaluated as the namespace is at the retry).
//! - `# stale: ...`: a file it was bound from was reached through a bind
//!   or mount that has since been undone, so replaying the line would bind
//!   what the name means then. Plan 9's `/proc/N/ns` has the same limit
//!   and says so in proc(3); we say it in the text itself. Without such
//!   lines, replaying the text over the same trees reproduces the
//!   namespace exactly (a property test checks this over random sequences
//!   of operations). To know, each member records which members the
//!   evaluation of its names went through.
//!
//! # Layout
//!
//! - [`Namespace`] (`ns.rs`): bind, mount, unmount, evaluation of
//!   paths, and the namespace's root as a node.
//! - `replay.rs`: replay of parsed operations, pending operations.
//! - `node.rs`: the view of one directory through the mount table (walk,
//!   union reads, create, rename).
//! - `table.rs`: the mount table, members, and the `/ns` text.
//! - [`op`]: [`NsOp`], [`Flags`], and parsing of lines and files.
//! - `path.rs`: absolute path cleaning.
//! - [`ctl`]: the control verbs ([`NsCtl`], [`ctl::CTL_TABLE`]) and the
//!   `/ns` file ([`ns_file`]).

#![warn(missing_docs, unreachable_pub)]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod ctl;
mod node;
mod ns;
pub mod op;
mod path;
mod replay;
mod table;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use ninep_server::{Error, Node, Result};

pub use ctl::{ns_file, NsCtl};
pub use ns::Namespace;
pub use op::{parse_ns_file, Flags, NsOp, ParseError, Pos};

/// Turns a mount source (a peer's name) and its spec (the attach name)
/// into the tree to mount. Federation implements it; it may hand back a
/// tree that connects lazily.
#[async_trait]
pub trait Resolver: Send + Sync {
    /// The tree `peer` serves under `spec` ("" for its whole export).
    async fn resolve(&self, peer: &str, spec: &str) -> Result<Arc<dyn Node>>;
}

/// A fixed set of named trees; `spec` is a path inside the tree. For
/// tests, and for gridd before federation provides peers.
#[async_trait]
impl Resolver for BTreeMap<String, Arc<dyn Node>> {
    async fn resolve(&self, peer: &str, spec: &str) -> Result<Arc<dyn Node>> {
        let root = self
            .get(peer)
            .ok_or_else(|| Error::new(libc::ENOENT, format!("unknown peer '{peer}'")))?;
        ninep_server::walk_path(root.clone(), spec).await
    }
}

/// A resolver that knows no peers: every mount is pending.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoPeers;

#[async_trait]
impl Resolver for NoPeers {
    async fn resolve(&self, peer: &str, _spec: &str) -> Result<Arc<dyn Node>> {
        Err(Error::new(libc::ENOENT, format!("unknown peer '{peer}'")))
    }
}

/// An operation of a replay that did not take effect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Its position in the operations given to [`Namespace::apply`] (or
    /// among the pending operations, for [`Namespace::retry_pending`]).
    pub index: usize,
    /// The operation.
    pub op: NsOp,
    /// Why.
    pub error: Error,
    /// Whether it was kept as pending (its source was unavailable) rather
    /// than dropped.
    pub pending: bool,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.op, self.error.msg)?;
        if self.pending {
            f.write_str(" (pending)")?;
        }
        Ok(())
    }
}

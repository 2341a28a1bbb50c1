//! The mount table: for each mount point (a cleaned path), its members in
//! union order; and the `/ns` text made from it.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use ninep_server::Node;

use crate::op::{Flags, NsOp, Pos};

/// Where a member came from, as `/ns` prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Source {
    /// `bind PATH OLD`: PATH as cleaned when the bind was made.
    Bind(String),
    /// `mount PEER OLD SPEC`.
    Mount {
        /// The peer's name.
        peer: String,
        /// The attach name.
        spec: String,
    },
}

/// One member of the union at a mount point.
#[derive(Clone)]
pub(crate) struct Member {
    /// Order of creation, which is the order `/ns` prints operations in.
    pub(crate) seq: u64,
    /// How it was added.
    pub(crate) pos: Pos,
    /// `-c`.
    pub(crate) create: bool,
    pub(crate) source: Source,
    /// The bound file or mounted root; `None` while pending.
    pub(crate) node: Option<Arc<dyn Node>>,
    /// Why it is pending.
    pub(crate) pending: Option<String>,
    /// Members the evaluation of a bind's source went through: if one of
    /// them goes away, replaying the source name no longer finds `node`.
    pub(crate) deps: Vec<u64>,
}

impl Member {
    fn op(&self, old: &str, pos: Pos) -> NsOp {
        let flags = Flags {
            pos,
            create: self.create,
        };
        match &self.source {
            Source::Bind(new) => NsOp::Bind {
                flags,
                new: new.clone(),
                old: old.to_owned(),
            },
            Source::Mount { peer, spec } => NsOp::Mount {
                flags,
                peer: peer.clone(),
                old: old.to_owned(),
                spec: spec.clone(),
            },
        }
    }

    /// The operation that made this member, as it was given.
    pub(crate) fn original_op(&self, old: &str) -> NsOp {
        self.op(old, self.pos)
    }
}

/// The mount table.
#[derive(Default)]
pub(crate) struct Table {
    /// Mount point to members, in union order. Never an empty list.
    pub(crate) mounts: BTreeMap<String, Vec<Member>>,
    next_seq: u64,
}

impl Table {
    /// A fresh sequence number.
    pub(crate) fn seq(&mut self) -> u64 {
        self.next_seq += 1;
        self.next_seq
    }

    /// Adds `member` at `old` as its flags say. `original` is what `old`
    /// named before, kept as the first member when `-a` or `-b` makes a
    /// union of a plain directory; it must have an earlier `seq`.
    pub(crate) fn insert(&mut self, old: &str, member: Member, original: Option<Member>) {
        let list = self.mounts.entry(old.to_owned()).or_default();
        match member.pos {
            Pos::Replace => {
                list.clear();
                list.push(member);
            }
            Pos::Before | Pos::After => {
                if list.is_empty() {
                    list.extend(original);
                }
                if member.pos == Pos::Before {
                    list.insert(0, member);
                } else {
                    list.push(member);
                }
            }
        }
    }

    /// Whether anything is mounted strictly below `dir`.
    pub(crate) fn has_below(&self, dir: &str) -> bool {
        let prefix = crate::path::below(dir);
        self.mounts
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .any(|(k, _)| k.as_str() != dir)
    }

    /// The members of every mount point strictly below `dir`: what keeps
    /// a directory made up on the way to them in existence.
    pub(crate) fn seqs_below(&self, dir: &str) -> Vec<u64> {
        let prefix = crate::path::below(dir);
        self.mounts
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .filter(|(k, _)| k.as_str() != dir)
            .flat_map(|(_, ms)| ms.iter().map(|m| m.seq))
            .collect()
    }

    /// The names directly below `dir` that are mount points (`true`) or
    /// lead to one (`false`), in order.
    pub(crate) fn children(&self, dir: &str) -> Vec<(String, bool)> {
        let prefix = crate::path::below(dir);
        // Not adjacent in key order: "/n/a", "/n/a-b", "/n/a/x".
        let mut out: BTreeMap<&str, bool> = BTreeMap::new();
        for (k, _) in self
            .mounts
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
        {
            let rest = &k[prefix.len()..];
            let (name, deeper) = match rest.split_once('/') {
                Some((name, _)) => (name, true),
                None => (rest, false),
            };
            if !name.is_empty() {
                *out.entry(name).or_default() |= !deeper;
            }
        }
        out.into_iter().map(|(n, m)| (n.to_owned(), m)).collect()
    }

    /// The namespace as namespace(6) text (see the crate docs).
    pub(crate) fn text(&self) -> String {
        let mut all: Vec<(&str, &Member)> = self
            .mounts
            .iter()
            .flat_map(|(old, ms)| ms.iter().map(move |m| (old.as_str(), m)))
            .collect();
        all.sort_by_key(|(_, m)| m.seq);
        let live: HashSet<u64> = all.iter().map(|(_, m)| m.seq).collect();
        // Sequence numbers only point backwards, so one pass in order
        // settles staleness.
        let mut stale: HashSet<u64> = HashSet::new();
        let mut started: HashSet<&str> = HashSet::new();
        let mut out = String::new();
        for (old, m) in &all {
            let gone = m.deps.iter().any(|d| !live.contains(d));
            let via_stale = m.deps.iter().any(|d| stale.contains(d));
            if let Some(reason) = &m.pending {
                out.push_str(&format!("# pending: {}\n", one_line(reason)));
            }
            if gone || via_stale {
                stale.insert(m.seq);
                let new = match &m.source {
                    Source::Bind(new) => cmdbuf::quote(new).into_owned(),
                    Source::Mount { peer, .. } => cmdbuf::quote(peer).into_owned(),
                };
                if gone {
                    out.push_str(&format!(
                        "# stale: {new} was reached through a bind or mount undone since\n"
                    ));
                } else {
                    out.push_str(&format!(
                        "# stale: {new} was reached through a stale bind\n"
                    ));
                }
            }
            // The first member printed at a mount point replaces; a
            // replace is always the oldest member left, so only -a and -b
            // follow it.
            let pos = if started.insert(old) {
                Pos::Replace
            } else if m.pos == Pos::Replace {
                Pos::After
            } else {
                m.pos
            };
            out.push_str(&m.op(old, pos).to_string());
            out.push('\n');
        }
        out
    }
}

fn one_line(s: &str) -> String {
    s.replace(['\n', '\r'], " ")
}

//! Agreement: what each side offers and requests, per peer and per group,
//! and the effective grants that come of it.
//!
//! Each grid keeps a [`Book`]: for each peer, and for each named group of
//! peers (a grid-grid such as `clubhouse`), a [`Proposal`]: an offer (what
//! I grant them) and a request (what I want from them). A peer's proposal
//! is the union of its own and those of every group it belongs to, offer
//! with offer and request with request.
//!
//! When two grids connect each sends the other its proposal, and both
//! compute the same [`Agreement`]: what I grant is my offer ∩ their
//! request, what I receive is their offer ∩ my request. A peer that asks
//! for more than it was offered gets only what was offered, and the
//! serving side enforces its own offer whatever the peer claims: the
//! intersection never contains anything the offer does not.

use std::collections::{BTreeMap, BTreeSet};

use crate::policy::Policy;

/// What one side puts forward for a peer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Proposal {
    /// What I grant them.
    pub offer: Policy,
    /// What I want from them.
    pub request: Policy,
}

impl Proposal {
    /// Offer with offer and request with request.
    pub fn union(&self, other: &Proposal) -> Proposal {
        Proposal {
            offer: self.offer.union(&other.offer),
            request: self.request.union(&other.request),
        }
    }
}

/// What two proposals come to, seen from one side; the other side's
/// agreement is this one with `granted` and `received` swapped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Agreement {
    /// What I grant them: my offer ∩ their request. This is what my
    /// [`PolicyView`](crate::PolicyView) of my namespace enforces.
    pub granted: Policy,
    /// What they grant me: their offer ∩ my request.
    pub received: Policy,
}

impl Agreement {
    /// The agreement between my proposal and theirs.
    pub fn between(mine: &Proposal, theirs: &Proposal) -> Agreement {
        Agreement {
            granted: mine.offer.intersect(&theirs.request),
            received: theirs.offer.intersect(&mine.request),
        }
    }
}

/// A peer or group name that is not valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("policy: bad name '{0}': use 1 to 64 letters, digits, '-', '_' or '.'")]
pub struct NameError(pub String);

/// One grid's proposals, per peer and per group, and group membership.
/// A value: nothing here talks to peers or changes live grants.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Book {
    peers: BTreeMap<String, Proposal>,
    groups: BTreeMap<String, Group>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Group {
    proposal: Proposal,
    members: BTreeSet<String>,
}

impl Book {
    /// An empty book: every peer is offered and asked nothing.
    pub fn new() -> Book {
        Book::default()
    }

    /// Sets a peer's own proposal.
    pub fn set_peer(&mut self, peer: &str, proposal: Proposal) -> Result<(), NameError> {
        check_name(peer)?;
        self.peers.insert(peer.to_owned(), proposal);
        Ok(())
    }

    /// Forgets a peer's own proposal and its group memberships.
    pub fn remove_peer(&mut self, peer: &str) {
        self.peers.remove(peer);
        for g in self.groups.values_mut() {
            g.members.remove(peer);
        }
    }

    /// Sets a group's proposal, keeping its members.
    pub fn set_group(&mut self, group: &str, proposal: Proposal) -> Result<(), NameError> {
        check_name(group)?;
        self.groups.entry(group.to_owned()).or_default().proposal = proposal;
        Ok(())
    }

    /// Forgets a group, its proposal and its members.
    pub fn remove_group(&mut self, group: &str) {
        self.groups.remove(group);
    }

    /// Makes `peer` a member of `group`. A group not yet given a proposal
    /// offers and asks nothing until it is.
    pub fn join(&mut self, group: &str, peer: &str) -> Result<(), NameError> {
        check_name(group)?;
        check_name(peer)?;
        self.groups
            .entry(group.to_owned())
            .or_default()
            .members
            .insert(peer.to_owned());
        Ok(())
    }

    /// Takes `peer` out of `group`.
    pub fn leave(&mut self, group: &str, peer: &str) {
        if let Some(g) = self.groups.get_mut(group) {
            g.members.remove(peer);
        }
    }

    /// The groups `peer` belongs to, in order.
    pub fn groups_of<'a>(&'a self, peer: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.groups
            .iter()
            .filter(move |(_, g)| g.members.contains(peer))
            .map(|(name, _)| name.as_str())
    }

    /// The members of `group`, in order.
    pub fn members<'a>(&'a self, group: &str) -> impl Iterator<Item = &'a str> + 'a {
        self.groups
            .get(group)
            .into_iter()
            .flat_map(|g| g.members.iter().map(String::as_str))
    }

    /// My proposal to `peer`: the union of its own and its groups'.
    pub fn proposal(&self, peer: &str) -> Proposal {
        let own = self.peers.get(peer).cloned().unwrap_or_default();
        self.groups
            .values()
            .filter(|g| g.members.contains(peer))
            .fold(own, |acc, g| acc.union(&g.proposal))
    }

    /// The agreement with `peer`, given the proposal it sent.
    pub fn agree(&self, peer: &str, theirs: &Proposal) -> Agreement {
        Agreement::between(&self.proposal(peer), theirs)
    }
}

/// Peer and group names: 1 to 64 letters, digits, `-`, `_` or `.`, and not
/// `.` or `..` (they name directories under `/net/peers`).
pub fn check_name(name: &str) -> Result<(), NameError> {
    let ok = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && name != "."
        && name != "..";
    if ok {
        Ok(())
    } else {
        Err(NameError(name.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> Policy {
        text.parse().expect("policy")
    }

    fn prop(offer: &str, request: &str) -> Proposal {
        Proposal {
            offer: p(offer),
            request: p(request),
        }
    }

    #[test]
    fn both_sides_see_the_same_agreement() {
        let a = prop("files/pub r; cpu cores=4; letters", "sensors r; letters");
        let b = prop(
            "sensors/weather r; files rw",
            "files rw; cpu cores=8 jobs=2",
        );
        let at_a = Agreement::between(&a, &b);
        let at_b = Agreement::between(&b, &a);
        assert_eq!(at_a.granted, at_b.received);
        assert_eq!(at_a.received, at_b.granted);
        assert_eq!(at_a.granted, p("files/pub r; cpu cores=4 jobs=2"));
        assert_eq!(at_a.received, p("sensors/weather r"));
    }

    #[test]
    fn asking_for_more_gets_what_was_offered() {
        let mine = prop("files/pub r; cpu cores=1", "");
        let greedy = prop("", "files rw; ctl rw; cpu cores=64; store; letters");
        let a = Agreement::between(&mine, &greedy);
        assert_eq!(a.granted, p("files/pub r; cpu cores=1"));
        assert_eq!(a.received, Policy::none());
    }

    #[test]
    fn group_grants_add_to_the_peers_own() {
        let mut book = Book::new();
        book.set_peer("alice", prop("files/pub r", "files/photos r"))
            .expect("alice");
        book.set_group(
            "clubhouse",
            prop("sensors r; letters; cpu jobs=1", "sensors r"),
        )
        .expect("group");
        book.set_group("family", prop("files/pub rw; cpu jobs=4 mem=1G", ""))
            .expect("group");
        book.join("clubhouse", "alice").expect("join");
        book.join("clubhouse", "bob").expect("join");
        book.join("family", "alice").expect("join");

        assert_eq!(
            book.proposal("alice"),
            prop(
                "files/pub rw; sensors r; letters; cpu jobs=4",
                "files/photos r; sensors r"
            )
        );
        // bob has no terms of his own: the group's are his.
        assert_eq!(
            book.proposal("bob"),
            prop("sensors r; letters; cpu jobs=1", "sensors r")
        );
        assert_eq!(book.proposal("carol"), Proposal::default());
        assert_eq!(
            book.groups_of("alice").collect::<Vec<_>>(),
            ["clubhouse", "family"]
        );
        assert_eq!(
            book.members("clubhouse").collect::<Vec<_>>(),
            ["alice", "bob"]
        );

        let theirs = prop("", "files/pub/music rw; sensors/weather r; letters");
        assert_eq!(
            book.agree("alice", &theirs).granted,
            p("files/pub/music rw; sensors/weather r; letters")
        );
        assert_eq!(
            book.agree("bob", &theirs).granted,
            p("sensors/weather r; letters")
        );

        book.leave("family", "alice");
        assert_eq!(
            book.agree("alice", &theirs).granted,
            p("files/pub/music r; sensors/weather r; letters")
        );
        book.remove_peer("bob");
        assert_eq!(book.proposal("bob"), Proposal::default());
    }

    #[test]
    fn names_are_checked() {
        let mut book = Book::new();
        assert!(book.set_peer("alice-2.home_", Proposal::default()).is_ok());
        for bad in ["", ".", "..", "a b", "a/b", &"x".repeat(65)] {
            let e = book.set_peer(bad, Proposal::default()).expect_err(bad);
            assert_eq!(
                e.to_string(),
                format!("policy: bad name '{bad}': use 1 to 64 letters, digits, '-', '_' or '.'")
            );
        }
        assert!(book.join("club house", "alice").is_err());
    }
}

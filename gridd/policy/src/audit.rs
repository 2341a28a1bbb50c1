//! Per-peer counters of what a peer did through its view, for
//! `/net/peers/NAME/audit`.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use ninep_server::synth::TextFile;

/// How many denial messages [`Audit`] keeps.
pub const RECENT_DENIALS: usize = 8;

/// The operations a [`PolicyView`](crate::PolicyView) counts, one per
/// `Node` or `Handle` method it passes on (or refuses).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    /// Node::attr (Tstat, Tgetattr; the session also stats before open).
    Attr,
    /// Node::walk, one per name.
    Walk,
    /// Node::open.
    Open,
    /// Node::readdir (once per listing).
    Readdir,
    /// Handle::read.
    Read,
    /// Handle::write.
    Write,
    /// Node::create (files, directories, links, device nodes).
    Create,
    /// Node::remove.
    Remove,
    /// Node::unlink.
    Unlink,
    /// Node::rename.
    Rename,
    /// Node::setattr.
    Setattr,
    /// Node::readlink.
    Readlink,
    /// Node::link.
    Link,
    /// Node::statfs.
    Statfs,
    /// Handle::fsync.
    Fsync,
}

impl Op {
    /// Every operation, in the order the audit text lists them.
    pub const ALL: [Op; 15] = [
        Op::Attr,
        Op::Walk,
        Op::Open,
        Op::Readdir,
        Op::Read,
        Op::Write,
        Op::Create,
        Op::Remove,
        Op::Unlink,
        Op::Rename,
        Op::Setattr,
        Op::Readlink,
        Op::Link,
        Op::Statfs,
        Op::Fsync,
    ];

    /// The key of its line in the audit text.
    pub fn name(self) -> &'static str {
        match self {
            Op::Attr => "attr",
            Op::Walk => "walk",
            Op::Open => "open",
            Op::Readdir => "readdir",
            Op::Create => "create",
            Op::Remove => "remove",
            Op::Unlink => "unlink",
            Op::Rename => "rename",
            Op::Setattr => "setattr",
            Op::Readlink => "readlink",
            Op::Link => "link",
            Op::Statfs => "statfs",
            Op::Read => "read",
            Op::Write => "write",
            Op::Fsync => "fsync",
        }
    }

    /// Its slot in the counters: variants are declared in [`Op::ALL`] order.
    fn index(self) -> usize {
        self as usize
    }
}

/// What one peer did: operations by kind (refused ones too), bytes read
/// and written, walks to names outside its grants, and denials with the
/// last [`RECENT_DENIALS`] messages. Shared by all of the peer's views and
/// sessions; every counter only grows.
#[derive(Debug, Default)]
pub struct Audit {
    ops: [AtomicU64; Op::ALL.len()],
    bytes_read: AtomicU64,
    bytes_written: AtomicU64,
    hidden: AtomicU64,
    denials: AtomicU64,
    recent: Mutex<VecDeque<(SystemTime, String)>>,
}

impl Audit {
    /// Counters at zero.
    pub fn new() -> Audit {
        Audit::default()
    }

    /// How many times `op` was asked for.
    pub fn count(&self, op: Op) -> u64 {
        self.ops[op.index()].load(Ordering::Relaxed)
    }

    /// Bytes returned by reads.
    pub fn bytes_read(&self) -> u64 {
        self.bytes_read.load(Ordering::Relaxed)
    }

    /// Bytes taken by writes.
    pub fn bytes_written(&self) -> u64 {
        self.bytes_written.load(Ordering::Relaxed)
    }

    /// Walks to names that exist only outside the grants (answered "file
    /// not found"); these are not denials.
    pub fn hidden(&self) -> u64 {
        self.hidden.load(Ordering::Relaxed)
    }

    /// Operations refused by the policy.
    pub fn denials(&self) -> u64 {
        self.denials.load(Ordering::Relaxed)
    }

    /// The last denial messages, oldest first.
    pub fn recent_denials(&self) -> Vec<String> {
        self.lock_recent().iter().map(|(_, m)| m.clone()).collect()
    }

    /// The text of `/net/peers/NAME/audit`: `key value` lines, one per
    /// operation in [`Op::ALL`] order, then `bytes-read`, `bytes-written`,
    /// `hidden`, `denials`, and a `denial SECONDS MESSAGE` line for each
    /// recent denial, oldest first (SECONDS since the epoch).
    pub fn text(&self) -> String {
        let mut s = String::new();
        for op in Op::ALL {
            s.push_str(&format!("{} {}\n", op.name(), self.count(op)));
        }
        s.push_str(&format!("bytes-read {}\n", self.bytes_read()));
        s.push_str(&format!("bytes-written {}\n", self.bytes_written()));
        s.push_str(&format!("hidden {}\n", self.hidden()));
        s.push_str(&format!("denials {}\n", self.denials()));
        for (at, msg) in self.lock_recent().iter() {
            s.push_str(&format!(
                "denial {} {msg}\n",
                ninep_server::tree::unix_secs(*at)
            ));
        }
        s
    }

    /// A read-only file (mode 0444) whose text is [`Audit::text`] at each open.
    pub fn file(self: &Arc<Self>) -> TextFile {
        let audit = self.clone();
        TextFile::new(move || audit.text())
    }

    pub(crate) fn op(&self, op: Op) {
        self.ops[op.index()].fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn read(&self, n: usize) {
        self.bytes_read.fetch_add(n as u64, Ordering::Relaxed);
    }

    pub(crate) fn wrote(&self, n: u32) {
        self.bytes_written
            .fetch_add(u64::from(n), Ordering::Relaxed);
    }

    pub(crate) fn hid(&self) {
        self.hidden.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn denied(&self, msg: &str) {
        self.denials.fetch_add(1, Ordering::Relaxed);
        let mut recent = self.lock_recent();
        if recent.len() == RECENT_DENIALS {
            recent.pop_front();
        }
        recent.push_back((SystemTime::now(), msg.to_owned()));
    }

    fn lock_recent(&self) -> std::sync::MutexGuard<'_, VecDeque<(SystemTime, String)>> {
        // Each push and pop leaves the queue whole; a poisoned lock is safe to reuse.
        self.recent.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_lists_every_counter() {
        let a = Audit::new();
        a.op(Op::Read);
        a.op(Op::Read);
        a.read(10);
        a.wrote(3);
        a.hid();
        for i in 0..RECENT_DENIALS + 2 {
            a.denied(&format!("policy: no {i}"));
        }
        let text = a.text();
        let value = |key: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix(' ')))
                .map(str::to_owned)
        };
        assert_eq!(value("read").as_deref(), Some("2"));
        assert_eq!(value("walk").as_deref(), Some("0"));
        assert_eq!(value("bytes-read").as_deref(), Some("10"));
        assert_eq!(value("bytes-written").as_deref(), Some("3"));
        assert_eq!(value("hidden").as_deref(), Some("1"));
        assert_eq!(value("denials").as_deref(), Some("10"));
        let denials: Vec<_> = text.lines().filter(|l| l.starts_with("denial ")).collect();
        assert_eq!(denials.len(), RECENT_DENIALS);
        assert!(denials[0].ends_with(" policy: no 2"), "{}", denials[0]);
        assert_eq!(
            a.recent_denials().last().map(String::as_str),
            Some("policy: no 9")
        );
        for line in text.lines() {
            let (key, value) = line.split_once(' ').expect("key value");
            assert!(!key.is_empty() && !value.is_empty(), "{line}");
        }
        assert_eq!(
            Op::ALL.iter().map(|o| o.index()).collect::<Vec<_>>(),
            (0..15).collect::<Vec<_>>()
        );
    }
}

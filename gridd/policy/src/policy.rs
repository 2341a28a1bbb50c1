//! A policy as a value: subtree grants, a cpu share, a store quota and
//! letters, kept in one normal form so that equal grants compare equal.
//!
//! The normal form: no subtree grant is covered by another grant (explicit,
//! or implied by `cpu` and `store`) of the same or a greater mode. What is
//! left is a set of subtrees in which a `rw` grant may sit inside an `r`
//! grant, never the other way round, so the grant that decides a path is
//! the deepest one that covers it, and at most one `rw` grant covers any
//! path.

use std::collections::{BTreeMap, BTreeSet};
use std::num::{NonZeroU32, NonZeroU64};
use std::time::Duration;

/// Read-only or read-write. `Read < ReadWrite`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Mode {
    /// `r`: walk, stat, open for reading, list.
    Read,
    /// `rw`: also write, create, remove, rename within the grant, wstat.
    ReadWrite,
}

impl Mode {
    /// The mode as written in a policy: `r` or `rw`.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Read => "r",
            Mode::ReadWrite => "rw",
        }
    }
}

/// The words that begin a non-subtree grant; none of them is a path.
pub const KEYWORDS: [&str; 3] = ["cpu", "store", "letters"];

/// A subtree of the namespace, relative to its root: `files/pub`,
/// `sensors/weather`. Elements are non-empty and are not `.` or `..`; a
/// path does not begin with `/`, holds no blank, `;`, `#` or control
/// character, and is not one of the [`KEYWORDS`] alone.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GrantPath(String);

/// Why a string is not a [`GrantPath`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PathError {
    /// The path is empty: the root itself cannot be granted.
    #[error("the root cannot be granted; grant its parts")]
    Empty,
    /// The path begins with `/`.
    #[error("path must be relative, as files/pub")]
    Absolute,
    /// Two slashes in a row, or a trailing slash.
    #[error("path has an empty element")]
    EmptyElement,
    /// An element is `.` or `..`.
    #[error("path may not contain '{0}'")]
    Dot(&'static str),
    /// A character the grammar uses, or a control character.
    #[error("path may not contain {0:?}")]
    BadChar(char),
    /// The path is a keyword alone (`cpu`, `store`, `letters`).
    #[error("'{0}' is a grant of its own, not a path")]
    Keyword(String),
}

impl GrantPath {
    /// Checks `path` and makes it a grant path.
    pub fn new(path: &str) -> Result<GrantPath, PathError> {
        if path.is_empty() {
            return Err(PathError::Empty);
        }
        if path.starts_with('/') {
            return Err(PathError::Absolute);
        }
        if let Some(c) = path
            .chars()
            .find(|c| c.is_whitespace() || c.is_control() || matches!(c, ';' | '#'))
        {
            return Err(PathError::BadChar(c));
        }
        for element in path.split('/') {
            match element {
                "" => return Err(PathError::EmptyElement),
                "." => return Err(PathError::Dot(".")),
                ".." => return Err(PathError::Dot("..")),
                _ => {}
            }
        }
        if KEYWORDS.contains(&path) {
            return Err(PathError::Keyword(path.to_owned()));
        }
        Ok(GrantPath(path.to_owned()))
    }

    /// The path, as `files/pub`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `path` (relative, as `files/pub/a`) is this subtree or inside it.
    pub fn covers(&self, path: &str) -> bool {
        within(path, &self.0)
    }
}

impl std::fmt::Display for GrantPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A share of this grid's processors. A limit left out is no limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cpu {
    /// `cores=N`: how many cores the peer's jobs may use at once.
    pub cores: Option<NonZeroU32>,
    /// `jobs=N`: how many jobs may run at once.
    pub jobs: Option<NonZeroU32>,
    /// `mem=SIZE`: memory for all its jobs together, in bytes.
    pub mem: Option<NonZeroU64>,
    /// `time=DURATION`: wall time of one job, in seconds.
    pub time: Option<NonZeroU64>,
}

impl Cpu {
    /// The wall-time limit of one job, if there is one.
    pub fn time_limit(&self) -> Option<Duration> {
        self.time.map(|s| Duration::from_secs(s.get()))
    }

    /// Each limit the lesser of the two; a limit on one side only is that side's.
    pub fn intersect(&self, other: &Cpu) -> Cpu {
        Cpu {
            cores: min_limit(self.cores, other.cores),
            jobs: min_limit(self.jobs, other.jobs),
            mem: min_limit(self.mem, other.mem),
            time: min_limit(self.time, other.time),
        }
    }

    /// Each limit the greater of the two; a limit on one side only is no limit.
    pub fn union(&self, other: &Cpu) -> Cpu {
        Cpu {
            cores: max_limit(self.cores, other.cores),
            jobs: max_limit(self.jobs, other.jobs),
            mem: max_limit(self.mem, other.mem),
            time: max_limit(self.time, other.time),
        }
    }
}

/// Space in this grid's store. A quota left out is no quota.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Store {
    /// `quota=SIZE`, in bytes.
    pub quota: Option<NonZeroU64>,
}

impl Store {
    /// The lesser quota; a quota on one side only is that side's.
    pub fn intersect(&self, other: &Store) -> Store {
        Store {
            quota: min_limit(self.quota, other.quota),
        }
    }

    /// The greater quota; a quota on one side only is no quota.
    pub fn union(&self, other: &Store) -> Store {
        Store {
            quota: max_limit(self.quota, other.quota),
        }
    }
}

fn min_limit<T: Ord>(a: Option<T>, b: Option<T>) -> Option<T> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, None) => a,
        (None, b) => b,
    }
}

fn max_limit<T: Ord>(a: Option<T>, b: Option<T>) -> Option<T> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        _ => None,
    }
}

/// What a path of the namespace is to a peer under a policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Access {
    /// Not granted and not on the way to a grant: the name does not exist.
    Hidden,
    /// A directory on the way to a granted subtree: it exists, and lists
    /// only the names that lead on to grants.
    Transit,
    /// Inside an `r` grant.
    Read,
    /// Inside an `rw` grant.
    ReadWrite,
}

/// What one grid grants another (or asks of it): subtrees, a cpu share, a
/// store quota, and whether letters are carried. See grid-policy(7).
///
/// Build one by parsing (`"files/pub r; cpu cores=2".parse()`) or with
/// the `with_` methods; either way it is kept in normal form, so two
/// policies that grant the same things are equal.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    paths: BTreeMap<GrantPath, Mode>,
    cpu: Option<Cpu>,
    store: Option<Store>,
    letters: bool,
}

impl Policy {
    /// The policy that grants nothing.
    pub fn none() -> Policy {
        Policy::default()
    }

    /// Adds a subtree grant. A grant of the same path keeps the greater mode.
    pub fn with_path(mut self, path: GrantPath, mode: Mode) -> Policy {
        let m = self.paths.entry(path).or_insert(mode);
        *m = (*m).max(mode);
        self.normalize();
        self
    }

    /// Sets the cpu share (which makes `cpu` visible, read-write).
    pub fn with_cpu(mut self, cpu: Cpu) -> Policy {
        self.cpu = Some(cpu);
        self.normalize();
        self
    }

    /// Sets the store quota (which makes `store` visible, read-write).
    pub fn with_store(mut self, store: Store) -> Policy {
        self.store = Some(store);
        self.normalize();
        self
    }

    /// Sets whether letters are carried.
    pub fn with_letters(mut self, letters: bool) -> Policy {
        self.letters = letters;
        self
    }

    /// The subtree grants as written (without those `cpu` and `store` imply).
    pub fn paths(&self) -> impl Iterator<Item = (&GrantPath, Mode)> {
        self.paths.iter().map(|(p, m)| (p, *m))
    }

    /// Every subtree granted, including `cpu rw` and `store rw` when a cpu
    /// share or a store quota is granted.
    pub fn subtrees(&self) -> impl Iterator<Item = (&str, Mode)> {
        let cpu = self.cpu.map(|_| ("cpu", Mode::ReadWrite));
        let store = self.store.map(|_| ("store", Mode::ReadWrite));
        self.paths
            .iter()
            .map(|(p, m)| (p.as_str(), *m))
            .chain(cpu)
            .chain(store)
    }

    /// The cpu share, if one is granted.
    pub fn cpu(&self) -> Option<&Cpu> {
        self.cpu.as_ref()
    }

    /// The store quota, if store is granted.
    pub fn store(&self) -> Option<&Store> {
        self.store.as_ref()
    }

    /// Whether letters are carried.
    pub fn letters(&self) -> bool {
        self.letters
    }

    /// Whether nothing at all is granted.
    pub fn is_empty(&self) -> bool {
        *self == Policy::default()
    }

    /// What `path` (relative to the namespace root, as `files/pub/a`; a
    /// leading `/` is ignored, and `""` is the root) is under this policy.
    /// The root is always at least [`Access::Transit`].
    pub fn access(&self, path: &str) -> Access {
        let path = path.trim_start_matches('/');
        let mut best = None;
        let mut transit = path.is_empty();
        for (root, mode) in self.subtrees() {
            if within(path, root) {
                best = best.max(Some(mode));
            } else if within(root, path) {
                transit = true;
            }
        }
        match best {
            Some(Mode::ReadWrite) => Access::ReadWrite,
            Some(Mode::Read) => Access::Read,
            None if transit => Access::Transit,
            None => Access::Hidden,
        }
    }

    /// The names in directory `path` that lead to or into a grant, for a
    /// directory that is [`Access::Transit`].
    pub fn transit_names(&self, path: &str) -> BTreeSet<String> {
        let path = path.trim_start_matches('/');
        let mut names = BTreeSet::new();
        for (root, _) in self.subtrees() {
            let rest = if path.is_empty() {
                Some(root)
            } else {
                root.strip_prefix(path).and_then(|r| r.strip_prefix('/'))
            };
            if let Some(rest) = rest.filter(|r| !r.is_empty()) {
                let name = rest.split('/').next().unwrap_or(rest);
                names.insert(name.to_owned());
            }
        }
        names
    }

    /// The root of the `rw` grant that covers `path`, if one does. In
    /// normal form there is at most one.
    pub fn rw_root(&self, path: &str) -> Option<&str> {
        let path = path.trim_start_matches('/');
        self.subtrees()
            .find(|(root, mode)| *mode == Mode::ReadWrite && within(path, root))
            .map(|(root, _)| root)
    }

    /// What both grant: subtrees intersect by path prefix with the lesser
    /// mode, cpu and store limits take the lesser of each limit (a limit
    /// on one side only is that side's), letters only if both carry them.
    pub fn intersect(&self, other: &Policy) -> Policy {
        let mut paths = BTreeMap::new();
        for (a, ma) in self.subtrees() {
            for (b, mb) in other.subtrees() {
                let deeper = if within(a, b) {
                    a
                } else if within(b, a) {
                    b
                } else {
                    continue;
                };
                insert_max(&mut paths, deeper, ma.min(mb));
            }
        }
        let cpu = match (&self.cpu, &other.cpu) {
            (Some(a), Some(b)) => Some(a.intersect(b)),
            _ => None,
        };
        let store = match (&self.store, &other.store) {
            (Some(a), Some(b)) => Some(a.intersect(b)),
            _ => None,
        };
        Policy::from_parts(paths, cpu, store, self.letters && other.letters)
    }

    /// What either grants: subtrees with the greater mode, cpu and store
    /// limits the greater of each (a limit on one side only is no limit),
    /// letters if either carries them.
    pub fn union(&self, other: &Policy) -> Policy {
        let mut paths = BTreeMap::new();
        for (p, m) in self.subtrees().chain(other.subtrees()) {
            insert_max(&mut paths, p, m);
        }
        let cpu = match (self.cpu, other.cpu) {
            (Some(a), Some(b)) => Some(a.union(&b)),
            (a, b) => a.or(b),
        };
        let store = match (self.store, other.store) {
            (Some(a), Some(b)) => Some(a.union(&b)),
            (a, b) => a.or(b),
        };
        Policy::from_parts(paths, cpu, store, self.letters || other.letters)
    }

    /// Builds a policy from subtrees that may include the implied `cpu` and
    /// `store` roots; those are dropped (the shares imply them again).
    fn from_parts(
        paths: BTreeMap<String, Mode>,
        cpu: Option<Cpu>,
        store: Option<Store>,
        letters: bool,
    ) -> Policy {
        // A path that is not a GrantPath here can only be an implied root
        // ("cpu", "store"): every other path came from a GrantPath. An
        // implied root survives an intersection only when both sides had
        // the share, so the result has the share and implies it too.
        let paths = paths
            .into_iter()
            .filter_map(|(p, m)| GrantPath::new(&p).ok().map(|p| (p, m)))
            .collect();
        let mut policy = Policy {
            paths,
            cpu,
            store,
            letters,
        };
        policy.normalize();
        policy
    }

    /// Drops every subtree grant that another grant covers with the same
    /// or a greater mode.
    fn normalize(&mut self) {
        let all: Vec<(String, Mode)> = self.subtrees().map(|(p, m)| (p.to_owned(), m)).collect();
        self.paths.retain(|p, m| {
            !all.iter()
                .any(|(q, n)| q != p.as_str() && within(p.as_str(), q) && n >= m)
        });
    }

    /// Used by the parser, which reports repeats itself.
    pub(crate) fn has_path(&self, path: &GrantPath) -> bool {
        self.paths.contains_key(path)
    }

    /// Adds a path without normalizing (the parser normalizes once at the end).
    pub(crate) fn push_path(&mut self, path: GrantPath, mode: Mode) {
        self.paths.insert(path, mode);
    }

    pub(crate) fn set_cpu(&mut self, cpu: Cpu) {
        self.cpu = Some(cpu);
    }

    pub(crate) fn set_store(&mut self, store: Store) {
        self.store = Some(store);
    }

    pub(crate) fn set_letters(&mut self) {
        self.letters = true;
    }

    pub(crate) fn finish(mut self) -> Policy {
        self.normalize();
        self
    }
}

fn insert_max(paths: &mut BTreeMap<String, Mode>, path: &str, mode: Mode) {
    let m = paths.entry(path.to_owned()).or_insert(mode);
    *m = (*m).max(mode);
}

/// Whether `path` is `root` or inside it, element by element (`files/pub`
/// is within `files`; `files-old` is not). Everything is within the root `""`.
pub(crate) fn within(path: &str, root: &str) -> bool {
    root.is_empty()
        || path
            .strip_prefix(root)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> Policy {
        text.parse().expect("policy")
    }

    #[test]
    fn grant_paths_are_checked() {
        assert!(GrantPath::new("files/pub").is_ok());
        assert!(GrantPath::new("cpu/0").is_ok());
        assert_eq!(GrantPath::new(""), Err(PathError::Empty));
        assert_eq!(GrantPath::new("/files"), Err(PathError::Absolute));
        assert_eq!(GrantPath::new("files//pub"), Err(PathError::EmptyElement));
        assert_eq!(GrantPath::new("files/"), Err(PathError::EmptyElement));
        assert_eq!(GrantPath::new("files/../ctl"), Err(PathError::Dot("..")));
        assert_eq!(GrantPath::new("./files"), Err(PathError::Dot(".")));
        assert_eq!(GrantPath::new("a\tb"), Err(PathError::BadChar('\t')));
        assert_eq!(
            GrantPath::new("store"),
            Err(PathError::Keyword("store".into()))
        );
    }

    #[test]
    fn within_goes_by_element() {
        assert!(within("files/pub", "files"));
        assert!(within("files", "files"));
        assert!(!within("files-old", "files"));
        assert!(!within("files", "files/pub"));
        assert!(within("anything", ""));
    }

    #[test]
    fn access_of_paths() {
        let pol = p("files/pub r; files/pub/drop rw; sensors/weather r; cpu");
        assert_eq!(pol.access(""), Access::Transit);
        assert_eq!(pol.access("files"), Access::Transit);
        assert_eq!(pol.access("/files"), Access::Transit);
        assert_eq!(pol.access("files/pub"), Access::Read);
        assert_eq!(pol.access("files/pub/a/b"), Access::Read);
        assert_eq!(pol.access("files/pub/drop"), Access::ReadWrite);
        assert_eq!(pol.access("files/pub/drop/x"), Access::ReadWrite);
        assert_eq!(pol.access("files/private"), Access::Hidden);
        assert_eq!(pol.access("files/pubx"), Access::Hidden);
        assert_eq!(pol.access("ctl"), Access::Hidden);
        assert_eq!(pol.access("cpu/clone"), Access::ReadWrite);
        assert_eq!(
            pol.transit_names("").into_iter().collect::<Vec<_>>(),
            ["cpu", "files", "sensors"]
        );
        assert_eq!(
            pol.transit_names("files").into_iter().collect::<Vec<_>>(),
            ["pub"]
        );
        assert_eq!(pol.rw_root("files/pub/drop/x"), Some("files/pub/drop"));
        assert_eq!(pol.rw_root("files/pub/x"), None);
        assert_eq!(pol.rw_root("cpu/1/ctl"), Some("cpu"));
        assert_eq!(Policy::none().access(""), Access::Transit);
        assert_eq!(Policy::none().access("files"), Access::Hidden);
    }

    #[test]
    fn normal_form_drops_covered_grants() {
        assert_eq!(p("files rw; files/pub r"), p("files rw"));
        assert_eq!(p("files r; files/pub r"), p("files r"));
        assert_eq!(
            p("files r; files/pub rw").to_string(),
            "files r; files/pub rw"
        );
        assert_eq!(p("store; store/x r; cpu; cpu/0 rw"), p("store; cpu"));
        let built = Policy::none()
            .with_path(GrantPath::new("files/pub").expect("path"), Mode::Read)
            .with_path(GrantPath::new("files").expect("path"), Mode::ReadWrite);
        assert_eq!(built, p("files rw"));
    }

    /// Offer ∩ request, both ways round, against the expected effective grant.
    #[test]
    fn intersection_table() {
        let table = [
            ("files rw", "files/pub r", "files/pub r"),
            ("files r", "files/pub rw", "files/pub r"),
            ("files/pub rw", "files rw", "files/pub rw"),
            ("files/pub r", "files/private r", ""),
            ("files/pub r", "files/pubx r", ""),
            ("files r; files/pub rw", "files rw", "files r; files/pub rw"),
            (
                "files r; files/pub rw",
                "files/pub/a rw; files/b r",
                "files/b r; files/pub/a rw",
            ),
            (
                "files/a r; sensors r",
                "files rw; sensors/weather r",
                "files/a r; sensors/weather r",
            ),
            (
                "cpu cores=4 mem=2G",
                "cpu cores=2 time=1h",
                "cpu cores=2 mem=2G time=1h",
            ),
            ("cpu cores=4", "cpu", "cpu cores=4"),
            ("cpu", "files r", ""),
            ("cpu jobs=3", "cpu/info r", "cpu/info r"),
            ("store quota=10G", "store quota=1G", "store quota=1G"),
            ("store", "store quota=5M", "store quota=5M"),
            ("store quota=5M", "store", "store quota=5M"),
            ("letters", "letters", "letters"),
            ("letters", "files r", ""),
            (
                "files/pub r",
                "files rw; cpu cores=8; store; letters",
                "files/pub r",
            ),
            ("", "files rw", ""),
        ];
        for (offer, request, want) in table {
            let (o, r, w) = (p(offer), p(request), p(want));
            assert_eq!(o.intersect(&r), w, "{offer} ∩ {request}");
            assert_eq!(r.intersect(&o), w, "{request} ∩ {offer}");
        }
    }

    #[test]
    fn union_table() {
        let table = [
            ("files/pub r", "sensors r", "files/pub r; sensors r"),
            ("files/pub r", "files rw", "files rw"),
            ("files r", "files/pub rw", "files r; files/pub rw"),
            ("cpu cores=2 jobs=1", "cpu cores=4 mem=1G", "cpu cores=4"),
            ("cpu cores=2", "files r", "cpu cores=2; files r"),
            ("store quota=1G", "store quota=2G", "store quota=2G"),
            ("store quota=1G", "store", "store"),
            ("letters", "", "letters"),
        ];
        for (a, b, want) in table {
            assert_eq!(p(a).union(&p(b)), p(want), "{a} ∪ {b}");
            assert_eq!(p(b).union(&p(a)), p(want), "{b} ∪ {a}");
        }
    }
}

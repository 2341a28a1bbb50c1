//! `/mnt/term`: a peer's job sees its caller's namespace, as in Plan 9's
//! cpu(1).
//!
//! When a job made by a peer (not by this grid's owner) starts, gridd
//! mounts what that peer lets this grid see (its import, `/n/CALLER`,
//! which the caller's gridd serves under the caller's policy for this
//! grid) on a host directory of its own, through a [`TermMounter`] that
//! gridd provides. The job's sandbox then binds that directory at
//! `/mnt/term` in the job's mount namespace, on a small tmpfs of its own
//! over `/mnt`. An unconfined job cannot have its own `/mnt`; it is told
//! the host directory in `GRID_TERM` instead.
//!
//! ```text
//! TMP/grid-term.PID.TAG/        0711, gridd's   (hidden from every confined job)
//!   N/                          0700, the job's uid
//!     mnt/                      the mount point of job N's caller's namespace
//! ```
//!
//! The directories live beside, never inside, the scratch directories:
//! those are removed recursively, and a recursive removal must never
//! reach into a mount of someone else's files. These are only ever
//! removed with rmdir(2), which refuses a mount point.
//!
//! The mount is made before the job starts (a job never finds an empty
//! `/mnt/term` that fills later) and undone after every process of the
//! job is gone, before the job is reported ended.

use std::fmt;
use std::io;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;

/// The environment variable that tells an unconfined peer's job where its
/// caller's namespace is mounted on the host.
pub const TERM_ENV: &str = "GRID_TERM";

/// Mounts a caller's namespace on a host directory; gridd implements it.
#[async_trait]
pub trait TermMounter: Send + Sync + fmt::Debug {
    /// Mounts, on `dir` (an empty directory), the namespace the peer
    /// `caller` lets this grid see, and returns once the mount works, so
    /// the job can use it from its first instruction. Must give up by
    /// itself after a bounded time and leave nothing behind when it
    /// fails (or is dropped); the error says why, without a `/mnt/term:`
    /// prefix. A [`TermMount`] dropped without
    /// [`unmount`](TermMount::unmount) must still undo the mount.
    async fn mount(&self, caller: &str, dir: &Path) -> Result<Box<dyn TermMount>, String>;
}

/// A mount made by a [`TermMounter`].
#[async_trait]
pub trait TermMount: Send + Sync {
    /// Unmounts it and stops whatever served it. Bounded: when it returns
    /// nothing of the mount is left on the host.
    async fn unmount(self: Box<Self>);
}

/// Whose namespace a job of `owner` sees at `/mnt/term`: the peer that
/// made it, or `None` for the owner's own jobs.
pub fn caller_of(owner: &str) -> Option<&str> {
    (owner != crate::Reader::owner().name).then_some(owner)
}

/// The `/mnt/term` mounts of one gridd: its [`TermMounter`] and the
/// directory their mount points are in.
pub(crate) struct Terms {
    mounter: Arc<dyn TermMounter>,
    root: PathBuf,
}

impl Terms {
    /// Makes `PARENT/grid-term.TAG` (0711) after removing what gridds
    /// that have gone left in `parent`.
    pub(crate) fn new(
        mounter: Arc<dyn TermMounter>,
        parent: &Path,
        tag: &str,
    ) -> io::Result<Terms> {
        sweep_stale(parent);
        let root = parent.join(format!("{PREFIX}{tag}"));
        std::fs::DirBuilder::new().mode(0o711).create(&root)?;
        std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o711))?;
        Ok(Terms { mounter, root })
    }

    /// The directory every confined job has covered by an empty tmpfs, so
    /// no job reaches another's caller's files through the host's tree.
    pub(crate) fn root(&self) -> &Path {
        &self.root
    }

    /// Mounts `caller`'s namespace for job `n`, whose processes run as
    /// `run_as` (gridd's own uid when `None`). The error is the reason
    /// the job fails: `/mnt/term: ...`.
    pub(crate) async fn mount(
        &self,
        caller: &str,
        n: u32,
        run_as: Option<(u32, u32)>,
    ) -> Result<Term, String> {
        let dir = self.root.join(n.to_string());
        let mountpoint = dir.join("mnt");
        make_dirs(&dir, &mountpoint, run_as)
            .map_err(|e| format!("/mnt/term: cannot make {}: {e}", mountpoint.display()))?;
        match self.mounter.mount(caller, &mountpoint).await {
            Ok(mount) => Ok(Term {
                mount: Some(mount),
                dir,
                mountpoint,
            }),
            Err(e) => {
                remove_dirs(&dir, &mountpoint);
                Err(format!("/mnt/term: {e}"))
            }
        }
    }

    /// Removes the directory of mount points, once every job's is gone
    /// (at shutdown). Only an empty directory goes: never anything
    /// mounted.
    pub(crate) fn remove_root(&self) {
        let _ = std::fs::remove_dir(&self.root);
    }
}

impl Drop for Terms {
    fn drop(&mut self) {
        self.remove_root();
    }
}

/// A job's `/mnt/term`: mounted until [`Term::release`] (or, less
/// gently, until dropped).
pub(crate) struct Term {
    mount: Option<Box<dyn TermMount>>,
    dir: PathBuf,
    mountpoint: PathBuf,
}

impl Term {
    /// Where the caller's namespace is mounted on the host.
    pub(crate) fn path(&self) -> &Path {
        &self.mountpoint
    }

    /// Unmounts and removes the job's directories.
    pub(crate) async fn release(mut self) {
        if let Some(m) = self.mount.take() {
            m.unmount().await;
        }
        let (dir, mountpoint) = (self.dir.clone(), self.mountpoint.clone());
        let _ = tokio::task::spawn_blocking(move || remove_dirs(&dir, &mountpoint)).await;
    }
}

impl Drop for Term {
    fn drop(&mut self) {
        if let Some(m) = self.mount.take() {
            // Not released: the mount's own drop must undo it (see
            // TermMounter), before the directories can go.
            drop(m);
            remove_dirs(&self.dir, &self.mountpoint);
        }
    }
}

const PREFIX: &str = "grid-term.";

/// `dir` (0700, owned by the job's uid, so only the job and gridd can
/// reach the mount) and `mountpoint` in it.
fn make_dirs(dir: &Path, mountpoint: &Path, run_as: Option<(u32, u32)>) -> io::Result<()> {
    std::fs::DirBuilder::new().mode(0o700).create(dir)?;
    let made = std::fs::DirBuilder::new()
        .mode(0o700)
        .create(mountpoint)
        .and_then(|()| match run_as {
            Some((uid, gid)) => {
                std::os::unix::fs::chown(mountpoint, Some(uid), Some(gid))?;
                std::os::unix::fs::chown(dir, Some(uid), Some(gid))
            }
            None => Ok(()),
        });
    if made.is_err() {
        remove_dirs(dir, mountpoint);
    }
    made
}

/// rmdir(2) only: a directory something is still mounted on stays.
fn remove_dirs(dir: &Path, mountpoint: &Path) {
    let _ = std::fs::remove_dir(mountpoint);
    let _ = std::fs::remove_dir(dir);
}

/// Removes the empty directories of gridds that are no longer running
/// (`grid-term.PID.*` whose PID is gone). Their mounts went with their
/// helpers, which unmount when gridd hangs up; whatever is still mounted
/// is left alone.
fn sweep_stale(parent: &Path) {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(PREFIX)) else {
            continue;
        };
        let Some(pid) = rest.split('.').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if pid == std::process::id() || Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        let root = e.path();
        if let Ok(jobs) = std::fs::read_dir(&root) {
            for j in jobs.flatten() {
                remove_dirs(&j.path(), &j.path().join("mnt"));
            }
        }
        let _ = std::fs::remove_dir(&root);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};

    #[derive(Debug, Default)]
    struct Fake {
        fail: bool,
        unmounted: Arc<AtomicBool>,
    }

    struct FakeMount(Arc<AtomicBool>);

    #[async_trait]
    impl TermMount for FakeMount {
        async fn unmount(self: Box<Self>) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    #[async_trait]
    impl TermMounter for Fake {
        async fn mount(&self, caller: &str, dir: &Path) -> Result<Box<dyn TermMount>, String> {
            assert!(dir.is_dir());
            if self.fail {
                return Err(format!("{caller}: unreachable"));
            }
            Ok(Box::new(FakeMount(self.unmounted.clone())))
        }
    }

    #[test]
    fn only_peers_have_a_caller() {
        assert_eq!(caller_of("owner"), None);
        assert_eq!(caller_of("alice"), Some("alice"));
    }

    #[tokio::test]
    async fn directories_come_and_go_with_the_mount() {
        let parent = tempfile_dir();
        let fake = Arc::new(Fake::default());
        let unmounted = fake.unmounted.clone();
        let terms = Terms::new(fake, &parent, "1.test").unwrap();
        let root = terms.root().to_path_buf();
        let t = terms.mount("alice", 7, None).await.unwrap();
        assert_eq!(t.path(), root.join("7/mnt"));
        assert!(t.path().is_dir());
        t.release().await;
        assert!(unmounted.load(Ordering::SeqCst));
        assert!(!root.join("7").exists());
        drop(terms);
        assert!(!root.exists());
        let _ = std::fs::remove_dir(&parent);
    }

    #[tokio::test]
    async fn a_failed_mount_says_so_and_leaves_nothing() {
        let parent = tempfile_dir();
        let fake = Arc::new(Fake {
            fail: true,
            ..Fake::default()
        });
        let terms = Terms::new(fake, &parent, "2.test").unwrap();
        let err = terms.mount("bob", 3, None).await.err().unwrap();
        assert_eq!(err, "/mnt/term: bob: unreachable");
        assert!(!terms.root().join("3").exists());
        drop(terms);
        let _ = std::fs::remove_dir(&parent);
    }

    #[test]
    fn stale_roots_of_gone_gridds_are_swept() {
        let parent = tempfile_dir();
        // pid 0x7fffffff is never a running process.
        let stale = parent.join(format!("{PREFIX}2147483647.x"));
        std::fs::create_dir_all(stale.join("4/mnt")).unwrap();
        sweep_stale(&parent);
        assert!(!stale.exists());
        let _ = std::fs::remove_dir(&parent);
    }

    fn tempfile_dir() -> PathBuf {
        let mut b = [0u8; 8];
        let _ = getrandom::getrandom(&mut b);
        let p = std::env::temp_dir().join(format!("grid-term-test.{}", u64::from_ne_bytes(b)));
        std::fs::create_dir(&p).unwrap();
        p
    }
}

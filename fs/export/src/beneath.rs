//! Confinement: the root descriptor and every path resolution beneath it.
//!
//! Paths are relative to the root, with `/` between components and `""` for
//! the root itself. They are resolved only here, only with openat2(2) and
//! `RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS`: the kernel then refuses (with
//! `EXDEV`) any resolution that would leave the root, whether through `..`,
//! an absolute or climbing symlink, or a rename racing the walk, and never
//! follows `/proc` magic links. Everything else in the crate works on the
//! descriptors this module returns, plus single names checked by
//! [`check_name`], so no other syscall ever walks a multi-component path.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use rustix::fs::{Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

/// The resolve flags of every lookup.
const BENEATH: ResolveFlags = ResolveFlags::BENEATH.union(ResolveFlags::NO_MAGICLINKS);

/// How often a lookup is retried when openat2 reports a race (`EAGAIN`:
/// a concurrent rename or mount it could not prove harmless).
const RACE_RETRIES: usize = 64;

/// The exported directory, held open as `O_PATH`.
#[derive(Debug)]
pub(crate) struct Root {
    fd: OwnedFd,
}

impl Root {
    /// Opens `path` (which the operator chose, so symlinks in it are
    /// followed) and checks that openat2 works here.
    pub(crate) fn open(path: &Path) -> io::Result<Root> {
        let fd = rustix::fs::open(
            path,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        let root = Root { fd };
        match root.resolve("", OFlags::PATH | OFlags::DIRECTORY) {
            Ok(_) => Ok(root),
            Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "export: openat2(2) is not available (Linux 5.6 or later is required)",
            )),
            Err(e) => Err(e),
        }
    }

    /// The root directory itself.
    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Opens `rel` beneath the root with `flags` (`O_CLOEXEC` is added).
    /// Symlinks are followed only while they stay beneath the root; pass
    /// `O_NOFOLLOW` to stop at a final symlink (with `O_PATH`, the result is
    /// the link itself).
    pub(crate) fn resolve(&self, rel: &str, flags: OFlags) -> io::Result<OwnedFd> {
        resolve_at(self.fd(), rel, flags, Mode::empty())
    }

    /// Like [`Root::resolve`], but only from the kernel's caches and without
    /// crossing a mount point: `None` when that is not possible (the lookup
    /// would need I/O or revalidation, or leaves the root's file system), so
    /// the caller can run it on the blocking pool instead. Never blocks on
    /// I/O, so it may run on a runtime thread.
    pub(crate) fn resolve_cached(&self, rel: &str, flags: OFlags) -> Option<io::Result<OwnedFd>> {
        let resolve = BENEATH | ResolveFlags::CACHED | ResolveFlags::NO_XDEV;
        match rustix::fs::openat2(
            self.fd(),
            at(rel),
            flags | OFlags::CLOEXEC,
            Mode::empty(),
            resolve,
        ) {
            Ok(fd) => Some(Ok(fd)),
            // EAGAIN: not cached (or a race); EXDEV: crosses a mount, or
            // escapes, which the slow path reports; ENOSYS/EINVAL: a kernel
            // without RESOLVE_CACHED.
            Err(Errno::AGAIN | Errno::XDEV | Errno::NOSYS | Errno::INVAL) => None,
            Err(e) => Some(Err(e.into())),
        }
    }

    /// Creates and opens the regular file `name` in `dir` (`O_CREAT |
    /// O_EXCL`, so an existing name, symlink or not, is `EEXIST`).
    pub(crate) fn create_file(
        &self,
        dir: BorrowedFd<'_>,
        name: &str,
        flags: OFlags,
        perm: u32,
    ) -> io::Result<OwnedFd> {
        check_name(name)?;
        resolve_at(
            dir,
            name,
            flags | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW,
            Mode::from_bits_truncate(perm & 0o7777),
        )
    }
}

/// openat2 beneath `dir`, retrying interrupted and raced lookups a bounded
/// number of times. `ENOSYS` is returned as is: there is no fallback.
fn resolve_at(dir: BorrowedFd<'_>, rel: &str, flags: OFlags, mode: Mode) -> io::Result<OwnedFd> {
    let mut tries = 0;
    loop {
        match rustix::fs::openat2(dir, at(rel), flags | OFlags::CLOEXEC, mode, BENEATH) {
            Err(Errno::AGAIN | Errno::INTR) if tries < RACE_RETRIES => tries += 1,
            r => return r.map_err(io::Error::from),
        }
    }
}

/// The path openat2 is given for `rel`.
fn at(rel: &str) -> &str {
    if rel.is_empty() {
        "."
    } else {
        rel
    }
}

/// Checks that `name` is one path component: not empty, `.` or `..`, and
/// without `/` or NUL. Anything else is `EINVAL`.
pub(crate) fn check_name(name: &str) -> io::Result<()> {
    if name.is_empty() || name == "." || name == ".." || name.contains(['/', '\0']) {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    Ok(())
}

/// The path of `name` in the directory `dir` (both relative to the root).
pub(crate) fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_owned()
    } else {
        format!("{dir}/{name}")
    }
}

/// Splits a path into its directory and last name; `None` for the root.
pub(crate) fn split(path: &str) -> Option<(&str, &str)> {
    if path.is_empty() {
        return None;
    }
    Some(path.rsplit_once('/').unwrap_or(("", path)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_single_components() {
        for bad in ["", ".", "..", "a/b", "/", "a\0b", "../x"] {
            let e = check_name(bad).expect_err(bad);
            assert_eq!(e.raw_os_error(), Some(libc::EINVAL), "{bad:?}");
        }
        for good in ["a", "...", ".hidden", "a b", "ünï"] {
            check_name(good).expect(good);
        }
    }

    #[test]
    fn join_and_split_are_inverse() {
        assert_eq!(join("", "a"), "a");
        assert_eq!(join("a/b", "c"), "a/b/c");
        assert_eq!(split(""), None);
        assert_eq!(split("a"), Some(("", "a")));
        assert_eq!(split("a/b/c"), Some(("a/b", "c")));
    }

    #[test]
    fn dotdot_and_absolute_paths_do_not_escape() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("sub")).expect("mkdir");
        let root = Root::open(&dir.path().join("sub")).expect("root");
        for rel in ["..", "../sub", "/etc", "a/../../x"] {
            let e = root.resolve(rel, OFlags::PATH).expect_err(rel);
            assert!(
                matches!(e.raw_os_error(), Some(libc::EXDEV) | Some(libc::ENOENT)),
                "{rel}: {e}"
            );
        }
        root.resolve("", OFlags::PATH | OFlags::DIRECTORY)
            .expect("root itself");
    }
}

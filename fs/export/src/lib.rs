//! Plan 9's exportfs of a subtree: a host directory served as a tree of
//! [`Node`]s, read-only or read-write.
//!
//! [`export`] opens the directory once, as an `O_PATH` descriptor, and hands
//! out its root node. Every node stores its path relative to that root plus
//! the qid it had when walked, and re-resolves the path for each operation
//! with openat2(2) and `RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS`, so neither
//! `..`, an absolute or climbing symlink, a magic link in `/proc`, nor a
//! directory swapped for a symlink mid-walk can reach anything outside the
//! exported directory: the kernel refuses such a resolution with `EXDEV`.
//! Symlinks inside the tree are served as symlinks; walking or opening
//! through one works while its target stays beneath the root.
//!
//! # Layout
//!
//! All modules are private; the API is [`export`] and [`ExportOptions`].
//!
//! - `beneath`: the root descriptor, the one place
//!   that calls openat2(2), and the name rules (single components only).
//! - `node`: [`Node`] for a host path; the async side, which
//!   decides what runs inline and what goes to the blocking pool.
//! - `ops`: the synchronous bodies of the metadata operations
//!   (create, remove, rename, setattr, readdir, ...), all on descriptors.
//! - `handle`: the [`Handle`](ninep_server::Handle) of an open
//!   file: pread/pwrite with a non-blocking fast path.
//! - `attr`: statx(2) to [`Attr`](ninep_server::Attr) and
//!   [`Qid`](ninep::Qid), and the uid/gid name cache.
//! - `registry`: the paths of live nodes, rewritten when this
//!   export renames a directory so fids under it keep working.
//!
//! # Blocking
//!
//! File system calls block, so by default they run on tokio's blocking pool
//! (`spawn_blocking`). Two hot paths avoid that hand-off when the kernel can
//! promise not to wait:
//!
//! - **Reads and writes** first try preadv2/pwritev2 with `RWF_NOWAIT` on the
//!   runtime thread. That succeeds when the data is in the page cache (reads)
//!   or the write will not wait for I/O or locks; otherwise the kernel says
//!   `EAGAIN` and the call is repeated on the blocking pool. A file system
//!   without `RWF_NOWAIT` support (`EOPNOTSUPP`) sends every later call of
//!   that handle to the pool. A cached read therefore costs one syscall and
//!   one copy, while a cold read never stalls a runtime worker.
//! - **Walk and attr** first try openat2 with `RESOLVE_CACHED |
//!   RESOLVE_NO_XDEV` plus statx(2), inline, when the export's root is on a
//!   local file system (ext4, xfs, btrfs, tmpfs, ...). A lookup that needs
//!   I/O, revalidation or crosses a mount point fails fast and is redone on
//!   the pool; so do symlinks (readlink may read a block) and uids whose
//!   names are not cached yet.
//!
//! Everything else (open, create, readdir, remove, rename, setattr, fsync,
//! statfs) goes to the pool. A blocking call cannot be cancelled: a flushed
//! request's syscall still completes, only its answer is dropped.
//!
//! Measured in-process (release build, 2 cores, ext4, warm cache, per call,
//! inline vs. forced pool): a `spawn_blocking` round trip alone is 6-7 µs;
//! a 4 KiB read 0.6 µs vs. 8 µs; 1 MiB reads 6.6 GB/s vs. 5.1 GB/s; a
//! two-name walk plus attr 5 µs vs. 27 µs. ext4 answers `EOPNOTSUPP` to
//! buffered `RWF_NOWAIT` writes, so there writes take the pool and one copy
//! of the data (about 2.5 GB/s at 1 MiB). A 1 MiB cached read keeps a
//! runtime worker busy for about 150 µs of copying, which it would spend
//! encoding the reply anyway.
//!
//! # Non-goals
//!
//! - Access control beyond the host's: operations run with the server
//!   process's credentials; the export only confines *where*, not *who*.
//! - I/O on special files. Device nodes, fifos and sockets can be created
//!   (mknod), stat'ed and removed, but opening one fails with `EOPNOTSUPP`
//!   (the 9P2000.L client handles them on its side). Opening is attempted
//!   with `O_NONBLOCK | O_NOCTTY` and checked afterwards, so a device's
//!   driver does see an open: export `nodev` mounts when that matters.
//! - Following renames made by other processes on the host: a node whose
//!   path was moved away then fails with "file not found". Renames made
//!   through this export are followed (see `registry`).
//! - File names that are not UTF-8: 9P strings are UTF-8, so such entries
//!   are left out of directory listings.
//! - Paths longer than `PATH_MAX` (4096 bytes) relative to the root.
//! - Locks, xattrs, ACLs.

#![warn(missing_docs, unreachable_pub)]

mod attr;
mod beneath;
mod handle;
mod node;
mod ops;
mod registry;

use std::io;
use std::path::Path;
use std::sync::Arc;

use ninep_server::Node;

/// How a directory is exported.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExportOptions {
    /// Refuse every change: mutating operations and opens for writing or
    /// truncation fail with `EROFS` ("read-only file system").
    pub read_only: bool,
}

/// Exports the directory `root` and returns its root node.
///
/// Fails if `root` is not a directory, cannot be opened, or the kernel lacks
/// openat2(2) (Linux 5.6): without it paths cannot be resolved safely, and
/// there is no unsafe fallback.
pub fn export(root: &Path, options: ExportOptions) -> io::Result<Arc<dyn Node>> {
    let node: Arc<dyn Node> = node::export_root(root, options)?;
    Ok(node)
}

//! The synchronous bodies of the node operations.
//!
//! Every function resolves what it needs through [`Root`] and then works on
//! descriptors: a file through its own `O_PATH` descriptor (with
//! `AT_EMPTY_PATH`), a directory entry through its directory's descriptor
//! and one checked name. No call here walks a multi-component path, and
//! none follows a final symlink (except open, beneath the root).
//!
//! [`Root`]: crate::beneath::Root

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::time::{SystemTime, UNIX_EPOCH};

use ninep::Qid;
use ninep_server::{
    mode, Attr, CreateKind, DirEntry, NoIo, OpenMode, Opened, SetAttr, Statfs, TimeSet,
};
use rustix::fs::{AtFlags, FileType, Gid, Mode, OFlags, Timespec, Timestamps, Uid};
use rustix::io::Errno;

use crate::attr::{self, file_type, stat_at, stat_fd};
use crate::beneath::{join, split};
use crate::handle::FileHandle;
use crate::node::Shared;

/// The qid of `path`, not following a final symlink.
pub(crate) fn lookup(shared: &Shared, path: &str) -> io::Result<Qid> {
    let fd = shared.root.resolve(path, OFlags::PATH | OFlags::NOFOLLOW)?;
    let st = stat_fd(fd.as_fd())?;
    Ok(attr::qid(&st, shared.root_dev))
}

/// [`lookup`] from the caches only, or `None` (see `Root::resolve_cached`).
pub(crate) fn lookup_cached(shared: &Shared, path: &str) -> Option<io::Result<Qid>> {
    let fd = match shared
        .root
        .resolve_cached(path, OFlags::PATH | OFlags::NOFOLLOW)?
    {
        Ok(fd) => fd,
        Err(e) => return Some(Err(e)),
    };
    Some(stat_fd(fd.as_fd()).map(|st| attr::qid(&st, shared.root_dev)))
}

/// The attributes of `path`, not following a final symlink.
pub(crate) fn attr(shared: &Shared, path: &str) -> io::Result<Attr> {
    let fd = shared.root.resolve(path, OFlags::PATH | OFlags::NOFOLLOW)?;
    let st = stat_fd(fd.as_fd())?;
    let target = if file_type(&st) == mode::S_IFLNK {
        link_target(fd.as_fd(), "")
    } else {
        String::new()
    };
    let names = shared.names.lookup(st.stx_uid, st.stx_gid);
    Ok(attr::to_attr(
        &st,
        attr::qid(&st, shared.root_dev),
        names,
        target,
    ))
}

/// [`attr()`] from the caches only, or `None`. Symlinks and owners whose
/// names are not cached yet take the slow path.
pub(crate) fn attr_cached(shared: &Shared, path: &str) -> Option<io::Result<Attr>> {
    let fd = match shared
        .root
        .resolve_cached(path, OFlags::PATH | OFlags::NOFOLLOW)?
    {
        Ok(fd) => fd,
        Err(e) => return Some(Err(e)),
    };
    let st = match stat_fd(fd.as_fd()) {
        Ok(st) => st,
        Err(e) => return Some(Err(e)),
    };
    if file_type(&st) == mode::S_IFLNK {
        return None;
    }
    let names = shared.names.cached(st.stx_uid, st.stx_gid)?;
    let qid = attr::qid(&st, shared.root_dev);
    Some(Ok(attr::to_attr(&st, qid, names, String::new())))
}

/// Opens `path` for I/O. Final symlinks are followed beneath the root.
/// Only regular files get a handle; directories get [`NoIo`] (the session
/// reads them through readdir) and special files are refused.
pub(crate) fn open(shared: &Shared, path: &str, mode: OpenMode) -> io::Result<Opened> {
    let mut flags = access(mode) | OFlags::NOCTTY | OFlags::NONBLOCK;
    if mode.truncate {
        flags |= OFlags::TRUNC;
    }
    let fd = shared.root.resolve(path, flags)?;
    let st = stat_fd(fd.as_fd())?;
    match file_type(&st) {
        mode::S_IFREG => {
            // O_NONBLOCK was only there so a fifo or device would not hang
            // the open; a regular file's reads should not see it.
            let fl = rustix::fs::fcntl_getfl(&fd)?;
            rustix::fs::fcntl_setfl(&fd, fl - OFlags::NONBLOCK)?;
            Ok(Opened::new(FileHandle::new(fd)))
        }
        mode::S_IFDIR => Ok(Opened::new(NoIo)),
        _ => Err(io::Error::from_raw_os_error(libc::EOPNOTSUPP)),
    }
}

/// The read/write/append bits of an open mode.
fn access(mode: OpenMode) -> OFlags {
    let mut flags = match (mode.read, mode.write) {
        (_, false) => OFlags::RDONLY,
        (false, true) => OFlags::WRONLY,
        (true, true) => OFlags::RDWR,
    };
    if mode.append {
        flags |= OFlags::APPEND;
    }
    flags
}

/// The entries of the directory `path` (following a final symlink beneath
/// the root), sorted by name, without `.`, `..` and non-UTF-8 names.
pub(crate) fn readdir(shared: &Shared, path: &str) -> io::Result<Vec<DirEntry>> {
    let fd = shared
        .root
        .resolve(path, OFlags::RDONLY | OFlags::DIRECTORY)?;
    let mut dir = rustix::fs::Dir::read_from(&fd)?;
    let mut out = Vec::new();
    while let Some(entry) = dir.read() {
        let entry = entry?;
        let bytes = entry.file_name().to_bytes();
        if bytes == b"." || bytes == b".." {
            continue;
        }
        let Ok(name) = std::str::from_utf8(bytes) else {
            continue;
        };
        let attr = match stat_at(fd.as_fd(), name) {
            Ok(st) => {
                let target = if file_type(&st) == mode::S_IFLNK {
                    link_target(fd.as_fd(), name)
                } else {
                    String::new()
                };
                let names = shared.names.lookup(st.stx_uid, st.stx_gid);
                attr::to_attr(&st, attr::qid(&st, shared.root_dev), names, target)
            }
            // Removed since the directory was read.
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue,
            // Readable but not searchable: the name and type are all there is.
            Err(_) => attr::bare_attr(entry.ino(), entry.file_type()),
        };
        out.push(DirEntry {
            name: name.to_owned(),
            attr,
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Creates `name` in the directory `dir`; returns its path, qid and, when
/// `open` is given, the opened handle.
pub(crate) fn create(
    shared: &Shared,
    dir: &str,
    name: &str,
    kind: CreateKind,
    open: Option<OpenMode>,
) -> io::Result<(String, Qid, Option<Opened>)> {
    let dfd = shared.root.resolve(dir, OFlags::PATH | OFlags::DIRECTORY)?;
    let path = join(dir, name);
    let qid_of = |st| attr::qid(&st, shared.root_dev);
    match kind {
        CreateKind::File { perm } => {
            let flags = access(open.unwrap_or(OpenMode::READ));
            let fd = shared.root.create_file(dfd.as_fd(), name, flags, perm)?;
            let qid = qid_of(stat_fd(fd.as_fd())?);
            let opened = open.map(|_| Opened::new(FileHandle::new(fd)));
            return Ok((path, qid, opened));
        }
        CreateKind::Dir { perm } => rustix::fs::mkdirat(&dfd, name, perm_bits(perm))?,
        CreateKind::Symlink { target } => rustix::fs::symlinkat(target.as_str(), &dfd, name)?,
        CreateKind::Special {
            mode: m,
            major,
            minor,
        } => {
            let ty = match m & mode::S_IFMT {
                0 | mode::S_IFREG => FileType::RegularFile,
                mode::S_IFIFO => FileType::Fifo,
                mode::S_IFCHR => FileType::CharacterDevice,
                mode::S_IFBLK => FileType::BlockDevice,
                mode::S_IFSOCK => FileType::Socket,
                _ => return Err(io::Error::from_raw_os_error(libc::EINVAL)),
            };
            let dev = rustix::fs::makedev(major, minor);
            rustix::fs::mknodat(&dfd, name, ty, perm_bits(m), dev)?;
        }
    }
    let qid = qid_of(stat_at(dfd.as_fd(), name)?);
    Ok((path, qid, open.map(|_| Opened::new(NoIo))))
}

fn perm_bits(perm: u32) -> Mode {
    Mode::from_bits_truncate(perm & 0o7777)
}

/// Removes `path` (not the root: the caller checks). `is_dir` is a hint
/// from the cached qid; the other kind of unlink is tried if it was wrong.
pub(crate) fn remove(shared: &Shared, path: &str, is_dir: bool) -> io::Result<()> {
    let Some((dir, name)) = split(path) else {
        return Err(io::Error::from_raw_os_error(libc::EBUSY));
    };
    let dfd = shared.root.resolve(dir, OFlags::PATH | OFlags::DIRECTORY)?;
    let (first, second) = if is_dir {
        (AtFlags::REMOVEDIR, AtFlags::empty())
    } else {
        (AtFlags::empty(), AtFlags::REMOVEDIR)
    };
    match rustix::fs::unlinkat(&dfd, name, first) {
        Err(Errno::ISDIR | Errno::NOTDIR) => Ok(rustix::fs::unlinkat(&dfd, name, second)?),
        r => Ok(r?),
    }
}

/// Removes the entry `name` of `dir`: a directory iff `is_dir` (rmdir), as
/// the client asked.
pub(crate) fn unlink(shared: &Shared, dir: &str, name: &str, is_dir: bool) -> io::Result<()> {
    let dfd = shared.root.resolve(dir, OFlags::PATH | OFlags::DIRECTORY)?;
    let flags = if is_dir {
        AtFlags::REMOVEDIR
    } else {
        AtFlags::empty()
    };
    Ok(rustix::fs::unlinkat(&dfd, name, flags)?)
}

/// Renames `from_dir/from` to `to_dir/to`, then moves the live nodes.
pub(crate) fn rename(
    shared: &Shared,
    from_dir: &str,
    from: &str,
    to_dir: &str,
    to: &str,
) -> io::Result<()> {
    let ffd = shared
        .root
        .resolve(from_dir, OFlags::PATH | OFlags::DIRECTORY)?;
    let tfd = if to_dir == from_dir {
        None
    } else {
        Some(
            shared
                .root
                .resolve(to_dir, OFlags::PATH | OFlags::DIRECTORY)?,
        )
    };
    let tfd = tfd.as_ref().unwrap_or(&ffd);
    rustix::fs::renameat(&ffd, from, tfd, to)?;
    shared
        .registry
        .renamed(&join(from_dir, from), &join(to_dir, to));
    Ok(())
}

/// Hard-links the file at `target` as `dir/name`.
pub(crate) fn link(shared: &Shared, target: &str, dir: &str, name: &str) -> io::Result<()> {
    let Some((tdir, tname)) = split(target) else {
        // The root is a directory, and directories cannot be linked.
        return Err(io::Error::from_raw_os_error(libc::EPERM));
    };
    let tfd = shared
        .root
        .resolve(tdir, OFlags::PATH | OFlags::DIRECTORY)?;
    let dfd = shared.root.resolve(dir, OFlags::PATH | OFlags::DIRECTORY)?;
    Ok(rustix::fs::linkat(
        &tfd,
        tname,
        &dfd,
        name,
        AtFlags::empty(),
    )?)
}

/// Applies `set` to `path` without following a final symlink. Order: owner,
/// size, mode, times, so a chown's clearing of set-id bits or a truncate's
/// new mtime does not undo what else was asked.
pub(crate) fn setattr(shared: &Shared, path: &str, set: &SetAttr) -> io::Result<()> {
    let fd = shared.root.resolve(path, OFlags::PATH | OFlags::NOFOLLOW)?;
    let is_link = file_type(&stat_fd(fd.as_fd())?) == mode::S_IFLNK;
    if set.uid.is_some() || set.gid.is_some() {
        // !0 means "unchanged" to chown(2) too.
        let uid = set.uid.filter(|&u| u != !0).map(Uid::from_raw);
        let gid = set.gid.filter(|&g| g != !0).map(Gid::from_raw);
        let flags = AtFlags::EMPTY_PATH | AtFlags::SYMLINK_NOFOLLOW;
        rustix::fs::chownat(&fd, "", uid, gid, flags)?;
    }
    if let Some(size) = set.size {
        if is_link {
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        }
        let flags = OFlags::WRONLY | OFlags::NOFOLLOW | OFlags::NOCTTY | OFlags::NONBLOCK;
        let wfd = shared.root.resolve(path, flags)?;
        if file_type(&stat_fd(wfd.as_fd())?) != mode::S_IFREG {
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        }
        rustix::fs::ftruncate(&wfd, size)?;
    }
    if let Some(m) = set.mode {
        if is_link {
            // Linux has no symlink permissions.
            return Err(io::Error::from_raw_os_error(libc::EOPNOTSUPP));
        }
        chmod_fd(fd.as_fd(), m & 0o7777)?;
    }
    if set.atime.is_some() || set.mtime.is_some() {
        let times = Timestamps {
            last_access: timespec(set.atime),
            last_modification: timespec(set.mtime),
        };
        let flags = AtFlags::EMPTY_PATH | AtFlags::SYMLINK_NOFOLLOW;
        rustix::fs::utimensat(&fd, "", &times, flags)?;
    }
    Ok(())
}

/// Commits `path` to stable storage (a Twstat that changes nothing). Only
/// regular files and directories are opened for it; others are a no-op.
pub(crate) fn sync(shared: &Shared, path: &str) -> io::Result<()> {
    let fd = shared.root.resolve(path, OFlags::PATH | OFlags::NOFOLLOW)?;
    if !matches!(
        file_type(&stat_fd(fd.as_fd())?),
        mode::S_IFREG | mode::S_IFDIR
    ) {
        return Ok(());
    }
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NOCTTY | OFlags::NONBLOCK;
    let rfd = shared.root.resolve(path, flags)?;
    if matches!(
        file_type(&stat_fd(rfd.as_fd())?),
        mode::S_IFREG | mode::S_IFDIR
    ) {
        rustix::fs::fsync(&rfd)?;
    }
    Ok(())
}

/// The target of the symlink `path`.
pub(crate) fn readlink(shared: &Shared, path: &str) -> io::Result<String> {
    let fd = shared.root.resolve(path, OFlags::PATH | OFlags::NOFOLLOW)?;
    if file_type(&stat_fd(fd.as_fd())?) != mode::S_IFLNK {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    let target = rustix::fs::readlinkat(&fd, "", Vec::new())?;
    String::from_utf8(target.into_bytes()).map_err(|_| io::Error::from_raw_os_error(libc::EILSEQ))
}

/// statfs of the file system holding the root.
pub(crate) fn statfs(shared: &Shared) -> io::Result<Statfs> {
    let fs = rustix::fs::fstatfs(shared.root.fd())?;
    let vfs = rustix::fs::fstatvfs(shared.root.fd())?;
    Ok(Statfs {
        ty: fs.f_type as u32,
        bsize: u32::try_from(vfs.f_bsize).unwrap_or(u32::MAX),
        blocks: vfs.f_blocks,
        bfree: vfs.f_bfree,
        bavail: vfs.f_bavail,
        files: vfs.f_files,
        ffree: vfs.f_ffree,
        fsid: vfs.f_fsid,
        namelen: u32::try_from(vfs.f_namemax).unwrap_or(u32::MAX),
    })
}

/// A symlink's target for display (lossy; empty if it cannot be read).
fn link_target(dir: BorrowedFd<'_>, name: &str) -> String {
    rustix::fs::readlinkat(dir, name, Vec::new())
        .map(|t| String::from_utf8_lossy(t.as_bytes()).into_owned())
        .unwrap_or_default()
}

/// chmod of the file an `O_PATH` descriptor refers to (never a symlink:
/// the caller checks). fchmodat2(2) with `AT_EMPTY_PATH` (Linux 6.6) acts
/// on the descriptor itself; before it, the descriptor's `/proc` link names
/// the same inode. fchmod(2) refuses `O_PATH` descriptors, and opening the
/// file for it would need read or write permission that chmod does not.
fn chmod_fd(fd: BorrowedFd<'_>, perm: u32) -> io::Result<()> {
    if let Some(nr) = SYS_FCHMODAT2 {
        // SAFETY: fchmodat2(dirfd, path, mode, flags) reads only `path`, a
        // NUL-terminated static string; `fd` is a live descriptor borrowed
        // for the call.
        let rc = unsafe {
            libc::syscall(
                nr,
                fd.as_raw_fd(),
                c"".as_ptr(),
                perm as libc::c_uint,
                libc::AT_EMPTY_PATH as libc::c_uint,
            )
        };
        if rc == 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::ENOSYS) {
            return Err(e);
        }
    }
    let proc_path = format!("/proc/self/fd/{}", fd.as_raw_fd());
    Ok(rustix::fs::chmod(proc_path.as_str(), perm_bits(perm))?)
}

/// fchmodat2's number where the libc crate does not define it: 452 on every
/// architecture using the common syscall table; elsewhere we fall back to
/// `/proc`.
#[cfg(any(target_arch = "x86_64", target_arch = "x86"))]
const SYS_FCHMODAT2: Option<libc::c_long> = Some(libc::SYS_fchmodat2);
#[cfg(any(
    target_arch = "aarch64",
    target_arch = "arm",
    target_arch = "riscv64",
    target_arch = "loongarch64",
    target_arch = "powerpc64",
    target_arch = "s390x"
))]
const SYS_FCHMODAT2: Option<libc::c_long> = Some(452);
#[cfg(not(any(
    target_arch = "x86_64",
    target_arch = "x86",
    target_arch = "aarch64",
    target_arch = "arm",
    target_arch = "riscv64",
    target_arch = "loongarch64",
    target_arch = "powerpc64",
    target_arch = "s390x"
)))]
const SYS_FCHMODAT2: Option<libc::c_long> = None;

/// A utimensat time: omitted, now, or the given instant (also before 1970).
fn timespec(t: Option<TimeSet>) -> Timespec {
    let (tv_sec, tv_nsec) = match t {
        None => (0, rustix::fs::UTIME_OMIT),
        Some(TimeSet::Now) => (0, rustix::fs::UTIME_NOW),
        Some(TimeSet::At(at)) => split_time(at),
    };
    Timespec { tv_sec, tv_nsec }
}

fn split_time(at: SystemTime) -> (i64, i64) {
    match at.duration_since(UNIX_EPOCH) {
        Ok(d) => (
            i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
            i64::from(d.subsec_nanos()),
        ),
        Err(e) => {
            let d = e.duration();
            let secs = i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
            match d.subsec_nanos() {
                0 => (-secs, 0),
                n => (-secs - 1, 1_000_000_000 - i64::from(n)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn times_split_into_timespecs() {
        let t = UNIX_EPOCH + Duration::new(10, 5);
        assert_eq!(split_time(t), (10, 5));
        let t = UNIX_EPOCH - Duration::new(1, 250_000_000);
        assert_eq!(split_time(t), (-2, 750_000_000));
        let t = UNIX_EPOCH - Duration::from_secs(3);
        assert_eq!(split_time(t), (-3, 0));
    }
}

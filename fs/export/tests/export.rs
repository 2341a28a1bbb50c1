//! The export through the `Node` API, on real temporary directories.
//!
//! Modules: `basics` (walk, attr, qids, readdir, statfs), `io` (open, read,
//! write, truncate, append, clunk), `mutate` (create, remove, rename,
//! setattr, link), `escape` (symlinks out of the root, the rename race),
//! `read_only`.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use ninep::qt;
use ninep_export::{export, ExportOptions};
use ninep_server::{mode, walk_path, CreateKind, Node, OpenMode, Opened, Result};

fn rw(dir: &Path) -> Arc<dyn Node> {
    export(dir, ExportOptions::default()).expect("export")
}

fn ro(dir: &Path) -> Arc<dyn Node> {
    export(dir, ExportOptions { read_only: true }).expect("export")
}

async fn walk(root: &Arc<dyn Node>, path: &str) -> Result<Arc<dyn Node>> {
    walk_path(root.clone(), path).await
}

/// The errno of a result that must be an error.
fn errno<T>(r: Result<T>) -> i32 {
    match r {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.errno,
    }
}

const RDWR: OpenMode = OpenMode {
    read: true,
    write: true,
    truncate: false,
    append: false,
    exclusive: false,
};

async fn read_all(opened: &Opened) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let chunk = opened
            .handle
            .read(out.len() as u64, 64 * 1024)
            .await
            .expect("read");
        if chunk.is_empty() {
            return out;
        }
        out.extend_from_slice(&chunk);
    }
}

async fn contents(root: &Arc<dyn Node>, path: &str) -> Vec<u8> {
    let node = walk(root, path).await.expect("walk");
    read_all(&node.open(OpenMode::READ).await.expect("open")).await
}

mod basics {
    use super::*;

    #[tokio::test]
    async fn walk_gives_stable_qids_of_the_right_type() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("d")).expect("mkdir");
        std::fs::write(dir.path().join("d/f"), b"hello").expect("write");
        // An old mtime, so the write below changes it even where file
        // system timestamps are coarse.
        std::fs::File::options()
            .write(true)
            .open(dir.path().join("d/f"))
            .and_then(|f| f.set_modified(std::time::UNIX_EPOCH + Duration::from_secs(1)))
            .expect("set mtime");
        std::os::unix::fs::symlink("f", dir.path().join("d/l")).expect("symlink");
        let root = rw(dir.path());

        assert!(root.qid().is_dir());
        let d = walk(&root, "d").await.expect("walk d");
        let f1 = walk(&root, "d/f").await.expect("walk d/f");
        let f2 = d.walk("f").await.expect("walk f again");
        let l = d.walk("l").await.expect("walk l");
        assert_eq!(d.qid().ty, qt::DIR);
        assert_eq!(f1.qid().ty, qt::FILE);
        assert_eq!(l.qid().ty, qt::SYMLINK);
        assert_eq!(f1.qid(), f2.qid(), "same file, same qid");
        assert_ne!(f1.qid().path, l.qid().path);
        assert_ne!(f1.qid().path, d.qid().path);

        let ino = std::os::unix::fs::MetadataExt::ino(
            &std::fs::metadata(dir.path().join("d/f")).expect("stat"),
        );
        assert_eq!(
            f1.qid().path,
            ino,
            "qid.path is the inode on the root's device"
        );

        // Writing changes the version, not the path.
        let h = f1.open(RDWR).await.expect("open");
        h.handle.write(0, b"HELLO, world").await.expect("write");
        let a = f2.attr().await.expect("attr");
        assert_eq!(a.qid.path, f1.qid().path);
        assert_ne!(a.qid.version, f1.qid().version);

        assert_eq!(errno(d.walk("nope").await), libc::ENOENT);
        assert_eq!(errno(f1.walk("x").await), libc::ENOTDIR);
        for bad in ["", ".", "..", "a/b"] {
            assert_eq!(errno(d.walk(bad).await), libc::EINVAL, "{bad:?}");
        }
    }

    #[tokio::test]
    async fn attr_reports_the_full_stat() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("f"), vec![7u8; 10_000]).expect("write");
        std::os::unix::fs::symlink("some/where", dir.path().join("l")).expect("symlink");
        let root = rw(dir.path());
        let meta = std::fs::symlink_metadata(dir.path().join("f")).expect("stat");
        use std::os::unix::fs::MetadataExt;

        let a = walk(&root, "f")
            .await
            .expect("walk")
            .attr()
            .await
            .expect("attr");
        assert_eq!(a.mode, meta.mode());
        assert_eq!(a.mode & mode::S_IFMT, mode::S_IFREG);
        assert_eq!((a.uid, a.gid), (meta.uid(), meta.gid()));
        assert!(!a.uname.is_empty() && !a.gname.is_empty());
        assert_eq!(a.size, 10_000);
        assert_eq!(a.nlink, 1);
        assert_eq!(a.blocks, meta.blocks());
        assert_eq!(a.blksize, meta.blksize());
        assert_eq!(a.mtime, meta.modified().expect("mtime"));
        assert_eq!(a.atime, meta.accessed().expect("atime"));
        assert!(a.link_target.is_empty());
        // Twice: the second may come from the inline cached path.
        assert_eq!(
            walk(&root, "f")
                .await
                .expect("walk")
                .attr()
                .await
                .expect("attr"),
            a
        );

        let l = walk(&root, "l")
            .await
            .expect("walk l")
            .attr()
            .await
            .expect("attr");
        assert_eq!(l.mode & mode::S_IFMT, mode::S_IFLNK);
        assert_eq!(l.link_target, "some/where");
        assert_eq!(l.qid.ty, qt::SYMLINK);

        let r = root.attr().await.expect("root attr");
        assert!(r.is_dir());
        assert_eq!(r.qid, root.qid());
    }

    #[tokio::test]
    async fn readdir_lists_sorted_entries_with_attrs() {
        let dir = tempfile::tempdir().expect("tempdir");
        for name in ["zeta", "alpha", "Mid", "ünïcode"] {
            std::fs::write(dir.path().join(name), name).expect("write");
        }
        std::fs::create_dir(dir.path().join("sub")).expect("mkdir");
        std::os::unix::fs::symlink("alpha", dir.path().join("link")).expect("symlink");
        let root = rw(dir.path());

        let entries = root.readdir().await.expect("readdir");
        let names: Vec<_> = entries.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["Mid", "alpha", "link", "sub", "zeta", "ünïcode"]);
        for e in &entries {
            let walked = root.walk(&e.name).await.expect("walk entry");
            assert_eq!(e.attr.qid.path, walked.qid().path, "{}", e.name);
        }
        let by = |n: &str| entries.iter().find(|e| e.name == n).expect(n).attr.clone();
        assert_eq!(by("alpha").size, 5);
        assert!(by("sub").is_dir());
        assert_eq!(by("link").link_target, "alpha");
        assert_eq!(by("link").qid.ty, qt::SYMLINK);

        let empty = walk(&root, "sub").await.expect("walk");
        assert!(empty.readdir().await.expect("readdir").is_empty());
        let file = walk(&root, "alpha").await.expect("walk");
        assert_eq!(errno(file.readdir().await), libc::ENOTDIR);
    }

    #[tokio::test]
    async fn statfs_describes_the_host_file_system() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = rw(dir.path()).statfs().await.expect("statfs");
        assert!(s.bsize > 0);
        assert!(s.blocks > 0);
        assert_eq!(s.namelen, 255);
    }

    #[test]
    fn exporting_a_file_or_nothing_fails() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("f"), b"").expect("write");
        assert!(export(&dir.path().join("f"), ExportOptions::default()).is_err());
        assert!(export(&dir.path().join("none"), ExportOptions::default()).is_err());
    }
}

mod io {
    use super::*;

    #[tokio::test]
    async fn read_write_truncate_append() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("f"), b"0123456789").expect("write");
        let root = rw(dir.path());
        let f = walk(&root, "f").await.expect("walk");

        let o = f.open(RDWR).await.expect("open");
        assert_eq!(o.handle.read(2, 3).await.expect("read"), b"234");
        assert_eq!(o.handle.read(8, 100).await.expect("read"), b"89");
        assert!(o
            .handle
            .read(10, 100)
            .await
            .expect("read at eof")
            .is_empty());
        assert!(o
            .handle
            .read(1 << 40, 100)
            .await
            .expect("read past eof")
            .is_empty());
        assert_eq!(o.handle.write(4, b"ab").await.expect("write"), 2);
        assert_eq!(o.handle.write(12, b"Z").await.expect("write past end"), 1);
        o.handle.fsync().await.expect("fsync");
        assert_eq!(
            std::fs::read(dir.path().join("f")).expect("read"),
            b"0123ab6789\0\0Z"
        );
        assert_eq!(errno(o.handle.read(u64::MAX, 1).await), libc::EINVAL);
        o.handle.clunk().await;
        assert_eq!(errno(o.handle.read(0, 1).await), libc::EBADF);

        let t = OpenMode {
            truncate: true,
            ..RDWR
        };
        let o = f.open(t).await.expect("open trunc");
        assert!(read_all(&o).await.is_empty());
        o.handle.write(0, b"first ").await.expect("write");

        let a = OpenMode {
            append: true,
            ..RDWR
        };
        let o = f.open(a).await.expect("open append");
        o.handle.write(0, b"second").await.expect("append");
        assert_eq!(contents(&root, "f").await, b"first second");
    }

    #[tokio::test]
    async fn large_reads_and_writes_round_trip() {
        let dir = tempfile::tempdir().expect("tempdir");
        let data: Vec<u8> = (0..3 * 1024 * 1024 + 17).map(|i| (i % 251) as u8).collect();
        let root = rw(dir.path());
        let (_, o) = root
            .create("big", CreateKind::File { perm: 0o644 }, Some(RDWR))
            .await
            .expect("create");
        let o = o.expect("opened");
        let mut off = 0;
        for chunk in data.chunks(1 << 20) {
            let n = o.handle.write(off, chunk).await.expect("write");
            assert_eq!(n as usize, chunk.len(), "writes are never short");
            off += u64::from(n);
        }
        let mut back = Vec::new();
        loop {
            let c = o
                .handle
                .read(back.len() as u64, 1 << 20)
                .await
                .expect("read");
            if c.is_empty() {
                break;
            }
            assert!(c.len() <= 1 << 20);
            back.extend_from_slice(&c);
        }
        assert_eq!(back.len(), data.len());
        assert!(back == data);
        assert!(o.handle.read(0, 0).await.expect("empty read").is_empty());
    }

    #[tokio::test]
    async fn directories_open_for_reading_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("d")).expect("mkdir");
        let root = rw(dir.path());
        let d = walk(&root, "d").await.expect("walk");
        d.open(OpenMode::READ).await.expect("open dir");
        let w = OpenMode {
            write: true,
            ..OpenMode::READ
        };
        assert_eq!(errno(d.open(w).await), libc::EISDIR);
    }
}

mod mutate {
    use super::*;
    use ninep_server::{SetAttr, TimeSet};
    use std::time::{SystemTime, UNIX_EPOCH};

    #[tokio::test]
    async fn create_files_dirs_symlinks_and_fifos() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = rw(dir.path());

        let (f, o) = root
            .create("f", CreateKind::File { perm: 0o600 }, Some(RDWR))
            .await
            .expect("create file");
        assert_eq!(f.qid().ty, qt::FILE);
        o.expect("opened")
            .handle
            .write(0, b"new")
            .await
            .expect("write");
        assert_eq!(std::fs::read(dir.path().join("f")).expect("read"), b"new");
        assert_eq!(f.attr().await.expect("attr").mode & 0o777, 0o600 & !umask());

        let (_, none) = root
            .create("g", CreateKind::File { perm: 0o644 }, None)
            .await
            .expect("create unopened");
        assert!(none.is_none());
        let again = root
            .create("f", CreateKind::File { perm: 0o644 }, None)
            .await;
        assert_eq!(errno(again), libc::EEXIST);

        let (d, _) = root
            .create("d", CreateKind::Dir { perm: 0o755 }, None)
            .await
            .expect("mkdir");
        assert!(d.qid().is_dir());
        let (inner, _) = d
            .create("inner", CreateKind::File { perm: 0o644 }, None)
            .await
            .expect("create in subdir");
        assert_eq!(inner.attr().await.expect("attr").size, 0);
        assert!(dir.path().join("d/inner").is_file());

        let target = CreateKind::Symlink {
            target: "d/inner".into(),
        };
        let (l, _) = root.create("l", target, None).await.expect("symlink");
        assert_eq!(l.qid().ty, qt::SYMLINK);
        assert_eq!(l.readlink().await.expect("readlink"), "d/inner");
        assert_eq!(errno(f.readlink().await), libc::EINVAL);

        let fifo = CreateKind::Special {
            mode: mode::S_IFIFO | 0o644,
            major: 0,
            minor: 0,
        };
        let (p, _) = root.create("p", fifo, None).await.expect("mkfifo");
        assert_eq!(
            p.attr().await.expect("attr").mode & mode::S_IFMT,
            mode::S_IFIFO
        );
        // Special files are not opened for I/O, and trying does not hang.
        let opened = tokio::time::timeout(Duration::from_secs(10), p.open(OpenMode::READ))
            .await
            .expect("open of a fifo returns");
        assert_eq!(errno(opened), libc::EOPNOTSUPP);

        for bad in ["", ".", "..", "a/b", "nul\0"] {
            let r = root
                .create(bad, CreateKind::Dir { perm: 0o755 }, None)
                .await;
            assert_eq!(errno(r), libc::EINVAL, "{bad:?}");
        }
        let bad_kind = CreateKind::Special {
            mode: mode::S_IFDIR | 0o755,
            major: 0,
            minor: 0,
        };
        assert_eq!(errno(root.create("x", bad_kind, None).await), libc::EINVAL);
    }

    /// The process umask, read without changing it (tests run in parallel).
    fn umask() -> u32 {
        let status = std::fs::read_to_string("/proc/self/status").expect("status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("Umask:"))
            .and_then(|m| u32::from_str_radix(m.trim(), 8).ok())
            .unwrap_or(0o022)
    }

    #[tokio::test]
    async fn remove_and_unlink() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("full/sub")).expect("mkdir");
        std::fs::create_dir(dir.path().join("empty")).expect("mkdir");
        std::fs::write(dir.path().join("f"), b"x").expect("write");
        std::fs::write(dir.path().join("g"), b"x").expect("write");
        let root = rw(dir.path());

        let full = walk(&root, "full").await.expect("walk");
        assert_eq!(errno(full.remove().await), libc::ENOTEMPTY);
        walk(&root, "empty")
            .await
            .expect("walk")
            .remove()
            .await
            .expect("rmdir");
        walk(&root, "f")
            .await
            .expect("walk")
            .remove()
            .await
            .expect("unlink");
        assert!(!dir.path().join("f").exists() && !dir.path().join("empty").exists());
        assert_eq!(errno(root.remove().await), libc::EBUSY);

        assert_eq!(errno(root.unlink("g", true).await), libc::ENOTDIR);
        root.unlink("g", false).await.expect("unlink g");
        assert_eq!(errno(full.unlink("sub", false).await), libc::EISDIR);
        full.unlink("sub", true).await.expect("rmdir sub");
        assert_eq!(errno(root.unlink("nope", false).await), libc::ENOENT);
        assert_eq!(errno(root.unlink("..", true).await), libc::EINVAL);
    }

    #[tokio::test]
    async fn rename_within_and_across_directories() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("x/deep")).expect("mkdir");
        std::fs::create_dir(dir.path().join("y")).expect("mkdir");
        std::fs::write(dir.path().join("x/f"), b"data").expect("write");
        std::fs::write(dir.path().join("x/deep/g"), b"deep").expect("write");
        let root = rw(dir.path());
        let x = walk(&root, "x").await.expect("walk x");
        let y = walk(&root, "y").await.expect("walk y");
        let g = walk(&root, "x/deep/g").await.expect("walk g");

        x.rename("f", &x, "f2").await.expect("rename within");
        assert_eq!(contents(&root, "x/f2").await, b"data");
        assert_eq!(errno(walk(&root, "x/f").await), libc::ENOENT);

        x.rename("f2", &y, "f3").await.expect("rename across");
        assert_eq!(contents(&root, "y/f3").await, b"data");

        // Nodes under a renamed directory follow it.
        root.rename("x", &root, "z").await.expect("rename dir");
        assert_eq!(g.attr().await.expect("moved node").size, 4);
        assert!(
            x.walk("deep").await.is_ok(),
            "walks from the moved dir work"
        );
        assert_eq!(errno(walk(&root, "x").await), libc::ENOENT);

        let other_dir = tempfile::tempdir().expect("tempdir");
        let other = rw(other_dir.path());
        assert_eq!(errno(y.rename("f3", &other, "f").await), libc::EXDEV);
        assert_eq!(errno(y.rename("f3", &y, "a/b").await), libc::EINVAL);
        assert_eq!(errno(y.rename("nope", &y, "b").await), libc::ENOENT);
    }

    #[tokio::test]
    async fn setattr_mode_owner_size_and_times() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("f"), b"0123456789").expect("write");
        std::os::unix::fs::symlink("f", dir.path().join("l")).expect("symlink");
        let root = rw(dir.path());
        let f = walk(&root, "f").await.expect("walk");

        let set = |s: SetAttr| s;
        f.setattr(set(SetAttr {
            mode: Some(0o640),
            ..Default::default()
        }))
        .await
        .expect("chmod");
        let a = f.attr().await.expect("attr");
        assert_eq!(a.mode & 0o7777, 0o640);
        assert_eq!(a.mode & mode::S_IFMT, mode::S_IFREG);

        f.setattr(SetAttr {
            uid: Some(a.uid),
            gid: Some(a.gid),
            size: Some(4),
            ..Default::default()
        })
        .await
        .expect("chown to self and truncate");
        assert_eq!(std::fs::read(dir.path().join("f")).expect("read"), b"0123");

        let mtime = UNIX_EPOCH + Duration::new(1_000_000_000, 123_456_789);
        let atime = UNIX_EPOCH + Duration::new(2_000_000_000, 5);
        f.setattr(SetAttr {
            atime: Some(TimeSet::At(atime)),
            mtime: Some(TimeSet::At(mtime)),
            ..Default::default()
        })
        .await
        .expect("utimes");
        let a = f.attr().await.expect("attr");
        assert_eq!((a.atime, a.mtime), (atime, mtime));

        f.setattr(SetAttr {
            mtime: Some(TimeSet::Now),
            ..Default::default()
        })
        .await
        .expect("touch");
        let a = f.attr().await.expect("attr");
        assert_eq!(a.atime, atime, "an omitted time stays");
        let age = SystemTime::now()
            .duration_since(a.mtime)
            .unwrap_or_default();
        assert!(age < Duration::from_secs(60));

        // Symlinks: no permissions, but times apply to the link itself.
        let l = walk(&root, "l").await.expect("walk l");
        let chmod = SetAttr {
            mode: Some(0o600),
            ..Default::default()
        };
        assert_eq!(errno(l.setattr(chmod).await), libc::EOPNOTSUPP);
        l.setattr(SetAttr {
            mtime: Some(TimeSet::At(mtime)),
            ..Default::default()
        })
        .await
        .expect("lutimes");
        assert_eq!(l.attr().await.expect("attr").mtime, mtime);
        assert_ne!(
            f.attr().await.expect("attr").mtime,
            mtime,
            "target untouched"
        );

        // An empty setattr is a sync request.
        f.setattr(SetAttr::default()).await.expect("sync");
        root.setattr(SetAttr::default()).await.expect("sync dir");
    }

    #[tokio::test]
    async fn hard_links() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("d")).expect("mkdir");
        std::fs::write(dir.path().join("f"), b"x").expect("write");
        let root = rw(dir.path());
        let f = walk(&root, "f").await.expect("walk");
        let d = walk(&root, "d").await.expect("walk");
        d.link(&f, "hl").await.expect("link");
        assert_eq!(f.attr().await.expect("attr").nlink, 2);
        let hl = walk(&root, "d/hl").await.expect("walk");
        assert_eq!(hl.qid().path, f.qid().path);
        assert_eq!(errno(d.link(&f, "hl").await), libc::EEXIST);
        assert_eq!(errno(d.link(&root, "r").await), libc::EPERM);
    }
}

mod escape {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};

    #[tokio::test]
    async fn symlinks_out_of_the_root_are_served_but_never_followed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root_dir = dir.path().join("a/b/root");
        std::fs::create_dir_all(&root_dir).expect("mkdir");
        std::fs::write(dir.path().join("a/secret"), b"outside").expect("write");
        std::os::unix::fs::symlink("/etc", root_dir.join("evil")).expect("symlink");
        std::os::unix::fs::symlink("../../..", root_dir.join("up")).expect("symlink");
        std::os::unix::fs::symlink("../../secret", root_dir.join("sneak")).expect("symlink");
        std::os::unix::fs::symlink("/proc/self/root", root_dir.join("magic")).expect("symlink");
        std::fs::create_dir(root_dir.join("in")).expect("mkdir");
        std::os::unix::fs::symlink("../in", root_dir.join("in/loop")).expect("symlink");
        std::fs::write(root_dir.join("in/ok"), b"inside").expect("write");
        let root = rw(&root_dir);

        for (name, target) in [
            ("evil", "/etc"),
            ("up", "../../.."),
            ("sneak", "../../secret"),
            ("magic", "/proc/self/root"),
        ] {
            let l = root.walk(name).await.expect("the link itself");
            assert_eq!(l.qid().ty, qt::SYMLINK, "{name}");
            assert_eq!(l.readlink().await.expect("readlink"), target);
            assert_eq!(l.attr().await.expect("attr").link_target, target);
            assert_eq!(errno(l.open(OpenMode::READ).await), libc::EXDEV, "{name}");
            assert_eq!(errno(l.readdir().await), libc::EXDEV, "{name}");
            for child in ["passwd", "a", "secret", "etc"] {
                assert_eq!(errno(l.walk(child).await), libc::EXDEV, "{name}/{child}");
            }
            let create = l.create("x", CreateKind::File { perm: 0o644 }, None).await;
            assert_eq!(errno(create), libc::EXDEV, "{name}");
        }
        assert!(!Path::new("/etc/x").exists());

        // Symlinks that stay inside work.
        let lp = walk(&root, "in/loop").await.expect("walk");
        assert_eq!(lp.walk("ok").await.expect("through").qid().ty, qt::FILE);
        assert_eq!(contents(&root, "in/loop/ok").await, b"inside");
    }

    /// One thread swaps a directory with a symlink out of the root, in a
    /// loop; the runtime resolves paths beneath it. Every resolution must
    /// fail or land inside: no read may ever return the outside file, and
    /// no listing may ever show an outside name.
    async fn race(link_target: &str) {
        let dir = tempfile::tempdir().expect("tempdir");
        let root_dir = dir.path().join("root");
        let outside = dir.path().join("outside");
        std::fs::create_dir_all(root_dir.join("d")).expect("mkdir");
        std::fs::create_dir_all(outside.join("etc")).expect("mkdir");
        std::fs::write(root_dir.join("d/f"), b"inside").expect("write");
        std::fs::write(outside.join("f"), b"OUTSIDE").expect("write");
        std::fs::write(outside.join("only-outside"), b"").expect("write");
        let target = link_target.replace("$OUT", &outside.display().to_string());
        std::os::unix::fs::symlink(&target, root_dir.join("swap")).expect("symlink");
        let root = rw(&root_dir);

        let stop = Arc::new(AtomicBool::new(false));
        let swapper = {
            let (stop, root_dir) = (stop.clone(), root_dir.clone());
            std::thread::spawn(move || {
                let (d, swap) = (root_dir.join("d"), root_dir.join("swap"));
                let mut n = 0u32;
                while !stop.load(Ordering::Relaxed) && n < 1_000_000 {
                    rustix::fs::renameat_with(
                        rustix::fs::CWD,
                        &d,
                        rustix::fs::CWD,
                        &swap,
                        rustix::fs::RenameFlags::EXCHANGE,
                    )
                    .expect("exchange");
                    n += 1;
                }
                n
            })
        };

        let (mut inside, mut refused) = (0, 0);
        for _ in 0..3_000 {
            match walk(&root, "d/f").await {
                Ok(f) => match f.open(OpenMode::READ).await {
                    Ok(o) => {
                        let data = o.handle.read(0, 64).await.expect("read an open file");
                        assert_eq!(data, b"inside", "read escaped the root");
                        inside += 1;
                    }
                    Err(_) => refused += 1,
                },
                Err(_) => refused += 1,
            }
            if let Ok(d) = root.walk("d").await {
                if let Ok(entries) = d.readdir().await {
                    for e in entries {
                        assert_eq!(e.name, "f", "listing escaped the root");
                    }
                }
                if let Ok(etc) = d.walk("etc").await {
                    panic!("walked outside: {:?}", etc.qid());
                }
            }
        }
        stop.store(true, Ordering::Relaxed);
        let swaps = swapper.join().expect("swapper");
        assert!(swaps > 0);
        eprintln!("race {link_target}: {inside} inside, {refused} refused, {swaps} swaps");
        assert_eq!(inside + refused, 3_000);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn rename_race_to_an_absolute_symlink() {
        race("$OUT").await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn rename_race_to_slash() {
        race("/").await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn rename_race_to_a_climbing_symlink() {
        race("../outside").await;
    }
}

mod read_only {
    use super::*;
    use ninep_server::SetAttr;

    #[tokio::test]
    async fn every_change_is_refused_with_erofs() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("d")).expect("mkdir");
        std::fs::write(dir.path().join("f"), b"keep").expect("write");
        let root = ro(dir.path());
        let f = walk(&root, "f").await.expect("walk");
        let d = walk(&root, "d").await.expect("walk");

        assert_eq!(contents(&root, "f").await, b"keep");
        assert_eq!(root.readdir().await.expect("readdir").len(), 2);
        for m in [
            RDWR,
            OpenMode {
                write: true,
                ..OpenMode::READ
            },
            OpenMode {
                truncate: true,
                ..OpenMode::READ
            },
        ] {
            assert_eq!(errno(f.open(m).await), libc::EROFS, "{m:?}");
        }
        let file = CreateKind::File { perm: 0o644 };
        assert_eq!(errno(root.create("n", file, Some(RDWR)).await), libc::EROFS);
        assert_eq!(
            errno(
                root.create("n", CreateKind::Dir { perm: 0o755 }, None)
                    .await
            ),
            libc::EROFS
        );
        assert_eq!(errno(f.remove().await), libc::EROFS);
        assert_eq!(errno(root.unlink("f", false).await), libc::EROFS);
        assert_eq!(errno(root.rename("f", &d, "g").await), libc::EROFS);
        assert_eq!(errno(d.link(&f, "h").await), libc::EROFS);
        let chmod = SetAttr {
            mode: Some(0o600),
            ..Default::default()
        };
        assert_eq!(errno(f.setattr(chmod).await), libc::EROFS);
        let e = f
            .setattr(SetAttr {
                size: Some(0),
                ..Default::default()
            })
            .await
            .expect_err("truncate");
        assert_eq!(e.msg, "read-only file system");
        f.setattr(SetAttr::default())
            .await
            .expect("sync is harmless");

        assert_eq!(std::fs::read(dir.path().join("f")).expect("read"), b"keep");
        assert_eq!(std::fs::read_dir(dir.path()).expect("ls").count(), 2);
    }
}

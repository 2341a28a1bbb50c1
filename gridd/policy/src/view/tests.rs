//! PolicyView called directly, over a namespace of synthetic files and an
//! exported temp directory:
//!
//! ```text
//! /status, /ctl                      synthetic
//! /cpu/clone                         the clone idiom
//! /files/home/                       ninep_export of a temp dir:
//!     pub/hello.txt pub/sub/deep.txt pub/link -> ../private/secret.txt
//!     drop/old.txt  other/  private/secret.txt
//! ```

use std::path::Path;

use ninep_export::ExportOptions;
use ninep_server::synth::{CloneFile, Dir, TextFile};
use ninep_server::walk_path;

use super::*;

struct Fixture {
    dir: tempfile::TempDir,
    grant: LiveGrant,
    audit: Arc<Audit>,
    view: Arc<dyn Node>,
}

impl Fixture {
    fn new(policy: &str) -> Fixture {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path();
        for d in ["pub/sub", "drop", "other", "private"] {
            std::fs::create_dir_all(p.join(d)).expect("mkdir");
        }
        std::fs::write(p.join("pub/hello.txt"), "hello, world\n").expect("write");
        std::fs::write(p.join("pub/sub/deep.txt"), "deep\n").expect("write");
        std::fs::write(p.join("drop/old.txt"), "old\n").expect("write");
        std::fs::write(p.join("private/secret.txt"), "secret\n").expect("write");
        std::os::unix::fs::symlink("../private/secret.txt", p.join("pub/link")).expect("symlink");
        let root = namespace(p);
        let grant = LiveGrant::new(policy.parse().expect("policy"));
        let audit = Arc::new(Audit::new());
        let view = PolicyView::new(root, "bob", grant.clone(), audit.clone());
        Fixture {
            dir,
            grant,
            audit,
            view,
        }
    }

    async fn walk(&self, path: &str) -> Result<Arc<dyn Node>> {
        walk_path(self.view.clone(), path).await
    }

    async fn names(&self, path: &str) -> Vec<String> {
        let node = self.walk(path).await.expect(path);
        let entries = node.readdir().await.expect("readdir");
        entries.into_iter().map(|e| e.name).collect()
    }

    async fn read(&self, path: &str) -> Result<String> {
        let opened = self.walk(path).await?.open(OpenMode::READ).await?;
        let data = opened.handle.read(0, 4096).await?;
        Ok(String::from_utf8_lossy(&data).into_owned())
    }

    fn host(&self, path: &str) -> std::path::PathBuf {
        self.dir.path().join(path)
    }

    fn set(&self, policy: &str) {
        self.grant.set(policy.parse().expect("policy"));
    }
}

fn namespace(home: &Path) -> Arc<dyn Node> {
    let home = ninep_export::export(home, ExportOptions::default()).expect("export");
    let cpu = Dir::new(0o555).with(
        "clone",
        Arc::new(CloneFile::new(|| {
            Ok(Arc::new(TextFile::new(|| "7\n".into())) as Arc<dyn Node>)
        })),
    );
    Arc::new(
        Dir::new(0o555)
            .with("status", Arc::new(TextFile::new(|| "name t\n".into())))
            .with("ctl", Arc::new(TextFile::new(|| "secret ctl\n".into())))
            .with("cpu", Arc::new(cpu))
            .with("files", Arc::new(Dir::new(0o555).with("home", home))),
    )
}

const GRANT: &str = "files/home/pub r; files/home/drop rw; files/home/other rw; status r";

fn denied(r: Result<impl Sized>) -> Error {
    match r {
        Ok(_) => panic!("allowed"),
        Err(e) => e,
    }
}

fn write_denial(path: &str) -> Error {
    Error::new(
        libc::EACCES,
        format!("policy: peer bob may not write {path}"),
    )
}

fn withdrawn() -> Error {
    Error::new(libc::EACCES, "policy: grant withdrawn")
}

#[tokio::test]
async fn peer_sees_only_its_grants() {
    let f = Fixture::new(GRANT);
    assert_eq!(f.names("").await, ["files", "status"]);
    assert_eq!(f.names("files").await, ["home"]);
    assert_eq!(f.names("files/home").await, ["drop", "other", "pub"]);
    assert_eq!(
        f.names("files/home/pub").await,
        ["hello.txt", "link", "sub"]
    );
    assert_eq!(
        f.read("files/home/pub/sub/deep.txt").await,
        Ok("deep\n".into())
    );
    assert_eq!(f.read("status").await, Ok("name t\n".into()));
    for hidden in [
        "ctl",
        "cpu",
        "files/home/private",
        "files/home/private/secret.txt",
        "files/x",
    ] {
        assert_eq!(denied(f.walk(hidden).await), Error::not_found(), "{hidden}");
    }
    assert_eq!(f.audit.hidden(), 5);
    assert_eq!(f.audit.denials(), 0);

    // Attached at a granted subtree, the view is that subtree's.
    let pub_dir = f.walk("files/home/pub").await.expect("pub");
    let view = pub_dir
        .as_any()
        .downcast_ref::<PolicyView>()
        .expect("a view");
    assert_eq!(view.path(), "/files/home/pub");
    assert_eq!(view.peer(), "bob");
    assert!(walk_path(pub_dir.clone(), "sub/deep.txt").await.is_ok());
}

/// Only directories are on the way to a grant: a grant beneath a file
/// grants nothing of the file.
#[tokio::test]
async fn files_are_never_transit() {
    let f = Fixture::new("status/x r; files/home/pub/hello.txt/y r; files/home/drop r");
    assert_eq!(f.names("").await, ["files"]);
    assert_eq!(denied(f.walk("status").await), Error::not_found());
    assert_eq!(f.names("files/home/pub").await, Vec::<String>::new());
    assert_eq!(
        denied(f.walk("files/home/pub/hello.txt").await),
        Error::not_found()
    );
    assert_eq!(f.audit.hidden(), 2);
}

/// A directory on the way to a grant is never listed whole.
#[tokio::test]
async fn transit_directories_are_not_read() {
    struct Unlistable(Dir);

    #[async_trait]
    impl Node for Unlistable {
        fn qid(&self) -> Qid {
            self.0.qid()
        }
        async fn attr(&self) -> Result<Attr> {
            self.0.attr().await
        }
        async fn walk(&self, name: &str) -> Result<Arc<dyn Node>> {
            self.0.walk(name).await
        }
        async fn readdir(&self) -> Result<Vec<DirEntry>> {
            panic!("a transit directory was listed")
        }
        fn as_any(&self) -> &dyn Any {
            self
        }
    }

    let big = Dir::new(0o555);
    for i in 0..100 {
        big.insert(&format!("n{i}"), Arc::new(TextFile::new(String::new)));
    }
    big.insert("weather", Arc::new(Dir::new(0o555)));
    let root: Arc<dyn Node> = Arc::new(Unlistable(
        Dir::new(0o555).with("sensors", Arc::new(Unlistable(big))),
    ));
    let grant = LiveGrant::new(
        "sensors/weather r; sensors/missing r"
            .parse()
            .expect("policy"),
    );
    let view: Arc<dyn Node> = PolicyView::new(root, "bob", grant, Arc::new(Audit::new()));
    let sensors = view.walk("sensors").await.expect("sensors");
    let names: Vec<_> = sensors
        .readdir()
        .await
        .expect("readdir")
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(names, ["weather"]);
    assert_eq!(denied(sensors.walk("missing").await), Error::not_found());
    assert_eq!(denied(sensors.walk("n1").await), Error::not_found());
}

#[tokio::test]
async fn writes_outside_rw_grants_are_denied() {
    let f = Fixture::new(GRANT);
    let hello = f.walk("files/home/pub/hello.txt").await.expect("hello");
    let write = OpenMode {
        write: true,
        ..OpenMode::default()
    };
    let trunc = OpenMode {
        read: true,
        truncate: true,
        ..OpenMode::default()
    };
    let file = CreateKind::File { perm: 0o644 };
    let w = |p: &str| write_denial(p);
    assert_eq!(
        denied(hello.open(write).await),
        w("/files/home/pub/hello.txt")
    );
    assert_eq!(
        denied(hello.open(trunc).await),
        w("/files/home/pub/hello.txt")
    );
    assert_eq!(
        denied(
            hello
                .setattr(SetAttr {
                    mode: Some(0o600),
                    ..Default::default()
                })
                .await
        ),
        w("/files/home/pub/hello.txt")
    );
    assert_eq!(denied(hello.remove().await), w("/files/home/pub/hello.txt"));
    hello
        .setattr(SetAttr::default())
        .await
        .expect("a sync is a read");
    let pub_dir = f.walk("files/home/pub").await.expect("pub");
    assert_eq!(
        denied(pub_dir.create("new", file.clone(), None).await),
        w("/files/home/pub/new")
    );
    assert_eq!(
        denied(pub_dir.unlink("hello.txt", false).await),
        w("/files/home/pub/hello.txt")
    );
    assert_eq!(
        denied(f.view.create("x", file.clone(), None).await),
        w("/x")
    );
    let files = f.walk("files").await.expect("files");
    assert_eq!(
        denied(
            files
                .create("x", CreateKind::Dir { perm: 0o755 }, None)
                .await
        ),
        w("/files/x")
    );
    // The root of a grant is written in, not removed: that changes its parent.
    let drop_dir = f.walk("files/home/drop").await.expect("drop");
    assert_eq!(denied(drop_dir.remove().await), w("/files/home/drop"));
    let status = f.walk("status").await.expect("status");
    assert_eq!(denied(status.open(write).await), w("/status"));
    assert!(f.host("pub/hello.txt").exists());
    assert_eq!(
        std::fs::read_to_string(f.host("pub/hello.txt"))
            .ok()
            .as_deref(),
        Some("hello, world\n")
    );

    // Inside the rw grant everything works.
    let (new, opened) = drop_dir
        .create(
            "new.txt",
            file,
            Some(OpenMode {
                read: true,
                write: true,
                ..OpenMode::default()
            }),
        )
        .await
        .expect("create");
    let handle = opened.expect("opened").handle;
    assert_eq!(handle.write(0, b"fresh").await, Ok(5));
    assert_eq!(handle.read(0, 100).await.as_deref(), Ok(&b"fresh"[..]));
    new.setattr(SetAttr {
        size: Some(2),
        ..Default::default()
    })
    .await
    .expect("truncate");
    assert_eq!(
        std::fs::read_to_string(f.host("drop/new.txt"))
            .ok()
            .as_deref(),
        Some("fr")
    );
    drop_dir
        .create("d", CreateKind::Dir { perm: 0o755 }, None)
        .await
        .expect("mkdir");
    drop_dir.unlink("d", true).await.expect("rmdir");
    new.remove().await.expect("remove");
    assert!(!f.host("drop/new.txt").exists());
    assert_eq!(f.audit.denials(), 10);
}

#[tokio::test]
async fn renames_and_links_stay_within_one_grant() {
    let f = Fixture::new(GRANT);
    let drop_dir = f.walk("files/home/drop").await.expect("drop");
    let other = f.walk("files/home/other").await.expect("other");
    let pub_dir = f.walk("files/home/pub").await.expect("pub");
    drop_dir
        .rename("old.txt", &drop_dir, "new.txt")
        .await
        .expect("rename within");
    assert!(f.host("drop/new.txt").exists());
    assert_eq!(
        denied(drop_dir.rename("new.txt", &other, "x").await),
        Error::new(
            libc::EXDEV,
            "policy: peer bob may not move /files/home/drop/new.txt out of /files/home/drop"
        )
    );
    assert_eq!(
        denied(drop_dir.rename("new.txt", &pub_dir, "x").await),
        write_denial("/files/home/pub/x")
    );
    assert_eq!(
        denied(pub_dir.rename("hello.txt", &drop_dir, "h").await),
        write_denial("/files/home/pub/hello.txt")
    );
    let foreign: Arc<dyn Node> = Arc::new(Dir::new(0o777));
    assert_eq!(
        denied(drop_dir.rename("new.txt", &foreign, "x").await).errno,
        libc::EXDEV
    );
    assert!(f.host("drop/new.txt").exists());

    let hello = f.walk("files/home/pub/hello.txt").await.expect("hello");
    assert_eq!(
        denied(drop_dir.link(&hello, "h").await),
        write_denial("/files/home/pub/hello.txt")
    );
    let new = f.walk("files/home/drop/new.txt").await.expect("new");
    assert_eq!(
        denied(other.link(&new, "n").await),
        Error::new(
            libc::EXDEV,
            "policy: peer bob may not link /files/home/drop/new.txt out of /files/home/drop"
        )
    );
    drop_dir.link(&new, "n2").await.expect("link within");
    assert!(f.host("drop/n2").exists());

    // Nodes beneath a renamed directory follow it, so a later, narrower
    // grant is judged by where they are, not where they were walked.
    drop_dir
        .create("d", CreateKind::Dir { perm: 0o755 }, None)
        .await
        .expect("mkdir");
    let d = f.walk("files/home/drop/d").await.expect("d");
    d.create("f", CreateKind::File { perm: 0o644 }, None)
        .await
        .expect("create");
    let inside = f.walk("files/home/drop/d/f").await.expect("f");
    drop_dir
        .rename("d", &drop_dir, "e")
        .await
        .expect("rename dir");
    let view = inside.as_any().downcast_ref::<PolicyView>().expect("view");
    assert_eq!(view.path(), "/files/home/drop/e/f");
    f.set("files/home/drop/d rw");
    assert_eq!(denied(inside.attr().await), withdrawn());
    f.set("files/home/drop/e r");
    assert!(inside.attr().await.is_ok());
}

#[tokio::test]
async fn withdrawal_stops_open_handles_at_once() {
    let f = Fixture::new(GRANT);
    let hello = f.walk("files/home/pub/hello.txt").await.expect("hello");
    let handle = hello.open(OpenMode::READ).await.expect("open").handle;
    assert_eq!(handle.read(0, 5).await.as_deref(), Ok(&b"hello"[..]));
    f.grant.withdraw();
    assert_eq!(denied(handle.read(5, 5).await), withdrawn());
    assert_eq!(denied(hello.attr().await), withdrawn());
    assert_eq!(denied(f.view.attr().await), withdrawn());
    assert_eq!(denied(f.view.walk("files").await), withdrawn());
    // Granted again, the same handle reads on.
    f.set(GRANT);
    assert_eq!(handle.read(5, 8).await.as_deref(), Ok(&b", world\n"[..]));
    // Narrowed: pub is gone, drop stays.
    f.set("files/home/drop rw");
    assert_eq!(denied(handle.read(0, 5).await), withdrawn());
    assert_eq!(denied(f.walk("files/home/pub").await), Error::not_found());
    assert_eq!(f.names("files/home").await, ["drop"]);
    // Lowered from rw to r: an open write handle can no longer write.
    let old = f.walk("files/home/drop/old.txt").await.expect("old");
    let w = old
        .open(OpenMode {
            write: true,
            ..OpenMode::default()
        })
        .await
        .expect("open for write")
        .handle;
    assert_eq!(w.write(0, b"new").await, Ok(3));
    f.set("files/home/drop r");
    assert_eq!(
        denied(w.write(0, b"xyz").await),
        write_denial("/files/home/drop/old.txt")
    );
    assert_eq!(
        std::fs::read_to_string(f.host("drop/old.txt"))
            .ok()
            .as_deref(),
        Some("new\n")
    );
    // A view whose grant starts withdrawn shows nothing, not even its root.
    let none = PolicyView::new(
        namespace(f.dir.path()),
        "eve",
        LiveGrant::withdrawn(),
        Arc::new(Audit::new()),
    );
    assert_eq!(denied(none.attr().await), withdrawn());
}

#[tokio::test]
async fn symlinks_are_not_followed() {
    let f = Fixture::new(GRANT);
    let link = f.walk("files/home/pub/link").await.expect("link");
    assert_eq!(
        link.readlink().await.as_deref(),
        Ok("../private/secret.txt")
    );
    let e = denied(link.open(OpenMode::READ).await);
    assert_eq!(
        e,
        Error::new(
            libc::ELOOP,
            "policy: symbolic links are not followed for peers"
        )
    );
    let drop_dir = f.walk("files/home/drop").await.expect("drop");
    let ln = |target: &str| CreateKind::Symlink {
        target: target.into(),
    };
    for bad in [
        "../private/secret.txt",
        "/etc/passwd",
        "../../../../x",
        "sub/../../pub",
    ] {
        let e = denied(drop_dir.create("l", ln(bad), None).await);
        assert_eq!(e.errno, libc::EACCES, "{bad}");
        assert_eq!(
            e.msg,
            format!("policy: peer bob may not link /files/home/drop/l to {bad}: it points outside /files/home/drop")
        );
    }
    drop_dir
        .create("l", ln("old.txt"), None)
        .await
        .expect("link inside");
    drop_dir
        .create("l2", ln("../drop/./old.txt"), None)
        .await
        .expect("link inside");
    assert_eq!(
        std::fs::read_link(f.host("drop/l")).ok(),
        Some("old.txt".into())
    );
    assert!(link_stays_in("a/b", "a/b/c", "../d"));
    assert!(!link_stays_in("a/b", "a/b", ".."));
}

/// The clone idiom: the fid becomes a new node, which the view wraps too.
#[tokio::test]
async fn clone_files_become_view_nodes() {
    let f = Fixture::new("cpu");
    let clone = f.walk("cpu/clone").await.expect("clone");
    let opened = clone.open(OpenMode::READ).await.expect("open");
    let becomes = opened.becomes.expect("becomes");
    let view = becomes
        .as_any()
        .downcast_ref::<PolicyView>()
        .expect("wrapped");
    assert_eq!(view.path(), "/cpu/clone");
    assert_eq!(opened.handle.read(0, 10).await.as_deref(), Ok(&b"7\n"[..]));
    f.set("status r");
    assert_eq!(denied(opened.handle.read(0, 10).await), withdrawn());
    assert_eq!(denied(becomes.attr().await), withdrawn());
}

#[tokio::test]
async fn audit_counts_what_the_peer_did() {
    let f = Fixture::new(GRANT);
    assert_eq!(
        f.read("files/home/pub/hello.txt").await.map(|s| s.len()),
        Ok(13)
    );
    let drop_dir = f.walk("files/home/drop").await.expect("drop");
    let (_, opened) = drop_dir
        .create(
            "a",
            CreateKind::File { perm: 0o644 },
            Some(OpenMode {
                write: true,
                ..OpenMode::default()
            }),
        )
        .await
        .expect("create");
    opened
        .expect("opened")
        .handle
        .write(0, b"12345")
        .await
        .expect("write");
    let _ = f.walk("ctl").await;
    let _ = f
        .view
        .create("x", CreateKind::File { perm: 0o644 }, None)
        .await;
    let a = &f.audit;
    assert_eq!(a.count(Op::Walk), 4 + 3 + 1);
    assert_eq!(a.count(Op::Open), 1);
    assert_eq!(a.count(Op::Create), 2);
    assert_eq!(a.count(Op::Read), 1);
    assert_eq!(a.count(Op::Write), 1);
    assert_eq!((a.bytes_read(), a.bytes_written()), (13, 5));
    assert_eq!((a.hidden(), a.denials()), (1, 1));
    assert_eq!(a.recent_denials(), ["policy: peer bob may not write /x"]);
    let file = a.file();
    let text = file
        .open(OpenMode::READ)
        .await
        .expect("open")
        .handle
        .read(0, 4096)
        .await
        .expect("read");
    let text = String::from_utf8(text).expect("utf-8");
    for line in [
        "walk 8\n",
        "bytes-read 13\n",
        "bytes-written 5\n",
        "hidden 1\n",
        "denials 1\n",
    ] {
        assert!(text.contains(line), "{line:?} in {text}");
    }
    assert!(
        text.lines().last().is_some_and(
            |l| l.starts_with("denial ") && l.ends_with(" policy: peer bob may not write /x")
        ),
        "{text}"
    );
}

//! The client against Debian's `diod`, a real 9P2000.L server.
//!
//! Each test starts its own `diod` exporting a temporary directory on a
//! free loopback port, and kills it on drop. Without `/usr/sbin/diod` the
//! tests print a note and pass (CI installs it: `apt-get install diod`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::future::Future;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use ninep::{l, Dialect};
use ninep_client::{Client, ClientConfig, Error, Fid, OpenFlags, SetAttr};
use tokio::time::timeout;

const DIOD: &str = "/usr/sbin/diod";
/// Generous: diod is quick, but CI machines are shared.
const LIMIT: Duration = Duration::from_secs(60);

/// A running diod exporting a temporary directory.
struct Diod {
    child: Child,
    /// The exported directory.
    export: tempfile::TempDir,
    /// diod's log (`-d 1` prints every decoded message).
    log: std::path::PathBuf,
    _logdir: tempfile::TempDir,
    addr: String,
}

impl Diod {
    /// Starts diod, or returns `None` (after saying so) if it is not installed.
    fn start() -> Option<Diod> {
        if !Path::new(DIOD).exists() {
            // The same rule as grid_tests::skip (this crate does not
            // depend on it): under GRID_TESTS_STRICT=1 a skip fails.
            let why = format!("{DIOD} not installed (apt-get install diod)");
            assert!(
                std::env::var_os("GRID_TESTS_STRICT").is_none_or(|v| v != "1"),
                "GRID_TESTS_STRICT=1, and this test would skip: {why}"
            );
            eprintln!("SKIP: {why}");
            return None;
        }
        let export = tempfile::tempdir().unwrap();
        let logdir = tempfile::tempdir().unwrap();
        let log = logdir.path().join("diod.log");
        let port = free_port();
        let addr = format!("127.0.0.1:{port}");
        let mut cmd = Command::new(DIOD);
        cmd.args(["-f", "-n", "-S", "-d", "1", "-c", "/dev/null", "-l", &addr])
            .arg("-e")
            .arg(export.path())
            .arg("-L")
            .arg(&log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // -S squashes every user to the squash user; as root make that root
        // so the exported directory is writable. (Not root: diod uses our uid.)
        if is_root() {
            cmd.args(["-U", "root"]);
        }
        let child = cmd.spawn().expect("spawn diod");
        let diod = Diod {
            child,
            export,
            log,
            _logdir: logdir,
            addr,
        };
        diod.wait_listening();
        Some(diod)
    }

    fn wait_listening(&self) {
        for _ in 0..200 {
            if std::net::TcpStream::connect(&self.addr).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("diod did not listen on {}: {}", self.addr, self.log_text());
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    async fn client(&self) -> Client {
        Client::dial(&format!("tcp!127.0.0.1!{}", self.port()))
            .await
            .expect("dial diod")
    }

    fn port(&self) -> &str {
        self.addr.rsplit(':').next().unwrap()
    }

    async fn root(&self, client: &Client) -> Fid {
        let aname = self.export.path().to_str().unwrap();
        client.attach("root", aname).await.expect("attach")
    }
}

impl Drop for Diod {
    fn drop(&mut self) {
        // A failing test shows what diod saw, one line per message.
        if std::thread::panicking() || std::env::var_os("DIOD_LOG").is_some() {
            eprintln!("--- diod log ---\n{}", self.log_text());
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

fn is_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

/// Polls `fut` once and drops it: a request sent and then cancelled.
async fn poll_once<F: Future>(fut: F) -> Option<F::Output> {
    let mut fut = std::pin::pin!(fut);
    std::future::poll_fn(|cx| {
        Poll::Ready(match fut.as_mut().poll(cx) {
            Poll::Ready(v) => Some(v),
            Poll::Pending => None,
        })
    })
    .await
}

fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i % 251) as u8 ^ (i >> 12) as u8).collect()
}

#[tokio::test]
async fn diod_negotiates_dot_l() {
    let Some(diod) = Diod::start() else { return };
    timeout(LIMIT, async {
        let c = diod.client().await;
        assert_eq!(c.dialect(), Dialect::L);
        assert!(c.msize() <= ninep_client::DEFAULT_MSIZE);
        // diod speaks only .L, and refuses 9P2000 with Rlerror(EIO)
        // rather than the "unknown" of version(5).
        let s = tokio::net::TcpStream::connect(&diod.addr).await.unwrap();
        let cfg = ClientConfig {
            dialect: Dialect::P2000,
            ..ClientConfig::default()
        };
        match Client::connect(s, cfg).await {
            Ok(c) => panic!("diod answered 9P2000 with {:?}", c.dialect()),
            Err(e) => assert!(e.to_string().starts_with("version 9P2000: "), "{e}"),
        }
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn diod_file_round_trip() {
    let Some(diod) = Diod::start() else { return };
    timeout(LIMIT, async {
        let c = diod.client().await;
        let root = diod.root(&c).await;
        assert!(root.qid().is_dir());

        // lcreate, then 8 MiB written and read back in pipelined chunks.
        let data = pattern(8 << 20);
        let f = root
            .create("big", 0o644, OpenFlags::RDWR | OpenFlags::TRUNC)
            .await
            .unwrap();
        eprintln!("iounit {} msize {}", f.iounit(), c.msize());
        f.write_all(0, &data).await.unwrap();
        f.fsync().await.unwrap();
        let on_disk = std::fs::read(diod.export.path().join("big")).unwrap();
        assert!(on_disk == data, "file on disk differs");

        let mut r = root.walk(&["big"]).await.unwrap();
        r.open(OpenFlags::READ).await.unwrap();
        let back = r.read_all().await.unwrap();
        assert_eq!(back.len(), data.len());
        assert!(back == data, "read back differs");

        // getattr and the neutral metadata agree with the disk.
        let a = r.getattr(l::getattr::BASIC).await.unwrap();
        assert_eq!(a.size, data.len() as u64);
        assert_eq!(a.mode & 0o777, 0o644);
        let m = r.metadata().await.unwrap();
        assert_eq!(m.size, data.len() as u64);
        assert!(!m.is_dir());

        // setattr truncate, seen by both getattr and the disk.
        r.setattr(&SetAttr::size(1000)).await.unwrap();
        assert_eq!(r.getattr(l::getattr::SIZE).await.unwrap().size, 1000);
        let len = std::fs::metadata(diod.export.path().join("big"))
            .unwrap()
            .len();
        assert_eq!(len, 1000);
        r.setattr(&SetAttr::perm(0o600)).await.unwrap();
        assert_eq!(r.metadata().await.unwrap().perm, 0o600);

        // A short read at the end, and an empty one past it.
        assert_eq!(r.read(990, 100).await.unwrap(), &data[990..1000]);
        assert!(r.read(5000, 100).await.unwrap().is_empty());

        let fs = root.statfs().await.unwrap();
        assert!(fs.bsize > 0);

        // Errors come back as errnos with their text.
        match root.walk(&["missing"]).await {
            Err(e) => {
                assert_eq!(e.errno(), Some(2), "{e}");
                assert_eq!(e.to_string(), "no such file or directory");
                assert_eq!(std::io::Error::from(e).kind(), std::io::ErrorKind::NotFound);
            }
            Ok(_) => panic!("walked to a missing file"),
        }
        match root
            .create("big", 0o644, OpenFlags::WRITE | OpenFlags::EXCL)
            .await
        {
            Err(e) => assert_eq!(e.errno(), Some(17), "{e}"),
            Ok(_) => panic!("exclusive create of an existing file"),
        }
        r.clunk().await.unwrap();
        f.clunk().await.unwrap();
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn diod_directories() {
    let Some(diod) = Diod::start() else { return };
    timeout(LIMIT, async {
        let c = diod.client().await;
        let root = diod.root(&c).await;

        let q = root.mkdir("d", 0o755).await.unwrap();
        assert!(q.is_dir());
        let d = root.walk(&["d"]).await.unwrap();
        for name in ["a", "b", "c"] {
            let f = d.create(name, 0o644, OpenFlags::WRITE).await.unwrap();
            f.write_all(0, name.repeat(3).as_bytes()).await.unwrap();
        }
        d.mkdir("sub", 0o700).await.unwrap();

        let mut ents = d.readdir().await.unwrap();
        ents.sort_by(|x, y| x.name.cmp(&y.name));
        let names: Vec<_> = ents.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["a", "b", "c", "sub"]);
        assert_eq!(ents[0].size(), 3);
        assert!(!ents[0].is_dir());
        assert!(ents[3].is_dir());
        assert_eq!(ents[3].meta.perm, 0o700);

        // rename (Trename) and renameat (Trenameat, or its fallback).
        let a = d.walk(&["a"]).await.unwrap();
        let sub = d.walk(&["sub"]).await.unwrap();
        a.rename(&sub, "a2").await.unwrap();
        assert!(diod.export.path().join("d/sub/a2").exists());
        d.renameat("b", &root, "b2").await.unwrap();
        assert!(diod.export.path().join("b2").exists());
        assert!(!diod.export.path().join("d/b").exists());

        // unlinkat of a file and of a directory.
        d.unlinkat("c", 0).await.unwrap();
        assert!(!diod.export.path().join("d/c").exists());
        sub.unlinkat("a2", 0).await.unwrap();
        d.unlinkat("sub", l::AT_REMOVEDIR).await.unwrap();
        assert!(!diod.export.path().join("d/sub").exists());
        assert!(d.readdir().await.unwrap().is_empty());
        drop((a, sub));

        // Tremove through a fid.
        root.walk(&["b2"]).await.unwrap().remove().await.unwrap();
        assert!(!diod.export.path().join("b2").exists());

        // A walk of more than 16 names is split into several Twalks.
        let deep: Vec<String> = (0..20).map(|i| format!("l{i}")).collect();
        let mut path = diod.export.path().to_path_buf();
        for n in &deep {
            path.push(n);
        }
        std::fs::create_dir_all(&path).unwrap();
        std::fs::write(path.join("leaf"), b"deep").unwrap();
        let mut names = deep.clone();
        names.push("leaf".into());
        let mut leaf = root.walk(&names).await.unwrap();
        leaf.open(OpenFlags::READ).await.unwrap();
        assert_eq!(leaf.read_all().await.unwrap(), b"deep");
        let mut bad = deep.clone();
        bad.push("nope".into());
        bad.push("more".into());
        match root.walk(&bad).await {
            Err(Error::WalkIncomplete {
                name,
                walked,
                total,
            }) => {
                assert_eq!((name.as_str(), walked, total), ("nope", 20, 22));
            }
            other => panic!("{other:?}"),
        }
        let joined = names.join("/");
        assert_eq!(root.walk_path(&joined).await.unwrap().qid(), leaf.qid());
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn diod_pipelines_concurrent_reads() {
    let Some(diod) = Diod::start() else { return };
    timeout(LIMIT, async {
        let c = diod.client().await;
        let root = diod.root(&c).await;
        let data = pattern(200 * 4096);
        std::fs::write(diod.export.path().join("f"), &data).unwrap();
        let mut f = root.walk(&["f"]).await.unwrap();
        f.open(OpenFlags::READ).await.unwrap();
        let f = Arc::new(f);
        let data = Arc::new(data);
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..200u64 {
            let (f, data) = (f.clone(), data.clone());
            tasks.spawn(async move {
                let at = i * 4096;
                let got = f.read(at, 4096).await.unwrap();
                assert_eq!(got, &data[at as usize..at as usize + 4096], "chunk {i}");
            });
        }
        while let Some(r) = tasks.join_next().await {
            r.unwrap();
        }
        // The same through separate fids walked concurrently.
        let root = Arc::new(root);
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..50 {
            let root = root.clone();
            tasks.spawn(async move {
                let mut f = root.walk(&["f"]).await.unwrap();
                f.open(OpenFlags::READ).await.unwrap();
                f.read(0, 16).await.unwrap()
            });
        }
        while let Some(r) = tasks.join_next().await {
            assert_eq!(r.unwrap(), &data[..16]);
        }
    })
    .await
    .unwrap();
}

// Single-threaded, so no reply can be read while a request is being polled
// once: every one of them is really cancelled in flight.
#[tokio::test]
async fn diod_flushes_cancelled_requests() {
    let Some(diod) = Diod::start() else { return };
    timeout(LIMIT, async {
        let c = diod.client().await;
        let root = diod.root(&c).await;
        let data = pattern(1 << 20);
        std::fs::write(diod.export.path().join("f"), &data).unwrap();
        let mut f = root.walk(&["f"]).await.unwrap();
        f.open(OpenFlags::READ).await.unwrap();

        // Polled once (which sends the request) and dropped, which sends
        // Tflush.
        for _ in 0..100 {
            let r = poll_once(f.read(0, 1 << 19)).await;
            assert!(r.is_none(), "read finished within its first poll");
        }
        // Cancelled walks: if the walk completes anyway, its fid is clunked.
        for _ in 0..20 {
            assert!(poll_once(root.walk(&["f"])).await.is_none());
        }
        // The session is still sound.
        assert_eq!(f.read(4096, 10).await.unwrap(), &data[4096..4106]);
        let g = root.walk(&["f"]).await.unwrap();
        g.clunk().await.unwrap();
        drop((f, root, c));
        // diod logs each message as it handles it; wait (bounded) until
        // every Tflush it logged has its Rflush.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let mut log = diod.log_text();
        while tokio::time::Instant::now() < deadline
            && (log.matches("P9_TFLUSH").count() == 0
                || log.matches("P9_RFLUSH").count() != log.matches("P9_TFLUSH").count())
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
            log = diod.log_text();
        }
        let flushes = log.matches("P9_TFLUSH").count();
        assert!(flushes > 0, "no Tflush in diod's log:\n{log}");
        assert_eq!(log.matches("P9_RFLUSH").count(), flushes, "{log}");
    })
    .await
    .unwrap();
}

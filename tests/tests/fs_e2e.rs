//! The 9P library end to end, in one process over loopback TCP: our
//! client against our server serving a directory export, in every
//! dialect; a 1 GiB read; 200 requests in flight on one connection; and a
//! blocked read cancelled by the client (Tflush) while the connection
//! keeps working.

use std::any::Any;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use ninep::{Addr, Dialect, Qid};
use ninep_client::{Client, ClientConfig, OpenFlags, SetAttr};
use ninep_export::ExportOptions;
use ninep_server::listen::{self, Listener};
use ninep_server::synth::{file_qid, Dir};
use ninep_server::{Attr, Handle, Node, OpenMode, Opened, Server, ServerConfig};
use tokio::sync::oneshot;
use tokio::time::timeout;

const LIMIT: Duration = Duration::from_secs(120);

/// A file whose reads never finish (until cancelled).
struct Forever(Qid);
struct ForeverHandle;

#[async_trait]
impl Node for Forever {
    fn qid(&self) -> Qid {
        self.0
    }
    async fn attr(&self) -> ninep_server::Result<Attr> {
        Ok(Attr::synthetic(self.0, 0o444))
    }
    async fn open(&self, _: OpenMode) -> ninep_server::Result<Opened> {
        Ok(Opened::new(ForeverHandle))
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

#[async_trait]
impl Handle for ForeverHandle {
    async fn read(&self, _: u64, _: u32) -> ninep_server::Result<Vec<u8>> {
        std::future::pending().await
    }
}

struct Served {
    addr: String,
    stop: Option<oneshot::Sender<()>>,
    dir: tempfile::TempDir,
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Serves `/files` (an export of a temp dir) and `/forever` on 127.0.0.1:0.
async fn serve() -> Served {
    let dir = tempfile::tempdir().expect("tempdir");
    let export = ninep_export::export(dir.path(), ExportOptions::default()).expect("export");
    let root = Dir::new(0o555)
        .with("files", export)
        .with("forever", Arc::new(Forever(file_qid())));
    let server = Server::for_tree(Arc::new(root), ServerConfig::default());
    let listener = Listener::bind(&Addr::parse("tcp!127.0.0.1!0").expect("addr"))
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let (tx, rx) = oneshot::channel();
    tokio::spawn(listen::run(server, listener, async {
        let _ = rx.await;
    }));
    Served {
        addr,
        stop: Some(tx),
        dir,
    }
}

async fn client(addr: &str, dialect: Dialect, msize: u32) -> Client {
    Client::dial_with(addr, ClientConfig { msize, dialect })
        .await
        .expect("dial")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_dialect_does_file_work() {
    timeout(LIMIT, async {
        let s = serve().await;
        for dialect in [Dialect::P2000, Dialect::U, Dialect::L] {
            let c = client(&s.addr, dialect, 64 * 1024).await;
            assert_eq!(c.dialect(), dialect);
            let root = c.attach("glenda", "/files").await.expect("attach");
            let d = format!("d-{}", dialect.version_string());
            root.mkdir(&d, 0o755).await.expect("mkdir");
            let dir = root.walk(&[d.as_str()]).await.expect("walk");
            let f = dir
                .create("f", 0o644, OpenFlags::RDWR)
                .await
                .expect("create");
            let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
            f.write_all(0, &data).await.expect("write");
            assert_eq!(f.read_all().await.expect("read"), data);
            drop(f);
            let f = dir.walk(&["f"]).await.expect("walk f");
            assert_eq!(f.metadata().await.expect("stat").size, data.len() as u64);
            f.setattr(&SetAttr::size(10)).await.expect("truncate");
            assert_eq!(f.metadata().await.expect("stat").size, 10);
            if dialect == Dialect::L {
                f.rename(&dir, "g").await.expect("rename");
            } else {
                // 9P2000 renames within a directory by wstat of the name.
                let mut st = ninep::Stat::dont_touch();
                st.name = "g".into();
                f.wstat(&st).await.expect("wstat rename");
            }
            let names: Vec<_> = dir
                .readdir()
                .await
                .expect("readdir")
                .into_iter()
                .map(|e| e.name)
                .collect();
            assert_eq!(names, ["g"]);
            // The fid followed the file to its new name.
            assert_eq!(f.metadata().await.expect("stat renamed").size, 10);
            f.remove().await.expect("remove");
            assert!(dir.walk(&["g"]).await.is_err());
            dir.remove().await.expect("rmdir");
            assert!(!s.dir.path().join(&d).exists());
        }
    })
    .await
    .expect("in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_gib_file_reads_back_whole() {
    timeout(LIMIT, async {
        let s = serve().await;
        // Sparse, with a marker every 64 MiB so misplaced chunks show.
        let path = s.dir.path().join("big");
        let file = std::fs::File::create(&path).expect("create");
        file.set_len(1 << 30).expect("size");
        use std::os::unix::fs::FileExt;
        for i in 0..16u64 {
            file.write_all_at(&i.to_le_bytes(), i << 26)
                .expect("marker");
        }
        drop(file);
        let c = client(&s.addr, Dialect::L, (1 << 20) + 24).await;
        let root = c.attach("glenda", "/files").await.expect("attach");
        let mut f = root.walk(&["big"]).await.expect("walk");
        f.open(OpenFlags::READ).await.expect("open");
        let data = f.read_all().await.expect("read 1 GiB");
        assert_eq!(data.len(), 1 << 30);
        for i in 0..16u64 {
            let at = (i << 26) as usize;
            assert_eq!(&data[at..at + 8], &i.to_le_bytes(), "marker {i}");
        }
    })
    .await
    .expect("in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_requests_in_flight_on_one_connection() {
    timeout(LIMIT, async {
        let s = serve().await;
        std::fs::write(s.dir.path().join("f"), b"0123456789".repeat(100)).expect("write");
        let c = client(&s.addr, Dialect::L, 64 * 1024).await;
        let root = c.attach("glenda", "/files").await.expect("attach");
        let mut f = root.walk(&["f"]).await.expect("walk");
        f.open(OpenFlags::READ).await.expect("open");
        let f = Arc::new(f);
        let mut tasks = Vec::new();
        for i in 0..200u64 {
            let f = f.clone();
            tasks.push(tokio::spawn(async move { f.read(i * 5, 5).await }));
        }
        for (i, t) in tasks.into_iter().enumerate() {
            let got = t.await.expect("task").expect("read");
            let want = b"0123456789".repeat(100)[i * 5..i * 5 + 5].to_vec();
            assert_eq!(got, want, "read {i}");
        }
    })
    .await
    .expect("in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_blocked_read_is_flushed_and_the_connection_goes_on() {
    timeout(LIMIT, async {
        let s = serve().await;
        for dialect in [Dialect::P2000, Dialect::L] {
            let c = client(&s.addr, dialect, 64 * 1024).await;
            let root = c.attach("glenda", "").await.expect("attach");
            let mut f = root.walk(&["forever"]).await.expect("walk");
            f.open(OpenFlags::READ).await.expect("open");
            // Give up on the read: the client sends Tflush.
            let r = timeout(Duration::from_millis(200), f.read(0, 10)).await;
            assert!(r.is_err(), "the read must still be blocked");
            // The same connection keeps serving, many times over (tags are recycled after Rflush).
            for _ in 0..50 {
                let r = timeout(Duration::from_millis(20), f.read(0, 10)).await;
                assert!(r.is_err());
            }
            let files = root.walk(&["files"]).await.expect("walk after flush");
            assert!(files.metadata().await.expect("stat").is_dir());
        }
    })
    .await
    .expect("in time");
}

//! A PolicyView served by the real 9P server (`ninep_server`) to the real
//! client (`ninep_client`) over an in-memory stream: what a peer sees,
//! the error text it gets, `..` at a granted attach point, and a grant
//! withdrawn in the middle of a read.

use std::sync::Arc;

use grid_policy::{Audit, LiveGrant, Op, PolicyView};
use ninep::Dialect;
use ninep_client::{Client, ClientConfig, Error as ClientError, OpenFlags};
use ninep_export::ExportOptions;
use ninep_server::synth::{Dir, TextFile};
use ninep_server::{Node, PeerInfo, Server, ServerConfig};

const GRANT: &str = "files/home/pub r; files/home/drop rw; status r";

struct Peer {
    _dir: tempfile::TempDir,
    grant: LiveGrant,
    audit: Arc<Audit>,
    server: Server,
}

impl Peer {
    /// My namespace (`/status`, `/ctl`, `/files/home` = an exported temp
    /// dir), served to peer `bob` through a view with [`GRANT`].
    fn new() -> Peer {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path();
        for d in ["pub/sub", "drop", "private"] {
            std::fs::create_dir_all(p.join(d)).expect("mkdir");
        }
        let big: Vec<u8> = (0..64 * 1024).map(|i| (i % 251) as u8).collect();
        std::fs::write(p.join("pub/big"), &big).expect("write");
        std::fs::write(p.join("pub/hello.txt"), "hello\n").expect("write");
        std::fs::write(p.join("private/secret.txt"), "secret\n").expect("write");
        let home = ninep_export::export(p, ExportOptions::default()).expect("export");
        let root: Arc<dyn Node> = Arc::new(
            Dir::new(0o555)
                .with("status", Arc::new(TextFile::new(|| "name me\n".into())))
                .with("ctl", Arc::new(TextFile::new(|| "ctl\n".into())))
                .with("files", Arc::new(Dir::new(0o555).with("home", home))),
        );
        let grant = LiveGrant::new(GRANT.parse().expect("policy"));
        let audit = Arc::new(Audit::new());
        let view = PolicyView::new(root, "bob", grant.clone(), audit.clone());
        Peer {
            _dir: dir,
            grant,
            audit,
            server: Server::for_tree(view, ServerConfig::default()),
        }
    }

    async fn connect(&self, dialect: Dialect) -> Client {
        let (a, b) = tokio::io::duplex(1 << 20);
        let server = self.server.clone();
        tokio::spawn(async move { server.serve_conn(b, PeerInfo::Unknown).await });
        let config = ClientConfig {
            msize: 8192 + ninep::IOHDRSZ,
            dialect,
        };
        Client::connect(a, config).await.expect("connect")
    }
}

/// The text and errno of a failed request.
fn remote<T: std::fmt::Debug>(r: ninep_client::Result<T>) -> (String, Option<u32>) {
    match r {
        Err(ClientError::Remote { msg, errno }) => (msg, errno),
        other => panic!("expected an error reply, got {other:?}"),
    }
}

async fn names(fid: &ninep_client::Fid) -> Vec<String> {
    let mut names: Vec<String> = fid
        .readdir()
        .await
        .expect("readdir")
        .into_iter()
        .map(|e| e.name)
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn peer_sees_only_its_grants_over_9p() {
    let peer = Peer::new();
    for dialect in [Dialect::P2000, Dialect::U, Dialect::L] {
        let client = peer.connect(dialect).await;
        let root = client.attach("bob", "").await.expect("attach");
        assert_eq!(names(&root).await, ["files", "status"], "{dialect:?}");
        let home = root.walk(&["files", "home"]).await.expect("walk");
        assert_eq!(names(&home).await, ["drop", "pub"], "{dialect:?}");
        assert!(root.walk(&["ctl"]).await.is_err());
        assert!(root
            .walk(&["files", "home", "private", "secret.txt"])
            .await
            .is_err());
        assert!(client.attach("bob", "files/home/private").await.is_err());
        assert!(client.attach("bob", "ctl").await.is_err());
    }
}

/// Attached at a granted subtree, `..` stays there and cannot reach a
/// sibling that is not granted.
#[tokio::test]
async fn dotdot_stays_in_a_granted_attach() {
    let peer = Peer::new();
    let client = peer.connect(Dialect::U).await;
    let pub_root = client
        .attach("bob", "files/home/pub")
        .await
        .expect("attach");
    let up = pub_root.walk(&[".."]).await.expect("walk ..");
    assert_eq!(up.qid(), pub_root.qid());
    assert_eq!(names(&up).await, ["big", "hello.txt", "sub"]);
    assert!(pub_root
        .walk(&["..", "..", "private", "secret.txt"])
        .await
        .is_err());
    assert!(pub_root
        .walk(&["..", "..", "..", "..", "ctl"])
        .await
        .is_err());
    let mut hello = pub_root
        .walk(&["sub", "..", "hello.txt"])
        .await
        .expect("walk");
    hello.open(OpenFlags::READ).await.expect("open");
    assert_eq!(hello.read_all().await.expect("read"), b"hello\n");
    // From the root, `..` and back down goes through the same checks.
    let root = client.attach("bob", "").await.expect("attach");
    assert!(root
        .walk(&["files", "home", "pub", "..", "private"])
        .await
        .is_err());
}

#[tokio::test]
async fn writes_are_denied_with_the_policy_text() {
    let peer = Peer::new();
    let client = peer.connect(Dialect::U).await;
    let root = client.attach("bob", "").await.expect("attach");
    let mut hello = root
        .walk(&["files", "home", "pub", "hello.txt"])
        .await
        .expect("walk");
    assert_eq!(
        remote(hello.open(OpenFlags::RDWR).await),
        (
            "policy: peer bob may not write /files/home/pub/hello.txt".to_owned(),
            Some(libc::EACCES as u32)
        )
    );
    let pub_dir = root.walk(&["files", "home", "pub"]).await.expect("walk");
    assert_eq!(
        remote(pub_dir.create("new", 0o644, OpenFlags::WRITE).await).0,
        "policy: peer bob may not write /files/home/pub/new"
    );
    assert_eq!(
        remote(root.create("x", 0o644, OpenFlags::WRITE).await).0,
        "policy: peer bob may not write /x"
    );
    let drop_dir = root.walk(&["files", "home", "drop"]).await.expect("walk");
    let f = drop_dir
        .create("note", 0o644, OpenFlags::RDWR)
        .await
        .expect("create");
    f.write_all(0, b"from bob").await.expect("write");
    assert_eq!(f.read_all().await.expect("read"), b"from bob");
    assert_eq!(
        remote(drop_dir.remove().await).0,
        "policy: peer bob may not write /files/home/drop"
    );

    // 9P2000.L carries the errno only.
    let client = peer.connect(Dialect::L).await;
    let root = client.attach("bob", "").await.expect("attach");
    let mut hello = root
        .walk(&["files", "home", "pub", "hello.txt"])
        .await
        .expect("walk");
    assert_eq!(
        remote(hello.open(OpenFlags::WRITE).await).1,
        Some(libc::EACCES as u32)
    );
    assert!(peer.audit.denials() >= 5);
}

#[tokio::test]
async fn withdrawing_the_grant_stops_a_read_in_progress() {
    let peer = Peer::new();
    for dialect in [Dialect::U, Dialect::L] {
        peer.grant.set(GRANT.parse().expect("policy"));
        let client = peer.connect(dialect).await;
        let root = client.attach("bob", "").await.expect("attach");
        let mut big = root
            .walk(&["files", "home", "pub", "big"])
            .await
            .expect("walk");
        big.open(OpenFlags::READ).await.expect("open");
        let first = big.read(0, 4096).await.expect("read");
        assert_eq!(first.len(), 4096);
        peer.grant.withdraw();
        let (msg, errno) = remote(big.read(4096, 4096).await);
        assert_eq!(errno, Some(libc::EACCES as u32));
        if dialect == Dialect::U {
            assert_eq!(msg, "policy: grant withdrawn");
        }
        assert!(root.walk(&["files"]).await.is_err());
        assert!(root.metadata().await.is_err());
    }
    let recent = peer.audit.recent_denials();
    assert!(
        recent.iter().any(|m| m == "policy: grant withdrawn"),
        "{recent:?}"
    );
    assert!(peer.audit.bytes_read() >= 2 * 4096);
    assert!(peer.audit.count(Op::Read) >= 4);
}

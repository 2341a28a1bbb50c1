//! import(4) over QUIC, on loopback: a peer's export as a `RemoteTree`,
//! served again by a local 9P server (the proxy chain a `/n/bob` mount
//! is), through peer restarts and outages.

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::panic,
    clippy::err_expect
)]

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use grid_transport::{Endpoint, ImportConfig, Peer, PublicKey, RemoteTree};
use ninep_client::{Client, OpenFlags, SetAttr};
use ninep_server::{Server, ServerConfig};

/// Alice's view of Bob's export: a RemoteTree served by a local 9P server
/// over an in-memory stream, and a client of that.
struct Chain {
    tree: RemoteTree,
    client: Client,
}

async fn chain(ea: &Endpoint, bob: PublicKey, addr: SocketAddr) -> Chain {
    chain_with(ea, bob, addr, ninep::Dialect::L).await
}

/// [`chain`] with the local session in `dialect` (9P2000.u carries error
/// text, which .L does not).
async fn chain_with(
    ea: &Endpoint,
    bob: PublicKey,
    addr: SocketAddr,
    dialect: ninep::Dialect,
) -> Chain {
    let tree = RemoteTree::new(
        ea.clone(),
        Peer {
            name: "bob".into(),
            key: bob,
            addrs: vec![addr],
        },
        ImportConfig::default(),
    );
    let local = Server::new(Arc::new(tree.clone()), ServerConfig::default());
    let (a, b) = tokio::io::duplex(4 << 20);
    tokio::spawn(async move { local.serve_conn(b, Default::default()).await });
    let config = ninep_client::ClientConfig {
        dialect,
        ..Default::default()
    };
    let client = Client::connect(a, config).await.expect("local session");
    Chain { tree, client }
}

/// Bob's motd, walked to through `client` and stat'ed once, so the link
/// to Bob is up.
async fn linked_motd(client: &Client) -> ninep_client::Fid {
    let root = client.attach("me", "").await.unwrap();
    let motd = root.walk(&["motd"]).await.unwrap();
    motd.metadata().await.unwrap();
    motd
}

/// Bob, serving a temporary directory.
struct Bob {
    dir: tempfile::TempDir,
    key: ed25519_dalek::SigningKey,
    public: PublicKey,
    ep: Endpoint,
    serving: Serving,
    alice: PublicKey,
}

impl Bob {
    fn start(alice: PublicKey) -> Bob {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("motd"), b"hello from bob\n").unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/deep"), b"deep").unwrap();
        let (key, public) = identity(2);
        let ep = endpoint(&key, &[(alice, "alice")]);
        let (server, _) = export_server(dir.path());
        let serving = Serving::start(&ep, server);
        Bob {
            dir,
            key,
            public,
            ep,
            serving,
            alice,
        }
    }

    fn addr(&self) -> SocketAddr {
        self.ep.local_addr().unwrap()
    }

    /// Stops Bob's grid entirely (its port is free afterwards).
    async fn stop(self) -> (tempfile::TempDir, ed25519_dalek::SigningKey, SocketAddr) {
        let addr = self.addr();
        self.serving.shutdown().await;
        stop_endpoint(self.ep).await;
        (self.dir, self.key, addr)
    }

    /// Starts Bob again on the same address, key and directory.
    async fn restart(self) -> Bob {
        let alice = self.alice;
        let public = self.public;
        let (dir, key, addr) = self.stop().await;
        let ep = rebind(addr, &key, &[(alice, "alice")]).await;
        let (server, _) = export_server(dir.path());
        let serving = Serving::start(&ep, server);
        Bob {
            dir,
            key,
            public,
            ep,
            serving,
            alice,
        }
    }
}

#[tokio::test]
async fn a_remote_tree_served_again_reads_and_writes_the_peer() {
    bounded(async {
        let (ka, a) = identity(1);
        let bob = Bob::start(a);
        let ea = endpoint(&ka, &[(bob.public, "bob")]);
        let Chain { tree, client } = chain(&ea, bob.public, bob.addr()).await;
        assert!(!tree.status().connected, "lazy: nothing dialed yet");
        let root = client.attach("me", "").await.unwrap();
        assert!(tree.status().connected);

        // Read, with the peer's qid.
        let mut f = root.walk(&["motd"]).await.unwrap();
        f.open(OpenFlags::READ).await.unwrap();
        assert_eq!(f.read_all().await.unwrap(), b"hello from bob\n");
        let meta = root
            .walk(&["motd"])
            .await
            .unwrap()
            .metadata()
            .await
            .unwrap();
        assert_eq!(meta.size, 15);
        let ino = std::os::unix::fs::MetadataExt::ino(
            &std::fs::metadata(bob.dir.path().join("motd")).unwrap(),
        );
        assert_eq!(meta.qid.path, ino, "qids come from the peer");

        // Multi-element walks, directories, attributes.
        let mut deep = root.walk(&["sub", "deep"]).await.unwrap();
        deep.open(OpenFlags::READ).await.unwrap();
        assert_eq!(deep.read_all().await.unwrap(), b"deep");
        let mut names: Vec<String> = root
            .readdir()
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.name)
            .collect();
        names.sort();
        assert_eq!(names, ["motd", "sub"]);

        // Create, write, truncate, rename, mkdir, symlink, remove.
        let w = root.create("new", 0o640, OpenFlags::RDWR).await.unwrap();
        let data: Vec<u8> = (0..2 << 20).map(|i: u32| (i % 253) as u8).collect();
        w.write_all(0, &data).await.unwrap();
        drop(w);
        assert_eq!(std::fs::read(bob.dir.path().join("new")).unwrap(), data);
        let nf = root.walk(&["new"]).await.unwrap();
        nf.setattr(&SetAttr::size(10)).await.unwrap();
        assert_eq!(
            std::fs::metadata(bob.dir.path().join("new")).unwrap().len(),
            10
        );
        let sub = root.walk(&["sub"]).await.unwrap();
        root.renameat("new", &sub, "moved").await.unwrap();
        assert!(bob.dir.path().join("sub/moved").exists());
        root.mkdir("d", 0o755).await.unwrap();
        assert!(bob.dir.path().join("d").is_dir());
        let link = ninep::Tsymlink {
            fid: root.number(),
            name: "ln".into(),
            symtgt: "motd".into(),
            gid: ninep::NONUNAME,
        };
        client.rpc(link).await.unwrap();
        let ln = root.walk(&["ln"]).await.unwrap();
        match client
            .rpc(ninep::Treadlink { fid: ln.number() })
            .await
            .unwrap()
        {
            ninep::Fcall::Rreadlink(r) => assert_eq!(r.target, "motd"),
            other => panic!("{other:?}"),
        }
        sub.unlinkat("moved", 0).await.unwrap();
        assert!(!bob.dir.path().join("sub/moved").exists());
        root.walk(&["d"]).await.unwrap().remove().await.unwrap();
        assert!(!bob.dir.path().join("d").exists());
        let fs = root.statfs().await.unwrap();
        assert!(fs.bsize > 0);

        // The peer's errors keep their errno.
        let err = root.walk(&["nope"]).await.err().expect("missing");
        let io = std::io::Error::from(err);
        assert_eq!(io.kind(), std::io::ErrorKind::NotFound);
        let err = root.mkdir("motd", 0o755).await.err().expect("exists");
        assert_eq!(err.errno(), Some(libc::EEXIST as u32));
        bob.serving.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn a_remote_tree_reconnects_after_the_peer_restarts() {
    bounded(async {
        let (ka, a) = identity(1);
        let bob = Bob::start(a);
        let ea = endpoint(&ka, &[(bob.public, "bob")]);
        let Chain { tree, client } = chain(&ea, bob.public, bob.addr()).await;
        let root = client.attach("me", "").await.unwrap();
        // A fid obtained before the restart, deep in the tree.
        let deep = root.walk(&["sub", "deep"]).await.unwrap();
        assert_eq!(deep.metadata().await.unwrap().size, 4);
        assert_eq!(tree.status().connects, 1);

        let bob = bob.restart().await;
        std::fs::write(bob.dir.path().join("sub/deep"), b"deeper").unwrap();

        // The same fid works again: the node walks its path on the new session.
        let meta = deep.metadata().await.expect("after restart");
        assert_eq!(meta.size, 6);
        let mut f = deep.try_clone().await.unwrap();
        f.open(OpenFlags::READ).await.unwrap();
        assert_eq!(f.read_all().await.unwrap(), b"deeper");
        let st = tree.status();
        assert!(st.connected);
        assert_eq!(st.connects, 2);
        bob.serving.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn a_crashed_peer_is_noticed_at_once_when_it_comes_back() {
    bounded(async {
        // Bob "crashes": his old grid falls silent without closing anything
        // and a new Bob with the same key answers at his address. The new
        // Bob answers the old connection's packets with a stateless reset
        // (its reset key comes from the grid key), so Alice reconnects at
        // once instead of waiting out the idle timeout.
        let (ka, a) = identity(1);
        let bob = Bob::start(a);
        let relay = Relay::start(bob.addr()).await;
        let ea = endpoint(&ka, &[(bob.public, "bob")]);
        let Chain { tree, client } = chain(&ea, bob.public, relay.addr).await;
        let motd = linked_motd(&client).await;

        let ep2 = endpoint(&bob.key, &[(a, "alice")]);
        let (server, _) = export_server(bob.dir.path());
        let serving = Serving::start(&ep2, server);
        relay.retarget(Some(ep2.local_addr().unwrap()));

        let t = Instant::now();
        assert_eq!(motd.metadata().await.expect("reconnected").size, 15);
        assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
        let st = tree.status();
        assert_eq!(st.connects, 2);
        assert!(
            st.last_error.as_deref().unwrap_or("").contains("reset"),
            "{st:?}"
        );
        serving.shutdown().await;
        bob.serving.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn a_cut_link_fails_operations_within_the_idle_timeout() {
    bounded(async {
        let (ka, a) = identity(1);
        let bob = Bob::start(a);
        let relay = Relay::start(bob.addr()).await;
        let idle = Duration::from_secs(2);
        let config = grid_transport::Config {
            idle_timeout: idle,
            keep_alive: Duration::from_millis(500),
            ..Default::default()
        };
        let ea = Endpoint::bind(
            "127.0.0.1:0".parse().unwrap(),
            &ka,
            Default::default(),
            config,
        )
        .unwrap();
        let Chain { tree, client } = chain(&ea, bob.public, relay.addr).await;
        let motd = linked_motd(&client).await;

        relay.retarget(None);
        let t = Instant::now();
        let err = motd.metadata().await.err().expect("cut");
        assert!(
            t.elapsed() < idle + Duration::from_secs(3),
            "{:?}",
            t.elapsed()
        );
        assert_eq!(err.errno(), Some(libc::EHOSTUNREACH as u32), "{err}");
        assert!(!tree.status().connected);

        relay.retarget(Some(bob.addr()));
        tree.retry_now();
        assert_eq!(motd.metadata().await.expect("link back").size, 15);
        bob.serving.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn an_unreachable_peer_is_a_prompt_error_not_a_hang() {
    bounded(async {
        let (ka, _) = identity(1);
        let (_, b) = identity(2);
        let ea = endpoint(&ka, &[(b, "bob")]);
        // A UDP port that swallows everything: no ICMP, no answer.
        let hole = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let tree = RemoteTree::new(
            ea.clone(),
            Peer {
                name: "bob".into(),
                key: b,
                addrs: vec![hole.local_addr().unwrap()],
            },
            ImportConfig::default(),
        );
        let t = Instant::now();
        let err = tree.root().await.err().expect("unreachable");
        assert_eq!(err.msg, "peer bob unreachable");
        assert_eq!(err.errno, libc::EHOSTUNREACH);
        assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());

        // While backing off, errors are immediate.
        let t = Instant::now();
        let err = tree.root().await.err().expect("still unreachable");
        assert_eq!(err.msg, "peer bob unreachable");
        assert!(
            t.elapsed() < Duration::from_millis(200),
            "{:?}",
            t.elapsed()
        );
        let st = tree.status();
        assert!(!st.connected);
        assert!(st.retry_in.is_some());
        assert!(st.last_error.unwrap().contains("no answer"));
    })
    .await;
}

#[tokio::test]
async fn a_peer_going_down_gives_prompt_errors_then_recovers() {
    bounded(async {
        let (ka, a) = identity(1);
        let bob = Bob::start(a);
        let public = bob.public;
        let ea = endpoint(&ka, &[(public, "bob")]);
        let Chain { tree, client } = chain_with(&ea, public, bob.addr(), ninep::Dialect::U).await;
        let motd = linked_motd(&client).await;

        let (dir, key, addr) = bob.stop().await;
        let t = Instant::now();
        let err = motd.metadata().await.err().expect("down");
        assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
        assert!(err.to_string().contains("peer bob unreachable"), "{err}");

        // Bob comes back; after the backoff, the same fid works again.
        let ep = rebind(addr, &key, &[(a, "alice")]).await;
        let (server, _) = export_server(dir.path());
        let serving = Serving::start(&ep, server);
        tree.retry_now();
        assert_eq!(motd.metadata().await.unwrap().size, 15);
        serving.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn a_peer_with_the_wrong_key_is_an_authentication_error() {
    bounded(async {
        let (ka, a) = identity(1);
        let bob = Bob::start(a);
        let ea = endpoint(&ka, &[(bob.public, "bob")]);
        let (_, mallory) = identity(3);
        let tree = RemoteTree::new(
            ea.clone(),
            Peer {
                name: "bob".into(),
                key: mallory, // not the key that answers at bob's address
                addrs: vec![bob.addr()],
            },
            ImportConfig::default(),
        );
        let err = tree.root().await.err().expect("refused");
        assert_eq!(err.msg, "peer bob: authentication failed");
        assert!(tree
            .status()
            .last_error
            .unwrap()
            .contains("is not the expected"));
        bob.serving.shutdown().await;
    })
    .await;
}

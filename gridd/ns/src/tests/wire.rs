//! The namespace served by the real 9P server to the real client, over an
//! in-memory stream, in every dialect.

use std::collections::BTreeMap;
use std::sync::Arc;

use ninep::Dialect;
use ninep_client::{Client, ClientConfig, OpenFlags};
use ninep_server::{Node, PeerInfo, Server, ServerConfig};

use super::{peer_tree, root_tree};
use crate::{ns_file, parse_ns_file, Namespace};

const NS: &str = "mount alice /n/alice\n\
                  mount bob /n/bob\n\
                  bind -a /n/alice/sensors /n/clubhouse/sensors\n\
                  bind -a /n/bob/sensors /n/clubhouse/sensors\n\
                  bind /b /b\n\
                  bind -bc /c/sub /b\n";

async fn connect(server: &Server, dialect: Dialect) -> Client {
    let (a, b) = tokio::io::duplex(1 << 20);
    let server = server.clone();
    tokio::spawn(async move { server.serve_conn(b, PeerInfo::Unknown).await });
    let config = ClientConfig {
        msize: 64 * 1024,
        dialect,
    };
    Client::connect(a, config).await.expect("connect")
}

fn names(entries: Vec<ninep_client::DirEntry>) -> Vec<String> {
    entries.into_iter().map(|e| e.name).collect()
}

#[tokio::test]
async fn unions_and_mount_points_over_9p() {
    let root = root_tree();
    let ns = Namespace::new(root.clone());
    root.insert("ns", Arc::new(ns_file(&ns)));
    let mut peers: BTreeMap<String, Arc<dyn Node>> = BTreeMap::new();
    for name in ["alice", "bob"] {
        peers.insert(name.into(), peer_tree(name));
    }
    let problems = ns.apply(&parse_ns_file(NS).unwrap(), &peers).await;
    assert!(problems.is_empty(), "{problems:?}");
    let server = Server::for_tree(ns.root(), ServerConfig::default());

    for dialect in [Dialect::P2000, Dialect::U, Dialect::L] {
        let client = connect(&server, dialect).await;
        assert_eq!(client.dialect(), dialect);
        let top = client.attach("glenda", "").await.unwrap();

        // A union directory lists each name once, in union order.
        let club = top.walk(&["n", "clubhouse", "sensors"]).await.unwrap();
        assert_eq!(
            names(club.readdir().await.unwrap()),
            ["shared", "temp-alice", "temp-bob"]
        );
        let mut shared = club.walk(&["shared"]).await.unwrap();
        shared.open(OpenFlags::READ).await.unwrap();
        assert_eq!(shared.read_all().await.unwrap(), b"alice shared");

        // Walking through a mount point reaches the mounted tree, whose
        // root qid the mount point shows; `..` comes back out.
        let n = top.walk(&["n"]).await.unwrap();
        assert_eq!(
            names(n.readdir().await.unwrap()),
            ["alice", "bob", "clubhouse"]
        );
        let alice = top.walk(&["n", "alice"]).await.unwrap();
        assert_eq!(alice.qid(), peers["alice"].qid());
        let mut f = alice.walk(&["files", "alice"]).await.unwrap();
        f.open(OpenFlags::READ).await.unwrap();
        assert_eq!(f.read_all().await.unwrap(), b"alice's file");
        let back = top
            .walk(&["n", "alice", "files", "..", ".."])
            .await
            .unwrap();
        assert_eq!(back.qid(), n.qid());

        // Create in a union goes to the member bound with -c.
        let b = top.walk(&["b"]).await.unwrap();
        let name = format!("new-{}", dialect.version_string());
        let f = b.create(&name, 0o644, OpenFlags::RDWR).await.unwrap();
        f.write_all(0, b"made").await.unwrap();
        drop(f);
        let sub = top.walk(&["c", "sub"]).await.unwrap();
        assert!(names(sub.readdir().await.unwrap()).contains(&name));

        // /ns reads back what was applied.
        let mut nsf = top.walk(&["ns"]).await.unwrap();
        nsf.open(OpenFlags::READ).await.unwrap();
        let text = String::from_utf8(nsf.read_all().await.unwrap()).unwrap();
        assert_eq!(text, NS.replacen("bind -a /n/alice", "bind /n/alice", 1));
    }

    // A change shows to the next walk of a client already attached; the
    // fid it holds keeps what it walked to.
    let client = connect(&server, Dialect::L).await;
    let top = client.attach("glenda", "").await.unwrap();
    let club = top.walk(&["n", "clubhouse", "sensors"]).await.unwrap();
    ns.unmount(Some("/n/alice/sensors"), "/n/clubhouse/sensors")
        .await
        .unwrap();
    assert_eq!(
        names(club.readdir().await.unwrap()),
        ["shared", "temp-alice", "temp-bob"]
    );
    let club = top.walk(&["n", "clubhouse", "sensors"]).await.unwrap();
    assert_eq!(names(club.readdir().await.unwrap()), ["shared", "temp-bob"]);
}

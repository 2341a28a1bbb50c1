//! Key-pinned mutual TLS and 9P over QUIC, on loopback: who gets in, who
//! is refused, and a real export read and written through a stream.

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::panic,
    clippy::err_expect
)]

mod common;

use std::time::Duration;

use common::*;
use grid_transport::{close, Alpn, Error};
use ninep_client::OpenFlags;
use ninep_server::PeerInfo;

#[tokio::test]
async fn two_known_grids_authenticate_each_other() {
    bounded(async {
        let (ka, a) = identity(1);
        let (kb, b) = identity(2);
        let ea = endpoint(&ka, &[(b, "bob")]);
        let eb = endpoint(&kb, &[(a, "alice")]);
        let addr = eb.local_addr().unwrap();
        let server = tokio::spawn({
            let eb = eb.clone();
            async move { eb.accept().await.unwrap().handshake().await }
        });
        let conn = ea.connect(addr, &b, Alpn::NineP).await.expect("dial");
        assert_eq!(conn.peer_key(), b);
        assert_eq!(conn.alpn(), Alpn::NineP);
        let accepted = server.await.unwrap().expect("accepted");
        assert_eq!(accepted.peer_key(), a);
        assert_eq!(accepted.alpn(), Alpn::NineP);
        assert_eq!(
            eb.known_keys().name_of(&accepted.peer_key()).as_deref(),
            Some("alice")
        );
        // A stream carries bytes both ways.
        let mut s = conn.open_stream().await.unwrap();
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        s.write_all(b"ping").await.unwrap();
        let mut t = accepted.accept_stream().await.unwrap();
        let mut buf = [0u8; 4];
        t.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"ping");
    })
    .await;
}

#[tokio::test]
async fn an_unknown_client_key_is_refused() {
    bounded(async {
        let (ka, _) = identity(1);
        let (kb, b) = identity(2);
        let ea = endpoint(&ka, &[]);
        let eb = endpoint(&kb, &[]); // knows nobody
        let addr = eb.local_addr().unwrap();
        let server = tokio::spawn({
            let eb = eb.clone();
            async move { eb.accept().await.unwrap().handshake().await }
        });
        // The client may finish its side of the handshake before it hears
        // the refusal; the connection must fail either way.
        let client = match ea.connect(addr, &b, Alpn::NineP).await {
            Err(e) => e,
            Ok(conn) => {
                let reason = conn.closed().await;
                Error::Connection {
                    addr,
                    source: reason,
                }
            }
        };
        assert!(client.is_authentication(), "{client}");
        assert!(client.is_refused_by_peer(), "{client}");
        assert!(!client.is_wrong_key(), "{client}");
        let err = server.await.unwrap().err().expect("server refused");
        assert!(err.to_string().contains("not a known peer"), "{err}");
    })
    .await;
}

#[tokio::test]
async fn a_server_with_another_key_is_refused_by_the_client() {
    bounded(async {
        // Alice expects Bob at this address, but Mallory answers there with
        // her own key, and even knows Alice's key.
        let (ka, a) = identity(1);
        let (_, b) = identity(2);
        let (km, _) = identity(3);
        let ea = endpoint(&ka, &[(b, "bob")]);
        let em = endpoint(&km, &[(a, "alice")]);
        let addr = em.local_addr().unwrap();
        let (got, mut handshakes) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn({
            let em = em.clone();
            async move {
                while let Some(incoming) = em.accept().await {
                    let _ = got.send(incoming.handshake().await);
                }
            }
        });
        let err = ea
            .connect(addr, &b, Alpn::NineP)
            .await
            .err()
            .expect("MITM refused");
        assert!(err.is_authentication(), "{err}");
        assert!(err.to_string().contains("is not the expected"), "{err}");
        assert!(err.is_wrong_key(), "{err}");
        assert!(!err.is_refused_by_peer(), "{err}");
        let mitm = handshakes.recv().await.unwrap();
        assert!(mitm.is_err(), "Mallory got no connection");
        // Nor can Mallory get a 9P session.
        let err = grid_transport::dial(&ea, addr, &b).await.err().unwrap();
        assert!(err.is_authentication(), "{err}");
        assert!(handshakes.recv().await.unwrap().is_err());
    })
    .await;
}

#[tokio::test]
async fn a_pairing_window_admits_unknown_keys_only_for_pairing() {
    bounded(async {
        let (ka, _) = identity(1);
        let (kb, b) = identity(2);
        let ea = endpoint(&ka, &[]);
        let config = grid_transport::Config {
            alpns: Alpn::ALL.to_vec(),
            ..Default::default()
        };
        let eb = grid_transport::Endpoint::bind(
            "127.0.0.1:0".parse().unwrap(),
            &kb,
            Default::default(),
            config,
        )
        .unwrap();
        eb.known_keys().set_pairing(true);
        let addr = eb.local_addr().unwrap();
        let accept = |eb: grid_transport::Endpoint| async move {
            eb.accept().await.unwrap().handshake().await
        };
        let server = tokio::spawn(accept(eb.clone()));
        let pair = ea.connect(addr, &b, Alpn::Pair).await.expect("pairing");
        let accepted = server.await.unwrap().expect("pairing accepted");
        assert_eq!(accepted.alpn(), Alpn::Pair);
        drop(pair);

        let server = tokio::spawn(accept(eb.clone()));
        let nine = ea.connect(addr, &b, Alpn::NineP).await;
        let refused = server.await.unwrap().err().expect("9P refused");
        assert!(matches!(refused, Error::UnknownPeer(_)), "{refused}");
        if let Ok(conn) = nine {
            let reason = conn.closed().await;
            let e = Error::Connection {
                addr,
                source: reason,
            };
            assert!(e.is_authentication(), "{e}");
        }
    })
    .await;
}

#[tokio::test]
async fn ninep_over_quic_reads_and_writes_an_export() {
    bounded(async {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("motd"), b"hello from bob\n").unwrap();
        let (ka, a) = identity(1);
        let (kb, b) = identity(2);
        let ea = endpoint(&ka, &[(b, "bob")]);
        let eb = endpoint(&kb, &[(a, "alice")]);
        let (server, fs) = export_server(dir.path());
        let serving = Serving::start(&eb, server);
        let addr = eb.local_addr().unwrap();

        let client = grid_transport::dial(&ea, addr, &b).await.expect("dial");
        let root = client.attach("alice", "").await.expect("attach");
        let mut f = root.walk(&["motd"]).await.unwrap();
        f.open(OpenFlags::READ).await.unwrap();
        assert_eq!(f.read_all().await.unwrap(), b"hello from bob\n");

        let big: Vec<u8> = (0..3 << 20).map(|i: u32| (i % 251) as u8).collect();
        let w = root
            .create("upload", 0o644, OpenFlags::WRITE)
            .await
            .unwrap();
        w.write_all(0, &big).await.unwrap();
        w.clunk().await.unwrap();
        assert_eq!(std::fs::read(dir.path().join("upload")).unwrap(), big);

        // The tree saw who attached: the key the handshake proved.
        let peers = fs.peers.lock().unwrap().clone();
        match peers.as_slice() {
            [PeerInfo::Grid { key, addr }] => {
                assert_eq!(key, &a.to_hex());
                assert_eq!(*addr, ea.local_addr().unwrap());
            }
            other => panic!("attached as {other:?}"),
        }

        // Two sessions on one connection are two streams.
        let conn = ea.connect(addr, &b, Alpn::NineP).await.unwrap();
        let s1 = conn.open_9p(Default::default()).await.unwrap();
        let s2 = conn.open_9p(Default::default()).await.unwrap();
        let (r1, r2) = tokio::join!(s1.attach("a", ""), s2.attach("b", ""));
        assert!(r1.is_ok() && r2.is_ok());
        serving.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn removing_a_peer_disconnects_it() {
    bounded(async {
        let Session {
            _dir,
            a,
            b,
            ea,
            eb,
            serving,
            conn,
            root: _root,
        } = alice_attached_to_bob().await;
        let addr = eb.local_addr().unwrap();

        eb.known_keys().remove(&a);
        let reason = tokio::time::timeout(Duration::from_secs(5), conn.closed())
            .await
            .expect("closed promptly");
        match reason {
            quinn::ConnectionError::ApplicationClosed(c) => {
                assert_eq!(c.error_code, quinn::VarInt::from_u32(close::REMOVED));
            }
            other => panic!("closed with {other}"),
        }
        // And it cannot come back.
        let again = grid_transport::dial(&ea, addr, &b).await;
        assert!(again.is_err());
        serving.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn shutdown_closes_served_connections_and_tells_the_peer() {
    bounded(async {
        // Both endpoints stay bound to the end, as the peers do.
        let Session {
            _dir,
            ea: _ea,
            eb: _eb,
            serving,
            conn,
            root,
            ..
        } = alice_attached_to_bob().await;
        serving.shutdown().await;
        let reason = tokio::time::timeout(Duration::from_secs(5), conn.closed())
            .await
            .expect("told promptly");
        assert!(matches!(
            reason,
            quinn::ConnectionError::ApplicationClosed(_)
        ));
        assert!(root.metadata().await.is_err());
    })
    .await;
}

/// Alice attached over QUIC to Bob, who serves an empty directory.
struct Session {
    _dir: tempfile::TempDir,
    a: grid_transport::PublicKey,
    b: grid_transport::PublicKey,
    ea: grid_transport::Endpoint,
    eb: grid_transport::Endpoint,
    serving: Serving,
    conn: grid_transport::Connection,
    root: ninep_client::Fid,
}

async fn alice_attached_to_bob() -> Session {
    let dir = tempfile::tempdir().unwrap();
    let (ka, a) = identity(1);
    let (kb, b) = identity(2);
    let ea = endpoint(&ka, &[(b, "bob")]);
    let eb = endpoint(&kb, &[(a, "alice")]);
    let (server, _) = export_server(dir.path());
    let serving = Serving::start(&eb, server);
    let addr = eb.local_addr().unwrap();
    let conn = ea.connect(addr, &b, Alpn::NineP).await.unwrap();
    let client = conn.open_9p(Default::default()).await.unwrap();
    let root = client.attach("alice", "").await.unwrap();
    Session {
        _dir: dir,
        a,
        b,
        ea,
        eb,
        serving,
        conn,
        root,
    }
}

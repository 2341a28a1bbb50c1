//! Helpers shared by the transport tests: identities, endpoints on
//! loopback, an exported temporary directory served over QUIC.

#![allow(dead_code, clippy::expect_used, clippy::unwrap_used)]

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use ed25519_dalek::SigningKey;
use grid_transport::{Config, Endpoint, KnownKeys, PublicKey};
use ninep_server::{AttachInfo, FileServer, Node, PeerInfo, Server, ServerConfig};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Every test finishes within this.
pub const LIMIT: Duration = Duration::from_secs(30);

/// Runs `f` within [`LIMIT`].
pub async fn bounded<T>(f: impl Future<Output = T>) -> T {
    tokio::time::timeout(LIMIT, f)
        .await
        .expect("test took too long")
}

/// A grid identity from a fixed seed.
pub fn identity(seed: u8) -> (SigningKey, PublicKey) {
    let key = SigningKey::from_bytes(&[seed; 32]);
    let public = PublicKey::of(&key);
    (key, public)
}

/// A loopback endpoint for `key` that accepts `peers`.
pub fn endpoint(key: &SigningKey, peers: &[(PublicKey, &str)]) -> Endpoint {
    endpoint_at("127.0.0.1:0".parse().unwrap(), key, peers)
}

/// [`endpoint`] on a given address.
pub fn endpoint_at(addr: SocketAddr, key: &SigningKey, peers: &[(PublicKey, &str)]) -> Endpoint {
    Endpoint::bind(addr, key, known_keys(peers), Config::default()).expect("bind")
}

/// A peer table holding `peers`.
fn known_keys(peers: &[(PublicKey, &str)]) -> KnownKeys {
    let known = KnownKeys::new();
    for (k, name) in peers {
        known.insert(*k, *name);
    }
    known
}

/// A file server for one tree that records who attached.
pub struct Recording {
    pub root: Arc<dyn Node>,
    pub peers: Mutex<Vec<PeerInfo>>,
}

#[async_trait]
impl FileServer for Recording {
    async fn attach(&self, info: &AttachInfo) -> ninep_server::Result<Arc<dyn Node>> {
        self.peers.lock().unwrap().push(info.peer.clone());
        ninep_server::walk_path(self.root.clone(), &info.aname).await
    }
}

/// A 9P server exporting `dir`, recording attaches.
pub fn export_server(dir: &Path) -> (Server, Arc<Recording>) {
    let root = ninep_export::export(dir, Default::default()).expect("export");
    let fs = Arc::new(Recording {
        root,
        peers: Mutex::new(Vec::new()),
    });
    (Server::new(fs.clone(), ServerConfig::default()), fs)
}

/// A running `serve` that stops when dropped or shut down.
pub struct Serving {
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl Serving {
    pub fn start(ep: &Endpoint, server: Server) -> Serving {
        let (stop, rx) = oneshot::channel::<()>();
        let ep = ep.clone();
        let task = tokio::spawn(async move {
            grid_transport::serve(&ep, server, async {
                let _ = rx.await;
            })
            .await;
        });
        Serving {
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Stops serving and waits until the accepted connections are closed.
    pub async fn shutdown(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            t.await.expect("serve task");
        }
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        if let Some(t) = &self.task {
            t.abort();
        }
    }
}

/// Closes `ep` and waits until its socket is released, so its port can
/// be bound again (a restart).
pub async fn stop_endpoint(ep: Endpoint) {
    let addr = ep.local_addr().expect("local addr");
    ep.close();
    ep.wait_idle().await;
    drop(ep);
    // The endpoint's driver task lets go of the socket on its next poll:
    // wait until the port can be bound, so packets to it are refused.
    for _ in 0..100 {
        if std::net::UdpSocket::bind(addr).is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{addr} still bound after the endpoint closed");
}

/// Binds `addr` again for `key`, retrying while the old socket goes away.
pub async fn rebind(addr: SocketAddr, key: &SigningKey, peers: &[(PublicKey, &str)]) -> Endpoint {
    for _ in 0..100 {
        match Endpoint::bind(addr, key, known_keys(peers), Config::default()) {
            Ok(ep) => return ep,
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    panic!("cannot bind {addr} again");
}

/// A UDP relay in front of a grid, so a test can move the grid behind a
/// fixed address (a restart without goodbyes) or cut the link.
pub struct Relay {
    pub addr: SocketAddr,
    target: Arc<Mutex<Option<SocketAddr>>>,
    task: JoinHandle<()>,
}

impl Relay {
    pub async fn start(target: SocketAddr) -> Relay {
        let front = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let back = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = front.local_addr().unwrap();
        let target = Arc::new(Mutex::new(Some(target)));
        let t = target.clone();
        let task = tokio::spawn(async move {
            let (mut a, mut b) = (vec![0u8; 65536], vec![0u8; 65536]);
            let mut client = None;
            loop {
                let to = *t.lock().unwrap();
                tokio::select! {
                    Ok((n, from)) = front.recv_from(&mut a) => {
                        client = Some(from);
                        if let Some(to) = to {
                            let _ = back.send_to(&a[..n], to).await;
                        }
                    }
                    Ok((n, from)) = back.recv_from(&mut b) => {
                        if let (Some(c), true) = (client, Some(from) == to) {
                            let _ = front.send_to(&b[..n], c).await;
                        }
                    }
                }
            }
        });
        Relay { addr, target, task }
    }

    /// Sends to `target` from now on (`None`: drop everything).
    pub fn retarget(&self, target: Option<SocketAddr>) {
        *self.target.lock().unwrap() = target;
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

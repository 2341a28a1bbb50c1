//! Listening on dial strings, and the accept loop with a shutdown signal.
//!
//! The listener comes from the caller and shutdown is a future passed in
//! (mini-redis's shape), so a test can start a real server on port 0 and
//! stop it cleanly.

use std::future::Future;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ninep::Addr;
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::{PeerInfo, Server};

/// How long shutdown waits for requests in flight before cancelling them.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

/// A bound listener.
pub enum Listener {
    /// TCP.
    Tcp(TcpListener),
    /// A unix socket; the file is removed when the listener is dropped.
    Unix(UnixListener, SocketFile),
}

/// A unix socket path that is unlinked on drop.
#[derive(Debug)]
pub struct SocketFile(PathBuf);

impl Drop for SocketFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

impl Listener {
    /// Binds `addr`. A unix socket is created mode 0600 (owner only); a
    /// stale socket file nobody listens on is replaced, a live one is an error.
    pub async fn bind(addr: &Addr) -> io::Result<Listener> {
        match addr {
            Addr::Unix(path) => bind_unix(path).map(|(l, f)| Listener::Unix(l, f)),
            Addr::Tcp { .. } => {
                let sa = addr.socket_addr_string().unwrap_or_default();
                Ok(Listener::Tcp(TcpListener::bind(sa).await?))
            }
            Addr::Quic { .. } => Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!("{addr}: QUIC listeners are not served by the 9P byte-stream server"),
            )),
        }
    }

    /// The address actually bound (with the real port for port 0).
    pub fn local_addr(&self) -> io::Result<Addr> {
        match self {
            Listener::Tcp(l) => {
                let sa = l.local_addr()?;
                Ok(Addr::Tcp {
                    host: sa.ip().to_string(),
                    port: sa.port(),
                })
            }
            Listener::Unix(_, f) => Ok(Addr::Unix(f.0.clone())),
        }
    }
}

fn bind_unix(path: &Path) -> io::Result<(UnixListener, SocketFile)> {
    if path.exists() {
        match std::os::unix::net::UnixStream::connect(path) {
            Ok(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    format!("{}: another server is listening there", path.display()),
                ))
            }
            Err(_) => std::fs::remove_file(path)?,
        }
    }
    let listener = UnixListener::bind(path)?;
    let file = SocketFile(path.to_owned());
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok((listener, file))
}

/// Accepts connections on `listener` and serves each until `shutdown`
/// completes; then stops accepting, lets requests in flight finish (up to
/// [`SHUTDOWN_GRACE`]), answers the rest with an error, and returns.
pub async fn run(
    server: Server,
    listener: Listener,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut conns = JoinSet::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            _ = &mut shutdown => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => continue,
            a = accept(&listener) => a,
        };
        match accepted {
            Ok((stream, peer)) => {
                let server = server.clone();
                let stop = stop_rx.clone();
                conns.spawn(async move {
                    let _ = server.serve_until(stream, peer, stop).await;
                });
            }
            // EMFILE and friends: back off instead of spinning.
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    drop(listener);
    let _ = stop_tx.send(true);
    let drain = async { while conns.join_next().await.is_some() {} };
    if tokio::time::timeout(SHUTDOWN_GRACE * 2, drain)
        .await
        .is_err()
    {
        conns.abort_all();
    }
    Ok(())
}

enum Stream {
    Tcp(tokio::net::TcpStream),
    Unix(tokio::net::UnixStream),
}

async fn accept(listener: &Listener) -> io::Result<(Stream, PeerInfo)> {
    match listener {
        Listener::Tcp(l) => {
            let (s, addr) = l.accept().await?;
            let _ = s.set_nodelay(true);
            Ok((Stream::Tcp(s), PeerInfo::Tcp(addr)))
        }
        Listener::Unix(l, _) => {
            let (s, _) = l.accept().await?;
            let uid = s.peer_cred().ok().map(|c| c.uid());
            Ok((Stream::Unix(s), PeerInfo::Unix { uid }))
        }
    }
}

impl Server {
    async fn serve_until(
        &self,
        stream: Stream,
        peer: PeerInfo,
        stop: watch::Receiver<bool>,
    ) -> io::Result<()> {
        match stream {
            Stream::Tcp(s) => crate::conn::serve_with_stop(self, s, peer, Some(stop)).await,
            Stream::Unix(s) => crate::conn::serve_with_stop(self, s, peer, Some(stop)).await,
        }
    }
}

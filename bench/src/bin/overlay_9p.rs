//! overlay-9p: one side of a 9P bulk-read benchmark across hosts (or
//! network namespaces), over plain TCP and over QUIC with the same server
//! core, export and client. `bench/overlay.sh` runs `serve` in namespace
//! c and `read` in namespace a, over c's Yggdrasil address.
//!
//! The keys are fixed (server seed 1s, client seed 2s): this is a
//! benchmark, not a deployment. On the overlay, where a QUIC peer's key
//! must derive to its address, `OVERLAY_9P_SERVER_SEED` and
//! `OVERLAY_9P_CLIENT_SEED` (64 hex digits each) give the nodes' own keys.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Result};
use clap::{Parser, Subcommand};
use ed25519_dalek::SigningKey;
use grid_transport::{Config, Endpoint, KnownKeys, PublicKey};
use ninep_client::{Client, ClientConfig, OpenFlags};
use ninep_server::{PeerInfo, Server, ServerConfig};

#[path = "../window.rs"]
mod window;

#[derive(Parser, Debug)]
#[command(
    name = "overlay-9p",
    about = "9P bulk reads over TCP and QUIC between two hosts"
)]
struct Args {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Serve DIR over 9P on TCP and QUIC until killed.
    Serve {
        /// The directory to export.
        dir: PathBuf,
        /// TCP address, [IPV6]:PORT.
        #[arg(long)]
        tcp: SocketAddr,
        /// QUIC (UDP) address, [IPV6]:PORT.
        #[arg(long)]
        quic: SocketAddr,
    },
    /// Read FILE from a server with a window of reads in flight; print Mbit/s.
    Read {
        /// `tcp` or `quic`.
        transport: String,
        /// The server's address for that transport.
        addr: SocketAddr,
        /// The file's name in the export.
        file: String,
        /// Bytes of reads in flight.
        #[arg(long, default_value_t = 8 << 20)]
        window: u64,
    },
}

fn server_key() -> SigningKey {
    key_from_env("OVERLAY_9P_SERVER_SEED", [1; 32])
}

fn client_key() -> SigningKey {
    key_from_env("OVERLAY_9P_CLIENT_SEED", [2; 32])
}

/// The key whose seed is the hex in `var`, or `fixed` when it is unset or
/// not 64 hex digits.
fn key_from_env(var: &str, fixed: [u8; 32]) -> SigningKey {
    let mut seed = fixed;
    if let Ok(hex) = std::env::var(var) {
        let parsed: Option<Vec<u8>> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
            .collect();
        if let Some(Ok(s)) = parsed.map(<[u8; 32]>::try_from) {
            seed = s;
        }
    }
    SigningKey::from_bytes(&seed)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    match Args::parse().cmd {
        Cmd::Serve { dir, tcp, quic } => serve(dir, tcp, quic).await,
        Cmd::Read {
            transport,
            addr,
            file,
            window,
        } => {
            let (mbit, bytes) = read(&transport, addr, &file, window).await?;
            println!("{mbit:.1} Mbit/s {bytes} bytes");
            Ok(())
        }
    }
}

async fn serve(dir: PathBuf, tcp: SocketAddr, quic: SocketAddr) -> Result<()> {
    let root = ninep_export::export(&dir, Default::default())?;
    let server = Server::for_tree(root, ServerConfig::default());
    let listener = tokio::net::TcpListener::bind(tcp).await?;
    let s = server.clone();
    tokio::spawn(async move {
        while let Ok((stream, addr)) = listener.accept().await {
            let _ = stream.set_nodelay(true);
            let s = s.clone();
            tokio::spawn(async move { s.serve_conn(stream, PeerInfo::Tcp(addr)).await });
        }
    });
    let known = KnownKeys::new();
    known.insert(PublicKey::of(&client_key()), "bench");
    let ep = Endpoint::bind(quic, &server_key(), known, Config::default())?;
    eprintln!("overlay-9p: serving tcp {tcp} quic {quic}");
    grid_transport::serve(&ep, server, std::future::pending()).await;
    Ok(())
}

async fn read(transport: &str, addr: SocketAddr, file: &str, window: u64) -> Result<(f64, u64)> {
    let config = ClientConfig::default();
    let start = Instant::now();
    let client = match transport {
        "tcp" => Client::dial_with(&format!("tcp!{}!{}", addr.ip(), addr.port()), config).await?,
        "quic" => {
            let any: SocketAddr = if addr.is_ipv6() {
                "[::]:0".parse()?
            } else {
                "0.0.0.0:0".parse()?
            };
            let ep = Endpoint::bind(any, &client_key(), KnownKeys::new(), Config::default())?;
            let conn = ep
                .connect(
                    addr,
                    &PublicKey::of(&server_key()),
                    grid_transport::Alpn::NineP,
                )
                .await?;
            conn.open_9p(config).await?
        }
        other => bail!("transport {other:?}: want tcp or quic"),
    };
    let root = client.attach("bench", "").await?;
    let mut f = root.walk(&[file]).await?;
    f.open(OpenFlags::READ).await?;
    let size = f.getattr(ninep::l::getattr::BASIC).await?.size;
    let f = Arc::new(f);
    let unit = u64::from(f.iounit());
    let depth = (window / unit).clamp(1, 64) as usize;
    let got = window::read_windowed(f, size, unit, depth).await?;
    if got != size {
        bail!("read {got} of {size} bytes");
    }
    Ok((got as f64 * 8.0 / start.elapsed().as_secs_f64() / 1e6, got))
}

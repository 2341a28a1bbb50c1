//! Start-up, listeners, signals and shutdown.
//!
//! First start creates the state directory (mode 0700), `grid.toml` with
//! every default written out, and the identity key. Every start then binds
//! the state directory's unix socket plus the configured addresses, prints
//! one `gridd: NAME serving ADDR` line per listener on stderr, and serves until
//! SIGTERM or SIGINT: then it stops accepting, lets requests in flight
//! finish, and removes its sockets.

use std::collections::BTreeMap;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context};
use ninep::Addr;
use ninep_server::listen::{self, Listener};
use ninep_server::{Server, ServerConfig};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;

use crate::config::{self, Export};
use crate::identity::Identity;
use crate::namespace::Grid;
use crate::paths;
use crate::peers::GridFs;

/// What the command line asked for; `None` and empty mean "as configured".
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// State directory.
    pub state: Option<PathBuf>,
    /// Configuration file (default STATE/grid.toml).
    pub config: Option<PathBuf>,
    /// Listen addresses, replacing the configured ones.
    pub listen: Vec<Addr>,
    /// Exports added to (or replacing, by name) the configured ones.
    pub exports: Vec<(String, Export)>,
    /// Trace 9P messages.
    pub trace: bool,
    /// Largest msize.
    pub msize: Option<u32>,
}

/// Runs gridd until a signal says stop.
pub async fn run(opts: Options) -> anyhow::Result<()> {
    // Before anything is announced, so a SIGTERM right after start-up is a
    // clean shutdown rather than the default kill.
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let state = opts.state.clone().unwrap_or_else(paths::default_state_dir);
    make_state_dir(&state)?;
    let config_path = opts
        .config
        .clone()
        .unwrap_or_else(|| state.join("grid.toml"));
    if !config_path.exists() {
        std::fs::write(
            &config_path,
            config::default_text(&config::host_name(), &state),
        )
        .with_context(|| {
            format!(
                "{}: cannot write default configuration",
                config_path.display()
            )
        })?;
        eprintln!(
            "gridd: wrote default configuration {}",
            config_path.display()
        );
    }
    let cfg = config::load(&config_path)?;
    let identity = Identity::load_or_create(&state.join("identity.key"))?;

    let mut exports: BTreeMap<String, Export> = cfg.files.clone();
    for (name, e) in &opts.exports {
        config::check_name(name).map_err(anyhow::Error::msg)?;
        exports.insert(name.clone(), e.clone());
    }
    let (grid, problems) = Grid::new(
        cfg.name.clone(),
        identity.public_hex(),
        config_path,
        &exports,
    );
    for p in problems {
        eprintln!("gridd: not serving {p}");
    }
    grid.peers.set_groups(cfg.groups.clone());
    for (name, peer) in &cfg.peers {
        if let Err(e) = grid.peers.add(name, peer.clone()) {
            eprintln!("gridd: peers.{name}: {e}");
        }
    }

    let mut addrs = vec![Addr::Unix(paths::socket_in(&state))];
    addrs.extend(if opts.listen.is_empty() {
        cfg.listen.clone()
    } else {
        opts.listen.clone()
    });
    let mut listeners = Vec::new();
    let mut quic = Vec::new();
    for addr in &addrs {
        if let Addr::Quic { host, .. } = addr {
            let ep = bind_quic(addr, &identity, grid.peers.known_keys()).await?;
            let port = ep.local_addr()?.port();
            quic.push((
                Addr::Quic {
                    host: host.clone(),
                    port,
                },
                ep,
            ));
            continue;
        }
        let l = Listener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr}"))?;
        let bound = l.local_addr()?;
        if !bound.is_loopback_or_local() {
            eprintln!("gridd: warning: {bound} is reachable from other machines, and 9P over TCP is not encrypted");
        }
        listeners.push((bound, l));
    }
    *grid.listen.lock().unwrap_or_else(|p| p.into_inner()) = listeners
        .iter()
        .map(|(a, _)| a.clone())
        .chain(quic.iter().map(|(a, _)| a.clone()))
        .collect();
    // Peers are dialed from the first QUIC listener, or from a socket of
    // their own when nothing listens for them: IPv6 and IPv4 ([::], so
    // overlay addresses can be dialed too), or IPv4 alone where the host
    // has no IPv6.
    match quic.first() {
        Some((_, ep)) => grid.peers.set_endpoint(ep.clone()),
        None => {
            let mut bound = Err(anyhow::anyhow!("no address to bind"));
            for host in ["::", "0.0.0.0"] {
                let any = Addr::Quic {
                    host: host.into(),
                    port: 0,
                };
                bound = bind_quic(&any, &identity, grid.peers.known_keys()).await;
                if bound.is_ok() {
                    break;
                }
            }
            match bound {
                Ok(ep) => grid.peers.set_endpoint(ep),
                Err(e) => eprintln!("gridd: peers cannot be dialed: {e:#}"),
            }
        }
    }

    let ns_file = state.join("ns");
    grid.set_ns_file(ns_file.clone());
    let namespace = grid.namespace();
    for p in crate::namespace::replay_ns(&namespace, grid.resolver().as_ref(), &ns_file).await {
        eprintln!("gridd: ns: {p}");
    }
    grid.set_served(&namespace);
    let fs = GridFs {
        root: namespace.root(),
        peers: grid.peers.clone(),
    };
    let server = Server::new(
        Arc::new(fs),
        ServerConfig {
            max_msize: opts.msize.unwrap_or(cfg.msize),
            trace: opts.trace || cfg.trace,
            auth: None,
        },
    );
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();
    for (addr, l) in listeners {
        let server = server.clone();
        let mut stop = stop_rx.clone();
        eprintln!("gridd: {} serving {addr}", grid.name);
        tasks.spawn(async move {
            let stopped = async move {
                let _ = stop.wait_for(|s| *s).await;
            };
            listen::run(server, l, stopped).await
        });
    }

    // Proposals: answer the peers' exchanges, and send ours to each.
    let (sync_tx, sync_rx) = tokio::sync::mpsc::channel(16);
    tokio::spawn(crate::negotiate::serve(grid.peers.clone(), sync_rx));
    // Pairing (grid-pair/1) is answered by pair.rs, which passes the rest on.
    let sync_tx = crate::pair::router(grid.clone(), sync_tx);
    for name in grid.peers.names() {
        crate::negotiate::push(&grid.peers, &name);
    }
    let lan = if cfg.lan.discover {
        start_lan(&grid, &identity, &quic)
    } else {
        None
    };
    for (addr, ep) in quic {
        let services = grid_transport::Services {
            ninep: Some(server.clone()),
            other: Some(sync_tx.clone()),
        };
        let mut stop = stop_rx.clone();
        eprintln!("gridd: {} serving {addr}", grid.name);
        tasks.spawn(async move {
            let stopped = async move {
                let _ = stop.wait_for(|s| *s).await;
            };
            grid_transport::serve_services(&ep, services, stopped).await;
            ep.close();
            Ok(())
        });
    }
    // The Yggdrasil overlay, in the background: the daemon may come later.
    crate::overlay::spawn(crate::overlay::Join {
        config: cfg.overlay.clone(),
        key: identity.signing_key().clone(),
        grid: grid.clone(),
        server: server.clone(),
        sync: sync_tx.clone(),
        stop: stop_rx.clone(),
    });
    drop(sync_tx);

    tokio::select! {
        _ = term.recv() => eprintln!("gridd: SIGTERM: shutting down"),
        _ = int.recv() => eprintln!("gridd: SIGINT: shutting down"),
        Some(r) = tasks.join_next() => bail!("a listener stopped: {r:?}"),
    }
    // Goodbyes first, so other grids drop this one at once.
    if let Some(lan) = lan {
        lan.stop().await;
    }
    // Jobs first: their end answers the reads waiting on them.
    if let Some(cpu) = &grid.cpu {
        cpu.shutdown().await;
    }
    let _ = stop_tx.send(true);
    while tasks.join_next().await.is_some() {}
    eprintln!("gridd: stopped");
    Ok(())
}

/// Starts LAN discovery for the QUIC listeners that are not loopback-only
/// (none: nothing is advertised or browsed). A peer with no configured
/// address that shows up on the LAN is sent this grid's proposal at once.
fn start_lan(
    grid: &Arc<Grid>,
    identity: &Identity,
    quic: &[(Addr, grid_transport::Endpoint)],
) -> Option<crate::lan::Lan> {
    let bound: Vec<std::net::SocketAddr> = quic
        .iter()
        .filter_map(|(_, ep)| ep.local_addr().ok())
        .collect();
    let me = crate::lan::Me {
        name: grid.name.clone(),
        key: grid_transport::PublicKey::of(identity.signing_key()),
    };
    let peers = grid.peers.clone();
    crate::lan::Lan::start(&me, &bound, grid.peers.lan(), move |key| {
        let Some(name) = peers.name_of(&key) else {
            return;
        };
        if peers.config(&name).is_some_and(|c| c.addrs.is_empty()) {
            crate::negotiate::push(&peers, &name);
        }
    })
}

/// Binds a QUIC endpoint for `addr` (`quic!HOST!PORT`) with this grid's
/// key, accepting the keys in `known`.
async fn bind_quic(
    addr: &Addr,
    identity: &Identity,
    known: grid_transport::KnownKeys,
) -> anyhow::Result<grid_transport::Endpoint> {
    bind_quic_key(addr, identity.signing_key(), known).await
}

/// [`bind_quic`] with the key itself (the overlay binds its own listener
/// from a background task).
pub(crate) async fn bind_quic_key(
    addr: &Addr,
    key: &ed25519_dalek::SigningKey,
    known: grid_transport::KnownKeys,
) -> anyhow::Result<grid_transport::Endpoint> {
    let s = addr
        .socket_addr_string()
        .with_context(|| format!("{addr}: not a network address"))?;
    let sock = tokio::net::lookup_host(&s)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?
        .next()
        .with_context(|| format!("cannot listen on {addr}: no address"))?;
    let config = grid_transport::Config {
        alpns: vec![
            grid_transport::Alpn::NineP,
            grid_transport::Alpn::Sync,
            grid_transport::Alpn::Pair,
        ],
        ..Default::default()
    };
    grid_transport::Endpoint::bind(sock, key, known, config)
        .with_context(|| format!("cannot listen on {addr}"))
}

fn make_state_dir(state: &std::path::Path) -> anyhow::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(state)
        .with_context(|| format!("{}: cannot create state directory", state.display()))?;
    let meta = std::fs::metadata(state)?;
    let mut mode = meta.permissions().mode();
    // The state directory holds the key and the owner's socket: ours alone.
    // SAFETY: geteuid has no preconditions.
    if mode & 0o077 != 0 && std::os::unix::fs::MetadataExt::uid(&meta) == unsafe { libc::geteuid() }
    {
        std::fs::set_permissions(state, std::fs::Permissions::from_mode(0o700))?;
        mode = 0o700;
    }
    if mode & 0o022 != 0 {
        bail!(
            "{}: state directory is writable by others (mode {:o}); run chmod 700 on it",
            state.display(),
            mode & 0o777
        );
    }
    Ok(())
}

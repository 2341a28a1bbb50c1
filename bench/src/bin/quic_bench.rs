//! quic-bench: 9P over QUIC (grid-transport) against 9P over plain TCP,
//! on loopback, with the same server core, export and client.
//!
//! The server (a `ninep-export` of a temporary directory holding one large
//! file) runs on its own tokio runtime and the client on another, as two
//! processes would. For each transport it measures:
//!
//! - bulk read of the file (MB/s), with a streaming window of Treads;
//! - walk+getattr+clunk round trips (ops/s), one at a time and with
//!   several tasks sharing the session;
//! - connection set-up: dial (TCP connect, or QUIC handshake with key
//!   pinning both ways), Tversion and Tattach (µs).
//!
//! Every measurement is repeated `--runs` times and the median printed in
//! one markdown table with the QUIC/TCP ratio (progress on stderr). The
//! transport tuning flags override `grid_transport::Config`, to find
//! where QUIC's limits are.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Parser;
use ed25519_dalek::SigningKey;
use grid_transport::{Config, Endpoint, KnownKeys, PublicKey};
use ninep::l;
use ninep_client::{Client, ClientConfig, Fid, OpenFlags};
use ninep_server::{PeerInfo, Server, ServerConfig};

#[path = "../window.rs"]
mod window;

/// The test file's name.
const FILE: &str = "big";

/// Compare 9P over QUIC with 9P over TCP on loopback.
#[derive(Parser, Debug, Clone)]
#[command(name = "quic-bench", about)]
struct Args {
    /// Size of the test file (suffix K, M or G: powers of 1024)
    #[arg(long, default_value = "512M", value_parser = parse_size)]
    size: u64,
    /// Sequential walk+getattr+clunk round trips per measurement
    #[arg(long, default_value_t = 10_000)]
    ops: u32,
    /// Tasks sharing the session in the concurrent op measurement
    #[arg(long, default_value_t = 16)]
    tasks: u32,
    /// Connection set-ups per measurement
    #[arg(long, default_value_t = 50)]
    setups: u32,
    /// Runs of every measurement; the median is reported
    #[arg(long, default_value_t = 3)]
    runs: u32,
    /// msize asked for
    #[arg(long, default_value_t = ninep_server::DEFAULT_MAX_MSIZE)]
    msize: u32,
    /// Bytes of reads kept in flight by the bulk reader
    #[arg(long, default_value = "8M", value_parser = parse_size)]
    window: u64,
    /// QUIC: per-stream receive window [default: grid-transport's]
    #[arg(long, value_parser = parse_size)]
    stream_window: Option<u64>,
    /// QUIC: per-connection receive window [default: grid-transport's]
    #[arg(long, value_parser = parse_size)]
    connection_window: Option<u64>,
    /// QUIC: send window [default: grid-transport's]
    #[arg(long, value_parser = parse_size)]
    send_window: Option<u64>,
    /// QUIC: largest UDP payload MTU discovery tries [default: grid-transport's]
    #[arg(long)]
    max_udp_payload: Option<u16>,
    /// QUIC: UDP payload size before MTU discovery [default: grid-transport's]
    #[arg(long)]
    initial_mtu: Option<u16>,
    /// QUIC: kernel UDP socket buffer each way [default: grid-transport's]
    #[arg(long, value_parser = parse_size)]
    socket_buffer: Option<u64>,
    /// Measure only these transports (comma-separated: tcp, quic), e.g.
    /// to profile one of them; the ratio column then needs both
    #[arg(long, value_delimiter = ',', default_value = "tcp,quic")]
    only: Vec<String>,
    /// Print the QUIC server's statistics after each bulk read session
    #[arg(long)]
    server_stats: bool,
    /// Where to make the temporary directory [default: $TMPDIR or /tmp]
    #[arg(long)]
    dir: Option<std::path::PathBuf>,
}

fn parse_size(s: &str) -> Result<u64, String> {
    let (num, mult) = match s.chars().last() {
        Some('K' | 'k') => (&s[..s.len() - 1], 1 << 10),
        Some('M' | 'm') => (&s[..s.len() - 1], 1 << 20),
        Some('G' | 'g') => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    num.parse::<u64>()
        .map(|n| n * mult)
        .map_err(|e| format!("{s}: {e}"))
}

fn main() -> Result<()> {
    // As gridd does: keep msize-sized buffers in the heap.
    gridd::alloc::tune_for_large_buffers();
    let args = Args::parse();
    let tmp = match &args.dir {
        Some(d) => tempfile::tempdir_in(d)?,
        None => tempfile::tempdir()?,
    };
    make_file(&tmp.path().join(FILE), args.size)?;

    let server_rt = runtime("server")?;
    let client_rt = runtime("client")?;
    let servers = server_rt.block_on(Servers::start(tmp.path(), &args))?;
    let table = client_rt.block_on(measure_all(&args, &servers))?;
    println!("{table}");
    drop(servers);
    server_rt.shutdown_timeout(Duration::from_secs(1));
    Ok(())
}

fn runtime(name: &str) -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name(name)
        .enable_all()
        .build()?)
}

/// Writes `size` bytes of a non-repeating pattern.
fn make_file(path: &Path, size: u64) -> Result<()> {
    use std::io::Write;
    let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut chunk = vec![0u8; 1 << 20];
    let mut left = size;
    let mut n = 0u64;
    while left > 0 {
        for b in chunk.iter_mut() {
            n = n
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            *b = (n >> 56) as u8;
        }
        let k = left.min(chunk.len() as u64) as usize;
        f.write_all(&chunk[..k])?;
        left -= k as u64;
    }
    f.flush()?;
    // Read it once so both transports read from the page cache.
    std::io::copy(&mut std::fs::File::open(path)?, &mut std::io::sink())?;
    Ok(())
}

/// Both servers, and what a client needs to reach them.
struct Servers {
    tcp: SocketAddr,
    quic: SocketAddr,
    server_key: PublicKey,
    client_key: SigningKey,
    config: Config,
    _quic_ep: Endpoint,
}

impl Servers {
    async fn start(dir: &Path, args: &Args) -> Result<Servers> {
        let root = ninep_export::export(dir, Default::default())?;
        let server = Server::for_tree(root, ServerConfig::default());
        let server_key = SigningKey::from_bytes(&[1; 32]);
        let client_key = SigningKey::from_bytes(&[2; 32]);
        let config = quic_config(args);

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let tcp = listener.local_addr()?;
        let s = server.clone();
        tokio::spawn(async move {
            while let Ok((stream, addr)) = listener.accept().await {
                let _ = stream.set_nodelay(true);
                let s = s.clone();
                tokio::spawn(async move { s.serve_conn(stream, PeerInfo::Tcp(addr)).await });
            }
        });

        let known = KnownKeys::new();
        known.insert(PublicKey::of(&client_key), "bench");
        let ep = Endpoint::bind("127.0.0.1:0".parse()?, &server_key, known, config.clone())?;
        let quic = ep.local_addr()?;
        let serving = ep.clone();
        if args.server_stats {
            tokio::spawn(serve_with_stats(serving, server));
        } else {
            tokio::spawn(async move {
                grid_transport::serve(&serving, server, std::future::pending()).await;
            });
        }
        Ok(Servers {
            tcp,
            quic,
            server_key: PublicKey::of(&server_key),
            client_key,
            config,
            _quic_ep: ep,
        })
    }
}

/// `grid_transport::serve`'s loop, printing each connection's sender
/// statistics when it ends.
async fn serve_with_stats(ep: Endpoint, server: Server) {
    while let Some(incoming) = ep.accept().await {
        let server = server.clone();
        tokio::spawn(async move {
            let Ok(conn) = incoming.handshake().await else {
                return;
            };
            while let Ok(stream) = conn.accept_stream().await {
                let peer = PeerInfo::Grid {
                    key: conn.peer_key().to_hex(),
                    addr: conn.remote_addr(),
                };
                let _ = server.serve_conn(stream, peer).await;
                let st = conn.quinn().stats();
                if st.udp_tx.bytes > 1 << 20 {
                    eprintln!(
                        "  quic server: tx {} datagrams {} bytes in {} sendmsg; lost {} packets; \
                         mtu {}; cwnd {}; congestion events {}; rtt {:?}",
                        st.udp_tx.datagrams,
                        st.udp_tx.bytes,
                        st.udp_tx.ios,
                        st.path.lost_packets,
                        st.path.current_mtu,
                        st.path.cwnd,
                        st.path.congestion_events,
                        st.path.rtt,
                    );
                }
            }
        });
    }
}

fn quic_config(args: &Args) -> Config {
    let mut c = Config::default();
    if let Some(n) = args.stream_window {
        c.stream_window = u32::try_from(n).unwrap_or(u32::MAX);
    }
    if let Some(n) = args.connection_window {
        c.connection_window = u32::try_from(n).unwrap_or(u32::MAX);
    }
    if let Some(n) = args.send_window {
        c.send_window = n;
    }
    if let Some(n) = args.max_udp_payload {
        c.max_udp_payload = n;
    }
    if let Some(n) = args.initial_mtu {
        c.initial_mtu = n;
    }
    if let Some(n) = args.socket_buffer {
        c.socket_buffer = usize::try_from(n).unwrap_or(usize::MAX);
    }
    c
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Transport {
    Tcp,
    Quic,
}

/// A client side: for QUIC, one endpoint reused for every dial.
struct Dialer {
    transport: Transport,
    addr: SocketAddr,
    key: PublicKey,
    ep: Option<Endpoint>,
    msize: u32,
}

impl Dialer {
    fn new(t: Transport, s: &Servers, msize: u32) -> Result<Dialer> {
        let ep = match t {
            Transport::Tcp => None,
            Transport::Quic => Some(Endpoint::bind(
                "127.0.0.1:0".parse()?,
                &s.client_key,
                KnownKeys::new(),
                s.config.clone(),
            )?),
        };
        Ok(Dialer {
            transport: t,
            addr: match t {
                Transport::Tcp => s.tcp,
                Transport::Quic => s.quic,
            },
            key: s.server_key,
            ep,
            msize,
        })
    }

    async fn attach(&self) -> Result<(Client, Fid)> {
        let (client, root, _) = self.attach_conn().await?;
        Ok((client, root))
    }

    /// [`Dialer::attach`], with the seconds each phase took: dial (TCP
    /// connect, QUIC handshake), Tversion (and opening the QUIC stream),
    /// Tattach.
    async fn attach_timed(&self) -> Result<(Client, Fid, [f64; 3])> {
        let config = ClientConfig {
            msize: self.msize,
            ..Default::default()
        };
        let start = Instant::now();
        let client = match &self.ep {
            None => {
                let stream = tokio::net::TcpStream::connect(self.addr).await?;
                stream.set_nodelay(true)?;
                let dialed = start.elapsed();
                (Client::connect(stream, config).await?, dialed)
            }
            Some(ep) => {
                let conn = ep
                    .connect(self.addr, &self.key, grid_transport::Alpn::NineP)
                    .await?;
                let dialed = start.elapsed();
                (conn.open_9p(config).await?, dialed)
            }
        };
        let (client, dialed) = client;
        let versioned = start.elapsed();
        let root = client.attach("bench", "").await?;
        let attached = start.elapsed();
        let secs = [
            dialed.as_secs_f64(),
            (versioned - dialed).as_secs_f64(),
            (attached - versioned).as_secs_f64(),
        ];
        Ok((client, root, secs))
    }

    /// [`Dialer::attach`], with the QUIC connection for its statistics.
    async fn attach_conn(&self) -> Result<(Client, Fid, Option<grid_transport::Connection>)> {
        let config = ClientConfig {
            msize: self.msize,
            ..Default::default()
        };
        let (client, conn) = match &self.ep {
            None => {
                let dial = format!("tcp!{}!{}", self.addr.ip(), self.addr.port());
                (Client::dial_with(&dial, config).await?, None)
            }
            Some(ep) => {
                let conn = ep
                    .connect(self.addr, &self.key, grid_transport::Alpn::NineP)
                    .await?;
                (conn.open_9p(config).await?, Some(conn))
            }
        };
        let root = client.attach("bench", "").await?;
        Ok((client, root, conn))
    }
}

/// One row of results per transport.
#[derive(Default, Debug, Clone, Copy)]
struct Row {
    read_mbs: f64,
    read_cpu: f64,
    ops_seq: f64,
    ops_conc: f64,
    setup_us: f64,
    dial_us: f64,
}

async fn measure_all(args: &Args, s: &Servers) -> Result<String> {
    let mut rows = Vec::new();
    for t in [Transport::Tcp, Transport::Quic] {
        if !args
            .only
            .iter()
            .any(|o| o.eq_ignore_ascii_case(&format!("{t:?}")))
        {
            rows.push(Row::default());
            continue;
        }
        let d = Dialer::new(t, s, args.msize)?;
        let mut runs = Vec::new();
        for run in 0..args.runs {
            eprintln!("{t:?}: run {} of {}", run + 1, args.runs);
            let (read_mbs, read_cpu) = bulk_read(&d, args).await?;
            let (setup_us, dial_us) = setup(&d, args.setups).await?;
            runs.push(Row {
                read_mbs,
                read_cpu,
                ops_seq: walk_ops(&d, args.ops, 1).await?,
                ops_conc: walk_ops(&d, args.ops, args.tasks.max(1)).await?,
                setup_us,
                dial_us,
            });
        }
        rows.push(Row {
            read_mbs: median(runs.iter().map(|r| r.read_mbs)),
            read_cpu: median(runs.iter().map(|r| r.read_cpu)),
            ops_seq: median(runs.iter().map(|r| r.ops_seq)),
            ops_conc: median(runs.iter().map(|r| r.ops_conc)),
            setup_us: median(runs.iter().map(|r| r.setup_us)),
            dial_us: median(runs.iter().map(|r| r.dial_us)),
        });
    }
    let (tcp, quic) = (rows[0], rows[1]);
    let mut out = String::new();
    use std::fmt::Write;
    writeln!(
        out,
        "9P over QUIC vs TCP, loopback: {} MiB file, msize {}, {} MiB read window, \
         median of {} runs\n",
        args.size >> 20,
        args.msize,
        args.window >> 20,
        args.runs
    )?;
    writeln!(out, "| measurement | TCP | QUIC | QUIC/TCP |")?;
    writeln!(out, "|---|---:|---:|---:|")?;
    let line = |out: &mut String, name: &str, t: f64, q: f64, unit: &str| {
        let _ = writeln!(
            out,
            "| {name} | {t:.0} {unit} | {q:.0} {unit} | {:.0}% |",
            100.0 * q / t
        );
    };
    line(&mut out, "bulk read", tcp.read_mbs, quic.read_mbs, "MB/s");
    let _ = writeln!(
        out,
        "| bulk read CPU (client+server) | {:.2} s/GB | {:.2} s/GB | {:.0}% |",
        tcp.read_cpu,
        quic.read_cpu,
        100.0 * quic.read_cpu / tcp.read_cpu
    );
    line(
        &mut out,
        "walk+getattr+clunk, 1 task",
        tcp.ops_seq,
        quic.ops_seq,
        "ops/s",
    );
    let name = format!("walk+getattr+clunk, {} tasks", args.tasks);
    line(&mut out, &name, tcp.ops_conc, quic.ops_conc, "ops/s");
    line(
        &mut out,
        "set-up (dial, version, attach)",
        tcp.setup_us,
        quic.setup_us,
        "µs",
    );
    line(
        &mut out,
        "dial only (TCP connect; QUIC handshake)",
        tcp.dial_us,
        quic.dial_us,
        "µs",
    );
    writeln!(out, "\nQUIC settings: {:?}", s.config)?;
    Ok(out)
}

/// Reads the whole file through a window of Treads; MB/s and CPU
/// seconds per GB.
async fn bulk_read(d: &Dialer, args: &Args) -> Result<(f64, f64)> {
    let (_client, root, conn) = d.attach_conn().await?;
    let mut f = root.walk(&[FILE]).await?;
    f.open(OpenFlags::READ).await?;
    let f = Arc::new(f);
    let unit = u64::from(f.iounit());
    let depth = (args.window / unit).clamp(1, 64) as usize;
    let start = Instant::now();
    let cpu = cpu_time();
    let got = window::read_windowed(f, args.size, unit, depth).await?;
    let secs = start.elapsed().as_secs_f64();
    let cpu = cpu_time() - cpu;
    if let Some(c) = conn {
        let st = c.quinn().stats();
        eprintln!(
            "  quic client: rx {} datagrams {} bytes; tx {} datagrams; lost {} packets; \
             mtu {}; cwnd {}; rtt {:?}",
            st.udp_rx.datagrams,
            st.udp_rx.bytes,
            st.udp_tx.datagrams,
            st.path.lost_packets,
            st.path.current_mtu,
            st.path.cwnd,
            st.path.rtt,
        );
    }
    if got != args.size {
        bail!("{:?}: read {got} of {} bytes", d.transport, args.size);
    }
    Ok((got as f64 / secs / 1e6, cpu / (got as f64 / 1e9)))
}

/// CPU seconds (user and system) this process has used, both runtimes
/// together: client and server of the measurement.
fn cpu_time() -> f64 {
    // SAFETY: getrusage only writes the struct we pass, which is plain data.
    let ru = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut ru);
        ru
    };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// `ops` walk+getattr+clunk round trips spread over `tasks` tasks; ops/s.
async fn walk_ops(d: &Dialer, ops: u32, tasks: u32) -> Result<f64> {
    let (_client, root) = d.attach().await?;
    let root = Arc::new(root);
    let start = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for t in 0..tasks {
        let root = root.clone();
        let n = ops / tasks + u32::from(t < ops % tasks);
        set.spawn(async move {
            for _ in 0..n {
                let f = root.walk(&[FILE]).await?;
                f.getattr(l::getattr::BASIC).await?;
                f.clunk().await?;
            }
            Ok::<(), ninep_client::Error>(())
        });
    }
    while let Some(r) = set.join_next().await {
        r.context("op task")??;
    }
    Ok(f64::from(ops) / start.elapsed().as_secs_f64())
}

/// Median time of dial + Tversion + Tattach; µs.
async fn setup(d: &Dialer, n: u32) -> Result<(f64, f64)> {
    let (mut total, mut dial) = (Vec::new(), Vec::new());
    let mut split: [Vec<f64>; 3] = Default::default();
    let cpu = cpu_time();
    for _ in 0..n.max(1) {
        let start = Instant::now();
        let (client, root, phases) = d.attach_timed().await?;
        total.push(start.elapsed().as_secs_f64() * 1e6);
        for (all, t) in split.iter_mut().zip(phases) {
            all.push(t * 1e6);
        }
        drop(root);
        drop(client);
        let start = Instant::now();
        match &d.ep {
            None => drop(tokio::net::TcpStream::connect(d.addr).await?),
            Some(ep) => drop(
                ep.connect(d.addr, &d.key, grid_transport::Alpn::NineP)
                    .await?,
            ),
        }
        dial.push(start.elapsed().as_secs_f64() * 1e6);
    }
    eprintln!(
        "  {:?}: {:.0} µs CPU per set-up and dial; set-up median µs: dial {:.0}, \
         version {:.0}, attach {:.0}",
        d.transport,
        (cpu_time() - cpu) * 1e6 / f64::from(n.max(1)),
        median(split[0].iter().copied()),
        median(split[1].iter().copied()),
        median(split[2].iter().copied()),
    );
    Ok((median(total.into_iter()), median(dial.into_iter())))
}

fn median(it: impl Iterator<Item = f64>) -> f64 {
    let mut v: Vec<f64> = it.collect();
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

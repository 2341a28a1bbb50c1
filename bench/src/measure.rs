//! The measurements: raw TCP loopback throughput, a bulk read of the test
//! file over 9P, and walk+getattr+clunk round trips, sequential and with
//! several tasks at once.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use ninep::{l, Dialect};
use ninep_client::{Client, ClientConfig, Fid, OpenFlags};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The raw TCP ceiling writes and reads in pieces of this size.
const RAW_CHUNK: usize = 1 << 20;
/// Bytes of reads kept in flight by the streaming reader: the same window
/// that `Fid::read_all` keeps (4 MiB over the iounit, 2 to 64 reads).
const PIPELINE_BYTES: usize = 4 << 20;

/// Moves `size` bytes over a fresh loopback TCP connection in 1 MiB writes
/// to a reader that discards them; returns the time from the first write
/// until the reader has seen end of stream.
pub async fn raw_tcp(size: u64) -> Result<Duration> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let receiver = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await?;
        let mut buf = vec![0u8; RAW_CHUNK];
        let mut got = 0u64;
        loop {
            let n = s.read(&mut buf).await?;
            if n == 0 {
                return Ok::<u64, std::io::Error>(got);
            }
            got += n as u64;
        }
    });
    let mut s = TcpStream::connect(addr).await?;
    let buf: Vec<u8> = (0..RAW_CHUNK).map(|i| (i * 7 + i / 4096) as u8).collect();
    let start = Instant::now();
    let mut left = size;
    while left > 0 {
        let n = left.min(RAW_CHUNK as u64) as usize;
        s.write_all(&buf[..n]).await?;
        left -= n as u64;
    }
    s.shutdown().await?;
    let got = receiver.await??;
    let elapsed = start.elapsed();
    if got != size {
        bail!("raw TCP: received {got} of {size} bytes");
    }
    Ok(elapsed)
}

/// A 9P session with the exported directory attached.
pub struct Session {
    /// The connection (its msize is the negotiated one).
    pub client: Client,
    /// The root of the export.
    pub root: Arc<Fid>,
}

/// Dials `addr` asking for `msize` and 9P2000.L, and attaches `aname`.
pub async fn connect(addr: &str, aname: &str, msize: u32) -> Result<Session> {
    let config = ClientConfig {
        msize,
        dialect: Dialect::L,
    };
    let client = Client::dial_with(addr, config)
        .await
        .with_context(|| format!("dial {addr}"))?;
    let root = client
        .attach("root", aname)
        .await
        .with_context(|| format!("attach {aname} on {addr}"))?;
    Ok(Session {
        client,
        root: Arc::new(root),
    })
}

/// Opens `name` and reads all `size` bytes of it; returns the time from
/// the first Tread to the last Rread. `head` is checked against the start
/// of the file, so a wrong file cannot pass for a fast one.
///
/// The default reader keeps a window of `Fid::read`s in flight (the same
/// depth as `Fid::read_all`) and drops each chunk once it has arrived, as
/// the raw TCP reader does. With `read_all`, `Fid::read_all` is used
/// instead, which also collects the whole file in one buffer.
pub async fn read_file(
    s: &Session,
    name: &str,
    size: u64,
    head: &[u8],
    read_all: bool,
) -> Result<Duration> {
    let mut f = s.root.walk(&[name]).await?;
    f.open(OpenFlags::READ).await?;
    let start = Instant::now();
    let (got, first) = if read_all {
        let data = f.read_all().await?;
        let first = data[..head.len().min(data.len())].to_vec();
        (data.len() as u64, first)
    } else {
        stream(Arc::new(f), size, head.len()).await?
    };
    let elapsed = start.elapsed();
    if got != size {
        bail!("read {got} of {size} bytes");
    }
    if first != head[..first.len()] {
        bail!("the file read back does not start with the bytes written");
    }
    Ok(elapsed)
}

/// Reads `size` bytes in iounit-sized Treads, a window of them in flight;
/// returns the count and the first `keep` bytes. A short read (9P allows
/// them; a server may return only what is cached) is continued from where
/// it ended, after the reads in flight past it are collected, as
/// `Fid::read_all` does.
async fn stream(f: Arc<Fid>, size: u64, keep: usize) -> Result<(u64, Vec<u8>)> {
    let unit = f.iounit();
    let depth = (PIPELINE_BYTES / unit.max(1) as usize).clamp(2, 64);
    let mut window = VecDeque::with_capacity(depth);
    let mut next = 0u64;
    let mut got = 0u64;
    let mut first = Vec::new();
    loop {
        while window.len() < depth && next < size {
            let count = (size - next).min(u64::from(unit)) as u32;
            let f = f.clone();
            let at = next;
            window.push_back((
                at,
                count,
                tokio::spawn(async move { f.read(at, count).await }),
            ));
            next += u64::from(count);
        }
        let Some((at, count, reply)) = window.pop_front() else {
            return Ok((got, first));
        };
        let data = reply.await??;
        if at == 0 {
            first = data[..keep.min(data.len())].to_vec();
        }
        got += data.len() as u64;
        if data.len() < count as usize {
            if data.is_empty() {
                bail!("end of file at offset {at} of {size}");
            }
            for (_, _, r) in window.drain(..) {
                let _ = r.await;
            }
            next = at + data.len() as u64;
        }
    }
}

/// One walk of `name` from the root to a new fid, Tgetattr on it, Tclunk.
async fn walk_stat_clunk(root: &Fid, name: &str) -> Result<()> {
    let f = root.walk(&[name]).await?;
    f.getattr(l::getattr::BASIC).await?;
    f.clunk().await?;
    Ok(())
}

/// `ops` walk+getattr+clunk round trips, one after another.
pub async fn ops_sequential(s: &Session, name: &str, ops: u32) -> Result<Duration> {
    let start = Instant::now();
    for _ in 0..ops {
        walk_stat_clunk(&s.root, name).await?;
    }
    Ok(start.elapsed())
}

/// `ops` walk+getattr+clunk round trips shared among `tasks` tasks on one
/// connection, each task's sequence sequential.
pub async fn ops_parallel(s: &Session, name: &str, ops: u32, tasks: u32) -> Result<Duration> {
    let start = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for t in 0..tasks {
        let share = ops / tasks + u32::from(t < ops % tasks);
        let root = s.root.clone();
        let name = name.to_owned();
        set.spawn(async move {
            for _ in 0..share {
                walk_stat_clunk(&root, &name).await?;
            }
            Ok::<(), anyhow::Error>(())
        });
    }
    while let Some(r) = set.join_next().await {
        r??;
    }
    Ok(start.elapsed())
}

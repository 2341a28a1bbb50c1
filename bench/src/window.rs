//! The bulk read both cross-host benchmarks time (`quic_bench`,
//! `overlay_9p`), included by path: binaries of one package share no
//! modules without a library.

use std::collections::VecDeque;
use std::sync::Arc;

use anyhow::Result;
use ninep_client::Fid;

/// Reads `f` from offset 0 to `size` in `unit`-byte Treads, `depth` of
/// them in flight, until `size` or an empty read; returns the bytes read
/// (the caller compares them with `size`).
pub async fn read_windowed(f: Arc<Fid>, size: u64, unit: u64, depth: usize) -> Result<u64> {
    let mut window = VecDeque::new();
    let (mut next, mut got) = (0u64, 0u64);
    loop {
        while window.len() < depth && next < size {
            let f = f.clone();
            let at = next;
            window.push_back(tokio::spawn(async move { f.read(at, unit as u32).await }));
            next += unit;
        }
        let Some(read) = window.pop_front() else {
            break;
        };
        let data = read.await??;
        if data.is_empty() {
            break;
        }
        got += data.len() as u64;
    }
    Ok(got)
}

//! A job's output stream: `stdout` or `stderr`.
//!
//! Bytes are numbered from 0 as the job writes them, and a read at offset
//! `o` returns the bytes from `o` on, waiting while there are none yet, so
//! any number of readers can each read everything from offset 0, and a
//! client may keep several reads in flight. A read at the end of a stream
//! that has ended returns nothing (end of file).
//!
//! The stream keeps the last [`KEEP`] bytes. Beyond that it behaves like a
//! pipe towards its open readers: while some open reader still needs the
//! oldest bytes, the job's writes wait for it (the job blocks on its
//! pipe), so a reader that keeps reading never loses data. When nobody has
//! the file open, the oldest bytes are dropped instead, and a later read
//! below the oldest kept byte fails with [`ReadError::Dropped`]. A reader
//! "needs" every offset from the lowest of its reads in flight, or if none
//! is in flight, from the end of the furthest read it has had answered.
//!
//! After the job's processes are gone the rest of its pipe (at most
//! [`PIPE_SIZE`]) is taken without waiting, so a job's end never waits on
//! a slow reader.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::watch;

/// Bytes kept per stream.
pub const KEEP: usize = 16 << 20;
/// What gridd asks the kernel for as the size of a job's output pipes.
pub const PIPE_SIZE: usize = 1 << 20;

/// Why a read of a stream failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    /// The bytes asked for were dropped (nobody was reading).
    #[error("bytes before offset {0} were dropped; 16 MiB are kept while nobody reads")]
    Dropped(u64),
    /// The job was removed and its output freed.
    #[error("the job was removed")]
    Removed,
}

/// One output stream.
pub struct Output {
    ring: Mutex<Ring>,
    /// Bumped on every change anyone could be waiting for.
    tick: watch::Sender<()>,
}

#[derive(Default)]
struct Ring {
    data: VecDeque<u8>,
    /// Stream offset of `data[0]`.
    start: u64,
    eof: bool,
    removed: bool,
    /// The job's processes are gone: take the rest without waiting.
    draining: bool,
    readers: HashMap<u64, Reader>,
    next_reader: u64,
}

#[derive(Default)]
struct Reader {
    /// Offsets of reads in flight (with a count for duplicates).
    in_flight: BTreeMap<u64, u32>,
    /// End of the furthest read answered.
    served: u64,
}

impl Ring {
    fn end(&self) -> u64 {
        self.start + self.data.len() as u64
    }

    /// The lowest offset some open reader still needs, if any reader is open.
    fn needed(&self) -> Option<u64> {
        self.readers
            .values()
            .map(|r| {
                let first = r.in_flight.keys().next().copied().unwrap_or(u64::MAX);
                first.min(r.served).max(self.start)
            })
            .min()
    }

    fn drop_front(&mut self, n: usize) {
        self.data.drain(..n);
        self.start += n as u64;
    }
}

impl Default for Output {
    fn default() -> Self {
        Output {
            ring: Mutex::new(Ring::default()),
            tick: watch::Sender::new(()),
        }
    }
}

impl Output {
    /// A new, empty stream.
    pub fn new() -> Arc<Output> {
        Arc::new(Output::default())
    }

    fn lock(&self) -> MutexGuard<'_, Ring> {
        self.ring.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn bump(&self) {
        self.tick.send_replace(());
    }

    /// Registers an open reader; its reads then hold the job back rather
    /// than lose data.
    pub fn open(&self) -> u64 {
        let mut r = self.lock();
        let id = r.next_reader;
        r.next_reader += 1;
        r.readers.insert(id, Reader::default());
        id
    }

    /// Unregisters a reader (its fid was clunked).
    pub fn close(&self, reader: u64) {
        self.lock().readers.remove(&reader);
        self.bump();
    }

    /// Up to `count` bytes at `offset`, waiting until there are some or
    /// the stream has ended. Cancellation-safe: dropping the future
    /// forgets the read.
    pub async fn read(&self, reader: u64, offset: u64, count: u32) -> Result<Vec<u8>, ReadError> {
        let mut tick = self.tick.subscribe();
        let _guard = InFlight::new(self, reader, offset);
        loop {
            {
                let mut r = self.lock();
                if r.removed {
                    return Err(ReadError::Removed);
                }
                if offset < r.start {
                    return Err(ReadError::Dropped(r.start));
                }
                let end = r.end();
                if offset < end || r.eof {
                    let n = (end.saturating_sub(offset)).min(u64::from(count)) as usize;
                    let at = (offset - r.start) as usize;
                    let out = copy_out(&r.data, at, n);
                    if let Some(rd) = r.readers.get_mut(&reader) {
                        rd.served = rd.served.max(offset + n as u64);
                    }
                    drop(r);
                    self.bump();
                    return Ok(out);
                }
            }
            if tick.changed().await.is_err() {
                return Err(ReadError::Removed);
            }
        }
    }

    /// Appends what the job wrote, waiting while open readers still need
    /// the bytes that would have to be dropped to make room.
    pub async fn append(&self, chunk: &[u8]) {
        let mut tick = self.tick.subscribe();
        loop {
            {
                let mut r = self.lock();
                if r.removed {
                    return;
                }
                let over = (r.data.len() + chunk.len()).saturating_sub(KEEP);
                let droppable = match r.needed() {
                    None => r.data.len(),
                    Some(low) => low.saturating_sub(r.start).min(r.data.len() as u64) as usize,
                };
                if over <= droppable || r.draining {
                    r.drop_front(over.min(droppable));
                    r.data.extend(chunk.iter());
                    drop(r);
                    self.bump();
                    return;
                }
            }
            if tick.changed().await.is_err() {
                return;
            }
        }
    }

    /// The job's processes are gone: stop holding its writes back.
    pub fn drain(&self) {
        self.lock().draining = true;
        self.bump();
    }

    /// The end of the stream: readers at the end get end of file.
    pub fn finish(&self) {
        self.lock().eof = true;
        self.bump();
    }

    /// Whether the stream has ended.
    pub fn is_finished(&self) -> bool {
        self.lock().eof
    }

    /// The job was removed: free the bytes; reads fail from now on.
    pub fn remove(&self) {
        {
            let mut r = self.lock();
            r.removed = true;
            r.eof = true;
            r.data = VecDeque::new();
        }
        self.bump();
    }

    /// Bytes written so far.
    pub fn len(&self) -> u64 {
        self.lock().end()
    }

    /// Whether nothing was written.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Copies the job's pipe into `out` until end of file, then finishes it.
pub async fn pump(out: Arc<Output>, mut pipe: impl AsyncRead + Unpin) {
    // Most jobs print little: start small and unzeroed (read_buf fills
    // spare capacity), and grow towards the pipe's size only while reads
    // come back full. A zeroed PIPE_SIZE buffer per stream per job was a
    // measurable part of a short job's cost.
    let mut buf: Vec<u8> = Vec::with_capacity(FIRST_READ);
    loop {
        buf.clear();
        match pipe.read_buf(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                out.append(&buf[..n]).await;
                if n >= buf.capacity() && buf.capacity() < PIPE_SIZE {
                    let more = (buf.capacity() * 4).min(PIPE_SIZE);
                    buf = Vec::with_capacity(more);
                }
            }
        }
    }
    out.finish();
}

/// The first read's buffer in [`pump`].
const FIRST_READ: usize = 16 << 10;

fn copy_out(data: &VecDeque<u8>, at: usize, n: usize) -> Vec<u8> {
    let (a, b) = data.as_slices();
    let mut out = Vec::with_capacity(n);
    if at < a.len() {
        let take = n.min(a.len() - at);
        out.extend_from_slice(&a[at..at + take]);
        out.extend_from_slice(&b[..n - take]);
    } else {
        let at = at - a.len();
        out.extend_from_slice(&b[at..at + n]);
    }
    out
}

/// A read in flight, forgotten when its future ends or is dropped.
struct InFlight<'a> {
    out: &'a Output,
    reader: u64,
    offset: u64,
}

impl<'a> InFlight<'a> {
    fn new(out: &'a Output, reader: u64, offset: u64) -> Self {
        if let Some(r) = out.lock().readers.get_mut(&reader) {
            *r.in_flight.entry(offset).or_default() += 1;
        }
        InFlight {
            out,
            reader,
            offset,
        }
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if let Some(r) = self.out.lock().readers.get_mut(&self.reader) {
            if let Some(n) = r.in_flight.get_mut(&self.offset) {
                *n -= 1;
                if *n == 0 {
                    r.in_flight.remove(&self.offset);
                }
            }
        }
        self.out.bump();
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn pump_keeps_every_byte_while_its_buffer_grows() {
        // Larger than the pipe size, in a pattern that shows any byte
        // lost, doubled or moved when the buffer is replaced.
        let data: Vec<u8> = (0..(3 * PIPE_SIZE + 12345))
            .map(|i| (i % 251) as u8)
            .collect();
        let out = Output::new();
        let r = out.open();
        let (mut w, rd) = tokio::io::duplex(PIPE_SIZE);
        let pumping = tokio::spawn(pump(out.clone(), rd));
        let writer = {
            let data = data.clone();
            tokio::spawn(async move {
                use tokio::io::AsyncWriteExt;
                w.write_all(&data).await.unwrap();
            })
        };
        let mut got = Vec::new();
        loop {
            let chunk = out.read(r, got.len() as u64, 1 << 20).await.unwrap();
            if chunk.is_empty() {
                break;
            }
            got.extend_from_slice(&chunk);
        }
        writer.await.unwrap();
        pumping.await.unwrap();
        assert!(got == data, "{} bytes of {}", got.len(), data.len());
    }

    /// Lets the tasks spawned so far run until each finishes or waits:
    /// the test runtime has one thread, so a yield polls every ready task.
    async fn let_spawned_tasks_run() {
        for _ in 0..8 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test]
    async fn readers_from_zero_and_eof() {
        let out = Output::new();
        let a = out.open();
        let b = out.open();
        out.append(b"hello ").await;
        out.append(b"world").await;
        assert_eq!(out.read(a, 0, 100).await.unwrap(), b"hello world");
        assert_eq!(out.read(b, 6, 3).await.unwrap(), b"wor");
        let waiting = tokio::spawn({
            let out = out.clone();
            async move { out.read(a, 11, 100).await }
        });
        let_spawned_tasks_run().await;
        assert!(!waiting.is_finished());
        out.finish();
        assert_eq!(waiting.await.unwrap().unwrap(), b"");
    }

    #[tokio::test]
    async fn an_open_reader_holds_the_writer_back() {
        let out = Output::new();
        let r = out.open();
        let big = vec![7u8; KEEP];
        out.append(&big).await;
        let writer = tokio::spawn({
            let out = out.clone();
            async move { out.append(b"more").await }
        });
        let_spawned_tasks_run().await;
        assert!(!writer.is_finished(), "writer should wait for the reader");
        let got = out.read(r, 0, 1 << 20).await.unwrap();
        assert_eq!(got.len(), 1 << 20);
        tokio::time::timeout(Duration::from_secs(5), writer)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(out.len(), KEEP as u64 + 4);
        assert_eq!(out.read(r, 0, 1).await, Err(ReadError::Dropped(4)));
    }

    #[tokio::test]
    async fn without_readers_the_oldest_bytes_go() {
        let out = Output::new();
        out.append(&vec![1u8; KEEP]).await;
        out.append(b"tail").await;
        let r = out.open();
        assert_eq!(out.read(r, 0, 1).await, Err(ReadError::Dropped(4)));
        assert_eq!(out.read(r, KEEP as u64, 10).await.unwrap(), b"tail");
        out.remove();
        assert_eq!(out.read(r, KEEP as u64, 10).await, Err(ReadError::Removed));
    }

    #[tokio::test]
    async fn a_cancelled_read_does_not_hold_the_writer() {
        let out = Output::new();
        let r = out.open();
        out.append(&vec![1u8; KEEP]).await;
        let _ = out.read(r, KEEP as u64, 10).now_or_never_for_test();
        // The reader has read everything it asked for: nothing is held.
        let _ = out.read(r, KEEP as u64 - 1, 1).await.unwrap();
        tokio::time::timeout(Duration::from_secs(5), out.append(b"x"))
            .await
            .unwrap();
    }

    trait NowOrNever: std::future::Future + Sized {
        fn now_or_never_for_test(self) -> Option<Self::Output> {
            let waker = std::task::Waker::noop();
            let mut cx = std::task::Context::from_waker(waker);
            let mut f = std::pin::pin!(self);
            match f.as_mut().poll(&mut cx) {
                std::task::Poll::Ready(v) => Some(v),
                std::task::Poll::Pending => None,
            }
        }
    }
    impl<F: std::future::Future> NowOrNever for F {}
}

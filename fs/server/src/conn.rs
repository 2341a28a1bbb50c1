//! One connection: read frames, run each request as its own task, write
//! replies in whatever order they finish.
//!
//! Tversion and Tflush are handled in the read loop itself, because both
//! act on the set of requests in flight. Every other request is spawned, so
//! a read that blocks (a job's stdout, a `wait` file) never holds up the
//! others. A request's reply and its change to the fid table are committed
//! together, under the lock that Tflush also takes: after Rflush is queued,
//! the flushed request can neither reply nor change the table.
//!
//! Memory is bounded per connection. Request frames hold permits from one
//! byte budget until their reply is queued, and replies hold permits from
//! another until written, so a client that sends faster than it reads stalls
//! itself, not the server.

use std::collections::HashMap;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use ninep::{Dialect, Fcall, Msg, Rflush, Rversion, Tversion, IOHDRSZ, NOTAG};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader, BufWriter};
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::AbortHandle;

use crate::error::Error;
use crate::session::{Effect, Session, Version};
use crate::trace;
use crate::Server;

/// The smallest msize we accept: room for a walk of a few names.
const MIN_MSIZE: u32 = 256;

struct InFlight {
    id: u64,
    abort: Option<AbortHandle>,
}

struct State {
    version: Option<Version>,
    inflight: HashMap<u16, InFlight>,
}

struct Out {
    frame: Vec<u8>,
    _permit: Option<OwnedSemaphorePermit>,
}

pub(crate) struct Conn {
    id: u64,
    session: Session,
    state: std::sync::Mutex<State>,
    out: mpsc::UnboundedSender<Out>,
    max_msize: u32,
    trace: bool,
    reply_budget: Arc<Semaphore>,
    next_request: AtomicU64,
}

static NEXT_CONN: AtomicU64 = AtomicU64::new(1);

/// Serves one connection until the peer hangs up or sends a frame that
/// cannot be skipped. All fids are clunked on the way out.
pub(crate) async fn serve<S>(server: &Server, stream: S, peer: crate::PeerInfo) -> io::Result<()>
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    serve_with_stop(server, stream, peer, None).await
}

/// [`serve`], until `stop` turns true: then no new requests are read, those
/// in flight get [`crate::listen::SHUTDOWN_GRACE`] to finish, and the rest
/// are answered with an error.
pub(crate) async fn serve_with_stop<S>(
    server: &Server,
    stream: S,
    peer: crate::PeerInfo,
    stop: Option<watch::Receiver<bool>>,
) -> io::Result<()>
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (rd, wr) = tokio::io::split(stream);
    let (tx, rx) = mpsc::unbounded_channel();
    let budget = budget_for(server.config.max_msize);
    let conn = Arc::new(Conn {
        id: NEXT_CONN.fetch_add(1, Ordering::Relaxed),
        session: Session {
            fs: server.fs.clone(),
            auth: server.config.auth.clone(),
            peer,
            fids: Default::default(),
        },
        state: std::sync::Mutex::new(State {
            version: None,
            inflight: HashMap::new(),
        }),
        out: tx,
        max_msize: server.config.max_msize,
        trace: server.config.trace,
        reply_budget: Arc::new(Semaphore::new(budget)),
        next_request: AtomicU64::new(1),
    });
    let writer = tokio::spawn(write_loop(wr, rx));
    let stopped = async {
        match stop {
            Some(mut stop) => {
                let _ = stop.wait_for(|s| *s).await;
            }
            None => std::future::pending().await,
        }
    };
    let result = tokio::select! {
        r = conn.clone().read_loop(rd, budget) => r,
        _ = stopped => {
            conn.drain(crate::listen::SHUTDOWN_GRACE).await;
            Ok(())
        }
    };
    conn.close().await;
    drop(conn);
    // The writer ends once every sender (the conn and its tasks) is gone.
    let _ = writer.await;
    result
}

/// Per-direction byte budget: enough for several full frames in flight.
fn budget_for(max_msize: u32) -> usize {
    (max_msize as usize).saturating_mul(8).max(1 << 20)
}

async fn write_loop<W: AsyncWrite + Unpin>(wr: W, mut rx: mpsc::UnboundedReceiver<Out>) {
    let mut wr = BufWriter::with_capacity(64 * 1024, wr);
    while let Some(out) = rx.recv().await {
        if wr.write_all(&out.frame).await.is_err() {
            return;
        }
        drop(out);
        // Batch whatever else is ready into one write.
        while let Ok(out) = rx.try_recv() {
            if wr.write_all(&out.frame).await.is_err() {
                return;
            }
        }
        if wr.flush().await.is_err() {
            return;
        }
    }
    let _ = wr.shutdown().await;
}

impl Conn {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn read_loop<R: AsyncRead>(self: Arc<Self>, rd: R, budget: usize) -> io::Result<()> {
        let request_budget = Arc::new(Semaphore::new(budget));
        let mut rd = std::pin::pin!(BufReader::with_capacity(64 * 1024, rd));
        loop {
            let mut size = [0u8; 4];
            match rd.read_exact(&mut size).await {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
                Err(e) => return Err(e),
            }
            let size = u32::from_le_bytes(size);
            let (dialect, limit) = match self.lock().version {
                Some(v) => (v.dialect, v.msize),
                None => (Dialect::P2000, self.max_msize),
            };
            if (size as usize) < ninep::HEADER_SIZE || size > limit {
                let kind = if size > limit {
                    ninep::ErrorKind::Oversize { size, max: limit }
                } else {
                    ninep::ErrorKind::Undersize(size)
                };
                self.trace_line(&format!("botch: {kind}; hanging up"));
                return Err(io::Error::new(io::ErrorKind::InvalidData, kind.to_string()));
            }
            let permit = request_budget
                .clone()
                .acquire_many_owned(size.min(budget as u32))
                .await
                .map_err(|_| io::Error::other("request budget closed"))?;
            let mut frame = vec![0u8; size as usize];
            frame[..4].copy_from_slice(&size.to_le_bytes());
            rd.read_exact(&mut frame[4..]).await?;
            match ninep::decode(dialect, &frame, limit) {
                Ok(Some((msg, _))) => {
                    drop(frame);
                    self.dispatch(msg, permit);
                }
                Ok(None) => return Err(io::Error::other("frame decoder wanted more bytes")),
                Err(e) => {
                    let Some(tag) = e.tag else {
                        return Err(io::Error::new(io::ErrorKind::InvalidData, e.to_string()));
                    };
                    self.trace_line(&format!("<- tag {tag} {e}"));
                    let err = Error::new(libc::EPROTO, e.to_string());
                    let body = err.to_reply(dialect);
                    let mut st = self.lock();
                    let version = st.version;
                    self.send(&mut st, version, tag, body, None);
                }
            }
        }
    }

    fn dispatch(self: &Arc<Self>, msg: Msg, permit: OwnedSemaphorePermit) {
        if self.trace {
            self.trace_line(&format!("<- {}", trace::line(&msg)));
        }
        match msg.body {
            Fcall::Tversion(v) => self.version(msg.tag, v),
            Fcall::Tflush(f) => {
                let mut st = self.lock();
                if let Some(req) = st.inflight.remove(&f.oldtag) {
                    if let Some(abort) = req.abort {
                        abort.abort();
                    }
                }
                let version = st.version;
                self.send(&mut st, version, msg.tag, Rflush {}.into(), None);
            }
            body => self.spawn_request(msg.tag, body, permit),
        }
    }

    fn spawn_request(self: &Arc<Self>, tag: u16, body: Fcall, permit: OwnedSemaphorePermit) {
        let mut st = self.lock();
        let Some(version) = st.version else {
            let err = Error::new(libc::EPROTO, "Tversion must come first");
            self.send(&mut st, None, tag, err.to_reply(Dialect::P2000), None);
            return;
        };
        if tag == NOTAG || st.inflight.contains_key(&tag) {
            let err = Error::new(libc::EPROTO, format!("9P protocol botch: tag {tag} in use"));
            self.send(
                &mut st,
                Some(version),
                tag,
                err.to_reply(version.dialect),
                None,
            );
            return;
        }
        let id = self.next_request.fetch_add(1, Ordering::Relaxed);
        st.inflight.insert(tag, InFlight { id, abort: None });
        drop(st);
        let conn = self.clone();
        let task = tokio::spawn(async move {
            let result = conn.session.handle(version, body).await;
            conn.complete(tag, id, version, result).await;
            drop(permit);
        });
        // Registered after the spawn; the task cannot complete its reply
        // before this because `complete` only drops entries whose id matches
        // and Tflush runs on this same loop, after this function returns.
        if let Some(req) = self.lock().inflight.get_mut(&tag) {
            if req.id == id {
                req.abort = Some(task.abort_handle());
            }
        }
    }

    /// Commits a finished request: the reply and its fid-table effect
    /// together, unless the request was flushed or the session reset.
    async fn complete(
        &self,
        tag: u16,
        id: u64,
        v: Version,
        result: Result<(Fcall, Effect), Error>,
    ) {
        let (body, effect) = match result {
            Ok(ok) => ok,
            Err(e) => (e.to_reply(v.dialect), Effect::None),
        };
        let mut frame = Vec::new();
        let body = match ninep::encode(v.dialect, &Msg { tag, body }, &mut frame) {
            Ok(()) => None,
            Err(e) => Some(Error::io(format!("reply cannot be encoded: {e}")).to_reply(v.dialect)),
        };
        let reply_size = frame.len().max(64) as u32;
        let permit = self
            .reply_budget
            .clone()
            .acquire_many_owned(reply_size.min(budget_for(self.max_msize) as u32))
            .await
            .ok();
        let mut st = self.lock();
        match st.inflight.get(&tag) {
            Some(req) if req.id == id => {
                st.inflight.remove(&tag);
            }
            // Flushed, or the session was reset by Tversion.
            _ => return,
        }
        let applied = Session::apply(&mut self.session.lock_fids(), effect);
        match (applied, body) {
            (Err(e), _) => self.send(&mut st, Some(v), tag, e.to_reply(v.dialect), permit),
            (Ok(()), Some(err)) => self.send(&mut st, Some(v), tag, err, permit),
            (Ok(()), None) => {
                if self.trace {
                    if let Ok(Some((msg, _))) = ninep::decode(v.dialect, &frame, u32::MAX) {
                        self.trace_line(&format!("-> {}", trace::line(&msg)));
                    }
                }
                let _ = self.out.send(Out {
                    frame,
                    _permit: permit,
                });
            }
        }
    }

    /// Queues a reply. Called with the state locked so replies and flushes stay ordered.
    fn send(
        &self,
        _st: &mut State,
        v: Option<Version>,
        tag: u16,
        body: Fcall,
        permit: Option<OwnedSemaphorePermit>,
    ) {
        let dialect = v.map(|v| v.dialect).unwrap_or_default();
        let msg = Msg { tag, body };
        if self.trace {
            self.trace_line(&format!("-> {}", trace::line(&msg)));
        }
        let mut frame = Vec::new();
        if ninep::encode(dialect, &msg, &mut frame).is_ok() {
            let _ = self.out.send(Out {
                frame,
                _permit: permit,
            });
        }
    }

    /// Tversion: negotiate, and abort everything of the previous session (version(5)).
    fn version(self: &Arc<Self>, tag: u16, t: Tversion) {
        let msize = t.msize.min(self.max_msize);
        let mut st = self.lock();
        for (_, req) in st.inflight.drain() {
            if let Some(abort) = req.abort {
                abort.abort();
            }
        }
        let old: Vec<_> = self.session.lock_fids().drain().map(|(_, f)| f).collect();
        if !old.is_empty() {
            tokio::spawn(async move {
                for fid in old {
                    fid.release().await;
                }
            });
        }
        if msize < MIN_MSIZE.max(IOHDRSZ + 1) {
            st.version = None;
            let err = Error::invalid_arg(format!("msize {} is too small", t.msize));
            self.send(&mut st, None, tag, err.to_reply(Dialect::P2000), None);
            return;
        }
        let reply = match Dialect::negotiate(&t.version) {
            Some(dialect) => {
                st.version = Some(Version { dialect, msize });
                Rversion {
                    msize,
                    version: dialect.version_string().to_owned(),
                }
            }
            None => {
                st.version = None;
                Rversion {
                    msize,
                    version: "unknown".to_owned(),
                }
            }
        };
        self.send(&mut st, None, tag, reply.into(), None);
    }

    /// Waits up to `grace` for requests in flight, then answers the rest
    /// with an error so no client is left waiting on a server that left.
    async fn drain(&self, grace: std::time::Duration) {
        let deadline = tokio::time::Instant::now() + grace;
        while !self.lock().inflight.is_empty() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        let mut st = self.lock();
        let version = st.version;
        let tags: Vec<_> = st.inflight.drain().collect();
        for (tag, req) in tags {
            if let Some(abort) = req.abort {
                abort.abort();
            }
            let err = Error::new(libc::ESHUTDOWN, "server shutting down");
            let body = err.to_reply(version.map(|v| v.dialect).unwrap_or_default());
            self.send(&mut st, version, tag, body, None);
        }
    }

    /// The connection is gone: cancel what is running and clunk every fid.
    async fn close(&self) {
        let fids: Vec<_> = {
            let mut st = self.lock();
            for (_, req) in st.inflight.drain() {
                if let Some(abort) = req.abort {
                    abort.abort();
                }
            }
            st.version = None;
            let mut fids = self.session.lock_fids();
            fids.drain().map(|(_, f)| f).collect()
        };
        for fid in fids {
            fid.release().await;
        }
    }

    fn trace_line(&self, line: &str) {
        if self.trace {
            eprintln!("9p[{}] {line}", self.id);
        }
    }
}

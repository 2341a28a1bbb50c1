//! One connection: read frames, run each request as its own task, write
//! replies in whatever order they finish.
//!
//! Tversion and Tflush are handled in the read loop itself, because both
//! act on the set of requests in flight. Treads and Twrites are spawned, so
//! a read that blocks (a job's stdout, a `wait` file) never holds up the
//! others and bulk copies run on every worker. Every other request is
//! started in the read loop, and goes on as its own task only if it has to
//! wait for something: one that needs no waiting (a cached walk or getattr,
//! a clunk) costs no task. A request's reply and its change to the fid
//! table are committed together, under the lock that Tflush also takes:
//! after Rflush is queued, the flushed request can neither reply nor change
//! the table.
//!
//! Memory is bounded per connection. Request frames hold permits from one
//! byte budget until their reply is queued, and replies hold permits from
//! another until written, so a client that sends faster than it reads stalls
//! itself, not the server.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Waker};

use ninep::{Dialect, Fcall, Msg, Rflush, Rversion, Tversion, IOHDRSZ, NOTAG};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
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

/// A reply on its way to the writer: the encoded frame, or for Rread the
/// frame's 11-byte head and the data as the handle returned it, so that the
/// data is written from where it was read into rather than copied first.
struct Out {
    frame: Vec<u8>,
    tail: Vec<u8>,
    _permit: Option<OwnedSemaphorePermit>,
}

/// size[4] Rread tag[2] count[4]: what precedes the data of an Rread.
fn rread_head(tag: u16, count: usize) -> Option<Vec<u8>> {
    let count = u32::try_from(count).ok()?;
    let size = count.checked_add(ninep::HEADER_SIZE as u32 + 4)?;
    let mut head = Vec::with_capacity(ninep::HEADER_SIZE + 4);
    head.extend_from_slice(&size.to_le_bytes());
    head.push(ninep::Rread::TYPE);
    head.extend_from_slice(&tag.to_le_bytes());
    head.extend_from_slice(&count.to_le_bytes());
    Some(head)
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
    let id = NEXT_CONN.fetch_add(1, Ordering::Relaxed);
    let conn = Arc::new(Conn {
        id,
        session: Session {
            fs: server.fs.clone(),
            auth: server.config.auth.clone(),
            peer,
            conn: id,
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
    let mut ended = EndGuard(Some(conn.clone()));
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
    ended.0 = None;
    server.fs.disconnect(id).await;
    drop(conn);
    // The writer ends once every sender (the conn and its tasks) is gone.
    let _ = writer.await;
    result
}

/// Ends a connection whose serving future was dropped before it could
/// (its task aborted: a QUIC connection's streams go when it does): its
/// fids are clunked and the file server told, on a task of their own.
struct EndGuard(Option<Arc<Conn>>);

impl Drop for EndGuard {
    fn drop(&mut self) {
        let Some(conn) = self.0.take() else {
            return;
        };
        // Without a runtime (it is shutting down) there is nobody left to tell.
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                conn.close().await;
                conn.session.fs.disconnect(conn.id).await;
            });
        }
    }
}

/// Per-direction byte budget: enough for several full frames in flight.
fn budget_for(max_msize: u32) -> usize {
    (max_msize as usize).saturating_mul(8).max(1 << 20)
}

/// Replies gathered into one batch at most (and so at most twice as many
/// slices in one writev).
const WRITE_BATCH: usize = 64;

/// Writes replies as they come, whatever is queued at once gathered into
/// one writev(2): the frames are not copied into a buffer first, which for
/// Rread data (up to msize per reply) would cost as much as the read.
async fn write_loop<W: AsyncWrite + Unpin>(mut wr: W, mut rx: mpsc::UnboundedReceiver<Out>) {
    let mut batch: Vec<Out> = Vec::with_capacity(WRITE_BATCH);
    while let Some(out) = rx.recv().await {
        batch.push(out);
        while batch.len() < WRITE_BATCH {
            match rx.try_recv() {
                Ok(out) => batch.push(out),
                Err(_) => break,
            }
        }
        if write_batch(&mut wr, &batch).await.is_err() {
            return;
        }
        // Written: the replies' budget permits go back.
        batch.clear();
    }
    let _ = wr.shutdown().await;
}

/// Writes every byte of `batch`, in order, with as few writev calls as the
/// socket allows.
async fn write_batch<W: AsyncWrite + Unpin>(wr: &mut W, batch: &[Out]) -> io::Result<()> {
    let parts: Vec<&[u8]> = batch
        .iter()
        .flat_map(|o| [&o.frame[..], &o.tail[..]])
        .filter(|p| !p.is_empty())
        .collect();
    // The first unwritten part, and how much of it is written.
    let (mut first, mut skip) = (0, 0);
    while first < parts.len() {
        let slices: Vec<io::IoSlice<'_>> = std::iter::once(&parts[first][skip..])
            .chain(parts[first + 1..].iter().copied())
            .map(io::IoSlice::new)
            .collect();
        let mut n = wr.write_vectored(&slices).await?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        while first < parts.len() && n >= parts[first].len() - skip {
            n -= parts[first].len() - skip;
            first += 1;
            skip = 0;
        }
        skip += n;
    }
    wr.flush().await
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
        // Reads and writes move up to msize bytes each and come many at a
        // time: as tasks, both workers copy data at once.
        let bulk = matches!(body, Fcall::Tread(_) | Fcall::Twrite(_));
        let conn = self.clone();
        let mut request = Box::pin(async move {
            let result = conn.session.handle(version, body).await;
            conn.complete(tag, id, version, result).await;
            drop(permit);
        });
        // Most other requests finish without waiting (a cached walk or
        // getattr, a clunk): run them here, which spares a task and its
        // wake-ups. One that has to wait goes on as its own task, which polls
        // it again with a real waker (so the first poll needs none).
        if !bulk {
            let mut cx = Context::from_waker(Waker::noop());
            if request.as_mut().poll(&mut cx).is_ready() {
                return;
            }
        }
        let task = tokio::spawn(request);
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
        let mut tail = Vec::new();
        let trace_line = self.trace.then(|| {
            trace::line(&Msg {
                tag,
                body: body.clone(),
            })
        });
        let body = match body {
            // The data goes out as it is (see `Out`).
            Fcall::Rread(r) => match rread_head(tag, r.data.len()) {
                Some(head) => {
                    frame = head;
                    tail = r.data;
                    None
                }
                None => Some(Error::io("Rread too large").to_reply(v.dialect)),
            },
            body => match ninep::encode(v.dialect, &Msg { tag, body }, &mut frame) {
                Ok(()) => None,
                Err(e) => {
                    Some(Error::io(format!("reply cannot be encoded: {e}")).to_reply(v.dialect))
                }
            },
        };
        let reply_size = (frame.len() + tail.len()).max(64) as u32;
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
                if let Some(line) = trace_line {
                    self.trace_line(&format!("-> {line}"));
                }
                let _ = self.out.send(Out {
                    frame,
                    tail,
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
                tail: Vec::new(),
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn rread_head_is_the_encoded_frame_head() {
        for len in [0usize, 1, 4096, 65_536 - 11] {
            let data: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let mut frame = Vec::new();
            let msg = Msg {
                tag: 0x1234,
                body: ninep::Rread { data: data.clone() }.into(),
            };
            ninep::encode(Dialect::L, &msg, &mut frame).unwrap();
            let mut ours = rread_head(0x1234, len).unwrap();
            ours.extend_from_slice(&data);
            assert_eq!(ours, frame);
        }
    }

    #[tokio::test]
    async fn write_batch_survives_short_writes() {
        // A duplex with a tiny buffer takes a few bytes per write.
        let (mut a, mut b) = tokio::io::duplex(7);
        let outs: Vec<Out> = (0..5u8)
            .map(|i| Out {
                frame: vec![i; 3 + i as usize],
                tail: vec![100 + i; (i as usize) * 5],
                _permit: None,
            })
            .collect();
        let want: Vec<u8> = outs
            .iter()
            .flat_map(|o| o.frame.iter().chain(o.tail.iter()).copied())
            .collect();
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            b.read_to_end(&mut got).await.unwrap();
            got
        });
        write_batch(&mut a, &outs).await.unwrap();
        drop(a);
        assert_eq!(reader.await.unwrap(), want);
    }

    /// Records the connection each attach came on and each disconnect.
    #[derive(Default)]
    struct Recorder {
        attached: std::sync::Mutex<Vec<u64>>,
        ended: std::sync::Mutex<Vec<u64>>,
        clunked: Arc<std::sync::atomic::AtomicUsize>,
        notify: tokio::sync::Notify,
    }

    struct CountClunk(Arc<std::sync::atomic::AtomicUsize>);

    #[async_trait::async_trait]
    impl crate::Handle for CountClunk {
        async fn clunk(&self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    struct Root(Arc<std::sync::atomic::AtomicUsize>);

    #[async_trait::async_trait]
    impl crate::Node for Root {
        fn qid(&self) -> ninep::Qid {
            crate::synth::dir_qid()
        }
        async fn attr(&self) -> crate::Result<crate::Attr> {
            Ok(crate::Attr::synthetic(self.qid(), 0o555))
        }
        async fn open(&self, _mode: crate::OpenMode) -> crate::Result<crate::Opened> {
            Ok(crate::Opened::new(CountClunk(self.0.clone())))
        }
        fn as_any(&self) -> &dyn std::any::Any {
            self
        }
    }

    #[async_trait::async_trait]
    impl crate::FileServer for Recorder {
        async fn attach(&self, info: &crate::AttachInfo) -> crate::Result<Arc<dyn crate::Node>> {
            self.attached.lock().unwrap().push(info.conn);
            Ok(Arc::new(Root(self.clunked.clone())))
        }
        async fn disconnect(&self, conn: u64) {
            // Fids are clunked before the server hears of the end.
            assert_eq!(self.clunked.load(Ordering::SeqCst), 1);
            self.ended.lock().unwrap().push(conn);
            self.notify.notify_one();
        }
    }

    /// Tversion, Tattach and Topen of the root on `io`, each answered.
    async fn attach_and_open(io: &mut tokio::io::DuplexStream) {
        let msgs: [(u16, Fcall); 3] = [
            (
                NOTAG,
                Tversion {
                    msize: 8192,
                    version: "9P2000".into(),
                }
                .into(),
            ),
            (
                1,
                ninep::Tattach {
                    fid: 0,
                    afid: ninep::NOFID,
                    uname: "u".into(),
                    aname: String::new(),
                    n_uname: 0,
                }
                .into(),
            ),
            (2, ninep::Topen { fid: 0, mode: 0 }.into()),
        ];
        let mut buf = Vec::new();
        for (tag, body) in msgs {
            let mut out = Vec::new();
            ninep::encode(Dialect::P2000, &Msg { tag, body }, &mut out).unwrap();
            io.write_all(&out).await.unwrap();
            loop {
                if let Some((m, n)) = ninep::decode(Dialect::P2000, &buf, u32::MAX).unwrap() {
                    buf.drain(..n);
                    assert!(!matches!(m.body, Fcall::Rerror(_)), "{m:?}");
                    break;
                }
                let mut chunk = [0u8; 4096];
                let n = io.read(&mut chunk).await.unwrap();
                assert!(n > 0, "server hung up");
                buf.extend_from_slice(&chunk[..n]);
            }
        }
    }

    async fn ended_once(fs: &Recorder) {
        tokio::time::timeout(std::time::Duration::from_secs(10), async {
            while fs.ended.lock().unwrap().is_empty() {
                fs.notify.notified().await;
            }
        })
        .await
        .expect("disconnect called");
        assert_eq!(*fs.ended.lock().unwrap(), *fs.attached.lock().unwrap());
    }

    /// A server on a [`Recorder`], serving one connection whose other end
    /// (returned) has attached and opened the root.
    async fn serve_attached() -> (
        Arc<Recorder>,
        tokio::io::DuplexStream,
        tokio::task::JoinHandle<io::Result<()>>,
    ) {
        let fs = Arc::new(Recorder::default());
        let server = crate::Server::new(fs.clone(), crate::ServerConfig::default());
        let (mut a, b) = tokio::io::duplex(1 << 16);
        let task =
            tokio::spawn(async move { server.serve_conn(b, crate::PeerInfo::Unknown).await });
        attach_and_open(&mut a).await;
        (fs, a, task)
    }

    #[tokio::test]
    async fn disconnect_follows_a_hang_up_with_the_attach_conn() {
        let (fs, a, task) = serve_attached().await;
        drop(a);
        task.await.unwrap().unwrap();
        ended_once(&fs).await;
    }

    #[tokio::test]
    async fn disconnect_follows_a_cancelled_connection() {
        let (fs, a, task) = serve_attached().await;
        task.abort();
        ended_once(&fs).await;
        drop(a);
    }
}

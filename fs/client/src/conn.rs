//! One connection's session state: the tag table, flush on cancel, and
//! the fid-number pool. The tasks that move its bytes are in [`crate::io`].
//!
//! Every request goes through [`Shared::start`], which allocates a tag,
//! records a [`Slot`] and queues the frame for the writer task, and returns
//! a [`Pending`] future for the reply. The reader task decodes each reply
//! and hands it to [`Shared::dispatch`], which finds the slot's waiter. Nothing here awaits while holding the
//! state lock, and frames are queued in the order their slots are recorded,
//! so a Tflush always follows the request it flushes.
//!
//! Fid numbers are tracked here too, because whether a fid exists on the
//! server is decided by replies, which only the reader sees: a Twalk's
//! newfid becomes live when its Rwalk says so, even if the caller has gone
//! away meanwhile (then the reader clunks it); a Tclunk's fid number is free
//! again only once its reply arrives.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{ready, Context, Poll};

use ninep::{Dialect, Fcall, Msg, HEADER_SIZE, NOTAG};
use tokio::sync::{mpsc, oneshot, Notify};

use crate::error::{errno_text, Error, Result};

/// State shared by the client handles, the reader and the writer.
pub(crate) struct Shared {
    pub(crate) dialect: Dialect,
    pub(crate) msize: u32,
    state: Mutex<State>,
    fids: Mutex<FidPool>,
    /// Woken when a tag is freed or the connection closes.
    tag_freed: Notify,
    /// Tells the writer to finish: the last handle is gone, or the
    /// connection failed.
    pub(crate) hangup: Notify,
    tx: mpsc::UnboundedSender<Vec<u8>>,
    /// Optional .L requests the server answered with ENOSYS or EOPNOTSUPP,
    /// so callers go straight to their fallbacks.
    pub(crate) lacks: Lacks,
}

/// Requests a server has said it does not implement.
#[derive(Default)]
pub(crate) struct Lacks {
    pub(crate) unlinkat: AtomicBool,
    pub(crate) renameat: AtomicBool,
}

struct State {
    pending: HashMap<u16, Slot>,
    tags: TagPool,
    /// Internal requests (Tflush, background Tclunk) waiting for a tag,
    /// queued because they are made from `Drop`, which cannot wait.
    deferred: VecDeque<(Vec<u8>, Slot)>,
    closed: Option<Error>,
    next_id: u64,
}

/// What a tag in flight is waiting for.
enum Slot {
    Call(Call),
    /// Our Tflush of `oldtag`; both tags stay reserved until its reply.
    Flush {
        oldtag: u16,
    },
}

struct Call {
    /// Tells this request apart from a later one that reuses its tag.
    id: u64,
    /// The request's name, for errors.
    name: &'static str,
    /// The R-message type that answers it.
    expect: u8,
    /// `None` once the caller has gone away.
    waiter: Option<oneshot::Sender<Result<Reply>>>,
    effect: SlotEffect,
    flushable: bool,
    /// A Tflush for this tag has been sent (or queued).
    flushing: bool,
    /// The reply came while flushing; the tag waits for the Rflush.
    answered: bool,
}

/// What a request does to fid numbers, applied when its reply arrives.
#[derive(Clone, Copy)]
enum SlotEffect {
    None,
    /// Tclunk, Tremove: the fid is gone whatever the reply says.
    Clunks(u32),
    /// Twalk, Tattach, Txattrwalk: `fid` exists if the request succeeds.
    Creates {
        fid: u32,
        nwname: usize,
    },
}

/// What a request does to fid numbers, as the caller hands it over.
pub(crate) enum Effect {
    None,
    Clunks(FidNum),
    Creates(NewFid, usize),
}

/// A successful reply, with the new fid if the request made one.
pub(crate) struct Reply {
    pub(crate) body: Fcall,
    pub(crate) fid: Option<FidNum>,
}

impl Shared {
    pub(crate) fn new(dialect: Dialect, msize: u32, tx: mpsc::UnboundedSender<Vec<u8>>) -> Shared {
        Shared {
            dialect,
            msize,
            state: Mutex::new(State {
                pending: HashMap::new(),
                tags: TagPool {
                    free: Vec::new(),
                    next: 0,
                },
                deferred: VecDeque::new(),
                closed: None,
                next_id: 0,
            }),
            fids: Mutex::new(FidPool {
                free: Vec::new(),
                next: 0,
            }),
            tag_freed: Notify::new(),
            hangup: Notify::new(),
            tx,
            lacks: Lacks::default(),
        }
    }

    /// Sends `body` and returns the future of its reply.
    ///
    /// Waits only for a free tag; once this returns the request is on its
    /// way, and dropping the [`Pending`] flushes it if `flushable`.
    pub(crate) async fn start(
        self: &Arc<Self>,
        body: Fcall,
        effect: Effect,
        flushable: bool,
    ) -> Result<Pending> {
        let name = body.name();
        let expect = body.msg_type().wrapping_add(1);
        let mut frame = self.encode(body)?;
        let mut effect = Some(effect);
        loop {
            let notified = self.tag_freed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let started = {
                let mut st = self.lock();
                if let Some(e) = &st.closed {
                    Some(Err(e.duplicate()))
                } else if let Some(tag) = st.tags.alloc() {
                    set_tag(&mut frame, tag);
                    let id = st.new_id();
                    let (tx, rx) = oneshot::channel();
                    let effect = match effect.take() {
                        Some(Effect::Clunks(fid)) => SlotEffect::Clunks(fid.into_raw()),
                        Some(Effect::Creates(fid, nwname)) => SlotEffect::Creates {
                            fid: fid.into_raw(),
                            nwname,
                        },
                        Some(Effect::None) | None => SlotEffect::None,
                    };
                    let call = Call {
                        id,
                        name,
                        expect,
                        waiter: Some(tx),
                        effect,
                        flushable,
                        flushing: false,
                        answered: false,
                    };
                    st.pending.insert(tag, Slot::Call(call));
                    self.queue(std::mem::take(&mut frame));
                    Some(Ok(Pending {
                        shared: self.clone(),
                        tag,
                        id,
                        rx,
                        done: false,
                    }))
                } else {
                    None
                }
            };
            // `effect` (which may clunk on drop) is dropped here, unlocked.
            if let Some(result) = started {
                return result;
            }
            notified.await;
        }
    }

    /// Clunks `fid` in the background; its number is freed by the reply.
    pub(crate) fn clunk_detached(self: &Arc<Self>, fid: u32) {
        let Ok(frame) = self.encode(Fcall::Tclunk(ninep::Tclunk { fid })) else {
            return;
        };
        let mut st = self.lock();
        if st.closed.is_some() {
            return;
        }
        let call = Call {
            id: st.new_id(),
            name: "Tclunk",
            expect: ninep::Rclunk::TYPE,
            waiter: None,
            effect: SlotEffect::Clunks(fid),
            flushable: false,
            flushing: false,
            answered: false,
        };
        self.send_internal(&mut st, frame, Slot::Call(call));
    }

    /// Takes a fid number no fid on the server uses.
    pub(crate) fn reserve_fid(self: &Arc<Self>) -> Result<NewFid> {
        let fid = self
            .fid_pool()
            .alloc()
            .ok_or_else(|| Error::Invalid("out of fid numbers".into()))?;
        Ok(NewFid {
            shared: self.clone(),
            fid: Some(fid),
        })
    }

    /// Why requests fail from now on.
    pub(crate) fn closed_error(&self) -> Error {
        self.lock()
            .closed
            .as_ref()
            .map_or(Error::Closed, Error::duplicate)
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.lock().closed.is_some()
    }

    /// Fails every request in flight with `err` and refuses new ones.
    pub(crate) fn close(&self, err: Error) {
        let waiters: Vec<_> = {
            let mut st = self.lock();
            if st.closed.is_some() {
                return;
            }
            st.deferred.clear();
            let waiters = st
                .pending
                .drain()
                .filter_map(|(_, slot)| match slot {
                    Slot::Call(call) => call.waiter,
                    Slot::Flush { .. } => None,
                })
                .collect();
            st.closed = Some(err);
            waiters
        };
        self.tag_freed.notify_waiters();
        self.hangup.notify_one();
        for w in waiters {
            let _ = w.send(Err(self.closed_error()));
        }
    }

    /// Stops the writer after it has sent what is queued.
    pub(crate) fn hang_up(&self) {
        self.hangup.notify_one();
    }

    /// The caller of the request `(tag, id)` went away before its reply.
    fn cancel(&self, tag: u16, id: u64) {
        let mut st = self.lock();
        if st.closed.is_some() {
            return;
        }
        let Some(Slot::Call(call)) = st.pending.get_mut(&tag) else {
            return;
        };
        if call.id != id || call.waiter.take().is_none() || !call.flushable {
            return;
        }
        call.flushing = true;
        let Ok(frame) = self.encode(Fcall::Tflush(ninep::Tflush { oldtag: tag })) else {
            return;
        };
        self.send_internal(&mut st, frame, Slot::Flush { oldtag: tag });
    }

    /// Hands a reply to its waiter. An error means the server broke the
    /// protocol and the connection must close.
    pub(crate) fn dispatch(self: &Arc<Self>, msg: Msg) -> Result<()> {
        let Msg { tag, body } = msg;
        let mut deliver = None;
        let mut discard = None;
        {
            let mut st = self.lock();
            let Some(slot) = st.pending.remove(&tag) else {
                return Err(Error::Protocol(format!(
                    "{} for tag {tag}, which is not in flight",
                    body.name()
                )));
            };
            match slot {
                Slot::Call(mut call) => {
                    let is_error = matches!(body, Fcall::Rerror(_) | Fcall::Rlerror(_));
                    let botch = if call.answered {
                        Some(format!("second reply ({}) for tag {tag}", body.name()))
                    } else if !is_error && body.msg_type() != call.expect {
                        Some(format!(
                            "{} in reply to {} (tag {tag})",
                            body.name(),
                            call.name
                        ))
                    } else {
                        None
                    };
                    if let Some(botch) = botch {
                        // Left in place so that close() fails its waiter
                        // with this error rather than a bare "closed".
                        st.pending.insert(tag, Slot::Call(call));
                        return Err(Error::Protocol(botch));
                    }
                    let fid = self.apply_effect(call.effect, Some(&body));
                    let result = self.reply_result(body, fid);
                    if call.flushing {
                        // The request completed after all (flush(5)); its tag
                        // stays reserved until the Rflush.
                        call.answered = true;
                        st.pending.insert(tag, Slot::Call(call));
                        discard = Some(result);
                    } else {
                        self.free_tag(&mut st, tag);
                        match call.waiter {
                            Some(w) => deliver = Some((w, result)),
                            None => discard = Some(result),
                        }
                    }
                }
                Slot::Flush { oldtag } => {
                    if !matches!(
                        body,
                        Fcall::Rflush(_) | Fcall::Rerror(_) | Fcall::Rlerror(_)
                    ) {
                        st.pending.insert(tag, Slot::Flush { oldtag });
                        return Err(Error::Protocol(format!(
                            "{} in reply to Tflush (tag {tag})",
                            body.name()
                        )));
                    }
                    self.free_tag(&mut st, tag);
                    if let Some(Slot::Call(call)) = st.pending.remove(&oldtag) {
                        if !call.answered {
                            // Flushed before it happened: it made no fid.
                            self.apply_effect(call.effect, None);
                        }
                    }
                    self.free_tag(&mut st, oldtag);
                }
            }
        }
        // Unlocked: a discarded new fid clunks itself, which locks.
        if let Some((w, result)) = deliver {
            drop(w.send(result));
        }
        drop(discard);
        Ok(())
    }

    /// Settles fid numbers for a request that got `reply` (or none, when
    /// flushed); returns the request's new fid if it made one.
    fn apply_effect(self: &Arc<Self>, effect: SlotEffect, reply: Option<&Fcall>) -> Option<FidNum> {
        match effect {
            SlotEffect::None => None,
            SlotEffect::Clunks(fid) => {
                if reply.is_some() {
                    self.fid_pool().free(fid);
                }
                // A clunk that was flushed unanswered leaves the fid in an
                // unknown state; its number is never reused.
                None
            }
            SlotEffect::Creates { fid, nwname } => {
                let made = match reply {
                    Some(Fcall::Rwalk(r)) => r.wqids.len() == nwname,
                    Some(Fcall::Rattach(_) | Fcall::Rauth(_) | Fcall::Rxattrwalk(_)) => true,
                    _ => false,
                };
                if made {
                    Some(FidNum {
                        shared: self.clone(),
                        fid: Some(fid),
                    })
                } else {
                    self.fid_pool().free(fid);
                    None
                }
            }
        }
    }

    fn reply_result(&self, body: Fcall, fid: Option<FidNum>) -> Result<Reply> {
        match body {
            Fcall::Rerror(r) => Err(Error::Remote {
                errno: (self.dialect == Dialect::U && r.errno != 0).then_some(r.errno),
                msg: r.ename,
            }),
            Fcall::Rlerror(r) => Err(Error::Remote {
                errno: Some(r.ecode),
                msg: errno_text(r.ecode),
            }),
            body => Ok(Reply { body, fid }),
        }
    }

    /// Sends an internal request now, or when a tag is free.
    fn send_internal(&self, st: &mut State, mut frame: Vec<u8>, slot: Slot) {
        match st.tags.alloc() {
            Some(tag) => {
                set_tag(&mut frame, tag);
                st.pending.insert(tag, slot);
                self.queue(frame);
            }
            None => st.deferred.push_back((frame, slot)),
        }
    }

    fn free_tag(&self, st: &mut State, tag: u16) {
        match st.deferred.pop_front() {
            Some((mut frame, slot)) => {
                set_tag(&mut frame, tag);
                st.pending.insert(tag, slot);
                self.queue(frame);
            }
            None => {
                st.tags.free(tag);
                self.tag_freed.notify_waiters();
            }
        }
    }

    fn queue(&self, frame: Vec<u8>) {
        // The writer only stops after `close` or `hang_up`; a frame queued
        // after that is never answered, and close() has already failed or
        // will fail its waiter.
        let _ = self.tx.send(frame);
    }

    fn encode(&self, body: Fcall) -> Result<Vec<u8>> {
        let mut frame = Vec::new();
        let msg = Msg { tag: NOTAG, body };
        ninep::encode(self.dialect, &msg, &mut frame)
            .map_err(|e| Error::Invalid(format!("{}: {e}", msg.body.name())))?;
        if frame.len() > self.msize as usize {
            return Err(Error::Invalid(format!(
                "{} of {} bytes exceeds msize {}",
                msg.body.name(),
                frame.len(),
                self.msize
            )));
        }
        Ok(frame)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves the tables consistent enough
        // to fail requests; poisoning would only turn errors into panics.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn fid_pool(&self) -> MutexGuard<'_, FidPool> {
        self.fids.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl State {
    fn new_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }
}

fn set_tag(frame: &mut [u8], tag: u16) {
    frame[5..HEADER_SIZE].copy_from_slice(&tag.to_le_bytes());
}

/// The reply to one request. Dropping it before it resolves flushes the
/// request (if it is flushable) and keeps its tag until the server agrees.
pub(crate) struct Pending {
    shared: Arc<Shared>,
    tag: u16,
    id: u64,
    rx: oneshot::Receiver<Result<Reply>>,
    done: bool,
}

impl Future for Pending {
    type Output = Result<Reply>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let got = ready!(Pin::new(&mut self.rx).poll(cx));
        self.done = true;
        Poll::Ready(got.unwrap_or_else(|_| Err(self.shared.closed_error())))
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if !self.done {
            self.shared.cancel(self.tag, self.id);
        }
        // `rx` drops after this; a reply already in it (with a new fid)
        // cleans up after itself.
    }
}

/// A live fid number: the fid exists on the server, and dropping this
/// clunks it in the background.
pub(crate) struct FidNum {
    shared: Arc<Shared>,
    fid: Option<u32>,
}

impl FidNum {
    pub(crate) fn get(&self) -> u32 {
        self.fid.unwrap_or(ninep::NOFID)
    }

    /// Gives up the number without clunking; the caller settles it.
    fn into_raw(mut self) -> u32 {
        self.fid.take().unwrap_or(ninep::NOFID)
    }
}

impl Drop for FidNum {
    fn drop(&mut self) {
        if let Some(fid) = self.fid.take() {
            self.shared.clunk_detached(fid);
        }
    }
}

/// A reserved fid number not yet used on the server; dropping it frees it.
pub(crate) struct NewFid {
    shared: Arc<Shared>,
    fid: Option<u32>,
}

impl NewFid {
    pub(crate) fn get(&self) -> u32 {
        self.fid.unwrap_or(ninep::NOFID)
    }

    fn into_raw(mut self) -> u32 {
        self.fid.take().unwrap_or(ninep::NOFID)
    }
}

impl Drop for NewFid {
    fn drop(&mut self) {
        if let Some(fid) = self.fid.take() {
            self.shared.fid_pool().free(fid);
        }
    }
}

/// Tags `0..NOTAG`, lowest-recently-freed first.
struct TagPool {
    free: Vec<u16>,
    next: u16,
}

impl TagPool {
    fn alloc(&mut self) -> Option<u16> {
        self.free.pop().or_else(|| {
            (self.next < NOTAG).then(|| {
                self.next += 1;
                self.next - 1
            })
        })
    }

    fn free(&mut self, tag: u16) {
        self.free.push(tag);
    }
}

/// Fid numbers `0..NOFID`.
struct FidPool {
    free: Vec<u32>,
    next: u32,
}

impl FidPool {
    fn alloc(&mut self) -> Option<u32> {
        self.free.pop().or_else(|| {
            (self.next < ninep::NOFID).then(|| {
                self.next += 1;
                self.next - 1
            })
        })
    }

    fn free(&mut self, fid: u32) {
        self.free.push(fid);
    }
}

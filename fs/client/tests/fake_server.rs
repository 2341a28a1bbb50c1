//! The client against a scripted server over `tokio::io::duplex`: raw
//! frames in and out, so each test controls exactly what the server says,
//! including lies. Every test is bounded by a timeout: a client that hangs
//! fails instead of stalling the suite.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::future::Future;
use std::task::Poll;
use std::time::Duration;

use ninep::{Dialect, Fcall, Msg, Qid, NOTAG};
use ninep_client::{Client, ClientConfig, Error, Fid};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::time::timeout;

const LIMIT: Duration = Duration::from_secs(10);

/// The server side of a duplex: reads T-messages, writes R-messages.
struct Fake {
    io: DuplexStream,
    dialect: Dialect,
    buf: Vec<u8>,
}

impl Fake {
    async fn recv(&mut self) -> Msg {
        loop {
            if let Some((msg, n)) = ninep::decode(self.dialect, &self.buf, u32::MAX).unwrap() {
                self.buf.drain(..n);
                return msg;
            }
            self.buf.reserve(64 * 1024);
            let n = self.io.read_buf(&mut self.buf).await.unwrap();
            assert!(n > 0, "client hung up");
        }
    }

    async fn send(&mut self, tag: u16, body: impl Into<Fcall>) {
        let mut out = Vec::new();
        let msg = Msg {
            tag,
            body: body.into(),
        };
        ninep::encode(self.dialect, &msg, &mut out).unwrap();
        self.io.write_all(&out).await.unwrap();
    }

    async fn send_raw(&mut self, bytes: &[u8]) {
        self.io.write_all(bytes).await.unwrap();
    }

    /// Receives one request and answers it with `reply(request)`.
    async fn answer(&mut self, reply: impl FnOnce(&Fcall) -> Fcall) -> Msg {
        let m = self.recv().await;
        let r = reply(&m.body);
        self.send(m.tag, r).await;
        m
    }
}

/// A client connected to a fake that answers Tversion with `version` and
/// `msize`.
async fn pair_with(
    config: ClientConfig,
    version: &str,
    msize: u32,
) -> (Result<Client, Error>, Fake) {
    let (a, b) = tokio::io::duplex(1 << 20);
    let mut fake = Fake {
        io: b,
        dialect: Dialect::P2000,
        buf: Vec::new(),
    };
    let (client, _) = tokio::join!(Client::connect(a, config), async {
        let m = fake.recv().await;
        assert_eq!(m.tag, NOTAG);
        let Fcall::Tversion(t) = m.body else {
            panic!("{m:?}")
        };
        assert_eq!(t.msize, config.msize);
        let rversion = ninep::Rversion {
            msize,
            version: version.into(),
        };
        fake.send(NOTAG, rversion).await;
    });
    fake.dialect = client.as_ref().map_or(Dialect::P2000, Client::dialect);
    (client, fake)
}

async fn pair() -> (Client, Fake) {
    let (c, f) = pair_with(ClientConfig::default(), "9P2000.L", 8192 + 24).await;
    (c.unwrap(), f)
}

fn qid(path: u64) -> Qid {
    Qid {
        ty: 0,
        version: 0,
        path,
    }
}

fn dir_qid() -> Qid {
    Qid {
        ty: ninep::qt::DIR,
        version: 0,
        path: 1,
    }
}

/// Attaches, with the fake answering Rattach.
async fn attach(c: &Client, fake: &mut Fake) -> Fid {
    let (fid, _) = tokio::join!(c.attach("u", ""), async {
        fake.answer(|_| ninep::Rattach { qid: dir_qid() }.into())
            .await
    });
    fid.unwrap()
}

/// Polls `fut` once and drops it: a request sent and then cancelled.
async fn poll_once<F: Future>(fut: F) -> Option<F::Output> {
    let mut fut = std::pin::pin!(fut);
    std::future::poll_fn(|cx| {
        Poll::Ready(match fut.as_mut().poll(cx) {
            Poll::Ready(v) => Some(v),
            Poll::Pending => None,
        })
    })
    .await
}

async fn bounded<F: Future>(f: F) -> F::Output {
    timeout(LIMIT, f).await.expect("test timed out")
}

// ---- version ----

#[tokio::test]
async fn version_adopts_lesser_dialect_and_msize() {
    bounded(async {
        let (c, _fake) = pair_with(ClientConfig::default(), "9P2000", 4096).await;
        let c = c.unwrap();
        assert_eq!(c.dialect(), Dialect::P2000);
        assert_eq!(c.msize(), 4096);
        let (c, _fake) = pair_with(ClientConfig::default(), "9P2000.u", 1 << 30).await;
        let c = c.unwrap();
        assert_eq!(c.dialect(), Dialect::U);
        assert_eq!(c.msize(), ninep_client::DEFAULT_MSIZE, "never above ours");
    })
    .await;
}

#[tokio::test]
async fn version_refusals_are_errors() {
    bounded(async {
        let (c, _f) = pair_with(ClientConfig::default(), "unknown", 8192).await;
        let e = c.unwrap_err().to_string();
        assert!(e.contains("does not speak 9P2000.L"), "{e}");

        let p2000 = ClientConfig {
            dialect: Dialect::P2000,
            ..ClientConfig::default()
        };
        let (c, _f) = pair_with(p2000, "9P2000.L", 8192).await;
        assert!(matches!(c, Err(Error::Protocol(_))), "an upgrade: {c:?}");

        let (c, _f) = pair_with(ClientConfig::default(), "9P2000.L", 100).await;
        assert!(matches!(c, Err(Error::Protocol(_))), "tiny msize: {c:?}");
    })
    .await;
}

// ---- errors from the server ----

#[tokio::test]
async fn rlerror_becomes_errno_and_text() {
    bounded(async {
        let (c, mut fake) = pair().await;
        let (r, _) = tokio::join!(c.attach("u", "/x"), async {
            fake.answer(|_| ninep::Rlerror { ecode: 2 }.into()).await
        });
        let e = r.unwrap_err();
        assert_eq!(e.errno(), Some(2));
        assert_eq!(e.to_string(), "no such file or directory");
        assert_eq!(std::io::Error::from(e).raw_os_error(), Some(2));
        assert!(!c.is_closed(), "an error reply does not close the session");
    })
    .await;
}

#[tokio::test]
async fn rerror_keeps_the_servers_string() {
    bounded(async {
        let (c, mut fake) = pair_with(ClientConfig::default(), "9P2000", 8192).await;
        let c = c.unwrap();
        let (r, _) = tokio::join!(c.attach("u", ""), async {
            let rerror = ninep::Rerror {
                ename: "ctl: unknown verb 'exce'".into(),
                errno: 0,
            };
            fake.answer(|_| rerror.into()).await
        });
        match r.unwrap_err() {
            Error::Remote { errno: None, msg } => assert_eq!(msg, "ctl: unknown verb 'exce'"),
            e => panic!("{e:?}"),
        }
    })
    .await;
}

// ---- a lying server ----

/// Sends an attach, answers it with the bytes `lie(tag)`, and checks that
/// the attach and every later request fail with a protocol error.
async fn lie_closes_client(lie: impl FnOnce(u16) -> Vec<u8>) -> String {
    let (c, mut fake) = pair().await;
    let (r, _) = tokio::join!(c.attach("u", ""), async {
        let m = fake.recv().await;
        fake.send_raw(&lie(m.tag)).await;
    });
    let e = r.unwrap_err();
    assert!(matches!(e, Error::Protocol(_)), "{e:?}");
    assert!(c.is_closed());
    let again = c.attach("u", "").await.unwrap_err();
    assert!(matches!(again, Error::Protocol(_)), "{again:?}");
    e.to_string()
}

fn frame(tag: u16, body: impl Into<Fcall>) -> Vec<u8> {
    let mut out = Vec::new();
    let msg = Msg {
        tag,
        body: body.into(),
    };
    ninep::encode(Dialect::L, &msg, &mut out).unwrap();
    out
}

#[tokio::test]
async fn reply_for_unknown_tag_closes_client() {
    bounded(async {
        let e =
            lie_closes_client(|tag| frame(tag.wrapping_add(7), ninep::Rattach { qid: dir_qid() }))
                .await;
        assert!(e.contains("not in flight"), "{e}");
    })
    .await;
}

#[tokio::test]
async fn oversized_frame_closes_client() {
    bounded(async {
        let e = lie_closes_client(|tag| {
            // A size field far above msize, and no body: the client must
            // refuse it from the size alone, not wait for 1 GiB.
            let mut hdr = (1u32 << 30).to_le_bytes().to_vec();
            hdr.push(ninep::Rattach::TYPE);
            hdr.extend_from_slice(&tag.to_le_bytes());
            hdr
        })
        .await;
        assert!(e.contains("msize"), "{e}");
    })
    .await;
}

#[tokio::test]
async fn undersized_frame_closes_client() {
    bounded(async {
        let e = lie_closes_client(|_| 3u32.to_le_bytes().to_vec()).await;
        assert!(e.contains("frame of 3 bytes"), "{e}");
    })
    .await;
}

#[tokio::test]
async fn wrong_reply_type_closes_client() {
    bounded(async {
        let e = lie_closes_client(|tag| frame(tag, ninep::Rclunk {})).await;
        assert!(e.contains("Rclunk in reply to Tattach"), "{e}");
    })
    .await;
}

#[tokio::test]
async fn undecodable_frame_closes_client() {
    bounded(async {
        let e = lie_closes_client(|tag| {
            let mut frame = 7u32.to_le_bytes().to_vec();
            frame.push(250); // no such message type
            frame.extend_from_slice(&tag.to_le_bytes());
            frame
        })
        .await;
        assert!(e.contains("unknown message type 250"), "{e}");
    })
    .await;
}

#[tokio::test]
async fn truncated_body_closes_client() {
    bounded(async {
        // An Rattach whose frame ends inside the qid.
        let e = lie_closes_client(|tag| {
            let mut f = frame(tag, ninep::Rattach { qid: dir_qid() });
            f.truncate(f.len() - 4);
            let n = f.len() as u32;
            f[..4].copy_from_slice(&n.to_le_bytes());
            f
        })
        .await;
        assert!(e.contains("too short"), "{e}");
    })
    .await;
}

#[tokio::test]
async fn request_sent_as_reply_closes_client() {
    bounded(async {
        let e = lie_closes_client(|tag| frame(tag, ninep::Tclunk { fid: 0 })).await;
        assert!(e.contains("Tclunk in reply to Tattach"), "{e}");
    })
    .await;
}

#[tokio::test]
async fn protocol_error_fails_every_waiter() {
    bounded(async {
        let (c, mut fake) = pair().await;
        let root = attach(&c, &mut fake).await;
        let (a, b, _) = tokio::join!(root.statfs(), root.read(0, 1), async {
            let m1 = fake.recv().await;
            let _m2 = fake.recv().await;
            // Answer the first correctly... then a reply for a tag no one sent.
            fake.send(m1.tag, ninep::Rstatfs::default()).await;
            fake.send(9999, ninep::Rread { data: vec![] }).await;
        });
        assert!(a.is_ok() || matches!(a, Err(Error::Protocol(_))), "{a:?}");
        let e = b.unwrap_err().to_string();
        assert!(e.contains("tag 9999, which is not in flight"), "{e}");
    })
    .await;
}

#[tokio::test]
async fn server_hangup_fails_waiters() {
    bounded(async {
        let (c, mut fake) = pair().await;
        let (r, _) = tokio::join!(c.attach("u", ""), async {
            fake.recv().await;
            drop(fake);
        });
        assert!(matches!(r, Err(Error::Closed)), "{r:?}");
        assert!(matches!(c.attach("u", "").await, Err(Error::Closed)));
    })
    .await;
}

#[tokio::test]
async fn overlong_read_reply_is_an_error() {
    bounded(async {
        let (c, mut fake) = pair().await;
        let root = attach(&c, &mut fake).await;
        let (r, _) = tokio::join!(root.read(0, 10), async {
            fake.answer(|_| ninep::Rread { data: vec![0; 11] }.into())
                .await
        });
        let e = r.unwrap_err().to_string();
        assert!(e.contains("Rread of 11 bytes for a Tread of 10"), "{e}");
    })
    .await;
}

// ---- pipelining ----

#[tokio::test]
async fn replies_out_of_order_reach_their_callers() {
    bounded(async {
        let (c, mut fake) = pair().await;
        let root = attach(&c, &mut fake).await;
        let reads = async { tokio::join!(root.read(0, 5), root.read(100, 5), root.read(200, 5)) };
        let serve = async {
            let mut got = Vec::new();
            for _ in 0..3 {
                got.push(fake.recv().await);
            }
            let mut tags: Vec<u16> = got.iter().map(|m| m.tag).collect();
            tags.sort();
            tags.dedup();
            assert_eq!(tags.len(), 3, "distinct tags in flight");
            for m in got.into_iter().rev() {
                let Fcall::Tread(t) = m.body else { panic!() };
                let data = t.offset.to_string().into_bytes();
                fake.send(m.tag, ninep::Rread { data }).await;
            }
        };
        let ((a, b, c3), ()) = tokio::join!(reads, serve);
        assert_eq!(a.unwrap(), b"0");
        assert_eq!(b.unwrap(), b"100");
        assert_eq!(c3.unwrap(), b"200");
    })
    .await;
}

/// Serves reads of `content` until the client hangs up, returning at most
/// `short` bytes from every third read.
async fn serve_file(fake: &mut Fake, content: &[u8], short: usize) {
    let mut n = 0;
    loop {
        let m = loop {
            if let Some((m, k)) = ninep::decode(fake.dialect, &fake.buf, u32::MAX).unwrap() {
                fake.buf.drain(..k);
                break m;
            }
            fake.buf.reserve(64 * 1024);
            if fake.io.read_buf(&mut fake.buf).await.unwrap() == 0 {
                return;
            }
        };
        let reply: Fcall = match m.body {
            Fcall::Tread(t) => {
                n += 1;
                let start = (t.offset as usize).min(content.len());
                let mut end = (start + t.count as usize).min(content.len());
                if n % 3 == 0 {
                    end = end.min(start + short);
                }
                ninep::Rread {
                    data: content[start..end].to_vec(),
                }
                .into()
            }
            Fcall::Tflush(_) => ninep::Rflush {}.into(),
            Fcall::Tclunk(_) => ninep::Rclunk {}.into(),
            other => panic!("unexpected {other:?}"),
        };
        let mut out = Vec::new();
        let msg = Msg {
            tag: m.tag,
            body: reply,
        };
        ninep::encode(fake.dialect, &msg, &mut out).unwrap();
        if fake.io.write_all(&out).await.is_err() {
            return; // the client has hung up
        }
    }
}

#[tokio::test]
async fn read_all_pipelines_and_survives_short_reads() {
    bounded(async {
        let (c, mut fake) = pair().await;
        let root = attach(&c, &mut fake).await;
        let content: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 256) as u8).collect();
        let (got, ()) = tokio::join!(
            async {
                let got = root.read_all().await;
                drop(root);
                drop(c);
                got
            },
            serve_file(&mut fake, &content, 1000)
        );
        let got = got.unwrap();
        assert_eq!(got.len(), content.len());
        assert!(got == content);
    })
    .await;
}

#[tokio::test]
async fn write_all_completes_short_writes() {
    bounded(async {
        let (c, mut fake) = pair().await;
        let root = attach(&c, &mut fake).await;
        let data: Vec<u8> = (0..50_000u32).map(|i| (i % 253) as u8).collect();
        let mut file = vec![0u8; 100 + data.len()];
        let mut in_flight_max = 0;
        let (r, ()) = tokio::join!(root.write_all(100, &data), async {
            let mut written = 0;
            let mut queued: Vec<Msg> = Vec::new();
            while written < data.len() {
                // Take everything the client has pipelined so far.
                queued.push(fake.recv().await);
                while let Ok(Some((m, k))) = ninep::decode(fake.dialect, &fake.buf, u32::MAX) {
                    fake.buf.drain(..k);
                    queued.push(m);
                }
                in_flight_max = in_flight_max.max(queued.len());
                for (i, m) in queued.drain(..).enumerate() {
                    let Fcall::Twrite(t) = m.body else { panic!() };
                    // Every other write is cut short by 10 bytes.
                    let n = if i % 2 == 1 && t.data.len() > 10 {
                        t.data.len() - 10
                    } else {
                        t.data.len()
                    };
                    let at = t.offset as usize;
                    file[at..at + n].copy_from_slice(&t.data[..n]);
                    written += n;
                    fake.send(m.tag, ninep::Rwrite { count: n as u32 }).await;
                }
            }
        });
        r.unwrap();
        assert!(file[100..] == data[..]);
        assert!(in_flight_max > 1, "writes were not pipelined");
    })
    .await;
}

// ---- flush ----

#[tokio::test]
async fn cancelled_request_is_flushed_and_its_tag_held() {
    bounded(async {
        let (c, mut fake) = pair().await;
        let root = attach(&c, &mut fake).await;

        assert!(poll_once(root.getattr(ninep::l::getattr::BASIC))
            .await
            .is_none());
        let first = fake.recv().await;
        assert!(matches!(first.body, Fcall::Tgetattr(_)));
        let flush = fake.recv().await;
        let Fcall::Tflush(tf) = flush.body else {
            panic!("{flush:?}")
        };
        assert_eq!(tf.oldtag, first.tag);

        // Until the Rflush, neither tag may be used again.
        let (r, _) = tokio::join!(root.statfs(), async {
            let m = fake.recv().await;
            assert!(m.tag != first.tag && m.tag != flush.tag, "{m:?}");
            fake.send(m.tag, ninep::Rstatfs::default()).await;
        });
        r.unwrap();
        fake.send(flush.tag, ninep::Rflush {}).await;

        // The session goes on.
        let (r, _) = tokio::join!(root.statfs(), async {
            fake.answer(|_| ninep::Rstatfs::default().into()).await
        });
        r.unwrap();
    })
    .await;
}

#[tokio::test]
async fn cancelled_walk_that_completes_clunks_its_fid() {
    bounded(async {
        let (c, mut fake) = pair().await;
        let root = attach(&c, &mut fake).await;

        assert!(poll_once(root.walk(&["a"])).await.is_none());
        let walk = fake.recv().await;
        let Fcall::Twalk(tw) = walk.body else {
            panic!("{walk:?}")
        };
        let flush = fake.recv().await;
        assert!(matches!(flush.body, Fcall::Tflush(_)));
        // The walk wins the race with the flush: newfid now exists.
        let rwalk = ninep::Rwalk {
            wqids: vec![qid(2)],
        };
        fake.send(walk.tag, rwalk).await;
        fake.send(flush.tag, ninep::Rflush {}).await;
        let clunk = fake.recv().await;
        match clunk.body {
            Fcall::Tclunk(t) => assert_eq!(t.fid, tw.newfid),
            other => panic!("{other:?}"),
        }
        fake.send(clunk.tag, ninep::Rclunk {}).await;
    })
    .await;
}

#[tokio::test]
async fn cancelled_walk_that_is_flushed_frees_its_fid_number() {
    bounded(async {
        let (c, mut fake) = pair().await;
        let root = attach(&c, &mut fake).await;

        assert!(poll_once(root.walk(&["a"])).await.is_none());
        let walk = fake.recv().await;
        let Fcall::Twalk(tw) = walk.body else {
            panic!()
        };
        let flush = fake.recv().await;
        fake.send(flush.tag, ninep::Rflush {}).await;
        // A round trip, so the client has read the Rflush.
        let (r, _) = tokio::join!(root.statfs(), async {
            fake.answer(|_| ninep::Rstatfs::default().into()).await
        });
        r.unwrap();

        // No clunk for a fid that never was; its number is free again.
        let (f, _) = tokio::join!(root.walk(&["b"]), async {
            let m = fake.recv().await;
            let Fcall::Twalk(t) = &m.body else {
                panic!("{m:?}")
            };
            assert_eq!(t.newfid, tw.newfid);
            fake.send(
                m.tag,
                ninep::Rwalk {
                    wqids: vec![qid(3)],
                },
            )
            .await;
        });
        assert_eq!(f.unwrap().qid(), qid(3));
    })
    .await;
}

// ---- fids ----

#[tokio::test]
async fn dropped_fid_is_clunked() {
    bounded(async {
        let (c, mut fake) = pair().await;
        let root = attach(&c, &mut fake).await;
        let n = root.number();
        drop(root);
        let m = fake.answer(|_| ninep::Rclunk {}.into()).await;
        assert!(matches!(m.body, Fcall::Tclunk(ninep::Tclunk { fid }) if fid == n));
    })
    .await;
}

#[tokio::test]
async fn long_walks_are_split_at_sixteen_names() {
    bounded(async {
        let (c, mut fake) = pair().await;
        let root = attach(&c, &mut fake).await;
        let names: Vec<String> = (0..20).map(|i| format!("n{i}")).collect();
        let (f, _) = tokio::join!(root.walk(&names), async {
            let m = fake.recv().await;
            let Fcall::Twalk(t) = &m.body else { panic!() };
            assert_eq!((t.fid, t.wnames.len()), (root.number(), 16));
            let newfid = t.newfid;
            let wqids = (0..16).map(qid).collect();
            fake.send(m.tag, ninep::Rwalk { wqids }).await;
            let m = fake.recv().await;
            let Fcall::Twalk(t) = &m.body else { panic!() };
            assert_eq!((t.fid, t.newfid), (newfid, newfid));
            assert_eq!(t.wnames, &names[16..]);
            let wqids = (16..20).map(qid).collect();
            fake.send(m.tag, ninep::Rwalk { wqids }).await;
        });
        assert_eq!(f.unwrap().qid(), qid(19));
    })
    .await;
}

#[tokio::test]
async fn partial_walk_names_the_missing_element() {
    bounded(async {
        let (c, mut fake) = pair().await;
        let root = attach(&c, &mut fake).await;
        let (r, _) = tokio::join!(root.walk(&["a", "b", "c"]), stops_at_b(&mut fake, 2));
        match r.unwrap_err() {
            Error::WalkIncomplete {
                name,
                walked,
                total,
            } => assert_eq!((name.as_str(), walked, total), ("b", 1, 3)),
            e => panic!("{e:?}"),
        }
        // A lying Rwalk with more qids than names is a protocol error.
        let (r, _) = tokio::join!(root.walk(&["a"]), async {
            fake.answer(|_| {
                ninep::Rwalk {
                    wqids: vec![qid(2), qid(3)],
                }
                .into()
            })
            .await
        });
        assert!(matches!(r, Err(Error::Protocol(_))), "{r:?}");
    })
    .await;
}

/// Answers a walk of a/b/c that stops after `a`, then the client's probe
/// of why (a walk of `a`, then of `b` alone, failed with `errno`), then
/// the clunk of the probe's fid.
async fn stops_at_b(fake: &mut Fake, errno: u32) {
    let walk_a = |_: &Fcall| -> Fcall {
        ninep::Rwalk {
            wqids: vec![qid(2)],
        }
        .into()
    };
    fake.answer(walk_a).await;
    let m = fake.answer(walk_a).await;
    assert!(
        matches!(&m.body, Fcall::Twalk(t) if t.wnames == ["a"]),
        "{m:?}"
    );
    let m = fake
        .answer(|_| ninep::Rlerror { ecode: errno }.into())
        .await;
    assert!(
        matches!(&m.body, Fcall::Twalk(t) if t.wnames == ["b"]),
        "{m:?}"
    );
    let m = fake.answer(|_| ninep::Rclunk {}.into()).await;
    assert!(matches!(&m.body, Fcall::Tclunk(_)), "{m:?}");
}

/// Linux's errno for "no route to host".
const EHOSTUNREACH: u32 = 113;

#[tokio::test]
async fn partial_walk_reports_the_servers_reason() {
    bounded(async {
        let (c, mut fake) = pair().await;
        let root = attach(&c, &mut fake).await;
        // Rwalk cannot say why it stopped; the probe's Rlerror can.
        let (r, _) = tokio::join!(
            root.walk(&["a", "b", "c"]),
            stops_at_b(&mut fake, EHOSTUNREACH)
        );
        let e = r.unwrap_err();
        assert_eq!(e.errno(), Some(EHOSTUNREACH), "{e:?}");
    })
    .await;
}

#[tokio::test]
async fn rpc_refuses_fid_messages_and_oversized_requests() {
    bounded(async {
        let (c, mut fake) = pair().await;
        let root = attach(&c, &mut fake).await;
        let r = c.rpc(ninep::Tclunk { fid: root.number() }).await;
        assert!(matches!(r, Err(Error::Invalid(_))), "{r:?}");
        let r = c.rpc(ninep::Rclunk {}).await;
        assert!(matches!(r, Err(Error::Invalid(_))), "{r:?}");
        let huge = "x".repeat(70_000);
        let r = root.walk(&[huge.as_str()]).await;
        assert!(matches!(r, Err(Error::Invalid(_))), "{r:?}");
        let r = root.mkdir(&"y".repeat(9000), 0o755).await;
        let e = r.unwrap_err().to_string();
        assert!(e.contains("exceeds msize"), "{e}");
        // None of that reached the server, and the session still works.
        let (r, _) = tokio::join!(c.rpc(ninep::Tstatfs { fid: root.number() }), async {
            fake.answer(|_| ninep::Rstatfs::default().into()).await
        });
        assert!(matches!(r, Ok(Fcall::Rstatfs(_))), "{r:?}");
    })
    .await;
}

#[tokio::test]
async fn dialect_specific_calls_are_refused_elsewhere() {
    bounded(async {
        let (c, mut fake) = pair().await;
        let mut root = attach(&c, &mut fake).await;
        let r = root.topen(ninep::om::READ).await;
        assert!(
            matches!(r, Err(Error::Unsupported { op: "Topen", .. })),
            "{r:?}"
        );
        assert_eq!(
            root.stat().await.unwrap_err().to_string(),
            "Tstat is not supported in 9P2000.L"
        );
    })
    .await;
}

#[tokio::test]
async fn readdir_in_9p2000_decodes_stat_records() {
    bounded(async {
        let (c, mut fake) = pair_with(ClientConfig::default(), "9P2000", 8192).await;
        let c = c.unwrap();
        let root = attach(&c, &mut fake).await;
        let stat = |name: &str, mode: u32, length: u64| ninep::Stat {
            name: name.into(),
            mode,
            length,
            ..ninep::Stat::default()
        };
        let mut dir = Vec::new();
        for st in [stat("a", 0o644, 5), stat("sub", ninep::dm::DIR | 0o755, 0)] {
            let mut w = ninep::wire::Writer::new(&mut dir, Dialect::P2000);
            st.encode_entry(&mut w).unwrap();
        }
        let (r, _) = tokio::join!(root.readdir(), async {
            let m = fake.answer(|_| ninep::Rwalk { wqids: vec![] }.into()).await;
            assert!(matches!(m.body, Fcall::Twalk(_)));
            let m = fake
                .answer(|_| {
                    ninep::Ropen {
                        qid: dir_qid(),
                        iounit: 0,
                    }
                    .into()
                })
                .await;
            assert!(matches!(m.body, Fcall::Topen(_)));
            fake.answer(|_| ninep::Rread { data: dir.clone() }.into())
                .await;
            let m = fake.answer(|_| ninep::Rread { data: vec![] }.into()).await;
            let Fcall::Tread(t) = m.body else { panic!() };
            assert_eq!(t.offset, dir.len() as u64);
        });
        let ents = r.unwrap();
        assert_eq!(ents.len(), 2);
        assert_eq!((ents[0].name.as_str(), ents[0].size()), ("a", 5));
        assert!(ents[1].is_dir());
    })
    .await;
}

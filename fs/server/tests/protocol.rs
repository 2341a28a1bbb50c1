//! The server core against raw frames over an in-memory stream: version
//! negotiation, flush, many tags in flight, malformed input, `..`, and the
//! clean-up of fids when a connection closes.

use std::any::Any;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use ninep::*;
use ninep_server::synth::{read_at, Dir, TextFile};
use ninep_server::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::sync::Notify;
use tokio::time::timeout;

const LIMIT: Duration = Duration::from_secs(10);

/// A client that speaks raw frames.
struct Raw {
    io: DuplexStream,
    dialect: Dialect,
    buf: Vec<u8>,
}

impl Raw {
    async fn send(&mut self, tag: u16, body: impl Into<Fcall>) {
        let mut out = Vec::new();
        encode(
            self.dialect,
            &Msg {
                tag,
                body: body.into(),
            },
            &mut out,
        )
        .expect("encode");
        self.io.write_all(&out).await.expect("write");
    }

    async fn send_bytes(&mut self, bytes: &[u8]) {
        self.io.write_all(bytes).await.expect("write");
    }

    /// The next reply, or None when the server hung up.
    async fn recv(&mut self) -> Option<Msg> {
        loop {
            if let Some((msg, n)) =
                decode(self.dialect, &self.buf, u32::MAX).expect("server sent a bad frame")
            {
                self.buf.drain(..n);
                return Some(msg);
            }
            let mut chunk = [0u8; 65536];
            let n = timeout(LIMIT, self.io.read(&mut chunk))
                .await
                .expect("reply in time")
                .ok()?;
            if n == 0 {
                return None;
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    async fn rpc(&mut self, tag: u16, body: impl Into<Fcall>) -> Fcall {
        self.send(tag, body).await;
        let reply = self.recv().await.expect("reply");
        assert_eq!(reply.tag, tag);
        reply.body
    }

    async fn connect(server: &Server, dialect: Dialect) -> Raw {
        let (a, b) = tokio::io::duplex(1 << 20);
        let server = server.clone();
        tokio::spawn(async move { server.serve_conn(b, PeerInfo::Unknown).await });
        let mut raw = Raw {
            io: a,
            dialect,
            buf: Vec::new(),
        };
        let reply = raw
            .rpc(
                NOTAG,
                Tversion {
                    msize: 65536,
                    version: dialect.version_string().into(),
                },
            )
            .await;
        assert_eq!(
            reply,
            Fcall::Rversion(Rversion {
                msize: 65536,
                version: dialect.version_string().into()
            })
        );
        let attach = Tattach {
            fid: 0,
            afid: NOFID,
            uname: "glenda".into(),
            aname: String::new(),
            n_uname: 0,
        };
        assert!(matches!(raw.rpc(1, attach).await, Fcall::Rattach(_)));
        raw
    }
}

/// A file whose reads wait until released, and which counts cancelled reads and clunks.
struct Blocking {
    qid: Qid,
    release: Arc<Notify>,
    cancelled: Arc<AtomicUsize>,
    clunked: Arc<AtomicUsize>,
}

struct BlockingHandle {
    release: Arc<Notify>,
    cancelled: Arc<AtomicUsize>,
    clunked: Arc<AtomicUsize>,
}

struct CountOnDrop(Arc<AtomicUsize>, bool);
impl Drop for CountOnDrop {
    fn drop(&mut self) {
        if !self.1 {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
}

#[async_trait]
impl Node for Blocking {
    fn qid(&self) -> Qid {
        self.qid
    }
    async fn attr(&self) -> Result<Attr> {
        Ok(Attr::synthetic(self.qid, 0o444))
    }
    async fn open(&self, _mode: OpenMode) -> Result<Opened> {
        Ok(Opened::new(BlockingHandle {
            release: self.release.clone(),
            cancelled: self.cancelled.clone(),
            clunked: self.clunked.clone(),
        }))
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

#[async_trait]
impl Handle for BlockingHandle {
    async fn read(&self, offset: u64, count: u32) -> Result<Vec<u8>> {
        let mut guard = CountOnDrop(self.cancelled.clone(), false);
        self.release.notified().await;
        guard.1 = true;
        Ok(read_at(b"released", offset, count))
    }
    async fn clunk(&self) {
        self.clunked.fetch_add(1, Ordering::SeqCst);
    }
}

struct Fixture {
    server: Server,
    release: Arc<Notify>,
    cancelled: Arc<AtomicUsize>,
    clunked: Arc<AtomicUsize>,
}

fn fixture() -> Fixture {
    let release = Arc::new(Notify::new());
    let cancelled = Arc::new(AtomicUsize::new(0));
    let clunked = Arc::new(AtomicUsize::new(0));
    let blocking = Blocking {
        qid: synth::file_qid(),
        release: release.clone(),
        cancelled: cancelled.clone(),
        clunked: clunked.clone(),
    };
    let sub = Dir::new(0o555).with("leaf", Arc::new(TextFile::new(|| "leaf\n".into())));
    let root = Dir::new(0o555)
        .with("hello", Arc::new(TextFile::new(|| "hello, world\n".into())))
        .with("block", Arc::new(blocking))
        .with("sub", Arc::new(sub));
    let server = Server::for_tree(Arc::new(root), ServerConfig::default());
    Fixture {
        server,
        release,
        cancelled,
        clunked,
    }
}

fn walk(fid: u32, newfid: u32, names: &[&str]) -> Twalk {
    Twalk {
        fid,
        newfid,
        wnames: names.iter().map(|s| s.to_string()).collect(),
    }
}

#[tokio::test]
async fn version_negotiation_follows_version5() {
    let f = fixture();
    let (a, b) = tokio::io::duplex(1 << 16);
    let server = f.server.clone();
    tokio::spawn(async move { server.serve_conn(b, PeerInfo::Unknown).await });
    let mut raw = Raw {
        io: a,
        dialect: Dialect::P2000,
        buf: Vec::new(),
    };
    // Unknown suffix: plain 9P2000; msize capped at the server's maximum.
    let r = raw
        .rpc(
            NOTAG,
            Tversion {
                msize: u32::MAX,
                version: "9P2000.x".into(),
            },
        )
        .await;
    assert_eq!(
        r,
        Fcall::Rversion(Rversion {
            msize: DEFAULT_MAX_MSIZE,
            version: "9P2000".into()
        })
    );
    // Not 9P at all.
    let r = raw
        .rpc(
            NOTAG,
            Tversion {
                msize: 8192,
                version: "HTTP/1.1".into(),
            },
        )
        .await;
    assert_eq!(
        r,
        Fcall::Rversion(Rversion {
            msize: 8192,
            version: "unknown".into()
        })
    );
    // Nothing but Tversion is served before a version is agreed.
    let r = raw
        .rpc(
            1,
            Tattach {
                fid: 0,
                afid: NOFID,
                uname: "u".into(),
                aname: "".into(),
                n_uname: 0,
            },
        )
        .await;
    assert!(matches!(r, Fcall::Rerror(_)), "{r:?}");
    let r = raw
        .rpc(
            NOTAG,
            Tversion {
                msize: 8192,
                version: "9P2000.L".into(),
            },
        )
        .await;
    assert_eq!(
        r,
        Fcall::Rversion(Rversion {
            msize: 8192,
            version: "9P2000.L".into()
        })
    );
}

#[tokio::test]
async fn walk_open_read_stat_in_every_dialect() {
    let f = fixture();
    for dialect in [Dialect::P2000, Dialect::U, Dialect::L] {
        let mut c = Raw::connect(&f.server, dialect).await;
        let r = c.rpc(2, walk(0, 1, &["sub", "leaf"])).await;
        assert!(matches!(&r, Fcall::Rwalk(w) if w.wqids.len() == 2), "{r:?}");
        let r = match dialect {
            Dialect::L => c.rpc(3, Tlopen { fid: 1, flags: 0 }).await,
            _ => {
                c.rpc(
                    3,
                    Topen {
                        fid: 1,
                        mode: om::READ,
                    },
                )
                .await
            }
        };
        assert!(matches!(r, Fcall::Ropen(_) | Fcall::Rlopen(_)), "{r:?}");
        let r = c
            .rpc(
                4,
                Tread {
                    fid: 1,
                    offset: 0,
                    count: 100,
                },
            )
            .await;
        assert_eq!(
            r,
            Fcall::Rread(Rread {
                data: b"leaf\n".to_vec()
            })
        );
        // Writing a fid opened for reading is refused, and the connection goes on.
        let r = c
            .rpc(
                5,
                Twrite {
                    fid: 1,
                    offset: 0,
                    data: b"x".to_vec(),
                },
            )
            .await;
        assert!(matches!(r, Fcall::Rerror(_) | Fcall::Rlerror(_)), "{r:?}");
        if dialect == Dialect::L {
            let r = c
                .rpc(
                    6,
                    Tgetattr {
                        fid: 1,
                        request_mask: l::getattr::ALL,
                    },
                )
                .await;
            assert!(matches!(&r, Fcall::Rgetattr(a) if a.size == 5), "{r:?}");
        } else {
            let r = c.rpc(6, Tstat { fid: 1 }).await;
            assert!(
                matches!(&r, Fcall::Rstat(s) if s.stat.name == "leaf" && s.stat.length == 5),
                "{r:?}"
            );
        }
        assert_eq!(c.rpc(7, Tclunk { fid: 1 }).await, Fcall::Rclunk(Rclunk {}));
        // The fid is gone.
        let r = c.rpc(8, Tclunk { fid: 1 }).await;
        assert!(matches!(r, Fcall::Rerror(_) | Fcall::Rlerror(_)), "{r:?}");
    }
}

/// Opens the root directory for reading on fid 1 (tags 2 and 3).
async fn open_root_dir(c: &mut Raw) {
    c.rpc(2, walk(0, 1, &[])).await;
    c.rpc(
        3,
        Topen {
            fid: 1,
            mode: om::READ,
        },
    )
    .await;
}

#[tokio::test]
async fn directory_reads_page_in_both_forms() {
    let f = fixture();
    let mut c = Raw::connect(&f.server, Dialect::P2000).await;
    open_root_dir(&mut c).await;
    let mut names = Vec::new();
    let mut offset = 0;
    loop {
        // Small counts force several reads.
        let Fcall::Rread(r) = c
            .rpc(
                4,
                Tread {
                    fid: 1,
                    offset,
                    count: 80,
                },
            )
            .await
        else {
            panic!("read")
        };
        if r.data.is_empty() {
            break;
        }
        offset += r.data.len() as u64;
        names.extend(
            Stat::decode_dir(&r.data, Dialect::P2000)
                .expect("stats")
                .into_iter()
                .map(|s| s.name),
        );
    }
    assert_eq!(names, ["block", "hello", "sub"]);
    // A read that does not continue where the last ended is refused (9P2000 read(5)).
    let r = c
        .rpc(
            5,
            Tread {
                fid: 1,
                offset: 3,
                count: 80,
            },
        )
        .await;
    assert!(matches!(r, Fcall::Rerror(_)), "{r:?}");

    let mut c = Raw::connect(&f.server, Dialect::L).await;
    c.rpc(2, walk(0, 1, &[])).await;
    c.rpc(
        3,
        Tlopen {
            fid: 1,
            flags: l::open::DIRECTORY,
        },
    )
    .await;
    let mut names = Vec::new();
    let mut offset = 0;
    loop {
        let Fcall::Rreaddir(r) = c
            .rpc(
                4,
                Treaddir {
                    fid: 1,
                    offset,
                    count: 40,
                },
            )
            .await
        else {
            panic!("readdir")
        };
        let ents = Dirent::decode_all(&r.data).expect("dirents");
        let Some(last) = ents.last() else { break };
        offset = last.offset;
        names.extend(ents.into_iter().map(|d| d.name));
    }
    assert_eq!(names, [".", "..", "block", "hello", "sub"]);
}

#[tokio::test]
async fn a_directory_read_too_small_for_an_entry_is_short_not_an_error() {
    // Linux's v9fs fills its buffer with a second read for the bytes left
    // and relies on a short (here empty) reply, as lib9p and QEMU give.
    let f = fixture();
    let mut c = Raw::connect(&f.server, Dialect::U).await;
    open_root_dir(&mut c).await;
    // One entry fits in 80 bytes, the next does not.
    let Fcall::Rread(first) = c
        .rpc(
            4,
            Tread {
                fid: 1,
                offset: 0,
                count: 80,
            },
        )
        .await
    else {
        panic!("read")
    };
    let n = Stat::decode_dir(&first.data, Dialect::U)
        .expect("stats")
        .len();
    assert!((1..3).contains(&n), "{n} entries in 80 bytes");
    let offset = first.data.len() as u64;
    let r = c
        .rpc(
            5,
            Tread {
                fid: 1,
                offset,
                count: 10,
            },
        )
        .await;
    assert_eq!(r, Fcall::Rread(Rread { data: Vec::new() }));
    // The offset stayed put: the rest comes from the same offset.
    let Fcall::Rread(rest) = c
        .rpc(
            6,
            Tread {
                fid: 1,
                offset,
                count: 4096,
            },
        )
        .await
    else {
        panic!("read")
    };
    assert_eq!(
        Stat::decode_dir(&rest.data, Dialect::U)
            .expect("stats")
            .len(),
        3 - n
    );
}

#[tokio::test]
async fn dotdot_never_leaves_the_attach_root() {
    let f = fixture();
    let mut c = Raw::connect(&f.server, Dialect::L).await;
    let Fcall::Rattach(_) = c
        .rpc(
            2,
            Tattach {
                fid: 9,
                afid: NOFID,
                uname: "u".into(),
                aname: "/sub".into(),
                n_uname: 0,
            },
        )
        .await
    else {
        panic!("attach at /sub")
    };
    let r = c.rpc(3, walk(9, 10, &["..", "..", "..", "leaf"])).await;
    assert!(matches!(&r, Fcall::Rwalk(w) if w.wqids.len() == 4), "{r:?}");
    let r = c.rpc(4, walk(9, 11, &["..", "hello"])).await;
    // "hello" is beside /sub, outside the attach root: the walk stops short.
    assert!(matches!(&r, Fcall::Rwalk(w) if w.wqids.len() == 1), "{r:?}");
    let r = c.rpc(5, Tclunk { fid: 11 }).await;
    assert!(
        matches!(r, Fcall::Rlerror(_)),
        "newfid must not exist after a short walk: {r:?}"
    );
    // Attaching with '..' in aname is refused.
    let r = c
        .rpc(
            6,
            Tattach {
                fid: 12,
                afid: NOFID,
                uname: "u".into(),
                aname: "/sub/../..".into(),
                n_uname: 0,
            },
        )
        .await;
    assert!(matches!(r, Fcall::Rlerror(_)), "{r:?}");
}

#[tokio::test]
async fn flush_cancels_a_blocked_read_and_suppresses_its_reply() {
    let f = fixture();
    let mut c = Raw::connect(&f.server, Dialect::P2000).await;
    c.rpc(2, walk(0, 1, &["block"])).await;
    c.rpc(
        3,
        Topen {
            fid: 1,
            mode: om::READ,
        },
    )
    .await;
    c.send(
        10,
        Tread {
            fid: 1,
            offset: 0,
            count: 10,
        },
    )
    .await;
    // Other requests on the same connection are not held up by the blocked read.
    let r = c.rpc(11, walk(0, 2, &["hello"])).await;
    assert!(matches!(r, Fcall::Rwalk(_)), "{r:?}");
    let r = c.rpc(12, Tflush { oldtag: 10 }).await;
    assert_eq!(r, Fcall::Rflush(Rflush {}));
    // The handler's future was dropped.
    for _ in 0..100 {
        if f.cancelled.load(Ordering::SeqCst) == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(f.cancelled.load(Ordering::SeqCst), 1);
    // No reply for tag 10 ever comes: the next reply is for the next request.
    f.release.notify_waiters();
    let r = c.rpc(13, Tclunk { fid: 2 }).await;
    assert_eq!(r, Fcall::Rclunk(Rclunk {}));
    // Flushing a tag that is not in flight is answered too.
    assert_eq!(
        c.rpc(14, Tflush { oldtag: 999 }).await,
        Fcall::Rflush(Rflush {})
    );
}

#[tokio::test]
async fn two_hundred_tags_in_flight_on_one_connection() {
    let f = fixture();
    let mut c = Raw::connect(&f.server, Dialect::L).await;
    c.rpc(2, walk(0, 1, &["block"])).await;
    c.rpc(3, Tlopen { fid: 1, flags: 0 }).await;
    for tag in 100..300 {
        c.send(
            tag,
            Tread {
                fid: 1,
                offset: 0,
                count: 8,
            },
        )
        .await;
    }
    // While all 200 wait, the connection still answers.
    let r = c
        .rpc(
            5,
            Tgetattr {
                fid: 1,
                request_mask: l::getattr::BASIC,
            },
        )
        .await;
    assert!(matches!(r, Fcall::Rgetattr(_)), "{r:?}");
    // Release them in waves until every tag has its reply.
    let mut seen = std::collections::HashSet::new();
    while seen.len() < 200 {
        f.release.notify_waiters();
        let msg = tokio::select! {
            m = c.recv() => m.expect("reply"),
            _ = tokio::time::sleep(Duration::from_millis(20)) => continue,
        };
        assert_eq!(
            msg.body,
            Fcall::Rread(Rread {
                data: b"released".to_vec()
            })
        );
        assert!(seen.insert(msg.tag), "duplicate reply for tag {}", msg.tag);
    }
}

#[tokio::test]
async fn malformed_frames_get_errors_and_the_connection_goes_on() {
    let f = fixture();
    let mut c = Raw::connect(&f.server, Dialect::P2000).await;
    // Unknown type 250, tag 7.
    c.send_bytes(&[7, 0, 0, 0, 250, 7, 0]).await;
    let r = c.recv().await.expect("reply");
    assert_eq!(r.tag, 7);
    assert!(
        matches!(&r.body, Fcall::Rerror(e) if e.ename.contains("unknown message type")),
        "{r:?}"
    );
    // Twalk whose name is not UTF-8.
    let mut bad = vec![0, 0, 0, 0, Twalk::TYPE, 8, 0];
    bad.extend_from_slice(&0u32.to_le_bytes());
    bad.extend_from_slice(&1u32.to_le_bytes());
    bad.extend_from_slice(&1u16.to_le_bytes());
    bad.extend_from_slice(&2u16.to_le_bytes());
    bad.extend_from_slice(&[0xc3, 0x28]);
    let n = bad.len() as u32;
    bad[..4].copy_from_slice(&n.to_le_bytes());
    c.send_bytes(&bad).await;
    let r = c.recv().await.expect("reply");
    assert!(
        matches!(&r.body, Fcall::Rerror(e) if e.ename.contains("UTF-8")),
        "{r:?}"
    );
    // A truncated body (size says more fields than there are).
    c.send_bytes(&[9, 0, 0, 0, Tclunk::TYPE, 9, 0, 1, 0]).await;
    let r = c.recv().await.expect("reply");
    assert!(
        matches!(&r.body, Fcall::Rerror(e) if e.ename.contains("too short")),
        "{r:?}"
    );
    // Unknown fid.
    let r = c.rpc(10, Tstat { fid: 77 }).await;
    assert!(
        matches!(&r, Fcall::Rerror(e) if e.ename == "unknown fid"),
        "{r:?}"
    );
    // A reply message sent as a request.
    let r = c.rpc(11, Rclunk {}).await;
    assert!(matches!(r, Fcall::Rerror(_)), "{r:?}");
    // Still serving.
    assert!(matches!(
        c.rpc(12, walk(0, 1, &["hello"])).await,
        Fcall::Rwalk(_)
    ));
    // A frame larger than msize cannot be skipped safely: the server hangs up.
    c.send_bytes(&(1u32 << 30).to_le_bytes()).await;
    c.send_bytes(&[Tclunk::TYPE, 13, 0]).await;
    assert!(
        c.recv().await.is_none(),
        "server should hang up on an oversized frame"
    );
    // Other connections are unaffected.
    let mut d = Raw::connect(&f.server, Dialect::P2000).await;
    assert!(matches!(
        d.rpc(2, walk(0, 1, &["hello"])).await,
        Fcall::Rwalk(_)
    ));
}

#[tokio::test]
async fn closing_the_connection_clunks_every_fid() {
    let f = fixture();
    let mut c = Raw::connect(&f.server, Dialect::L).await;
    for fid in 1..=3 {
        c.rpc(2, walk(0, fid, &["block"])).await;
        c.rpc(3, Tlopen { fid, flags: 0 }).await;
    }
    drop(c);
    for _ in 0..200 {
        if f.clunked.load(Ordering::SeqCst) == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(f.clunked.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn fid_rules_are_enforced() {
    let f = fixture();
    let mut c = Raw::connect(&f.server, Dialect::P2000).await;
    // newfid in use
    c.rpc(2, walk(0, 1, &["hello"])).await;
    let r = c.rpc(3, walk(0, 1, &["sub"])).await;
    assert!(
        matches!(&r, Fcall::Rerror(e) if e.ename == "fid already in use"),
        "{r:?}"
    );
    // walk from a file
    let r = c.rpc(4, walk(1, 2, &["x"])).await;
    assert!(
        matches!(&r, Fcall::Rerror(e) if e.ename == "walk in non-directory"),
        "{r:?}"
    );
    // open for write of a read-only file
    let r = c
        .rpc(
            5,
            Topen {
                fid: 1,
                mode: om::WRITE,
            },
        )
        .await;
    assert!(
        matches!(&r, Fcall::Rerror(e) if e.ename == "permission denied"),
        "{r:?}"
    );
    // read of an unopened fid
    let r = c
        .rpc(
            6,
            Tread {
                fid: 1,
                offset: 0,
                count: 1,
            },
        )
        .await;
    assert!(matches!(r, Fcall::Rerror(_)), "{r:?}");
    // open twice
    c.rpc(
        7,
        Topen {
            fid: 1,
            mode: om::READ,
        },
    )
    .await;
    let r = c
        .rpc(
            8,
            Topen {
                fid: 1,
                mode: om::READ,
            },
        )
        .await;
    assert!(
        matches!(&r, Fcall::Rerror(e) if e.ename == "fid already open"),
        "{r:?}"
    );
    // walk of an open fid
    let r = c.rpc(9, walk(1, 3, &[])).await;
    assert!(matches!(r, Fcall::Rerror(_)), "{r:?}");
    // Tauth without an authenticator
    let r = c
        .rpc(
            10,
            Tauth {
                afid: 5,
                uname: "u".into(),
                aname: "".into(),
                n_uname: NONUNAME,
            },
        )
        .await;
    assert!(
        matches!(&r, Fcall::Rerror(e) if e.ename == "authentication not required"),
        "{r:?}"
    );
    // counts are clamped to iounit: a huge read of a small file is fine
    let r = c
        .rpc(
            11,
            Tread {
                fid: 1,
                offset: 0,
                count: u32::MAX,
            },
        )
        .await;
    assert_eq!(
        r,
        Fcall::Rread(Rread {
            data: b"hello, world\n".to_vec()
        })
    );
}

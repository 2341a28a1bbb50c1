//! The bytes of one connection: Tversion, and the reader and writer tasks
//! that move frames between the stream and [`Shared`].
//!
//! The reader checks every frame's size against msize before buffering
//! it, and a frame it cannot decode or place closes the connection. The
//! writer batches whatever is queued into as few writes as it can.

use std::sync::Arc;

use ninep::{Dialect, Fcall, Msg, HEADER_SIZE, NOTAG};
use tokio::io::{
    AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader, BufWriter,
};
use tokio::sync::mpsc;

use crate::conn::Shared;
use crate::error::{errno_text, Error, Result};

/// Bytes buffered between the socket and the frame decoder or encoder.
const IO_BUFFER: usize = 64 * 1024;
/// The smallest msize we accept from a server (lib9p's limit).
const MIN_MSIZE: u32 = 256;

/// What Tversion settled.
pub(crate) struct Version {
    pub(crate) msize: u32,
    pub(crate) dialect: Dialect,
}

/// Sends Tversion on `stream` and reads the Rversion.
pub(crate) async fn version<S>(stream: &mut S, msize: u32, dialect: Dialect) -> Result<Version>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let asked = dialect.version_string();
    let mut frame = Vec::new();
    let tversion = Msg {
        tag: NOTAG,
        body: Fcall::Tversion(ninep::Tversion {
            msize,
            version: asked.into(),
        }),
    };
    ninep::encode(Dialect::P2000, &tversion, &mut frame)
        .map_err(|e| Error::Invalid(format!("Tversion: {e}")))?;
    stream.write_all(&frame).await?;
    stream.flush().await?;
    let Some(msg) = read_frame(stream, Dialect::P2000, msize).await? else {
        return Err(Error::Closed);
    };
    let r = match msg.body {
        Fcall::Rversion(r) if msg.tag == NOTAG => r,
        // diod, asked for anything but .L, answers Rlerror(EIO).
        Fcall::Rerror(r) => {
            return Err(Error::Remote {
                errno: None,
                msg: format!("version {asked}: {}", r.ename),
            })
        }
        Fcall::Rlerror(r) => {
            return Err(Error::Remote {
                errno: Some(r.ecode),
                msg: format!("version {asked}: {}", errno_text(r.ecode)),
            })
        }
        body => {
            return Err(Error::Protocol(format!(
                "{} (tag {}) in reply to Tversion",
                body.name(),
                msg.tag
            )))
        }
    };
    let got = match r.version.as_str() {
        "9P2000" => Dialect::P2000,
        "9P2000.u" => Dialect::U,
        "9P2000.L" => Dialect::L,
        "unknown" => {
            return Err(Error::Protocol(format!(
                "server does not speak {asked} (answered \"unknown\")"
            )))
        }
        v => {
            return Err(Error::Protocol(format!(
                "server answered version {v:?} to {asked}"
            )))
        }
    };
    // version(5): the server may answer with an older version, never a
    // newer one. .u and .L are both extensions of 9P2000; a server asked
    // for .L may offer .u, which we also speak.
    let allowed = got == dialect || got == Dialect::P2000 || dialect == Dialect::L;
    if !allowed {
        return Err(Error::Protocol(format!(
            "server answered version {} to {asked}",
            r.version
        )));
    }
    if r.msize < MIN_MSIZE {
        return Err(Error::Protocol(format!(
            "server msize {} is below {MIN_MSIZE}",
            r.msize
        )));
    }
    Ok(Version {
        msize: r.msize.min(msize),
        dialect: got,
    })
}

/// Reads one frame, refusing a size field above `msize` before buffering
/// any of the body. `Ok(None)` is a clean end of stream between frames.
async fn read_frame<R>(r: &mut R, dialect: Dialect, msize: u32) -> Result<Option<Msg>>
where
    R: AsyncRead + Unpin,
{
    let Some(n) = read_size(r, msize).await? else {
        return Ok(None);
    };
    read_rest(r, &n.to_le_bytes(), dialect, msize)
        .await
        .map(Some)
}

/// The size field of the next frame, checked against `msize`. `Ok(None)`
/// is a clean end of stream between frames.
async fn read_size<R>(r: &mut R, msize: u32) -> Result<Option<u32>>
where
    R: AsyncRead + Unpin,
{
    let mut size = [0u8; 4];
    match r.read_exact(&mut size).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let n = u32::from_le_bytes(size);
    if (n as usize) < HEADER_SIZE || n > msize {
        return Err(Error::Protocol(format!(
            "frame of {n} bytes (msize {msize})"
        )));
    }
    Ok(Some(n))
}

/// Reads the rest of a frame whose first bytes, starting with its checked
/// size field, are `head`, and decodes it.
async fn read_rest<R>(r: &mut R, head: &[u8], dialect: Dialect, msize: u32) -> Result<Msg>
where
    R: AsyncRead + Unpin,
{
    let n = u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as usize;
    let mut frame = vec![0u8; n];
    frame[..head.len()].copy_from_slice(head);
    r.read_exact(&mut frame[head.len()..]).await?;
    match ninep::decode(dialect, &frame, msize) {
        Ok(Some((msg, _))) => Ok(msg),
        Ok(None) => Err(Error::Protocol("truncated frame".into())),
        Err(e) => Err(Error::Protocol(e.kind.to_string())),
    }
}

/// [`read_frame`] for the reader task, with a fast path for Rread: its data
/// is read into its own buffer, uninitialized until the bytes arrive, and
/// straight from the stream for whatever the [`BufReader`] does not already
/// hold. Bulk reads so cost one copy out of the kernel instead of a zeroed
/// frame, a copy into it and another out of it.
async fn read_reply<R>(r: &mut BufReader<R>, dialect: Dialect, msize: u32) -> Result<Option<Msg>>
where
    R: AsyncRead + Unpin,
{
    let Some(n) = read_size(r, msize).await? else {
        return Ok(None);
    };
    // size[4] type[1] tag[2], and for Rread count[4].
    let mut head = [0u8; HEADER_SIZE + 4];
    head[..4].copy_from_slice(&n.to_le_bytes());
    let n = n as usize;
    r.read_exact(&mut head[4..HEADER_SIZE]).await?;
    if head[4] == ninep::Rread::TYPE && n >= head.len() {
        r.read_exact(&mut head[HEADER_SIZE..]).await?;
        let count = u32::from_le_bytes([head[7], head[8], head[9], head[10]]) as usize;
        if count != n - head.len() {
            return Err(Error::Protocol(format!(
                "Rread of {count} bytes in a frame of {n}"
            )));
        }
        let mut data = Vec::with_capacity(count);
        read_exactly(r, &mut data, count).await?;
        let tag = u16::from_le_bytes([head[5], head[6]]);
        let body = Fcall::Rread(ninep::Rread { data });
        return Ok(Some(Msg { tag, body }));
    }
    read_rest(r, &head[..HEADER_SIZE], dialect, msize)
        .await
        .map(Some)
}

/// Appends exactly `count` bytes to `data` (which has room for them): first
/// what `r` has buffered, the rest read from its stream into `data` itself.
async fn read_exactly<R>(r: &mut BufReader<R>, data: &mut Vec<u8>, count: usize) -> Result<()>
where
    R: AsyncRead + Unpin,
{
    let buffered = r.buffer();
    let k = buffered.len().min(count);
    data.extend_from_slice(&buffered[..k]);
    r.consume(k);
    // Past the buffered bytes the buffer is empty, so reading the stream
    // directly keeps the order.
    let stream = r.get_mut();
    while data.len() < count {
        let left = (count - data.len()) as u64;
        if stream.take(left).read_buf(data).await? == 0 {
            return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof).into());
        }
    }
    Ok(())
}

/// Splits `stream` into the reader and writer tasks; returns the shared
/// state and the reader's handle (aborted when the client goes away).
pub(crate) fn spawn<S>(stream: S, v: Version) -> (Arc<Shared>, tokio::task::AbortHandle)
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let (tx, rx) = mpsc::unbounded_channel();
    let shared = Arc::new(Shared::new(v.dialect, v.msize, tx));
    let (r, w) = tokio::io::split(stream);
    let reader = tokio::spawn(read_loop(shared.clone(), r));
    tokio::spawn(write_loop(shared.clone(), w, rx));
    (shared, reader.abort_handle())
}

async fn read_loop<R: AsyncRead + Unpin>(shared: Arc<Shared>, r: R) {
    let mut r = BufReader::with_capacity(IO_BUFFER, r);
    let err = loop {
        match read_reply(&mut r, shared.dialect, shared.msize).await {
            Ok(Some(msg)) => {
                if let Err(e) = shared.dispatch(msg) {
                    break e;
                }
            }
            Ok(None) => break Error::Closed,
            Err(e) => break e,
        }
    };
    shared.close(err);
}

async fn write_loop<W: AsyncWrite + Unpin>(
    shared: Arc<Shared>,
    w: W,
    mut rx: mpsc::UnboundedReceiver<Vec<u8>>,
) {
    let mut w = BufWriter::with_capacity(IO_BUFFER, w);
    loop {
        let frame = tokio::select! {
            biased;
            frame = rx.recv() => frame,
            _ = shared.hangup.notified() => None,
        };
        let Some(frame) = frame else { break };
        // Batch whatever else is queued into as few writes as possible.
        let sent = async {
            w.write_all(&frame).await?;
            while let Ok(frame) = rx.try_recv() {
                w.write_all(&frame).await?;
            }
            w.flush().await
        };
        if let Err(e) = sent.await {
            shared.close(Error::Io(e));
            return;
        }
    }
    // Hanging up: send what is queued (clunks of the last fids), then EOF.
    if !shared.is_closed() {
        while let Ok(frame) = rx.try_recv() {
            if w.write_all(&frame).await.is_err() {
                return;
            }
        }
    }
    let _ = w.flush().await;
    let _ = w.shutdown().await;
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    fn frame(tag: u16, body: Fcall) -> Vec<u8> {
        let mut out = Vec::new();
        ninep::encode(Dialect::L, &Msg { tag, body }, &mut out).unwrap();
        out
    }

    /// Replies split at every few bytes, through a buffer smaller than an
    /// Rread, decode as the codec would.
    #[tokio::test]
    async fn read_reply_matches_the_codec() {
        let replies = vec![
            Msg {
                tag: 1,
                body: ninep::Rread {
                    data: (0..5000u32).map(|i| i as u8).collect(),
                }
                .into(),
            },
            Msg {
                tag: 2,
                body: ninep::Rclunk {}.into(),
            },
            Msg {
                tag: 3,
                body: ninep::Rread { data: vec![] }.into(),
            },
            Msg {
                tag: 4,
                body: ninep::Rread { data: vec![7; 10] }.into(),
            },
        ];
        let bytes: Vec<u8> = replies
            .iter()
            .flat_map(|m| frame(m.tag, m.body.clone()))
            .collect();
        let (mut w, r) = tokio::io::duplex(13);
        tokio::spawn(async move { w.write_all(&bytes).await.unwrap() });
        let mut r = BufReader::with_capacity(1000, r);
        for want in &replies {
            let got = read_reply(&mut r, Dialect::L, 8192).await.unwrap().unwrap();
            assert_eq!(&got, want);
        }
        assert!(read_reply(&mut r, Dialect::L, 8192)
            .await
            .unwrap()
            .is_none());
    }

    #[tokio::test]
    async fn rread_count_must_fill_the_frame() {
        let mut bytes = frame(1, ninep::Rread { data: vec![1; 8] }.into());
        bytes[7] = 9; // count 9 in a frame with 8 bytes of data
        let mut r = BufReader::new(&bytes[..]);
        let e = read_reply(&mut r, Dialect::L, 8192).await.unwrap_err();
        assert!(
            e.to_string().contains("Rread of 9 bytes in a frame of 19"),
            "{e}"
        );
    }
}

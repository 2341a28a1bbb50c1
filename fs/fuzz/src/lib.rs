//! The checks the fuzz targets share. Each one panics (which libFuzzer
//! reports as a crash) when the codec breaks a promise it makes in its docs:
//! no panic on any input, errors that say how to resync, and anything
//! accepted re-encodes to the same bytes.

use ninep::wire::{Reader, Wire, Writer};
use ninep::{decode, encode, frame_size, Dialect, Dirent, Fcall, Msg, Stat, HEADER_SIZE};

/// The dialects, indexed by an input byte.
pub const DIALECTS: [Dialect; 3] = [Dialect::P2000, Dialect::U, Dialect::L];

/// Which messages a target is aimed at: it sets the low bit of the type
/// byte of the frames it builds (T-messages are even, R-messages odd).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Requests, as a server reads them.
    T,
    /// Replies, as a client reads them.
    R,
}

fn encode_msg(dialect: Dialect, msg: &Msg) -> Vec<u8> {
    let mut out = Vec::new();
    if let Err(e) = encode(dialect, msg, &mut out) {
        panic!("a decoded message does not re-encode: {e} ({msg:?})");
    }
    out
}

/// Decodes the frame at the start of `buf` and checks every promise of
/// [`ninep::decode`]. Returns how many bytes a stream reader would skip, or
/// `None` where it would stop (need more, or a fatal error).
pub fn check_frame(dialect: Dialect, buf: &[u8], max: u32) -> Option<usize> {
    let size = frame_size(buf);
    match decode(dialect, buf, max) {
        Ok(None) => {
            if let Some(size) = size {
                assert!(
                    size as usize >= HEADER_SIZE && size <= max,
                    "need-more on a bad size"
                );
                assert!(buf.len() < size as usize, "need-more on a whole frame");
            }
            None
        }
        Ok(Some((msg, n))) => {
            assert_eq!(Some(n as u32), size, "consumed != size field");
            assert!(n <= buf.len() && n <= max as usize);
            assert_eq!(msg.tag, u16::from_le_bytes([buf[5], buf[6]]));
            assert_eq!(msg.body.msg_type(), buf[4]);
            let again = encode_msg(dialect, &msg);
            match (&msg.body, n) {
                // The one optional field: Tfsync without datasync comes back
                // with datasync = 0 appended.
                (Fcall::Tfsync(f), 11) => {
                    assert_eq!(f.datasync, 0);
                    assert_eq!(&again[7..11], &buf[7..11]);
                    assert_eq!(&again[11..], &[0, 0, 0, 0]);
                }
                _ => assert_eq!(&again[..], &buf[..n], "re-encoding differs: {msg:?}"),
            }
            // And the re-encoded frame decodes to the same message.
            match decode(dialect, &again, u32::MAX) {
                Ok(Some((m, k))) => {
                    assert_eq!(m, msg);
                    assert_eq!(k, again.len());
                }
                other => panic!("re-encoded frame does not decode: {other:?}"),
            }
            Some(n)
        }
        Err(e) => match e.frame_len {
            Some(n) => {
                assert_eq!(Some(n as u32), size, "skippable length != size field");
                assert!((HEADER_SIZE..=buf.len()).contains(&n) && n <= max as usize);
                assert_eq!(e.tag, Some(u16::from_le_bytes([buf[5], buf[6]])));
                Some(n)
            }
            None => {
                let Some(size) = size else {
                    panic!("fatal error without a size field: {e:?}");
                };
                assert!(
                    (size as usize) < HEADER_SIZE || size > max,
                    "fatal error on a sane size {size}: {e:?}"
                );
                assert_eq!(e.tag, None);
                None
            }
        },
    }
}

/// Reads `buf` as a stream of frames, skipping the bad ones, as a server's
/// read loop would.
pub fn check_stream(dialect: Dialect, mut buf: &[u8], max: u32) {
    while let Some(n) = check_frame(dialect, buf, max) {
        buf = &buf[n..];
    }
}

/// The message targets: byte 0 picks the dialect and msize, the rest is
/// read twice: as a raw stream, and as one frame whose size field and type
/// parity are fixed up so the body decoders see the bytes.
pub fn check_message(data: &[u8], direction: Direction) {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let dialect = DIALECTS[usize::from(sel % 3)];
    let max = match (sel / 3) % 4 {
        0 => u32::MAX,
        1 => 8192,
        2 => 64,
        _ => u32::from(sel),
    };
    check_stream(dialect, rest, max);

    if rest.len() >= HEADER_SIZE {
        let mut frame = rest.to_vec();
        if let Ok(size) = u32::try_from(frame.len()) {
            frame[..4].copy_from_slice(&size.to_le_bytes());
            frame[4] = match direction {
                Direction::T => frame[4] & !1,
                Direction::R => frame[4] | 1,
            };
            for d in DIALECTS {
                check_frame(d, &frame, u32::MAX);
            }
        }
    }
}

/// The stat target: byte 0 picks the dialect; the rest is read as one stat
/// entry, as a directory read, and as the `n[2]`-prefixed stat of Rstat.
pub fn check_stat(data: &[u8]) {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let dialect = DIALECTS[usize::from(sel % 3)];

    // One entry.
    let mut r = Reader::new(rest, dialect);
    if let Ok(stat) = Stat::decode_entry(&mut r) {
        let used = rest.len() - r.remaining();
        let mut out = Vec::new();
        let encoded = stat.encode_entry(&mut Writer::new(&mut out, dialect));
        assert!(encoded.is_ok(), "decoded stat does not re-encode");
        assert_eq!(&out[..], &rest[..used]);
        assert_eq!(stat.entry_len(dialect), used);
    }

    // A directory read.
    if let Ok(stats) = Stat::decode_dir(rest, dialect) {
        let mut out = Vec::new();
        let mut w = Writer::new(&mut out, dialect);
        for s in &stats {
            assert!(s.encode_entry(&mut w).is_ok());
        }
        assert_eq!(out, rest, "directory read re-encodes differently");
    }

    // The Rstat/Twstat form.
    let mut r = Reader::new(rest, dialect);
    if let Ok(stat) = <Stat as Wire>::decode(&mut r) {
        let used = rest.len() - r.remaining();
        let mut out = Vec::new();
        assert!(stat.encode(&mut Writer::new(&mut out, dialect)).is_ok());
        assert_eq!(&out[..], &rest[..used]);
    }
}

/// The dirent target: the bytes are an Rreaddir payload.
pub fn check_dirents(data: &[u8]) {
    if let Ok(ents) = Dirent::decode_all(data) {
        let mut out = Vec::new();
        for e in &ents {
            assert!(e.encode(&mut out).is_ok());
        }
        assert_eq!(out, data, "dirents re-encode differently");
        assert_eq!(ents.iter().map(Dirent::len).sum::<usize>(), data.len());
    }
}

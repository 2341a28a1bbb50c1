//! Whole frames: `size[4] type[1] tag[2] body`.
//!
//! [`decode`] returns `Ok(None)` while the buffer holds less than a frame
//! ("need more bytes"), so a stream reader can call it after every read.
//! Its errors say whether the stream can go on: a frame whose size is known
//! but whose body is bad can be skipped and answered with an error for its
//! tag; a frame whose size is itself impossible cannot be skipped, and the
//! connection must close.

use crate::wire::{Reader, Writer};
use crate::{Dialect, Fcall, HEADER_SIZE};

/// One message with its tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Msg {
    /// The tag that pairs a reply with its request.
    pub tag: u16,
    /// The message.
    pub body: Fcall,
}

/// What was wrong with a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A field ran past the end of the frame.
    #[error("message too short")]
    Short,
    /// The size field is below the 7-byte header.
    #[error("message size {0} is below the 7-byte minimum")]
    Undersize(u32),
    /// The size field exceeds the negotiated msize.
    #[error("message size {size} exceeds msize {max}")]
    Oversize {
        /// The frame's size field.
        size: u32,
        /// The limit in force.
        max: u32,
    },
    /// The type byte names no message.
    #[error("unknown message type {0}")]
    UnknownType(u8),
    /// A string is not valid UTF-8.
    #[error("string is not valid UTF-8")]
    BadUtf8,
    /// A Twalk or Rwalk carries more than 16 elements.
    #[error("{0} walk elements (at most 16)")]
    TooManyWalkElements(u16),
    /// Bytes remain after the last field.
    #[error("{0} bytes after the end of the message")]
    Trailing(usize),
    /// A stat record's size does not match its fields.
    #[error("stat size does not match its contents")]
    StatSize,
}

/// A frame that could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("9P protocol botch: {kind}")]
pub struct DecodeError {
    /// What was wrong.
    pub kind: ErrorKind,
    /// The frame's tag, when the header was readable.
    pub tag: Option<u16>,
    /// The frame's length, when it can be skipped and the stream can go on.
    /// `None` means the stream is out of step and the connection must close.
    pub frame_len: Option<usize>,
}

/// A message that cannot be put on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// A string longer than 65535 bytes.
    #[error("string of {0} bytes is too long for 9P")]
    StringTooLong(usize),
    /// A payload longer than 4 GiB.
    #[error("data of {0} bytes is too long for 9P")]
    DataTooLong(usize),
    /// A stat record longer than 65535 bytes.
    #[error("stat record of {0} bytes is too long for 9P")]
    StatTooLong(usize),
    /// More than 16 walk elements.
    #[error("{0} walk elements (at most 16)")]
    TooManyWalkElements(usize),
    /// The whole frame exceeds 4 GiB.
    #[error("message of {0} bytes is too long for 9P")]
    FrameTooLong(usize),
}

/// The size field of the frame at the start of `buf`, if 4 bytes are there.
pub fn frame_size(buf: &[u8]) -> Option<u32> {
    let b: [u8; 4] = buf.get(..4)?.try_into().ok()?;
    Some(u32::from_le_bytes(b))
}

/// Decodes the frame at the start of `buf`.
///
/// Returns `Ok(None)` if `buf` does not yet hold a whole frame, and
/// `Ok(Some((msg, n)))` where `n` is the number of bytes consumed. A frame
/// larger than `max_size` is rejected as soon as its size field is seen,
/// before any of it is buffered.
pub fn decode(
    dialect: Dialect,
    buf: &[u8],
    max_size: u32,
) -> Result<Option<(Msg, usize)>, DecodeError> {
    let Some(size) = frame_size(buf) else {
        return Ok(None);
    };
    let fatal = |kind| DecodeError {
        kind,
        tag: None,
        frame_len: None,
    };
    if (size as usize) < HEADER_SIZE {
        return Err(fatal(ErrorKind::Undersize(size)));
    }
    if size > max_size {
        return Err(fatal(ErrorKind::Oversize {
            size,
            max: max_size,
        }));
    }
    let size = size as usize;
    let Some(frame) = buf.get(..size) else {
        return Ok(None);
    };
    let ty = frame[4];
    let tag = u16::from_le_bytes([frame[5], frame[6]]);
    let mut r = Reader::new(&frame[HEADER_SIZE..], dialect);
    let skippable = |kind| DecodeError {
        kind,
        tag: Some(tag),
        frame_len: Some(size),
    };
    let body = Fcall::decode_body(ty, &mut r).map_err(skippable)?;
    if r.remaining() != 0 {
        return Err(skippable(ErrorKind::Trailing(r.remaining())));
    }
    Ok(Some((Msg { tag, body }, size)))
}

/// Appends the frame for `msg` to `out`. On error `out` is left as it was.
pub fn encode(dialect: Dialect, msg: &Msg, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    let start = out.len();
    out.extend_from_slice(&[0, 0, 0, 0, msg.body.msg_type()]);
    out.extend_from_slice(&msg.tag.to_le_bytes());
    let result = msg.body.encode_body(&mut Writer::new(out, dialect));
    let size = out.len() - start;
    let result =
        result.and_then(|()| u32::try_from(size).map_err(|_| EncodeError::FrameTooLong(size)));
    match result {
        Ok(size) => {
            out[start..start + 4].copy_from_slice(&size.to_le_bytes());
            Ok(())
        }
        Err(e) => {
            out.truncate(start);
            Err(e)
        }
    }
}

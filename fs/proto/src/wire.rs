//! The field codec: little-endian integers, `s[2]` strings, counted arrays,
//! and the records that appear inside messages ([`Qid`], [`Stat`], [`Dirent`]).
//!
//! Every read goes through [`Reader::take`], which refuses to run past the
//! end of the frame, so no length from the wire is trusted before the bytes
//! behind it have been seen.

use crate::frame::{EncodeError, ErrorKind};
use crate::{Dialect, MAXWELEM, NONUNAME};

/// A cursor over the body of one frame.
#[derive(Debug)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    dialect: Dialect,
}

impl<'a> Reader<'a> {
    /// Reads `buf` as the given dialect.
    pub fn new(buf: &'a [u8], dialect: Dialect) -> Self {
        Reader {
            buf,
            pos: 0,
            dialect,
        }
    }

    /// The dialect being decoded.
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// Bytes not yet read.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// The next `n` bytes, or [`ErrorKind::Short`] if the frame ends first.
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], ErrorKind> {
        if self.remaining() < n {
            return Err(ErrorKind::Short);
        }
        let out = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], ErrorKind> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }
}

/// An output buffer plus the dialect being encoded.
#[derive(Debug)]
pub struct Writer<'a> {
    out: &'a mut Vec<u8>,
    dialect: Dialect,
}

impl<'a> Writer<'a> {
    /// Appends to `out` in the given dialect.
    pub fn new(out: &'a mut Vec<u8>, dialect: Dialect) -> Self {
        Writer { out, dialect }
    }

    /// The dialect being encoded.
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// Appends raw bytes.
    pub fn put(&mut self, bytes: &[u8]) {
        self.out.extend_from_slice(bytes);
    }

    /// Bytes written so far (of the whole buffer).
    pub fn len(&self) -> usize {
        self.out.len()
    }

    /// Whether nothing has been written to the buffer.
    pub fn is_empty(&self) -> bool {
        self.out.is_empty()
    }

    fn patch_u16(&mut self, at: usize, v: u16) {
        self.out[at..at + 2].copy_from_slice(&v.to_le_bytes());
    }
}

/// A value with a 9P wire form.
pub trait Wire: Sized {
    /// Appends the wire form.
    fn encode(&self, w: &mut Writer<'_>) -> Result<(), EncodeError>;
    /// Reads the wire form.
    fn decode(r: &mut Reader<'_>) -> Result<Self, ErrorKind>;
}

macro_rules! wire_int {
    ($($t:ty),*) => {$(
        impl Wire for $t {
            fn encode(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
                w.put(&self.to_le_bytes());
                Ok(())
            }
            fn decode(r: &mut Reader<'_>) -> Result<Self, ErrorKind> {
                Ok(<$t>::from_le_bytes(r.array()?))
            }
        }
    )*};
}
wire_int!(u8, u16, u32, u64);

/// `s[2]`: a UTF-8 string with a 2-byte length.
impl Wire for String {
    fn encode(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        let n = u16::try_from(self.len()).map_err(|_| EncodeError::StringTooLong(self.len()))?;
        n.encode(w)?;
        w.put(self.as_bytes());
        Ok(())
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self, ErrorKind> {
        let n = u16::decode(r)? as usize;
        let bytes = r.take(n)?;
        match std::str::from_utf8(bytes) {
            Ok(s) => Ok(s.to_owned()),
            Err(_) => Err(ErrorKind::BadUtf8),
        }
    }
}

/// `count[4] data[count]`: the payload of Rread, Twrite and Rreaddir.
impl Wire for Vec<u8> {
    fn encode(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        let n = u32::try_from(self.len()).map_err(|_| EncodeError::DataTooLong(self.len()))?;
        n.encode(w)?;
        w.put(self);
        Ok(())
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self, ErrorKind> {
        let n = u32::decode(r)? as usize;
        Ok(r.take(n)?.to_vec())
    }
}

/// `nwname[2] nwname*(wname[s])` of Twalk, at most [`MAXWELEM`].
impl Wire for Vec<String> {
    fn encode(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        if self.len() > MAXWELEM {
            return Err(EncodeError::TooManyWalkElements(self.len()));
        }
        (self.len() as u16).encode(w)?;
        self.iter().try_for_each(|s| s.encode(w))
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self, ErrorKind> {
        let n = u16::decode(r)?;
        if n as usize > MAXWELEM {
            return Err(ErrorKind::TooManyWalkElements(n));
        }
        (0..n).map(|_| String::decode(r)).collect()
    }
}

/// `nwqid[2] nwqid*(qid[13])` of Rwalk, at most [`MAXWELEM`].
impl Wire for Vec<Qid> {
    fn encode(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        if self.len() > MAXWELEM {
            return Err(EncodeError::TooManyWalkElements(self.len()));
        }
        (self.len() as u16).encode(w)?;
        self.iter().try_for_each(|q| q.encode(w))
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self, ErrorKind> {
        let n = u16::decode(r)?;
        if n as usize > MAXWELEM {
            return Err(ErrorKind::TooManyWalkElements(n));
        }
        (0..n).map(|_| Qid::decode(r)).collect()
    }
}

/// The server's unique identification of a file: `type[1] version[4] path[8]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Qid {
    /// [`crate::qt`] bits.
    pub ty: u8,
    /// Changes whenever the file is modified (0 for synthetic files that do not track it).
    pub version: u32,
    /// Unique among all files of the server's tree.
    pub path: u64,
}

impl Qid {
    /// Size on the wire.
    pub const SIZE: usize = 13;

    /// Whether the qid names a directory.
    pub fn is_dir(&self) -> bool {
        self.ty & crate::qt::DIR != 0
    }
}

impl Wire for Qid {
    fn encode(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        self.ty.encode(w)?;
        self.version.encode(w)?;
        self.path.encode(w)
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self, ErrorKind> {
        Ok(Qid {
            ty: u8::decode(r)?,
            version: u32::decode(r)?,
            path: u64::decode(r)?,
        })
    }
}

/// A directory entry of 9P2000 and 9P2000.u (stat(5)).
///
/// The .u fields (`extension`, `n_uid`, `n_gid`, `n_muid`) are on the wire
/// only in 9P2000.u; elsewhere they decode as empty / [`NONUNAME`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stat {
    /// For kernel use.
    pub ty: u16,
    /// For kernel use.
    pub dev: u32,
    /// The file's qid.
    pub qid: Qid,
    /// Permissions and [`crate::dm`] flags.
    pub mode: u32,
    /// Last access time, seconds since the epoch.
    pub atime: u32,
    /// Last modification time, seconds since the epoch.
    pub mtime: u32,
    /// Length in bytes (0 for directories).
    pub length: u64,
    /// Last element of the path.
    pub name: String,
    /// Owner.
    pub uid: String,
    /// Group.
    pub gid: String,
    /// Last modifier.
    pub muid: String,
    /// .u: symlink target, or device description `b 1 2` / `c 1 2`.
    pub extension: String,
    /// .u: numeric owner.
    pub n_uid: u32,
    /// .u: numeric group.
    pub n_gid: u32,
    /// .u: numeric last modifier.
    pub n_muid: u32,
}

impl Default for Stat {
    fn default() -> Self {
        Stat {
            ty: 0,
            dev: 0,
            qid: Qid::default(),
            mode: 0,
            atime: 0,
            mtime: 0,
            length: 0,
            name: String::new(),
            uid: String::new(),
            gid: String::new(),
            muid: String::new(),
            extension: String::new(),
            n_uid: NONUNAME,
            n_gid: NONUNAME,
            n_muid: NONUNAME,
        }
    }
}

impl Stat {
    /// A Twstat record that changes nothing: every integer ~0, every string empty (stat(5)).
    pub fn dont_touch() -> Self {
        Stat {
            ty: !0,
            dev: !0,
            qid: Qid {
                ty: !0,
                version: !0,
                path: !0,
            },
            mode: !0,
            atime: !0,
            mtime: !0,
            length: !0,
            n_uid: !0,
            n_gid: !0,
            n_muid: !0,
            ..Stat::default()
        }
    }

    /// Appends the record as it appears in a directory read:
    /// `size[2]` followed by the fields.
    pub fn encode_entry(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        let start = w.len();
        0u16.encode(w)?;
        self.ty.encode(w)?;
        self.dev.encode(w)?;
        self.qid.encode(w)?;
        self.mode.encode(w)?;
        self.atime.encode(w)?;
        self.mtime.encode(w)?;
        self.length.encode(w)?;
        self.name.encode(w)?;
        self.uid.encode(w)?;
        self.gid.encode(w)?;
        self.muid.encode(w)?;
        if w.dialect() == Dialect::U {
            self.extension.encode(w)?;
            self.n_uid.encode(w)?;
            self.n_gid.encode(w)?;
            self.n_muid.encode(w)?;
        }
        let size = w.len() - start - 2;
        let size = u16::try_from(size).map_err(|_| EncodeError::StatTooLong(size))?;
        w.patch_u16(start, size);
        Ok(())
    }

    /// Reads one record as it appears in a directory read. The record's own
    /// size must match its contents exactly.
    pub fn decode_entry(r: &mut Reader<'_>) -> Result<Self, ErrorKind> {
        let size = u16::decode(r)? as usize;
        let body = r.take(size)?;
        let mut inner = Reader::new(body, r.dialect());
        let mut stat = Stat {
            ty: u16::decode(&mut inner)?,
            dev: u32::decode(&mut inner)?,
            qid: Qid::decode(&mut inner)?,
            mode: u32::decode(&mut inner)?,
            atime: u32::decode(&mut inner)?,
            mtime: u32::decode(&mut inner)?,
            length: u64::decode(&mut inner)?,
            name: String::decode(&mut inner)?,
            uid: String::decode(&mut inner)?,
            gid: String::decode(&mut inner)?,
            muid: String::decode(&mut inner)?,
            ..Stat::default()
        };
        if inner.dialect() == Dialect::U {
            stat.extension = String::decode(&mut inner)?;
            stat.n_uid = u32::decode(&mut inner)?;
            stat.n_gid = u32::decode(&mut inner)?;
            stat.n_muid = u32::decode(&mut inner)?;
        }
        if inner.remaining() != 0 {
            return Err(ErrorKind::StatSize);
        }
        Ok(stat)
    }

    /// Decodes every record of a 9P2000 directory read.
    pub fn decode_dir(data: &[u8], dialect: Dialect) -> Result<Vec<Stat>, ErrorKind> {
        let mut r = Reader::new(data, dialect);
        let mut out = Vec::new();
        while r.remaining() > 0 {
            out.push(Stat::decode_entry(&mut r)?);
        }
        Ok(out)
    }

    /// The encoded size of the entry in `dialect`, including its `size[2]`.
    pub fn entry_len(&self, dialect: Dialect) -> usize {
        let base = 2 + 2 + 4 + Qid::SIZE + 4 + 4 + 4 + 8;
        let strings = [&self.name, &self.uid, &self.gid, &self.muid]
            .iter()
            .map(|s| 2 + s.len())
            .sum::<usize>();
        let dotu = if dialect == Dialect::U {
            2 + self.extension.len() + 12
        } else {
            0
        };
        base + strings + dotu
    }
}

/// In Rstat and Twstat the stat record is preceded by a second, redundant
/// `n[2]` (stat(5): "the stat data ... preceded by its size"), so the field
/// codec writes `n[2]` and then the entry.
impl Wire for Stat {
    fn encode(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        let n = self.entry_len(w.dialect());
        let n = u16::try_from(n).map_err(|_| EncodeError::StatTooLong(n))?;
        n.encode(w)?;
        self.encode_entry(w)
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self, ErrorKind> {
        let n = u16::decode(r)? as usize;
        let body = r.take(n)?;
        let mut inner = Reader::new(body, r.dialect());
        let stat = Stat::decode_entry(&mut inner)?;
        if inner.remaining() != 0 {
            return Err(ErrorKind::StatSize);
        }
        Ok(stat)
    }
}

/// One entry of a 9P2000.L Rreaddir: `qid[13] offset[8] type[1] name[s]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dirent {
    /// The entry's qid.
    pub qid: Qid,
    /// The offset to send in the next Treaddir to continue after this entry.
    pub offset: u64,
    /// Linux `d_type` (DT_DIR = 4, DT_REG = 8, DT_LNK = 10, ...).
    pub ty: u8,
    /// The entry's name.
    pub name: String,
}

impl Dirent {
    /// The encoded size of the entry.
    pub fn len(&self) -> usize {
        Qid::SIZE + 8 + 1 + 2 + self.name.len()
    }

    /// Always false: an entry has a fixed part even with an empty name.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Appends the entry.
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let mut w = Writer::new(out, Dialect::L);
        self.qid.encode(&mut w)?;
        self.offset.encode(&mut w)?;
        self.ty.encode(&mut w)?;
        self.name.encode(&mut w)
    }

    /// Decodes every entry of an Rreaddir payload.
    pub fn decode_all(data: &[u8]) -> Result<Vec<Dirent>, ErrorKind> {
        let mut r = Reader::new(data, Dialect::L);
        let mut out = Vec::new();
        while r.remaining() > 0 {
            out.push(Dirent {
                qid: Qid::decode(&mut r)?,
                offset: u64::decode(&mut r)?,
                ty: u8::decode(&mut r)?,
                name: String::decode(&mut r)?,
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
#[allow(clippy::expect_used)] // the crate denies it; a failing test may panic
mod tests {
    use super::*;

    #[test]
    fn stat_entry_len_matches_encoding_in_each_dialect() {
        let st = Stat {
            name: "héllo".into(),
            uid: "glenda".into(),
            extension: "b 1 2".into(),
            ..Stat::default()
        };
        for d in [Dialect::P2000, Dialect::U, Dialect::L] {
            let mut out = Vec::new();
            st.encode_entry(&mut Writer::new(&mut out, d))
                .expect("encodes");
            assert_eq!(out.len(), st.entry_len(d), "{d:?}");
        }
    }

    #[test]
    fn stat_with_inconsistent_size_is_rejected() {
        let mut out = Vec::new();
        Stat::default()
            .encode_entry(&mut Writer::new(&mut out, Dialect::P2000))
            .expect("encodes");
        out.push(0); // one byte more than the record says
        out[0] += 1;
        let mut r = Reader::new(&out, Dialect::P2000);
        assert_eq!(Stat::decode_entry(&mut r), Err(ErrorKind::StatSize));
    }

    #[test]
    fn string_length_beyond_frame_is_short_not_allocated() {
        let bytes = [0xff, 0xff, b'a'];
        let mut r = Reader::new(&bytes, Dialect::P2000);
        assert_eq!(String::decode(&mut r), Err(ErrorKind::Short));
    }

    #[test]
    fn invalid_utf8_is_rejected() {
        let bytes = [2, 0, 0xc3, 0x28];
        let mut r = Reader::new(&bytes, Dialect::P2000);
        assert_eq!(String::decode(&mut r), Err(ErrorKind::BadUtf8));
    }

    #[test]
    fn dirents_round_trip() {
        let ents = vec![
            Dirent {
                qid: Qid {
                    ty: crate::qt::DIR,
                    version: 1,
                    path: 2,
                },
                offset: 1,
                ty: 4,
                name: ".".into(),
            },
            Dirent {
                qid: Qid::default(),
                offset: 2,
                ty: 8,
                name: "file".into(),
            },
        ];
        let mut out = Vec::new();
        for e in &ents {
            e.encode(&mut out).expect("encodes");
        }
        assert_eq!(out.len(), ents.iter().map(Dirent::len).sum::<usize>());
        assert_eq!(Dirent::decode_all(&out), Ok(ents));
    }
}

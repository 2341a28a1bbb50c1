//! Property tests: `decode(encode(m)) == m` for every message in every
//! dialect (with dialect-only fields normalized to their absent values), and
//! arbitrary bytes never panic the decoder, and anything it accepts
//! re-encodes to the very same bytes.

use std::collections::BTreeSet;

use ninep::*;
use proptest::prelude::*;
use proptest::strategy::{Union, ValueTree};
use proptest::test_runner::TestRunner;

const DIALECTS: [Dialect; 3] = [Dialect::P2000, Dialect::U, Dialect::L];

// ---------------------------------------------------------------- strategies

/// A strategy for each field type, within the protocol's limits.
trait Gen: Sized + std::fmt::Debug {
    fn gen() -> BoxedStrategy<Self>;
}

macro_rules! gen_int {
    ($($t:ty),*) => {$(
        impl Gen for $t {
            fn gen() -> BoxedStrategy<Self> {
                // Edge values often, anything otherwise.
                prop_oneof![
                    1 => Just(0 as $t),
                    1 => Just(<$t>::MAX),
                    6 => any::<$t>(),
                ]
                .boxed()
            }
        }
    )*};
}
gen_int!(u8, u16, u32, u64);

impl Gen for String {
    fn gen() -> BoxedStrategy<Self> {
        // Any characters (multi-byte ones included), a few dozen bytes at most.
        prop_oneof![
            1 => Just(String::new()),
            4 => "(?s).{0,12}",
        ]
        .boxed()
    }
}

impl Gen for Vec<u8> {
    fn gen() -> BoxedStrategy<Self> {
        proptest::collection::vec(any::<u8>(), 0..48).boxed()
    }
}

impl Gen for Vec<String> {
    fn gen() -> BoxedStrategy<Self> {
        proptest::collection::vec(String::gen(), 0..=MAXWELEM).boxed()
    }
}

impl Gen for Qid {
    fn gen() -> BoxedStrategy<Self> {
        (u8::gen(), u32::gen(), u64::gen())
            .prop_map(|(ty, version, path)| Qid { ty, version, path })
            .boxed()
    }
}

impl Gen for Vec<Qid> {
    fn gen() -> BoxedStrategy<Self> {
        proptest::collection::vec(Qid::gen(), 0..=MAXWELEM).boxed()
    }
}

impl Gen for Stat {
    fn gen() -> BoxedStrategy<Self> {
        (
            (u16::gen(), u32::gen(), Qid::gen(), u32::gen(), u32::gen()),
            (u32::gen(), u64::gen(), String::gen(), String::gen()),
            (String::gen(), String::gen(), String::gen()),
            (u32::gen(), u32::gen(), u32::gen()),
        )
            .prop_map(
                |(
                    (ty, dev, qid, mode, atime),
                    (mtime, length, name, uid),
                    (gid, muid, extension),
                    (n_uid, n_gid, n_muid),
                )| Stat {
                    ty,
                    dev,
                    qid,
                    mode,
                    atime,
                    mtime,
                    length,
                    name,
                    uid,
                    gid,
                    muid,
                    extension,
                    n_uid,
                    n_gid,
                    n_muid,
                },
            )
            .boxed()
    }
}

impl Gen for Dirent {
    fn gen() -> BoxedStrategy<Self> {
        (Qid::gen(), u64::gen(), u8::gen(), String::gen())
            .prop_map(|(qid, offset, ty, name)| Dirent {
                qid,
                offset,
                ty,
                name,
            })
            .boxed()
    }
}

/// `(gen(), (gen(), (..., Just(()))))`: nested pairs, so a message may
/// have more fields than proptest's largest tuple.
macro_rules! nest {
    () => { Just(()) };
    ($h:ident $(, $t:ident)*) => { (Gen::gen(), nest!($($t),*)) };
}
macro_rules! nest_pat {
    () => { () };
    ($h:ident $(, $t:ident)*) => { ($h, nest_pat!($($t),*)) };
}

/// One strategy per message: `Name { field, ... }` draws each field from
/// its type's [`Gen`].
macro_rules! arms {
    ($($name:ident { $($field:ident),* $(,)? })*) => {
        vec![$(
            nest!($($field),*)
                .prop_map(|nest_pat!($($field),*)| Fcall::$name($name { $($field),* }))
                .boxed(),
        )*]
    };
}

/// One strategy per variant of [`Fcall`]; see `the_strategy_covers_every_message`.
fn arms() -> Vec<BoxedStrategy<Fcall>> {
    arms! {
        Rlerror { ecode }
        Tstatfs { fid }
        Rstatfs { ty, bsize, blocks, bfree, bavail, files, ffree, fsid, namelen }
        Tlopen { fid, flags }
        Rlopen { qid, iounit }
        Tlcreate { fid, name, flags, mode, gid }
        Rlcreate { qid, iounit }
        Tsymlink { fid, name, symtgt, gid }
        Rsymlink { qid }
        Tmknod { dfid, name, mode, major, minor, gid }
        Rmknod { qid }
        Trename { fid, dfid, name }
        Rrename {}
        Treadlink { fid }
        Rreadlink { target }
        Tgetattr { fid, request_mask }
        Rgetattr {
            valid, qid, mode, uid, gid, nlink, rdev, size, blksize, blocks, atime_sec,
            atime_nsec, mtime_sec, mtime_nsec, ctime_sec, ctime_nsec, btime_sec, btime_nsec,
            gen, data_version,
        }
        Tsetattr {
            fid, valid, mode, uid, gid, size, atime_sec, atime_nsec, mtime_sec, mtime_nsec,
        }
        Rsetattr {}
        Txattrwalk { fid, newfid, name }
        Rxattrwalk { size }
        Txattrcreate { fid, name, attr_size, flags }
        Rxattrcreate {}
        Treaddir { fid, offset, count }
        Rreaddir { data }
        Tfsync { fid, datasync }
        Rfsync {}
        Tlock { fid, ty, flags, start, length, proc_id, client_id }
        Rlock { status }
        Tgetlock { fid, ty, start, length, proc_id, client_id }
        Rgetlock { ty, start, length, proc_id, client_id }
        Tlink { dfid, fid, name }
        Rlink {}
        Tmkdir { dfid, name, mode, gid }
        Rmkdir { qid }
        Trenameat { olddirfid, oldname, newdirfid, newname }
        Rrenameat {}
        Tunlinkat { dirfd, name, flags }
        Runlinkat {}
        Tversion { msize, version }
        Rversion { msize, version }
        Tauth { afid, uname, aname, n_uname }
        Rauth { aqid }
        Tattach { fid, afid, uname, aname, n_uname }
        Rattach { qid }
        Rerror { ename, errno }
        Tflush { oldtag }
        Rflush {}
        Twalk { fid, newfid, wnames }
        Rwalk { wqids }
        Topen { fid, mode }
        Ropen { qid, iounit }
        Tcreate { fid, name, perm, mode, extension }
        Rcreate { qid, iounit }
        Tread { fid, offset, count }
        Rread { data }
        Twrite { fid, offset, data }
        Rwrite { count }
        Tclunk { fid }
        Rclunk {}
        Tremove { fid }
        Rremove {}
        Tstat { fid }
        Rstat { stat }
        Twstat { fid, stat }
        Rwstat {}
    }
}

fn any_fcall() -> impl Strategy<Value = Fcall> {
    Union::new(arms())
}

fn any_msg() -> impl Strategy<Value = Msg> {
    (any::<u16>(), any_fcall()).prop_map(|(tag, body)| Msg { tag, body })
}

fn any_dialect() -> impl Strategy<Value = Dialect> {
    prop_oneof![Just(Dialect::P2000), Just(Dialect::U), Just(Dialect::L)]
}

// ------------------------------------------------------------- normalization

/// What `m` decodes as after a trip through `dialect`: fields that dialect
/// does not carry come back as their absent values (NONUNAME for numeric
/// ids, 0 or "" otherwise).
fn normalize(dialect: Dialect, body: Fcall) -> Fcall {
    let dotu = dialect == Dialect::U;
    let ext = dialect != Dialect::P2000;
    match body {
        Fcall::Tauth(m) if !ext => Fcall::Tauth(Tauth {
            n_uname: NONUNAME,
            ..m
        }),
        Fcall::Tattach(m) if !ext => Fcall::Tattach(Tattach {
            n_uname: NONUNAME,
            ..m
        }),
        Fcall::Rerror(m) if !dotu => Fcall::Rerror(Rerror { errno: 0, ..m }),
        Fcall::Tcreate(m) if !dotu => Fcall::Tcreate(Tcreate {
            extension: String::new(),
            ..m
        }),
        Fcall::Rstat(m) => Fcall::Rstat(Rstat {
            stat: normalize_stat(dialect, m.stat),
        }),
        Fcall::Twstat(m) => Fcall::Twstat(Twstat {
            stat: normalize_stat(dialect, m.stat),
            ..m
        }),
        other => other,
    }
}

fn normalize_stat(dialect: Dialect, stat: Stat) -> Stat {
    if dialect == Dialect::U {
        stat
    } else {
        Stat {
            extension: String::new(),
            n_uid: NONUNAME,
            n_gid: NONUNAME,
            n_muid: NONUNAME,
            ..stat
        }
    }
}

fn encode_vec(dialect: Dialect, msg: &Msg) -> Vec<u8> {
    let mut out = Vec::new();
    encode(dialect, msg, &mut out).expect("within limits, every message encodes");
    out
}

/// Everything `decode` promises about an arbitrary buffer.
fn check_any_bytes(dialect: Dialect, buf: &[u8], max: u32) -> Result<(), TestCaseError> {
    let result = decode(dialect, buf, max);
    let size = frame_size(buf);
    match result {
        Ok(None) => {
            // Only when the frame is not all there yet, and its size is sane.
            if let Some(size) = size {
                prop_assert!(size as usize >= HEADER_SIZE && size <= max);
                prop_assert!(buf.len() < size as usize);
            }
        }
        Ok(Some((msg, n))) => {
            prop_assert_eq!(Some(n as u32), size);
            prop_assert!(n <= buf.len() && n <= max as usize && n >= HEADER_SIZE);
            prop_assert_eq!(msg.tag, u16::from_le_bytes([buf[5], buf[6]]));
            prop_assert_eq!(msg.body.msg_type(), buf[4]);
            let again = encode_vec(dialect, &msg);
            if let (Fcall::Tfsync(f), 11) = (&msg.body, n) {
                // The one optional field: an old-style Tfsync without
                // datasync re-encodes with datasync = 0 appended.
                prop_assert_eq!(f.datasync, 0);
                prop_assert_eq!(&again[7..11], &buf[7..11]);
                prop_assert_eq!(&again[11..], &[0, 0, 0, 0]);
            } else {
                prop_assert_eq!(&again[..], &buf[..n]);
            }
        }
        Err(e) => match e.frame_len {
            Some(n) => {
                // The frame was all there and can be skipped.
                prop_assert_eq!(Some(n as u32), size);
                prop_assert!(n <= buf.len() && n <= max as usize && n >= HEADER_SIZE);
                prop_assert_eq!(e.tag, Some(u16::from_le_bytes([buf[5], buf[6]])));
                let size_error =
                    matches!(e.kind, ErrorKind::Undersize(_) | ErrorKind::Oversize { .. });
                prop_assert!(!size_error, "skippable {:?}", e.kind);
            }
            None => {
                // Fatal only for an impossible size.
                let size = size.expect("a fatal error needs a size field");
                prop_assert_eq!(e.tag, None);
                match e.kind {
                    ErrorKind::Undersize(s) => {
                        prop_assert_eq!(s, size);
                        prop_assert!((s as usize) < HEADER_SIZE);
                    }
                    ErrorKind::Oversize { size: s, max: m } => {
                        prop_assert_eq!((s, m), (size, max));
                        prop_assert!(s > max && s as usize >= HEADER_SIZE);
                    }
                    other => prop_assert!(false, "fatal {:?}", other),
                }
            }
        },
    }
    Ok(())
}

/// Frames whose size field is right and whose type is usually known, so
/// the body decoders see the garbage rather than the header checks.
fn framed_garbage() -> impl Strategy<Value = Vec<u8>> {
    let known: Vec<u8> = known_types().into_iter().collect();
    (
        prop_oneof![4 => proptest::sample::select(known), 1 => any::<u8>()],
        any::<u16>(),
        proptest::collection::vec(
            prop_oneof![
                // Small numbers make plausible lengths and counts.
                3 => 0u8..20,
                2 => any::<u8>(),
                1 => Just(0xffu8),
            ],
            0..120,
        ),
    )
        .prop_map(|(ty, tag, body)| {
            let size = u32::try_from(HEADER_SIZE + body.len()).unwrap_or(u32::MAX);
            let mut out = size.to_le_bytes().to_vec();
            out.push(ty);
            out.extend_from_slice(&tag.to_le_bytes());
            out.extend(body);
            out
        })
}

/// The type numbers the decoder recognizes, found by asking it.
fn known_types() -> BTreeSet<u8> {
    (0..=255u8)
        .filter(|&ty| {
            let buf = [7, 0, 0, 0, ty, 0, 0];
            !matches!(
                decode(Dialect::L, &buf, 8192),
                Err(DecodeError {
                    kind: ErrorKind::UnknownType(_),
                    ..
                })
            )
        })
        .collect()
}

// ------------------------------------------------------------------- tests

#[test]
fn the_strategy_covers_every_message() {
    let mut runner = TestRunner::deterministic();
    let mut covered = BTreeSet::new();
    for arm in arms() {
        let value = arm.new_tree(&mut runner).expect("generates").current();
        assert!(
            covered.insert(value.msg_type()),
            "two arms for {}",
            value.name()
        );
    }
    assert_eq!(covered, known_types());
    assert_eq!(covered.len(), 66);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn encode_then_decode_is_identity(msg in any_msg()) {
        for d in DIALECTS {
            let bytes = encode_vec(d, &msg);
            let want = Msg { tag: msg.tag, body: normalize(d, msg.body.clone()) };
            prop_assert_eq!(frame_size(&bytes), Some(bytes.len() as u32));
            let got = decode(d, &bytes, u32::MAX);
            prop_assert_eq!(got, Ok(Some((want.clone(), bytes.len()))), "{:?}", d);
            // The normalized message is what is on the wire: same bytes.
            prop_assert_eq!(encode_vec(d, &want), bytes.clone());
            // The frame fits an msize of exactly its length, and not one less.
            let len = bytes.len() as u32;
            prop_assert!(decode(d, &bytes, len).is_ok_and(|r| r.is_some()));
            let e = decode(d, &bytes, len - 1).expect_err("over msize");
            prop_assert_eq!(e.frame_len, None);
        }
    }

}

proptest! {
    // Each case is up to 8 messages; fewer cases cover as many messages.
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn a_stream_decodes_frame_by_frame(
        msgs in proptest::collection::vec(any_msg(), 1..8),
        d in any_dialect(),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut stream = Vec::new();
        for m in &msgs {
            encode(d, m, &mut stream).expect("encodes");
        }
        // Any prefix that stops inside the first frame needs more.
        let first = frame_size(&stream).expect("size") as usize;
        let at = cut.index(first);
        prop_assert_eq!(decode(d, &stream[..at], u32::MAX), Ok(None));

        let mut rest = &stream[..];
        for m in &msgs {
            let (got, n) = decode(d, rest, u32::MAX)
                .expect("decodes")
                .expect("whole frame");
            prop_assert_eq!(got.tag, m.tag);
            prop_assert_eq!(got.body, normalize(d, m.body.clone()));
            rest = &rest[n..];
        }
        prop_assert!(rest.is_empty());
        prop_assert_eq!(decode(d, rest, u32::MAX), Ok(None));
    }

}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn stat_entries_round_trip(
        stats in proptest::collection::vec(Stat::gen(), 0..5),
        d in any_dialect(),
    ) {
        let mut data = Vec::new();
        let mut w = wire::Writer::new(&mut data, d);
        for s in &stats {
            s.encode_entry(&mut w).expect("encodes");
        }
        let want: Vec<Stat> = stats.iter().cloned().map(|s| normalize_stat(d, s)).collect();
        let lens: usize = stats.iter().map(|s| s.entry_len(d)).sum();
        prop_assert_eq!(lens, data.len());
        prop_assert_eq!(Stat::decode_dir(&data, d), Ok(want));
    }

    #[test]
    fn dirents_round_trip(ents in proptest::collection::vec(Dirent::gen(), 0..8)) {
        let mut data = Vec::new();
        for e in &ents {
            e.encode(&mut data).expect("encodes");
        }
        prop_assert_eq!(ents.iter().map(Dirent::len).sum::<usize>(), data.len());
        prop_assert_eq!(Dirent::decode_all(&data), Ok(ents));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2500))]

    #[test]
    fn arbitrary_bytes_never_panic(
        buf in proptest::collection::vec(any::<u8>(), 0..96),
        d in any_dialect(),
        max in prop_oneof![Just(u32::MAX), Just(8192u32), 0u32..64],
    ) {
        check_any_bytes(d, &buf, max)?;
    }

    #[test]
    fn framed_garbage_never_panics(buf in framed_garbage(), d in any_dialect()) {
        check_any_bytes(d, &buf, u32::MAX)?;
        check_any_bytes(d, &buf, 64)?;
    }

    #[test]
    fn mutated_frames_never_panic(
        msg in any_msg(),
        d in any_dialect(),
        at in any::<prop::sample::Index>(),
        xor in 1u8..=255,
        cut in any::<prop::sample::Index>(),
        other in any_dialect(),
    ) {
        let bytes = encode_vec(d, &msg);
        // One byte of the body flipped, size field kept right.
        if bytes.len() > HEADER_SIZE {
            let mut flipped = bytes.clone();
            let i = HEADER_SIZE + at.index(bytes.len() - HEADER_SIZE);
            flipped[i] ^= xor;
            check_any_bytes(d, &flipped, u32::MAX)?;
            check_any_bytes(other, &flipped, u32::MAX)?;
        }
        // The body cut short and re-framed.
        let n = HEADER_SIZE + cut.index(bytes.len() - HEADER_SIZE + 1);
        let mut short = bytes[..n].to_vec();
        short[..4].copy_from_slice(&(n as u32).to_le_bytes());
        check_any_bytes(d, &short, u32::MAX)?;
        // Read in a dialect it was not written in.
        check_any_bytes(other, &bytes, u32::MAX)?;
        // Any byte anywhere, header included.
        let mut anywhere = bytes;
        let i = at.index(anywhere.len());
        anywhere[i] ^= xor;
        check_any_bytes(d, &anywhere, 1 << 20)?;
    }
}

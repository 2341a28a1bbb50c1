//! Malformed input: every way a peer can send bad bytes gives an error value
//! (or "need more"), never a panic, and the error says whether the stream
//! can go on (`frame_len`) and which request to answer (`tag`).

use ninep::*;

const DIALECTS: [Dialect; 3] = [Dialect::P2000, Dialect::U, Dialect::L];

/// Every type number the codec knows, T and R, from intro(5), the .u draft
/// and Linux's 9p.h (Tlerror = 6 and Terror = 106 are not messages).
const KNOWN_TYPES: &[u8] = &[
    7, 8, 9, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 30, 31, 32, 33, 40,
    41, 50, 51, 52, 53, 54, 55, 70, 71, 72, 73, 74, 75, 76, 77, 100, 101, 102, 103, 104, 105, 107,
    108, 109, 110, 111, 112, 113, 114, 115, 116, 117, 118, 119, 120, 121, 122, 123, 124, 125, 126,
    127,
];

/// A frame with a correct size field around `ty`, `tag` and `body`.
fn frame(ty: u8, tag: u16, body: &[u8]) -> Vec<u8> {
    let size = u32::try_from(7 + body.len()).expect("small");
    let mut out = size.to_le_bytes().to_vec();
    out.push(ty);
    out.extend_from_slice(&tag.to_le_bytes());
    out.extend_from_slice(body);
    out
}

fn s(text: &[u8]) -> Vec<u8> {
    let mut out = u16::try_from(text.len())
        .expect("short")
        .to_le_bytes()
        .to_vec();
    out.extend_from_slice(text);
    out
}

fn encoded(dialect: Dialect, tag: u16, body: impl Into<Fcall>) -> Vec<u8> {
    let mut out = Vec::new();
    encode(
        dialect,
        &Msg {
            tag,
            body: body.into(),
        },
        &mut out,
    )
    .expect("encodes");
    out
}

/// Decodes `bytes` in every dialect and checks that each gives the same
/// skippable error: `kind`, with the header's tag and the frame's length.
fn assert_skippable(bytes: &[u8], kind: ErrorKind) {
    for d in DIALECTS {
        assert_skippable_in(d, bytes, kind);
    }
}

fn assert_skippable_in(d: Dialect, bytes: &[u8], kind: ErrorKind) {
    let size = frame_size(bytes).expect("has a size") as usize;
    let tag = u16::from_le_bytes([bytes[5], bytes[6]]);
    assert_eq!(
        decode(d, bytes, u32::MAX),
        Err(DecodeError {
            kind,
            tag: Some(tag),
            frame_len: Some(size),
        }),
        "{d:?}: {bytes:02x?}"
    );
}

fn assert_fatal(bytes: &[u8], max: u32, kind: ErrorKind) {
    for d in DIALECTS {
        assert_eq!(
            decode(d, bytes, max),
            Err(DecodeError {
                kind,
                tag: None,
                frame_len: None,
            }),
            "{d:?}: {bytes:02x?}"
        );
    }
}

// ------------------------------------------------------------- need more

#[test]
fn every_proper_prefix_of_a_frame_needs_more() {
    let frames = [
        encoded(
            Dialect::P2000,
            NOTAG,
            Tversion {
                msize: 8192,
                version: "9P2000".into(),
            },
        ),
        encoded(
            Dialect::U,
            1,
            Twalk {
                fid: 1,
                newfid: 2,
                wnames: vec!["a".into(), "bc".into()],
            },
        ),
        encoded(
            Dialect::L,
            2,
            Rread {
                data: vec![1, 2, 3],
            },
        ),
        encoded(Dialect::P2000, 3, Rclunk {}),
    ];
    for f in &frames {
        for d in DIALECTS {
            for n in 0..f.len() {
                assert_eq!(decode(d, &f[..n], 8192), Ok(None), "{d:?} prefix {n}");
            }
        }
    }
}

#[test]
fn a_large_frame_within_msize_waits_for_its_bytes() {
    // size = 8192 = msize, but only the header has arrived.
    let mut buf = 8192u32.to_le_bytes().to_vec();
    buf.extend_from_slice(&[117, 1, 0, 0xfc, 0x1f, 0, 0]);
    for d in DIALECTS {
        assert_eq!(decode(d, &buf, 8192), Ok(None));
    }
}

// ------------------------------------------------------- fatal frame sizes

#[test]
fn size_below_header_is_fatal() {
    for size in 0u32..7 {
        let mut buf = size.to_le_bytes().to_vec();
        // Fatal as soon as the size is seen, with or without more bytes.
        assert_fatal(&buf, 8192, ErrorKind::Undersize(size));
        buf.extend_from_slice(&[100, 0xff, 0xff, 0, 0, 0, 0]);
        assert_fatal(&buf, 8192, ErrorKind::Undersize(size));
    }
}

#[test]
fn size_above_msize_is_fatal_before_buffering() {
    let buf = 8193u32.to_le_bytes();
    assert_fatal(
        &buf,
        8192,
        ErrorKind::Oversize {
            size: 8193,
            max: 8192,
        },
    );
    let buf = u32::MAX.to_le_bytes();
    assert_fatal(
        &buf,
        8192,
        ErrorKind::Oversize {
            size: u32::MAX,
            max: 8192,
        },
    );
}

#[test]
fn a_frame_of_exactly_msize_is_accepted() {
    let body = Rread {
        data: vec![0xaa; 8192 - 11],
    };
    let bytes = encoded(Dialect::P2000, 1, body.clone());
    assert_eq!(bytes.len(), 8192);
    for d in DIALECTS {
        let (m, n) = decode(d, &bytes, 8192)
            .expect("decodes")
            .expect("whole frame");
        assert_eq!((m.tag, m.body, n), (1, body.clone().into(), 8192));
        let e = decode(d, &bytes, 8191).expect_err("over msize");
        assert_eq!(e.frame_len, None);
    }
}

// ------------------------------------------------------------ unknown type

#[test]
fn unknown_types_are_skippable_errors() {
    let mut known = Vec::new();
    for ty in 0..=255u8 {
        // A frame with no body: known types fail on Short (or decode, for
        // the empty R-messages), unknown ones on the type.
        let bytes = frame(ty, 0x0102, &[]);
        for d in DIALECTS {
            match decode(d, &bytes, 8192) {
                Err(DecodeError {
                    kind: ErrorKind::UnknownType(t),
                    tag,
                    frame_len,
                }) => {
                    assert_eq!(t, ty);
                    assert_eq!((tag, frame_len), (Some(0x0102), Some(7)));
                }
                Err(e) => {
                    assert_eq!(e.kind, ErrorKind::Short, "type {ty}");
                    assert_eq!((e.tag, e.frame_len), (Some(0x0102), Some(7)));
                    if d == Dialect::P2000 {
                        known.push(ty);
                    }
                }
                Ok(Some((m, 7))) => {
                    assert_eq!(m.body.msg_type(), ty);
                    if d == Dialect::P2000 {
                        known.push(ty);
                    }
                }
                other => panic!("type {ty}: {other:?}"),
            }
        }
    }
    assert_eq!(known, KNOWN_TYPES);
    for ty in [0, 6, 106, 128, 255] {
        assert_skippable(&frame(ty, 9, &[1, 2, 3]), ErrorKind::UnknownType(ty));
    }
}

// ----------------------------------------------------------------- strings

#[test]
fn bad_utf8_is_a_skippable_error() {
    let bad: [&[u8]; 5] = [
        &[0xff],             // never valid
        &[0xc3, 0x28],       // bad continuation
        &[0xc0, 0x80],       // overlong NUL
        &[0xed, 0xa0, 0x80], // UTF-16 surrogate
        &[b'a', 0xe2, 0x82], // truncated sequence at the end of the string
    ];
    for b in bad {
        // Twalk name.
        let mut body = vec![1, 0, 0, 0, 2, 0, 0, 0, 2, 0];
        body.extend(s(b"ok"));
        body.extend(s(b));
        assert_skippable(&frame(110, 5, &body), ErrorKind::BadUtf8);
        // Tversion version.
        let mut body = 8192u32.to_le_bytes().to_vec();
        body.extend(s(b));
        assert_skippable(&frame(100, NOTAG, &body), ErrorKind::BadUtf8);
        // Rerror ename (the .u errno after it is never reached).
        let mut body = s(b);
        body.extend([0, 0, 0, 0]);
        assert_skippable_in(Dialect::U, &frame(107, 5, &body), ErrorKind::BadUtf8);
        // The name inside a stat inside an Rstat.
        let st = Stat {
            name: "x".repeat(b.len()),
            ..Stat::default()
        };
        let mut bytes = encoded(Dialect::P2000, 5, Rstat { stat: st });
        // size[4] type[1] tag[2] n[2] size[2] + 39 fixed - 2 + name len[2]
        let at = 7 + 2 + 41 + 2;
        bytes[at..at + b.len()].copy_from_slice(b);
        assert_skippable_in(Dialect::P2000, &bytes, ErrorKind::BadUtf8);
    }
}

#[test]
fn string_longer_than_its_frame_is_short_even_if_more_bytes_follow() {
    // Tversion whose version[s] claims 9 bytes but the frame holds 6; the
    // buffer goes on with a second frame that must not be read into.
    let mut body = 8192u32.to_le_bytes().to_vec();
    body.extend([9, 0]);
    body.extend(b"9P2000");
    let mut buf = frame(100, NOTAG, &body);
    let first = buf.len();
    buf.extend(encoded(Dialect::P2000, 1, Rclunk {}));
    for d in DIALECTS {
        let e = decode(d, &buf, 8192).expect_err("short");
        assert_eq!(
            e,
            DecodeError {
                kind: ErrorKind::Short,
                tag: Some(NOTAG),
                frame_len: Some(first),
            }
        );
        // The stream goes on after the bad frame.
        let (m, _) = decode(d, &buf[first..], 8192)
            .expect("decodes")
            .expect("whole frame");
        assert_eq!(m.body, Rclunk {}.into());
    }
    // A string length of 0xffff in a tiny frame.
    assert_skippable(&frame(23, 1, &[0xff, 0xff, b'a']), ErrorKind::Short);
}

#[test]
fn data_longer_than_its_frame_is_short_without_allocating() {
    // Rread count = u32::MAX with 3 bytes of data.
    let mut body = u32::MAX.to_le_bytes().to_vec();
    body.extend([1, 2, 3]);
    assert_skippable(&frame(117, 1, &body), ErrorKind::Short);
    // Twrite count one more than what is there.
    let mut body = vec![1, 0, 0, 0];
    body.extend(0u64.to_le_bytes());
    body.extend(4u32.to_le_bytes());
    body.extend([1, 2, 3]);
    assert_skippable(&frame(118, 1, &body), ErrorKind::Short);
    // Rreaddir likewise.
    assert_skippable(&frame(41, 1, &[5, 0, 0, 0, 1, 2]), ErrorKind::Short);
}

#[test]
fn truncated_fixed_fields_are_short() {
    // Every message's encoding, cut short by one byte and re-framed.
    let msgs: Vec<Fcall> = vec![
        Tversion {
            msize: 1,
            version: "9P2000".into(),
        }
        .into(),
        Tattach {
            fid: 1,
            afid: NOFID,
            uname: "u".into(),
            aname: "a".into(),
            n_uname: 3,
        }
        .into(),
        Rgetattr::default().into(),
        Tsetattr::default().into(),
        Tlock::default().into(),
        Rwalk {
            wqids: vec![Qid::default()],
        }
        .into(),
        Rstat {
            stat: Stat::default(),
        }
        .into(),
        Tcreate {
            extension: "e".into(),
            ..Tcreate::default()
        }
        .into(),
    ];
    for m in msgs {
        for d in DIALECTS {
            let full = encoded(d, 4, m.clone());
            for cut in 1..=full.len() - 7 {
                let body = &full[7..full.len() - cut];
                let bytes = frame(full[4], 4, body);
                let e = decode(d, &bytes, 8192).expect_err("truncated");
                assert_eq!((e.tag, e.frame_len), (Some(4), Some(bytes.len())));
                // The only way a shorter frame is not Short: a stat whose
                // outer n[2] no longer covers it, or Tfsync's optional tail.
                assert!(
                    matches!(e.kind, ErrorKind::Short | ErrorKind::StatSize),
                    "{d:?} {m:?} cut {cut}: {e:?}"
                );
            }
        }
    }
}

// -------------------------------------------------------------------- walk

#[test]
fn more_than_sixteen_walk_elements_is_an_error() {
    let names = |n: usize| -> Vec<u8> {
        let mut body = vec![1, 0, 0, 0, 2, 0, 0, 0];
        body.extend(u16::try_from(n).expect("small").to_le_bytes());
        for _ in 0..n {
            body.extend(s(b"x"));
        }
        body
    };
    // 16 is the limit and fine.
    for d in DIALECTS {
        let (m, _) = decode(d, &frame(110, 1, &names(16)), 8192)
            .expect("decodes")
            .expect("whole frame");
        let Fcall::Twalk(w) = m.body else {
            panic!("not a Twalk")
        };
        assert_eq!(w.wnames.len(), 16);
    }
    assert_skippable(
        &frame(110, 1, &names(17)),
        ErrorKind::TooManyWalkElements(17),
    );
    // A huge count is refused before anything is read or allocated.
    assert_skippable(
        &frame(110, 1, &[1, 0, 0, 0, 2, 0, 0, 0, 0xff, 0xff]),
        ErrorKind::TooManyWalkElements(0xffff),
    );
    // Rwalk: 17 qids.
    let mut body = 17u16.to_le_bytes().to_vec();
    body.extend([0u8; 17 * 13]);
    assert_skippable(&frame(111, 1, &body), ErrorKind::TooManyWalkElements(17));
}

// ---------------------------------------------------------------- trailing

#[test]
fn trailing_bytes_are_an_error() {
    let mut bytes = encoded(Dialect::P2000, 3, Rclunk {});
    bytes.push(0);
    bytes[0] += 1;
    assert_skippable(&bytes, ErrorKind::Trailing(1));

    let mut bytes = encoded(
        Dialect::P2000,
        3,
        Twalk {
            fid: 1,
            newfid: 1,
            wnames: vec!["a".into()],
        },
    );
    bytes.extend([1, 2, 3]);
    bytes[0] += 3;
    assert_skippable(&bytes, ErrorKind::Trailing(3));

    // Tfsync: after the optional datasync, a further byte is trailing.
    let bytes = frame(50, 3, &[1, 0, 0, 0, 0, 0, 0, 0, 9]);
    assert_skippable(&bytes, ErrorKind::Trailing(1));

    // Rerror with a .u errno is trailing in 9P2000 and .L.
    let bytes = encoded(
        Dialect::U,
        3,
        Rerror {
            ename: "no".into(),
            errno: 2,
        },
    );
    assert_skippable_in(Dialect::P2000, &bytes, ErrorKind::Trailing(4));
    assert_skippable_in(Dialect::L, &bytes, ErrorKind::Trailing(4));
}

// -------------------------------------------------------------------- stat

#[test]
fn stat_sizes_must_agree() {
    let good = encoded(
        Dialect::P2000,
        2,
        Rstat {
            stat: Stat {
                name: "f".into(),
                ..Stat::default()
            },
        },
    );
    // good = size[4] type tag[2] n[2] ssize[2] ...
    let n = u16::from_le_bytes([good[7], good[8]]);
    let ssize = u16::from_le_bytes([good[9], good[10]]);
    assert_eq!(n, ssize + 2);

    // n one larger than the stat, with a byte to cover it: StatSize.
    let mut bytes = good.clone();
    bytes[7..9].copy_from_slice(&(n + 1).to_le_bytes());
    bytes.push(0);
    bytes[0] += 1;
    assert_skippable_in(Dialect::P2000, &bytes, ErrorKind::StatSize);

    // n one smaller: the stat runs past n, so Short, and the last byte is
    // outside n (never reached).
    let mut bytes = good.clone();
    bytes[7..9].copy_from_slice(&(n - 1).to_le_bytes());
    assert_skippable_in(Dialect::P2000, &bytes, ErrorKind::Short);

    // Inner size one smaller than its fields: the fields run past it.
    let mut bytes = good.clone();
    bytes[9..11].copy_from_slice(&(ssize - 1).to_le_bytes());
    let e = decode(Dialect::P2000, &bytes, 8192).expect_err("bad");
    assert!(matches!(e.kind, ErrorKind::Short | ErrorKind::StatSize));
    assert_eq!((e.tag, e.frame_len), (Some(2), Some(bytes.len())));

    // n larger than the frame.
    let mut bytes = good;
    bytes[7..9].copy_from_slice(&0xffffu16.to_le_bytes());
    assert_skippable_in(Dialect::P2000, &bytes, ErrorKind::Short);
}

#[test]
fn directory_reads_with_bad_entries() {
    let mut data = Vec::new();
    Stat::default()
        .encode_entry(&mut wire::Writer::new(&mut data, Dialect::U))
        .expect("encodes");
    assert_eq!(Stat::decode_dir(&data, Dialect::U).map(|v| v.len()), Ok(1));
    // A .u entry read as 9P2000 has 14 bytes too many for its fields.
    assert_eq!(
        Stat::decode_dir(&data, Dialect::P2000),
        Err(ErrorKind::StatSize)
    );
    // Cut anywhere: Short, never a panic.
    for n in 1..data.len() {
        assert_eq!(
            Stat::decode_dir(&data[..n], Dialect::U),
            Err(ErrorKind::Short),
            "cut at {n}"
        );
    }
    assert_eq!(Stat::decode_dir(&[], Dialect::U), Ok(vec![]));

    let mut ents = Vec::new();
    Dirent {
        qid: Qid::default(),
        offset: 1,
        ty: 8,
        name: "name".into(),
    }
    .encode(&mut ents)
    .expect("encodes");
    for n in 1..ents.len() {
        assert_eq!(Dirent::decode_all(&ents[..n]), Err(ErrorKind::Short));
    }
    let mut bad = ents.clone();
    let last = bad.len() - 1;
    bad[last] = 0xff;
    assert_eq!(Dirent::decode_all(&bad), Err(ErrorKind::BadUtf8));
}

// --------------------------------------------------------------- encoding

#[test]
fn unencodable_messages_leave_the_buffer_as_it_was() {
    let mut out = b"keep".to_vec();
    let tag = 1;
    let big_stat = Stat {
        name: "n".repeat(40000),
        uid: "u".repeat(40000),
        ..Stat::default()
    };
    // The whole entry, its size[2] included: 41 fixed, 4 strings, and in .u
    // an empty extension and three numeric ids.
    let big_len = |d: Dialect| 41 + 40002 + 40002 + 2 + 2 + if d == Dialect::U { 14 } else { 0 };
    assert_eq!(big_len(Dialect::U), big_stat.entry_len(Dialect::U));
    type Case = (Fcall, Box<dyn Fn(Dialect) -> EncodeError>);
    let cases: Vec<Case> = vec![
        (
            Twalk {
                fid: 1,
                newfid: 2,
                wnames: vec!["x".into(); 17],
            }
            .into(),
            Box::new(|_| EncodeError::TooManyWalkElements(17)),
        ),
        (
            Rwalk {
                wqids: vec![Qid::default(); 17],
            }
            .into(),
            Box::new(|_| EncodeError::TooManyWalkElements(17)),
        ),
        (
            Rerror {
                ename: "e".repeat(65536),
                errno: 0,
            }
            .into(),
            Box::new(|_| EncodeError::StringTooLong(65536)),
        ),
        (
            Rstat { stat: big_stat }.into(),
            Box::new(move |d| EncodeError::StatTooLong(big_len(d))),
        ),
    ];
    for (body, err) in cases {
        for d in DIALECTS {
            let err = err(d);
            let r = encode(
                d,
                &Msg {
                    tag,
                    body: body.clone(),
                },
                &mut out,
            );
            assert_eq!(r, Err(err), "{d:?} {}", body.name());
            assert_eq!(out, b"keep");
        }
    }
}

#[test]
fn a_longest_string_encodes_and_decodes() {
    let body: Fcall = Rreadlink {
        target: "t".repeat(65535),
    }
    .into();
    for d in DIALECTS {
        let bytes = encoded(d, 1, body.clone());
        assert_eq!(bytes.len(), 7 + 2 + 65535);
        let (m, _) = decode(d, &bytes, u32::MAX)
            .expect("decodes")
            .expect("whole frame");
        assert_eq!(m.body, body);
    }
}

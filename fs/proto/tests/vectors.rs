//! Byte-exact vectors, written out by hand from the specifications:
//! Plan 9's intro(5), version(5), walk(5), stat(5), read(5), error(5);
//! the 9P2000.u draft (n_uname, errno, Tcreate's extension, the .u stat);
//! Linux's include/net/9p/9p.h and diod's protocol.md (9P2000.L).
//!
//! Every integer is little-endian. Each vector is laid out one field per
//! line as `field[width] = value`, so a reviewer can check it against the
//! spec without running anything. Each vector is checked both ways: the
//! message encodes to exactly these bytes, and these bytes decode to exactly
//! the message, consuming the whole frame.

use ninep::*;

/// Concatenates the fields of a vector.
fn cat(fields: &[&[u8]]) -> Vec<u8> {
    fields.concat()
}

/// Encodes `body` with `tag` in `dialect` and compares with `expected`;
/// then decodes `expected` and compares with the message.
fn check(dialect: Dialect, tag: u16, body: impl Into<Fcall>, expected: &[u8]) {
    let msg = Msg {
        tag,
        body: body.into(),
    };
    let mut out = Vec::new();
    encode(dialect, &msg, &mut out).expect("encodes");
    assert_eq!(out, expected, "encoding of {msg:?} in {dialect:?}");
    // The size field is the whole frame, itself included.
    assert_eq!(frame_size(expected), Some(expected.len() as u32));
    let (got, used) = decode(dialect, expected, u32::MAX)
        .expect("decodes")
        .expect("whole frame");
    assert_eq!(used, expected.len());
    assert_eq!(got, msg, "decoding in {dialect:?}");
}

/// Checks the vector in every dialect (for messages whose layout is the
/// same in all three).
fn check_all(tag: u16, body: impl Into<Fcall>, expected: &[u8]) {
    let body = body.into();
    for d in [Dialect::P2000, Dialect::U, Dialect::L] {
        check(d, tag, body.clone(), expected);
    }
}

/// Decodes a frame that is expected to be whole and well formed.
fn decode_ok(dialect: Dialect, bytes: &[u8]) -> Msg {
    let (msg, used) = decode(dialect, bytes, u32::MAX)
        .expect("decodes")
        .expect("whole frame");
    assert_eq!(used, bytes.len());
    msg
}

fn decode_err(dialect: Dialect, bytes: &[u8]) -> DecodeError {
    decode(dialect, bytes, u32::MAX).expect_err("must not decode")
}

// ---------------------------------------------------------------- version(5)

#[test]
fn tversion_8192_9p2000_notag() {
    let expected = cat(&[
        &[19, 0, 0, 0],      // size[4] = 4+1+2 + 4 + 2+6 = 19
        &[100],              // type[1] = Tversion
        &[0xff, 0xff],       // tag[2] = NOTAG
        &[0x00, 0x20, 0, 0], // msize[4] = 8192 = 0x2000
        &[6, 0],             // version[s]: length 6
        b"9P2000",           //   "9P2000"
    ]);
    check_all(
        NOTAG,
        Tversion {
            msize: 8192,
            version: "9P2000".into(),
        },
        &expected,
    );
}

#[test]
fn rversion_9p2000_l() {
    let expected = cat(&[
        &[21, 0, 0, 0],            // size[4] = 7 + 4 + 2+8 = 21
        &[101],                    // type[1] = Rversion
        &[0xff, 0xff],             // tag[2] = NOTAG
        &[0x00, 0x00, 0x01, 0x00], // msize[4] = 65536 = 0x10000
        &[8, 0],                   // version[s]: length 8
        b"9P2000.L",
    ]);
    check_all(
        NOTAG,
        Rversion {
            msize: 65536,
            version: "9P2000.L".into(),
        },
        &expected,
    );
}

/// version(5): a known dialect is answered in kind; a `9P2000` with an
/// unknown suffix gets plain 9P2000; a string not beginning `9P` gets
/// "unknown" (None).
#[test]
fn version_negotiation() {
    for (client, answer) in [
        ("9P2000", Some(Dialect::P2000)),
        ("9P2000.u", Some(Dialect::U)),
        ("9P2000.L", Some(Dialect::L)),
        ("9P2000.x", Some(Dialect::P2000)),
        ("9P2000.u.extra", Some(Dialect::P2000)),
        ("", None),
        ("unknown", None),
        ("9p2000", None),
    ] {
        assert_eq!(Dialect::negotiate(client), answer, "{client:?}");
    }
    for d in [Dialect::P2000, Dialect::U, Dialect::L] {
        assert_eq!(Dialect::negotiate(d.version_string()), Some(d));
    }
}

// ------------------------------------------------------------- attach(5), auth

/// 9P2000: `size[4] Tattach tag[2] fid[4] afid[4] uname[s] aname[s]`.
#[test]
fn tattach_9p2000_has_no_n_uname() {
    let expected = cat(&[
        &[25, 0, 0, 0],            // size[4] = 7 + 4 + 4 + 2+6 + 2+0 = 25
        &[104],                    // type[1] = Tattach
        &[1, 0],                   // tag[2] = 1
        &[0, 0, 0, 0],             // fid[4] = 0
        &[0xff, 0xff, 0xff, 0xff], // afid[4] = NOFID
        &[6, 0],                   // uname[s]: length 6
        b"glenda",
        &[0, 0], // aname[s]: "" (the main tree)
    ]);
    let msg = Tattach {
        fid: 0,
        afid: NOFID,
        uname: "glenda".into(),
        aname: String::new(),
        n_uname: NONUNAME, // absent on the wire; decodes as NONUNAME
    };
    check(Dialect::P2000, 1, msg.clone(), &expected);

    // A numeric uid given in 9P2000 is dropped by the encoder, not sent.
    let mut out = Vec::new();
    let with_uid = Tattach {
        n_uname: 1000,
        ..msg
    };
    encode(
        Dialect::P2000,
        &Msg {
            tag: 1,
            body: with_uid.into(),
        },
        &mut out,
    )
    .expect("encodes");
    assert_eq!(out, expected);
}

/// 9P2000.u and .L: `... uname[s] aname[s] n_uname[4]`.
#[test]
fn tattach_dotu_and_dotl_carry_n_uname() {
    let expected = cat(&[
        &[33, 0, 0, 0],            // size[4] = 7 + 4 + 4 + 2+6 + 2+4 + 4 = 33
        &[104],                    // type[1] = Tattach
        &[1, 0],                   // tag[2] = 1
        &[0, 0, 0, 0],             // fid[4] = 0
        &[0xff, 0xff, 0xff, 0xff], // afid[4] = NOFID
        &[6, 0],                   // uname[s]: length 6
        b"glenda",
        &[4, 0], // aname[s]: length 4
        b"/tmp",
        &[0xe8, 0x03, 0, 0], // n_uname[4] = 1000 = 0x3e8
    ]);
    let msg = Tattach {
        fid: 0,
        afid: NOFID,
        uname: "glenda".into(),
        aname: "/tmp".into(),
        n_uname: 1000,
    };
    check(Dialect::U, 1, msg.clone(), &expected);
    check(Dialect::L, 1, msg, &expected);

    // The same bytes are a 9P2000 Tattach followed by 4 stray bytes.
    let e = decode_err(Dialect::P2000, &expected);
    assert_eq!(e.kind, ErrorKind::Trailing(4));
    assert_eq!(e.tag, Some(1));
    assert_eq!(e.frame_len, Some(33));
}

#[test]
fn tauth_dotu_with_nonuname() {
    let expected = cat(&[
        &[27, 0, 0, 0],   // size[4] = 7 + 4 + 2+4 + 2+4 + 4 = 27
        &[102],           // type[1] = Tauth
        &[5, 0],          // tag[2] = 5
        &[0x10, 0, 0, 0], // afid[4] = 16
        &[4, 0],          // uname[s]: length 4
        b"root",
        &[4, 0], // aname[s]: length 4
        b"main",
        &[0xff, 0xff, 0xff, 0xff], // n_uname[4] = NONUNAME
    ]);
    check(
        Dialect::U,
        5,
        Tauth {
            afid: 16,
            uname: "root".into(),
            aname: "main".into(),
            n_uname: NONUNAME,
        },
        &expected,
    );
}

#[test]
fn rattach_and_rauth() {
    let qid = Qid {
        ty: qt::DIR,
        version: 0,
        path: 1,
    };
    let expected = cat(&[
        &[20, 0, 0, 0],            // size[4] = 7 + 13 = 20
        &[105],                    // type[1] = Rattach
        &[1, 0],                   // tag[2] = 1
        &[0x80],                   // qid.type[1] = QTDIR
        &[0, 0, 0, 0],             // qid.vers[4] = 0
        &[1, 0, 0, 0, 0, 0, 0, 0], // qid.path[8] = 1
    ]);
    check_all(1, Rattach { qid }, &expected);

    let expected = cat(&[
        &[20, 0, 0, 0],                                    // size[4] = 20
        &[103],                                            // type[1] = Rauth
        &[1, 0],                                           // tag[2] = 1
        &[0x08],                                           // aqid.type[1] = QTAUTH
        &[7, 0, 0, 0],                                     // aqid.vers[4] = 7
        &[0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01], // aqid.path[8] = 0x0102030405060708
    ]);
    check_all(
        1,
        Rauth {
            aqid: Qid {
                ty: qt::AUTH,
                version: 7,
                path: 0x0102_0304_0506_0708,
            },
        },
        &expected,
    );
}

// ------------------------------------------------------------------- error(5)

/// 9P2000: `size[4] Rerror tag[2] ename[s]`.
#[test]
fn rerror_9p2000() {
    let expected = cat(&[
        &[23, 0, 0, 0], // size[4] = 7 + 2+14 = 23
        &[107],         // type[1] = Rerror
        &[2, 0],        // tag[2] = 2
        &[14, 0],       // ename[s]: length 14
        b"file not found",
    ]);
    let msg = Rerror {
        ename: "file not found".into(),
        errno: 0,
    };
    check(Dialect::P2000, 2, msg.clone(), &expected);
    // Rerror has no errno outside .u, so .L encodes it the same way.
    check(Dialect::L, 2, msg, &expected);
}

/// 9P2000.u: `size[4] Rerror tag[2] ename[s] errno[4]`.
#[test]
fn rerror_dotu_carries_errno() {
    let expected = cat(&[
        &[27, 0, 0, 0], // size[4] = 7 + 2+14 + 4 = 27
        &[107],         // type[1] = Rerror
        &[2, 0],        // tag[2] = 2
        &[14, 0],       // ename[s]: length 14
        b"file not found",
        &[2, 0, 0, 0], // errno[4] = ENOENT = 2
    ]);
    check(
        Dialect::U,
        2,
        Rerror {
            ename: "file not found".into(),
            errno: 2,
        },
        &expected,
    );
}

/// 9P2000.L: `size[4] Rlerror tag[2] ecode[4]`.
#[test]
fn rlerror() {
    let expected = cat(&[
        &[11, 0, 0, 0], // size[4] = 7 + 4 = 11
        &[7],           // type[1] = Rlerror
        &[9, 0],        // tag[2] = 9
        &[2, 0, 0, 0],  // ecode[4] = ENOENT = 2
    ]);
    check_all(9, Rlerror { ecode: 2 }, &expected);
}

// ------------------------------------------------------------------- flush(5)

#[test]
fn tflush_and_rflush() {
    let expected = cat(&[
        &[9, 0, 0, 0], // size[4] = 7 + 2 = 9
        &[108],        // type[1] = Tflush
        &[4, 0],       // tag[2] = 4
        &[3, 0],       // oldtag[2] = 3
    ]);
    check_all(4, Tflush { oldtag: 3 }, &expected);

    let expected = cat(&[
        &[7, 0, 0, 0], // size[4] = 7: header only
        &[109],        // type[1] = Rflush
        &[4, 0],       // tag[2] = 4
    ]);
    check_all(4, Rflush {}, &expected);
}

// -------------------------------------------------------------------- walk(5)

#[test]
fn twalk_two_names() {
    let expected = cat(&[
        &[30, 0, 0, 0], // size[4] = 7 + 4 + 4 + 2 + 2+3 + 2+6 = 30
        &[110],         // type[1] = Twalk
        &[1, 0],        // tag[2] = 1
        &[1, 0, 0, 0],  // fid[4] = 1
        &[2, 0, 0, 0],  // newfid[4] = 2
        &[2, 0],        // nwname[2] = 2
        &[3, 0],        // wname[0]: length 3
        b"usr",
        &[6, 0], // wname[1]: length 6
        b"glenda",
    ]);
    check_all(
        1,
        Twalk {
            fid: 1,
            newfid: 2,
            wnames: vec!["usr".into(), "glenda".into()],
        },
        &expected,
    );
}

#[test]
fn twalk_clone_has_zero_names() {
    let expected = cat(&[
        &[17, 0, 0, 0], // size[4] = 7 + 4 + 4 + 2 = 17
        &[110],         // type[1] = Twalk
        &[1, 0],        // tag[2] = 1
        &[0, 0, 0, 0],  // fid[4] = 0
        &[1, 0, 0, 0],  // newfid[4] = 1
        &[0, 0],        // nwname[2] = 0
    ]);
    check_all(
        1,
        Twalk {
            fid: 0,
            newfid: 1,
            wnames: vec![],
        },
        &expected,
    );
}

#[test]
fn rwalk_two_qids() {
    let expected = cat(&[
        &[35, 0, 0, 0],                                    // size[4] = 7 + 2 + 2*13 = 35
        &[111],                                            // type[1] = Rwalk
        &[1, 0],                                           // tag[2] = 1
        &[2, 0],                                           // nwqid[2] = 2
        &[0x80],                                           // wqid[0].type = QTDIR
        &[0, 0, 0, 0],                                     // wqid[0].vers = 0
        &[1, 0, 0, 0, 0, 0, 0, 0],                         // wqid[0].path = 1
        &[0x00],                                           // wqid[1].type = QTFILE
        &[3, 0, 0, 0],                                     // wqid[1].vers = 3
        &[0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01], // wqid[1].path = 0x0102030405060708
    ]);
    check_all(
        1,
        Rwalk {
            wqids: vec![
                Qid {
                    ty: qt::DIR,
                    version: 0,
                    path: 1,
                },
                Qid {
                    ty: qt::FILE,
                    version: 3,
                    path: 0x0102_0304_0506_0708,
                },
            ],
        },
        &expected,
    );
}

// --------------------------------------------------------- open(5), create(5)

#[test]
fn topen_and_ropen() {
    let expected = cat(&[
        &[12, 0, 0, 0], // size[4] = 7 + 4 + 1 = 12
        &[112],         // type[1] = Topen
        &[3, 0],        // tag[2] = 3
        &[5, 0, 0, 0],  // fid[4] = 5
        &[0x12],        // mode[1] = ORDWR|OTRUNC = 0x02|0x10
    ]);
    check_all(
        3,
        Topen {
            fid: 5,
            mode: om::RDWR | om::TRUNC,
        },
        &expected,
    );

    let expected = cat(&[
        &[24, 0, 0, 0],               // size[4] = 7 + 13 + 4 = 24
        &[113],                       // type[1] = Ropen
        &[3, 0],                      // tag[2] = 3
        &[0x00],                      // qid.type = QTFILE
        &[1, 0, 0, 0],                // qid.vers = 1
        &[0x2a, 0, 0, 0, 0, 0, 0, 0], // qid.path = 42
        &[0xe8, 0x1f, 0, 0],          // iounit[4] = 8168 = 0x1fe8 (8192 - IOHDRSZ)
    ]);
    check_all(
        3,
        Ropen {
            qid: Qid {
                ty: qt::FILE,
                version: 1,
                path: 42,
            },
            iounit: 8168,
        },
        &expected,
    );
}

/// 9P2000: `size[4] Tcreate tag[2] fid[4] name[s] perm[4] mode[1]`.
#[test]
fn tcreate_9p2000() {
    let expected = cat(&[
        &[22, 0, 0, 0], // size[4] = 7 + 4 + 2+4 + 4 + 1 = 22
        &[114],         // type[1] = Tcreate
        &[3, 0],        // tag[2] = 3
        &[5, 0, 0, 0],  // fid[4] = 5
        &[4, 0],        // name[s]: length 4
        b"file",
        &[0xa4, 0x01, 0, 0], // perm[4] = 0644 = 0x1a4
        &[0x01],             // mode[1] = OWRITE
    ]);
    let msg = Tcreate {
        fid: 5,
        name: "file".into(),
        perm: 0o644,
        mode: om::WRITE,
        extension: String::new(),
    };
    check(Dialect::P2000, 3, msg.clone(), &expected);
    check(Dialect::L, 3, msg, &expected);
}

/// 9P2000.u: `... perm[4] mode[1] extension[s]`.
#[test]
fn tcreate_dotu_symlink_extension() {
    let expected = cat(&[
        &[35, 0, 0, 0], // size[4] = 7 + 4 + 2+4 + 4 + 1 + 2+11 = 35
        &[114],         // type[1] = Tcreate
        &[3, 0],        // tag[2] = 3
        &[5, 0, 0, 0],  // fid[4] = 5
        &[4, 0],        // name[s]: length 4
        b"link",
        &[0xff, 0x01, 0x00, 0x02], // perm[4] = DMSYMLINK|0777 = 0x020001ff
        &[0x00],                   // mode[1] = OREAD
        &[11, 0],                  // extension[s]: length 11
        b"/tmp/target",
    ]);
    check(
        Dialect::U,
        3,
        Tcreate {
            fid: 5,
            name: "link".into(),
            perm: dm::SYMLINK | 0o777,
            mode: om::READ,
            extension: "/tmp/target".into(),
        },
        &expected,
    );
}

// -------------------------------------------------------------------- read(5)

#[test]
fn tread() {
    let expected = cat(&[
        &[23, 0, 0, 0],                  // size[4] = 7 + 4 + 8 + 4 = 23
        &[116],                          // type[1] = Tread
        &[7, 0],                         // tag[2] = 7
        &[3, 0, 0, 0],                   // fid[4] = 3
        &[0x00, 0x10, 0, 0, 0, 0, 0, 0], // offset[8] = 4096 = 0x1000
        &[0xe8, 0x1f, 0, 0],             // count[4] = 8168
    ]);
    check_all(
        7,
        Tread {
            fid: 3,
            offset: 4096,
            count: 8168,
        },
        &expected,
    );
}

#[test]
fn rread_with_data() {
    let expected = cat(&[
        &[17, 0, 0, 0], // size[4] = 7 + 4 + 6 = 17
        &[117],         // type[1] = Rread
        &[7, 0],        // tag[2] = 7
        &[6, 0, 0, 0],  // count[4] = 6
        b"hello\n",     // data[count]
    ]);
    check_all(
        7,
        Rread {
            data: b"hello\n".to_vec(),
        },
        &expected,
    );
}

#[test]
fn rread_empty_is_eof() {
    let expected = cat(&[
        &[11, 0, 0, 0], // size[4] = 7 + 4 = 11
        &[117],         // type[1] = Rread
        &[7, 0],        // tag[2] = 7
        &[0, 0, 0, 0],  // count[4] = 0
    ]);
    check_all(7, Rread { data: vec![] }, &expected);
}

#[test]
fn twrite_and_rwrite() {
    let expected = cat(&[
        &[25, 0, 0, 0],                     // size[4] = 7 + 4 + 8 + 4 + 2 = 25
        &[118],                             // type[1] = Twrite
        &[8, 0],                            // tag[2] = 8
        &[3, 0, 0, 0],                      // fid[4] = 3
        &[0x02, 0x01, 0, 0, 0, 0, 0, 0x80], // offset[8] = 0x8000_0000_0000_0102
        &[2, 0, 0, 0],                      // count[4] = 2
        &[0x00, 0xff],                      // data[2]: not text, not checked as UTF-8
    ]);
    check_all(
        8,
        Twrite {
            fid: 3,
            offset: 0x8000_0000_0000_0102,
            data: vec![0x00, 0xff],
        },
        &expected,
    );

    let expected = cat(&[
        &[11, 0, 0, 0], // size[4] = 11
        &[119],         // type[1] = Rwrite
        &[8, 0],        // tag[2] = 8
        &[2, 0, 0, 0],  // count[4] = 2
    ]);
    check_all(8, Rwrite { count: 2 }, &expected);
}

// --------------------------------------------------------- clunk(5), remove(5)

#[test]
fn clunk_remove_and_stat_requests() {
    for (ty, body) in [
        (120u8, Fcall::from(Tclunk { fid: 0x0403_0201 })),
        (122, Tremove { fid: 0x0403_0201 }.into()),
        (124, Tstat { fid: 0x0403_0201 }.into()),
        (8, Tstatfs { fid: 0x0403_0201 }.into()),
        (22, Treadlink { fid: 0x0403_0201 }.into()),
    ] {
        let expected = cat(&[
            &[11, 0, 0, 0], // size[4] = 7 + 4 = 11
            &[ty],          // type[1]
            &[0x34, 0x12],  // tag[2] = 0x1234
            &[1, 2, 3, 4],  // fid[4] = 0x04030201
        ]);
        check_all(0x1234, body, &expected);
    }
    for (ty, body) in [
        (121u8, Fcall::from(Rclunk {})),
        (123, Rremove {}.into()),
        (127, Rwstat {}.into()),
        (21, Rrename {}.into()),
        (27, Rsetattr {}.into()),
        (33, Rxattrcreate {}.into()),
        (51, Rfsync {}.into()),
        (71, Rlink {}.into()),
        (75, Rrenameat {}.into()),
        (77, Runlinkat {}.into()),
    ] {
        let expected = cat(&[
            &[7, 0, 0, 0], // size[4] = 7: header only
            &[ty],         // type[1]
            &[0x34, 0x12], // tag[2] = 0x1234
        ]);
        check_all(0x1234, body, &expected);
    }
}

// -------------------------------------------------------------------- stat(5)

fn tmp_stat() -> Stat {
    Stat {
        ty: 0,
        dev: 0,
        qid: Qid {
            ty: qt::DIR,
            version: 0,
            path: 42,
        },
        mode: dm::DIR | 0o755,
        atime: 1,
        mtime: 2,
        length: 0,
        name: "tmp".into(),
        uid: "glenda".into(),
        gid: "sys".into(),
        muid: "glenda".into(),
        extension: String::new(),
        n_uid: NONUNAME,
        n_gid: NONUNAME,
        n_muid: NONUNAME,
    }
}

/// The fixed fields of [`tmp_stat`], from `type[2]` to `length[8]`.
const TMP_STAT_FIXED: &[u8] = &[
    0, 0, // type[2] = 0
    0, 0, 0, 0, // dev[4] = 0
    0x80, 0, 0, 0, 0, 0x2a, 0, 0, 0, 0, 0, 0, 0, // qid[13] = (QTDIR, 0, 42)
    0xed, 0x01, 0x00, 0x80, // mode[4] = DMDIR|0755 = 0x800001ed
    1, 0, 0, 0, // atime[4] = 1
    2, 0, 0, 0, // mtime[4] = 2
    0, 0, 0, 0, 0, 0, 0, 0, // length[8] = 0
];

/// 9P2000 Rstat: `size[4] Rstat tag[2] n[2] stat[n]`, and the stat itself
/// begins with its own `size[2]` = n - 2 (stat(5), BUGS).
#[test]
fn rstat_9p2000_double_size() {
    let expected = cat(&[
        &[76, 0, 0, 0], // size[4] = 7 + 2 + 67 = 76
        &[125],         // type[1] = Rstat
        &[1, 0],        // tag[2] = 1
        &[67, 0],       // n[2] = 67: the stat below, its size[2] included
        &[65, 0],       // stat.size[2] = 65 = 39 fixed + 26 of strings
        TMP_STAT_FIXED,
        &[3, 0], // name[s]
        b"tmp",
        &[6, 0], // uid[s]
        b"glenda",
        &[3, 0], // gid[s]
        b"sys",
        &[6, 0], // muid[s]
        b"glenda",
    ]);
    let st = tmp_stat();
    assert_eq!(st.entry_len(Dialect::P2000), 67);
    check(Dialect::P2000, 1, Rstat { stat: st.clone() }, &expected);
    // .L has no Rstat of its own; the codec lays it out as 9P2000.
    check(Dialect::L, 1, Rstat { stat: st }, &expected);
}

/// 9P2000.u Rstat: the stat gains `extension[s] n_uid[4] n_gid[4] n_muid[4]`.
#[test]
fn rstat_dotu_double_size() {
    let expected = cat(&[
        &[90, 0, 0, 0], // size[4] = 7 + 2 + 81 = 90
        &[125],         // type[1] = Rstat
        &[1, 0],        // tag[2] = 1
        &[81, 0],       // n[2] = 81 = 67 + 2 + 12
        &[79, 0],       // stat.size[2] = 79
        TMP_STAT_FIXED,
        &[3, 0], // name[s]
        b"tmp",
        &[6, 0], // uid[s]
        b"glenda",
        &[3, 0], // gid[s]
        b"sys",
        &[6, 0], // muid[s]
        b"glenda",
        &[0, 0],             // extension[s] = "" (not a link or device)
        &[0xe8, 0x03, 0, 0], // n_uid[4] = 1000
        &[0xe9, 0x03, 0, 0], // n_gid[4] = 1001
        &[0xe8, 0x03, 0, 0], // n_muid[4] = 1000
    ]);
    let st = Stat {
        n_uid: 1000,
        n_gid: 1001,
        n_muid: 1000,
        ..tmp_stat()
    };
    assert_eq!(st.entry_len(Dialect::U), 81);
    check(Dialect::U, 1, Rstat { stat: st }, &expected);

    // A .u stat is not a 9P2000 stat: its size[2] no longer matches.
    let e = decode_err(Dialect::P2000, &expected);
    assert_eq!(e.kind, ErrorKind::StatSize);
    assert_eq!(e.tag, Some(1));
    assert_eq!(e.frame_len, Some(90));
}

/// Twstat with a "don't touch" stat that only renames (stat(5), wstat).
#[test]
fn twstat_rename_only() {
    let expected = cat(&[
        &[65, 0, 0, 0], // size[4] = 7 + 4 + 2 + 52 = 65
        &[126],         // type[1] = Twstat
        &[6, 0],        // tag[2] = 6
        &[4, 0, 0, 0],  // fid[4] = 4
        &[52, 0],       // n[2] = 52
        &[50, 0],       // stat.size[2] = 50 = 39 + 2+3 + 3*2
        &[0xff, 0xff],  // type[2] = ~0
        &[0xff; 4],     // dev[4] = ~0
        &[0xff; 13],    // qid[13] = ~0
        &[0xff; 4],     // mode[4] = ~0
        &[0xff; 4],     // atime[4] = ~0
        &[0xff; 4],     // mtime[4] = ~0
        &[0xff; 8],     // length[8] = ~0
        &[3, 0],        // name[s] = "new"
        b"new",
        &[0, 0], // uid[s] = ""
        &[0, 0], // gid[s] = ""
        &[0, 0], // muid[s] = ""
    ]);
    let mut st = Stat::dont_touch();
    st.name = "new".into();
    check(Dialect::P2000, 6, Twstat { fid: 4, stat: st }, &expected);
}

#[test]
fn stat_entries_in_a_directory_read() {
    // A 9P2000 directory read is stat entries back to back, each with only
    // its own size[2] (no second n[2]).
    let data = cat(&[
        &[65, 0],
        TMP_STAT_FIXED,
        &[3, 0],
        b"tmp",
        &[6, 0],
        b"glenda",
        &[3, 0],
        b"sys",
        &[6, 0],
        b"glenda",
    ]);
    let two = [data.clone(), data].concat();
    let got = Stat::decode_dir(&two, Dialect::P2000).expect("decodes");
    assert_eq!(got, vec![tmp_stat(), tmp_stat()]);

    let mut out = Vec::new();
    let mut w = wire::Writer::new(&mut out, Dialect::P2000);
    tmp_stat().encode_entry(&mut w).expect("encodes");
    tmp_stat().encode_entry(&mut w).expect("encodes");
    assert_eq!(out, two);
}

// ------------------------------------------------------------------ 9P2000.L

#[test]
fn tstatfs_rstatfs() {
    let expected = cat(&[
        &[67, 0, 0, 0],            // size[4] = 7 + 4+4 + 6*8 + 4 = 67
        &[9],                      // type[1] = Rstatfs
        &[1, 0],                   // tag[2] = 1
        &[0x97, 0x19, 0x02, 0x01], // type[4] = V9FS_MAGIC 0x01021997
        &[0x00, 0x10, 0, 0],       // bsize[4] = 4096
        &[1, 0, 0, 0, 0, 0, 0, 0], // blocks[8] = 1
        &[2, 0, 0, 0, 0, 0, 0, 0], // bfree[8] = 2
        &[3, 0, 0, 0, 0, 0, 0, 0], // bavail[8] = 3
        &[4, 0, 0, 0, 0, 0, 0, 0], // files[8] = 4
        &[5, 0, 0, 0, 0, 0, 0, 0], // ffree[8] = 5
        &[6, 0, 0, 0, 0, 0, 0, 0], // fsid[8] = 6
        &[0xff, 0, 0, 0],          // namelen[4] = 255
    ]);
    check_all(
        1,
        Rstatfs {
            ty: 0x0102_1997,
            bsize: 4096,
            blocks: 1,
            bfree: 2,
            bavail: 3,
            files: 4,
            ffree: 5,
            fsid: 6,
            namelen: 255,
        },
        &expected,
    );
}

#[test]
fn tlopen_rlopen() {
    let expected = cat(&[
        &[15, 0, 0, 0],            // size[4] = 7 + 4 + 4 = 15
        &[12],                     // type[1] = Tlopen
        &[1, 0],                   // tag[2] = 1
        &[2, 0, 0, 0],             // fid[4] = 2
        &[0x02, 0x08, 0x01, 0x00], // flags[4] = O_RDWR|O_NONBLOCK|O_DIRECTORY = 0x10802
    ]);
    check_all(
        1,
        Tlopen {
            fid: 2,
            flags: l::open::RDWR | l::open::NONBLOCK | l::open::DIRECTORY,
        },
        &expected,
    );

    let expected = cat(&[
        &[24, 0, 0, 0],                              // size[4] = 7 + 13 + 4 = 24
        &[13],                                       // type[1] = Rlopen
        &[1, 0],                                     // tag[2] = 1
        &[0x80, 0, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0], // qid[13] = (QTDIR, 0, 9)
        &[0, 0, 0, 0],                               // iounit[4] = 0
    ]);
    check_all(
        1,
        Rlopen {
            qid: Qid {
                ty: qt::DIR,
                version: 0,
                path: 9,
            },
            iounit: 0,
        },
        &expected,
    );
}

#[test]
fn tlcreate() {
    let expected = cat(&[
        &[30, 0, 0, 0], // size[4] = 7 + 4 + 2+5 + 4 + 4 + 4 = 30
        &[14],          // type[1] = Tlcreate
        &[1, 0],        // tag[2] = 1
        &[2, 0, 0, 0],  // fid[4] = 2
        &[5, 0],        // name[s]: length 5
        b"a.txt",
        &[0xc1, 0, 0, 0],    // flags[4] = O_WRONLY|O_CREAT|O_EXCL = 0o301 = 0xc1
        &[0xa4, 0x81, 0, 0], // mode[4] = 0o100644 = 0x81a4
        &[0x64, 0, 0, 0],    // gid[4] = 100
    ]);
    check_all(
        1,
        Tlcreate {
            fid: 2,
            name: "a.txt".into(),
            flags: l::open::WRONLY | l::open::CREAT | l::open::EXCL,
            mode: 0o100_644,
            gid: 100,
        },
        &expected,
    );
}

#[test]
fn tsymlink_tmknod_tmkdir() {
    let expected = cat(&[
        &[26, 0, 0, 0], // size[4] = 7 + 4 + 2+2 + 2+5 + 4 = 26
        &[16],          // type[1] = Tsymlink
        &[1, 0],        // tag[2] = 1
        &[2, 0, 0, 0],  // fid[4] = 2
        &[2, 0],        // name[s]
        b"ln",
        &[5, 0], // symtgt[s]
        b"../up",
        &[0, 0, 0, 0], // gid[4] = 0
    ]);
    check_all(
        1,
        Tsymlink {
            fid: 2,
            name: "ln".into(),
            symtgt: "../up".into(),
            gid: 0,
        },
        &expected,
    );

    let expected = cat(&[
        &[33, 0, 0, 0], // size[4] = 7 + 4 + 2+4 + 4*4 = 33
        &[18],          // type[1] = Tmknod
        &[1, 0],        // tag[2] = 1
        &[2, 0, 0, 0],  // dfid[4] = 2
        &[4, 0],        // name[s]
        b"null",
        &[0xb6, 0x21, 0, 0], // mode[4] = S_IFCHR|0666 = 0o20666 = 0x21b6
        &[1, 0, 0, 0],       // major[4] = 1
        &[3, 0, 0, 0],       // minor[4] = 3
        &[0, 0, 0, 0],       // gid[4] = 0
    ]);
    check_all(
        1,
        Tmknod {
            dfid: 2,
            name: "null".into(),
            mode: 0o20_666,
            major: 1,
            minor: 3,
            gid: 0,
        },
        &expected,
    );

    let expected = cat(&[
        &[24, 0, 0, 0], // size[4] = 7 + 4 + 2+3 + 4 + 4 = 24
        &[72],          // type[1] = Tmkdir
        &[1, 0],        // tag[2] = 1
        &[2, 0, 0, 0],  // dfid[4] = 2
        &[3, 0],        // name[s]
        b"dir",
        &[0xed, 0x01, 0, 0], // mode[4] = 0755 = 0x1ed
        &[0xe8, 0x03, 0, 0], // gid[4] = 1000
    ]);
    check_all(
        1,
        Tmkdir {
            dfid: 2,
            name: "dir".into(),
            mode: 0o755,
            gid: 1000,
        },
        &expected,
    );

    for (ty, body) in [
        (
            17u8,
            Fcall::from(Rsymlink {
                qid: Qid {
                    ty: qt::SYMLINK,
                    version: 0,
                    path: 5,
                },
            }),
        ),
        (
            19,
            Rmknod {
                qid: Qid {
                    ty: qt::SYMLINK,
                    version: 0,
                    path: 5,
                },
            }
            .into(),
        ),
        (
            73,
            Rmkdir {
                qid: Qid {
                    ty: qt::SYMLINK,
                    version: 0,
                    path: 5,
                },
            }
            .into(),
        ),
    ] {
        let expected = cat(&[
            &[20, 0, 0, 0],                              // size[4] = 7 + 13 = 20
            &[ty],                                       // type[1]
            &[1, 0],                                     // tag[2] = 1
            &[0x02, 0, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0], // qid[13] = (QTSYMLINK, 0, 5)
        ]);
        check_all(1, body, &expected);
    }
}

#[test]
fn trename_treadlink_rreadlink() {
    let expected = cat(&[
        &[20, 0, 0, 0], // size[4] = 7 + 4 + 4 + 2+3 = 20
        &[20],          // type[1] = Trename
        &[1, 0],        // tag[2] = 1
        &[2, 0, 0, 0],  // fid[4] = 2
        &[3, 0, 0, 0],  // dfid[4] = 3
        &[3, 0],        // name[s]
        b"new",
    ]);
    check_all(
        1,
        Trename {
            fid: 2,
            dfid: 3,
            name: "new".into(),
        },
        &expected,
    );

    let expected = cat(&[
        &[14, 0, 0, 0], // size[4] = 7 + 2+5 = 14
        &[23],          // type[1] = Rreadlink
        &[1, 0],        // tag[2] = 1
        &[5, 0],        // target[s]
        b"../up",
    ]);
    check_all(
        1,
        Rreadlink {
            target: "../up".into(),
        },
        &expected,
    );
}

#[test]
fn tgetattr_rgetattr() {
    let expected = cat(&[
        &[19, 0, 0, 0],                  // size[4] = 7 + 4 + 8 = 19
        &[24],                           // type[1] = Tgetattr
        &[1, 0],                         // tag[2] = 1
        &[2, 0, 0, 0],                   // fid[4] = 2
        &[0xff, 0x07, 0, 0, 0, 0, 0, 0], // request_mask[8] = P9_GETATTR_BASIC = 0x7ff
    ]);
    check_all(
        1,
        Tgetattr {
            fid: 2,
            request_mask: l::getattr::BASIC,
        },
        &expected,
    );

    let expected = cat(&[
        &[160, 0, 0, 0],                 // size[4] = 7 + 8 + 13 + 3*4 + 15*8 = 160
        &[25],                           // type[1] = Rgetattr
        &[1, 0],                         // tag[2] = 1
        &[0xff, 0x3f, 0, 0, 0, 0, 0, 0], // valid[8] = P9_GETATTR_ALL = 0x3fff
        &[0x00, 1, 0, 0, 0, 0x10, 0, 0, 0, 0, 0, 0, 0], // qid[13] = (QTFILE, 1, 16)
        &[0xa4, 0x81, 0, 0],             // mode[4] = 0o100644 = 0x81a4
        &[0xe8, 0x03, 0, 0],             // uid[4] = 1000
        &[0x64, 0, 0, 0],                // gid[4] = 100
        &[1, 0, 0, 0, 0, 0, 0, 0],       // nlink[8] = 1
        &[0, 0, 0, 0, 0, 0, 0, 0],       // rdev[8] = 0
        &[12, 0, 0, 0, 0, 0, 0, 0],      // size[8] = 12
        &[0x00, 0x10, 0, 0, 0, 0, 0, 0], // blksize[8] = 4096
        &[8, 0, 0, 0, 0, 0, 0, 0],       // blocks[8] = 8
        &[0x00, 0xf1, 0x53, 0x65, 0, 0, 0, 0], // atime_sec[8] = 1_700_000_000 = 0x6553f100
        &[5, 0, 0, 0, 0, 0, 0, 0],       // atime_nsec[8] = 5
        &[0x01, 0xf1, 0x53, 0x65, 0, 0, 0, 0], // mtime_sec[8] = 1_700_000_001
        &[6, 0, 0, 0, 0, 0, 0, 0],       // mtime_nsec[8] = 6
        &[0x02, 0xf1, 0x53, 0x65, 0, 0, 0, 0], // ctime_sec[8] = 1_700_000_002
        &[0x15, 0xcd, 0x5b, 0x07, 0, 0, 0, 0], // ctime_nsec[8] = 123_456_789 = 0x075bcd15
        &[0, 0, 0, 0, 0, 0, 0, 0],       // btime_sec[8] = 0
        &[0, 0, 0, 0, 0, 0, 0, 0],       // btime_nsec[8] = 0
        &[9, 0, 0, 0, 0, 0, 0, 0],       // gen[8] = 9
        &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff], // data_version[8] = u64::MAX
    ]);
    check_all(
        1,
        Rgetattr {
            valid: l::getattr::ALL,
            qid: Qid {
                ty: qt::FILE,
                version: 1,
                path: 16,
            },
            mode: 0o100_644,
            uid: 1000,
            gid: 100,
            nlink: 1,
            rdev: 0,
            size: 12,
            blksize: 4096,
            blocks: 8,
            atime_sec: 1_700_000_000,
            atime_nsec: 5,
            mtime_sec: 1_700_000_001,
            mtime_nsec: 6,
            ctime_sec: 1_700_000_002,
            ctime_nsec: 123_456_789,
            btime_sec: 0,
            btime_nsec: 0,
            gen: 9,
            data_version: u64::MAX,
        },
        &expected,
    );
}

#[test]
fn tsetattr() {
    let expected = cat(&[
        &[67, 0, 0, 0],                        // size[4] = 7 + 4 + 4*4 + 5*8 = 67
        &[26],                                 // type[1] = Tsetattr
        &[1, 0],                               // tag[2] = 1
        &[2, 0, 0, 0],                         // fid[4] = 2
        &[0x29, 0x01, 0, 0],                   // valid[4] = MODE|SIZE|MTIME|MTIME_SET = 0x129
        &[0x80, 0x01, 0, 0],                   // mode[4] = 0600 = 0x180
        &[0, 0, 0, 0],                         // uid[4] = 0
        &[0, 0, 0, 0],                         // gid[4] = 0
        &[0x00, 0x10, 0, 0, 0, 0, 0, 0],       // size[8] = 4096
        &[0, 0, 0, 0, 0, 0, 0, 0],             // atime_sec[8] = 0
        &[0, 0, 0, 0, 0, 0, 0, 0],             // atime_nsec[8] = 0
        &[0x78, 0x56, 0x34, 0x12, 0, 0, 0, 0], // mtime_sec[8] = 0x12345678
        &[0xe7, 0x03, 0, 0, 0, 0, 0, 0],       // mtime_nsec[8] = 999 = 0x3e7
    ]);
    check_all(
        1,
        Tsetattr {
            fid: 2,
            valid: l::setattr::MODE | l::setattr::SIZE | l::setattr::MTIME | l::setattr::MTIME_SET,
            mode: 0o600,
            uid: 0,
            gid: 0,
            size: 4096,
            atime_sec: 0,
            atime_nsec: 0,
            mtime_sec: 0x1234_5678,
            mtime_nsec: 999,
        },
        &expected,
    );
}

#[test]
fn xattrwalk_xattrcreate() {
    let expected = cat(&[
        &[29, 0, 0, 0], // size[4] = 7 + 4 + 4 + 2+12 = 29
        &[30],          // type[1] = Txattrwalk
        &[1, 0],        // tag[2] = 1
        &[2, 0, 0, 0],  // fid[4] = 2
        &[3, 0, 0, 0],  // newfid[4] = 3
        &[12, 0],       // name[s]
        b"user.comment",
    ]);
    check_all(
        1,
        Txattrwalk {
            fid: 2,
            newfid: 3,
            name: "user.comment".into(),
        },
        &expected,
    );

    let expected = cat(&[
        &[15, 0, 0, 0],               // size[4] = 7 + 8 = 15
        &[31],                        // type[1] = Rxattrwalk
        &[1, 0],                      // tag[2] = 1
        &[0x20, 0, 0, 0, 0, 0, 0, 0], // size[8] = 32
    ]);
    check_all(1, Rxattrwalk { size: 32 }, &expected);

    let expected = cat(&[
        &[37, 0, 0, 0], // size[4] = 7 + 4 + 2+12 + 8 + 4 = 37
        &[32],          // type[1] = Txattrcreate
        &[1, 0],        // tag[2] = 1
        &[2, 0, 0, 0],  // fid[4] = 2
        &[12, 0],       // name[s]
        b"user.comment",
        &[0x20, 0, 0, 0, 0, 0, 0, 0], // attr_size[8] = 32
        &[1, 0, 0, 0],                // flags[4] = XATTR_CREATE = 1
    ]);
    check_all(
        1,
        Txattrcreate {
            fid: 2,
            name: "user.comment".into(),
            attr_size: 32,
            flags: 1,
        },
        &expected,
    );
}

fn two_dirents() -> Vec<Dirent> {
    vec![
        Dirent {
            qid: Qid {
                ty: qt::DIR,
                version: 0,
                path: 1,
            },
            offset: 1,
            ty: 4, // DT_DIR
            name: ".".into(),
        },
        Dirent {
            qid: Qid {
                ty: qt::FILE,
                version: 0,
                path: 2,
            },
            offset: 2,
            ty: 8, // DT_REG
            name: "a.txt".into(),
        },
    ]
}

/// The two entries of [`two_dirents`]: `qid[13] offset[8] type[1] name[s]` each.
fn two_dirents_bytes() -> Vec<u8> {
    cat(&[
        &[0x80, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0], // qid[13] = (QTDIR, 0, 1)
        &[1, 0, 0, 0, 0, 0, 0, 0],                   // offset[8] = 1
        &[4],                                        // type[1] = DT_DIR
        &[1, 0],                                     // name[s]
        b".",
        &[0x00, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0], // qid[13] = (QTFILE, 0, 2)
        &[2, 0, 0, 0, 0, 0, 0, 0],                   // offset[8] = 2
        &[8],                                        // type[1] = DT_REG
        &[5, 0],                                     // name[s]
        b"a.txt",
    ])
}

#[test]
fn treaddir_rreaddir_with_dirents() {
    let expected = cat(&[
        &[23, 0, 0, 0],            // size[4] = 7 + 4 + 8 + 4 = 23
        &[40],                     // type[1] = Treaddir
        &[1, 0],                   // tag[2] = 1
        &[2, 0, 0, 0],             // fid[4] = 2
        &[0, 0, 0, 0, 0, 0, 0, 0], // offset[8] = 0
        &[0x00, 0x10, 0, 0],       // count[4] = 4096
    ]);
    check_all(
        1,
        Treaddir {
            fid: 2,
            offset: 0,
            count: 4096,
        },
        &expected,
    );

    let data = two_dirents_bytes();
    assert_eq!(data.len(), 25 + 29);
    let expected = cat(&[
        &[65, 0, 0, 0], // size[4] = 7 + 4 + 54 = 65
        &[41],          // type[1] = Rreaddir
        &[1, 0],        // tag[2] = 1
        &[54, 0, 0, 0], // count[4] = 54
        &data,          // data[count]: two dirents
    ]);
    check_all(1, Rreaddir { data: data.clone() }, &expected);

    assert_eq!(Dirent::decode_all(&data), Ok(two_dirents()));
    let mut out = Vec::new();
    for d in two_dirents() {
        d.encode(&mut out).expect("encodes");
    }
    assert_eq!(out, data);
    assert_eq!(
        two_dirents().iter().map(Dirent::len).collect::<Vec<_>>(),
        [25, 29]
    );
}

#[test]
fn tfsync_with_and_without_datasync() {
    // Linux (since 2.6.38-ish) sends datasync; the codec always does.
    let with = cat(&[
        &[15, 0, 0, 0], // size[4] = 7 + 4 + 4 = 15
        &[50],          // type[1] = Tfsync
        &[1, 0],        // tag[2] = 1
        &[2, 0, 0, 0],  // fid[4] = 2
        &[1, 0, 0, 0],  // datasync[4] = 1
    ]);
    check_all(
        1,
        Tfsync {
            fid: 2,
            datasync: 1,
        },
        &with,
    );

    // Older clients send only the fid: datasync reads as 0.
    let without = cat(&[
        &[11, 0, 0, 0], // size[4] = 7 + 4 = 11
        &[50],          // type[1] = Tfsync
        &[1, 0],        // tag[2] = 1
        &[2, 0, 0, 0],  // fid[4] = 2
    ]);
    for d in [Dialect::P2000, Dialect::U, Dialect::L] {
        assert_eq!(
            decode_ok(d, &without),
            Msg {
                tag: 1,
                body: Tfsync {
                    fid: 2,
                    datasync: 0
                }
                .into()
            }
        );
    }

    // A partial datasync is a short field, not an absent one.
    let partial = cat(&[&[13, 0, 0, 0], &[50], &[1, 0], &[2, 0, 0, 0], &[1, 0]]);
    let e = decode_err(Dialect::L, &partial);
    assert_eq!(e.kind, ErrorKind::Short);
    assert_eq!((e.tag, e.frame_len), (Some(1), Some(13)));
}

#[test]
fn tlock_rlock() {
    let expected = cat(&[
        &[42, 0, 0, 0],                  // size[4] = 7 + 4 + 1 + 4 + 8 + 8 + 4 + 2+4 = 42
        &[52],                           // type[1] = Tlock
        &[1, 0],                         // tag[2] = 1
        &[2, 0, 0, 0],                   // fid[4] = 2
        &[1],                            // type[1] = P9_LOCK_TYPE_WRLCK
        &[1, 0, 0, 0],                   // flags[4] = P9_LOCK_FLAGS_BLOCK
        &[0x00, 0x02, 0, 0, 0, 0, 0, 0], // start[8] = 512
        &[0, 0, 0, 0, 0, 0, 0, 0],       // length[8] = 0 (to end of file)
        &[0x92, 0x10, 0, 0],             // proc_id[4] = 4242 = 0x1092
        &[4, 0],                         // client_id[s]
        b"host",
    ]);
    check_all(
        1,
        Tlock {
            fid: 2,
            ty: l::lock::WRLCK,
            flags: l::lock::FLAG_BLOCK,
            start: 512,
            length: 0,
            proc_id: 4242,
            client_id: "host".into(),
        },
        &expected,
    );

    let expected = cat(&[
        &[8, 0, 0, 0], // size[4] = 7 + 1 = 8
        &[53],         // type[1] = Rlock
        &[1, 0],       // tag[2] = 1
        &[1],          // status[1] = P9_LOCK_BLOCKED
    ]);
    check_all(
        1,
        Rlock {
            status: l::lock::BLOCKED,
        },
        &expected,
    );
}

#[test]
fn tgetlock_rgetlock() {
    let expected = cat(&[
        &[38, 0, 0, 0],               // size[4] = 7 + 4 + 1 + 8 + 8 + 4 + 2+4 = 38
        &[54],                        // type[1] = Tgetlock
        &[1, 0],                      // tag[2] = 1
        &[2, 0, 0, 0],                // fid[4] = 2
        &[0],                         // type[1] = P9_LOCK_TYPE_RDLCK
        &[0, 0, 0, 0, 0, 0, 0, 0],    // start[8] = 0
        &[0x0a, 0, 0, 0, 0, 0, 0, 0], // length[8] = 10
        &[0x92, 0x10, 0, 0],          // proc_id[4] = 4242
        &[4, 0],                      // client_id[s]
        b"host",
    ]);
    check_all(
        1,
        Tgetlock {
            fid: 2,
            ty: l::lock::RDLCK,
            start: 0,
            length: 10,
            proc_id: 4242,
            client_id: "host".into(),
        },
        &expected,
    );

    let expected = cat(&[
        &[35, 0, 0, 0],               // size[4] = 7 + 1 + 8 + 8 + 4 + 2+5 = 35
        &[55],                        // type[1] = Rgetlock
        &[1, 0],                      // tag[2] = 1
        &[2],                         // type[1] = P9_LOCK_TYPE_UNLCK (no conflict)
        &[0, 0, 0, 0, 0, 0, 0, 0],    // start[8] = 0
        &[0x0a, 0, 0, 0, 0, 0, 0, 0], // length[8] = 10
        &[0x01, 0, 0, 0],             // proc_id[4] = 1
        &[5, 0],                      // client_id[s]
        b"other",
    ]);
    check_all(
        1,
        Rgetlock {
            ty: l::lock::UNLCK,
            start: 0,
            length: 10,
            proc_id: 1,
            client_id: "other".into(),
        },
        &expected,
    );
}

#[test]
fn tlink_trenameat_tunlinkat() {
    let expected = cat(&[
        &[22, 0, 0, 0], // size[4] = 7 + 4 + 4 + 2+5 = 22
        &[70],          // type[1] = Tlink
        &[1, 0],        // tag[2] = 1
        &[3, 0, 0, 0],  // dfid[4] = 3
        &[2, 0, 0, 0],  // fid[4] = 2
        &[5, 0],        // name[s]
        b"hard1",
    ]);
    check_all(
        1,
        Tlink {
            dfid: 3,
            fid: 2,
            name: "hard1".into(),
        },
        &expected,
    );

    let expected = cat(&[
        &[28, 0, 0, 0], // size[4] = 7 + 4 + 2+3 + 4 + 2+6 = 28
        &[74],          // type[1] = Trenameat
        &[1, 0],        // tag[2] = 1
        &[3, 0, 0, 0],  // olddirfid[4] = 3
        &[3, 0],        // oldname[s]
        b"old",
        &[4, 0, 0, 0], // newdirfid[4] = 4
        &[6, 0],       // newname[s]
        b"newer!",
    ]);
    check_all(
        1,
        Trenameat {
            olddirfid: 3,
            oldname: "old".into(),
            newdirfid: 4,
            newname: "newer!".into(),
        },
        &expected,
    );

    let expected = cat(&[
        &[20, 0, 0, 0], // size[4] = 7 + 4 + 2+3 + 4 = 20
        &[76],          // type[1] = Tunlinkat
        &[1, 0],        // tag[2] = 1
        &[3, 0, 0, 0],  // dirfd[4] = 3
        &[3, 0],        // name[s]
        b"dir",
        &[0x00, 0x02, 0, 0], // flags[4] = AT_REMOVEDIR = 0x200
    ]);
    check_all(
        1,
        Tunlinkat {
            dirfd: 3,
            name: "dir".into(),
            flags: l::AT_REMOVEDIR,
        },
        &expected,
    );
}

// ------------------------------------------------------------------- streams

#[test]
fn back_to_back_frames_decode_one_at_a_time() {
    let a = cat(&[&[9, 0, 0, 0], &[108], &[4, 0], &[3, 0]]); // Tflush oldtag 3
    let b = cat(&[&[7, 0, 0, 0], &[109], &[4, 0]]); // Rflush
    let stream = [a.clone(), b.clone()].concat();
    let (m, n) = decode(Dialect::P2000, &stream, 8192)
        .expect("decodes")
        .expect("whole frame");
    assert_eq!(n, a.len());
    assert_eq!(m.body, Tflush { oldtag: 3 }.into());
    let (m, n) = decode(Dialect::P2000, &stream[n..], 8192)
        .expect("decodes")
        .expect("whole frame");
    assert_eq!(n, b.len());
    assert_eq!(m.body, Rflush {}.into());
}

#[test]
fn message_names_and_directions() {
    let m: Fcall = Twalk::default().into();
    assert_eq!(
        (m.name(), m.msg_type(), m.is_request()),
        ("Twalk", 110, true)
    );
    let m: Fcall = Rlerror::default().into();
    assert_eq!(
        (m.name(), m.msg_type(), m.is_request()),
        ("Rlerror", 7, false)
    );
}

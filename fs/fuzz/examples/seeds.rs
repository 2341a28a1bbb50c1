//! Writes a seed corpus for every target: a valid frame of every message
//! type in every dialect, plus a few with real contents.
//!
//! `cargo run --manifest-path fs/fuzz/Cargo.toml --example seeds -- fs/fuzz/corpus`

use std::path::{Path, PathBuf};
use std::{env, fs, io, process};

use ninep::wire::Writer;
use ninep::*;
use ninep_fuzz::DIALECTS;

/// The all-zero frame of type `ty`, if the codec knows the type: the
/// shortest zero-filled body that decodes.
fn zero_frame(dialect: Dialect, ty: u8) -> Option<Vec<u8>> {
    (0..400usize).find_map(|len| {
        let size = u32::try_from(HEADER_SIZE + len).ok()?;
        let mut f = size.to_le_bytes().to_vec();
        f.push(ty);
        f.extend_from_slice(&[1, 0]);
        f.resize(HEADER_SIZE + len, 0);
        match decode(dialect, &f, u32::MAX) {
            Ok(Some(_)) => Some(f),
            _ => None,
        }
    })
}

fn samples() -> Vec<Fcall> {
    let qid = Qid {
        ty: qt::DIR,
        version: 1,
        path: 2,
    };
    let stat = Stat {
        qid,
        mode: dm::DIR | 0o755,
        name: "dir".into(),
        uid: "glenda".into(),
        gid: "sys".into(),
        muid: "glenda".into(),
        extension: "b 1 2".into(),
        n_uid: 1000,
        n_gid: 1000,
        n_muid: 1000,
        ..Stat::default()
    };
    vec![
        Tversion {
            msize: 8192,
            version: "9P2000.L".into(),
        }
        .into(),
        Tattach {
            fid: 0,
            afid: NOFID,
            uname: "glenda".into(),
            aname: "main".into(),
            n_uname: 1000,
        }
        .into(),
        Twalk {
            fid: 0,
            newfid: 1,
            wnames: vec!["usr".into(), "glenda".into(), "lib".into()],
        }
        .into(),
        Rwalk {
            wqids: vec![qid, qid],
        }
        .into(),
        Rerror {
            ename: "file does not exist".into(),
            errno: 2,
        }
        .into(),
        Tcreate {
            fid: 1,
            name: "l".into(),
            perm: dm::SYMLINK | 0o777,
            mode: 0,
            extension: "target".into(),
        }
        .into(),
        Rread {
            data: b"hello, world\n".to_vec(),
        }
        .into(),
        Twrite {
            fid: 1,
            offset: 10,
            data: b"data".to_vec(),
        }
        .into(),
        Rstat { stat: stat.clone() }.into(),
        Twstat {
            fid: 1,
            stat: Stat::dont_touch(),
        }
        .into(),
        Tlock {
            fid: 1,
            ty: 1,
            flags: 1,
            start: 0,
            length: 0,
            proc_id: 42,
            client_id: "host".into(),
        }
        .into(),
        Rreaddir { data: dirents() }.into(),
        Tlcreate {
            fid: 1,
            name: "f".into(),
            flags: 0o102,
            mode: 0o644,
            gid: 0,
        }
        .into(),
    ]
}

fn dirents() -> Vec<u8> {
    let mut out = Vec::new();
    for (i, name) in [".", "..", "file"].into_iter().enumerate() {
        let d = Dirent {
            qid: Qid::default(),
            offset: i as u64 + 1,
            ty: 8,
            name: name.into(),
        };
        if let Err(e) = d.encode(&mut out) {
            eprintln!("seeds: {e}");
        }
    }
    out
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> io::Result<()> {
    fs::create_dir_all(dir)?;
    fs::write(dir.join(name), bytes)
}

fn run(root: &Path) -> io::Result<usize> {
    let mut n = 0;
    for (di, &d) in DIALECTS.iter().enumerate() {
        // Byte 0 of a message input picks the dialect (and msize u32::MAX).
        let sel = u8::try_from(di).unwrap_or(0);
        let mut frames = Vec::new();
        for ty in 0..=255u8 {
            frames.extend(zero_frame(d, ty).map(|f| (format!("zero-{ty}"), f)));
        }
        for (i, m) in samples().into_iter().enumerate() {
            let mut f = Vec::new();
            if encode(d, &Msg { tag: 1, body: m }, &mut f).is_ok() {
                frames.push((format!("sample-{i}"), f));
            }
        }
        for (name, f) in &frames {
            let input = [&[sel][..], f].concat();
            for target in ["tmessage", "rmessage"] {
                write(&root.join(target), &format!("{d:?}-{name}"), &input)?;
                n += 1;
            }
        }
        let mut entry = Vec::new();
        let stat = Stat {
            name: "file".into(),
            uid: "u".into(),
            extension: "x".into(),
            ..Stat::default()
        };
        for s in [Stat::default(), stat] {
            if s.encode_entry(&mut Writer::new(&mut entry, d)).is_err() {
                continue;
            }
        }
        write(
            &root.join("stat"),
            &format!("{d:?}-dir"),
            &[&[sel][..], &entry].concat(),
        )?;
        n += 1;
    }
    write(&root.join("dirent"), "three", &dirents())?;
    Ok(n + 1)
}

fn main() {
    let root = env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("corpus"));
    match run(&root) {
        Ok(n) => println!("wrote {n} seeds under {}", root.display()),
        Err(e) => {
            eprintln!("seeds: {e}");
            process::exit(1);
        }
    }
}

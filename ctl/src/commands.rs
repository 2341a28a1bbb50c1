//! The one-shot subcommands: `ls`, `cat`, `write`, `stat`, `mkdir`, `rm`,
//! `status`. Each takes a connected [`Ns`] and returns what went wrong;
//! commands over several paths report each failure and go on.
//!
//! Standard output is written as data arrives (`cat` of a large file never
//! holds more than its read-ahead window), and a closed pipe ends the
//! command quietly with success.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::sync::Arc;

use ninep::{om, qt, Stat};
use ninep_client::{Fid, OpenFlags};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::format;
use crate::ns::{elements, Failure, Ns};

/// Bytes `cat` keeps in flight once a file reads back in full chunks.
const READ_AHEAD: usize = 4 << 20;
/// Bytes `write` reads from standard input at a time.
const STDIN_CHUNK: usize = 64 << 10;
/// Chunks of standard input queued while a write is in flight.
const STDIN_QUEUE: usize = 32;

/// Failures of a command over several paths, reported as they happen.
#[derive(Debug, Default)]
pub struct Report {
    /// Whether any operation failed.
    pub failed: bool,
    /// Whether standard output was closed under us (the command stopped).
    pub pipe_closed: bool,
}

impl Report {
    /// Prints `f` as `grid: ...` on standard error and remembers it;
    /// returns false when the command should stop (a closed pipe).
    pub fn add(&mut self, f: Failure) -> bool {
        match f {
            Failure::PipeClosed => {
                self.pipe_closed = true;
                false
            }
            f => {
                eprintln!("grid: {f}");
                self.failed = true;
                true
            }
        }
    }

    /// Records the outcome of one step.
    pub fn step(&mut self, r: Result<(), Failure>) -> bool {
        match r {
            Ok(()) => true,
            Err(f) => self.add(f),
        }
    }
}

/// `ls [-l] PATH...`.
pub async fn ls(ns: &Ns, long: bool, paths: &[String]) -> Report {
    let mut report = Report::default();
    for path in paths {
        if !report.step(ls_one(ns, long, path).await) {
            break;
        }
    }
    report
}

async fn ls_one(ns: &Ns, long: bool, path: &str) -> Result<(), Failure> {
    let fid = ns.walk(path).await?;
    let st = fid.stat().await.map_err(|e| Failure::remote(path, &e))?;
    let mut text = String::new();
    if !fid.qid().is_dir() {
        push_entry(&mut text, &st, path, long);
        return print(text.as_bytes());
    }
    let mut entries = read_dir(&fid)
        .await
        .map_err(|e| Failure::remote(path, &e))?;
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    for st in &entries {
        push_entry(&mut text, st, &st.name, long);
    }
    print(text.as_bytes())
}

fn push_entry(text: &mut String, st: &Stat, name: &str, long: bool) {
    if long {
        let offset = format::local_offset(i64::from(st.mtime));
        text.push_str(&format::ls_line(st, name, offset));
    } else {
        text.push_str(name);
    }
    text.push('\n');
}

/// Every entry of the directory `dir` (a fid that is not open), as stat
/// records with names and owners (9P2000 and .u directory reads).
async fn read_dir(dir: &Fid) -> ninep_client::Result<Vec<Stat>> {
    let mut d = dir.try_clone().await?;
    d.topen(om::READ).await?;
    let mut out = Vec::new();
    let mut offset = 0u64;
    loop {
        let data = d.read(offset, d.iounit()).await?;
        if data.is_empty() {
            return Ok(out);
        }
        offset += data.len() as u64;
        let stats = Stat::decode_dir(&data, dir.client().dialect())
            .map_err(|e| ninep_client::Error::Protocol(format!("directory read: {e}")))?;
        out.extend(
            stats
                .into_iter()
                .filter(|s| s.name != "." && s.name != ".."),
        );
    }
}

/// `cat PATH...`.
pub async fn cat(ns: &Ns, paths: &[String]) -> Report {
    let mut report = Report::default();
    for path in paths {
        if !report.step(cat_one(ns, path).await) {
            break;
        }
    }
    report
}

async fn cat_one(ns: &Ns, path: &str) -> Result<(), Failure> {
    let mut fid = ns.walk(path).await?;
    if fid.qid().is_dir() {
        return Err(Failure::at(path, "is a directory"));
    }
    fid.open(OpenFlags::READ)
        .await
        .map_err(|e| Failure::remote(path, &e))?;
    copy_out(Arc::new(fid), path).await
}

/// Copies the open file `fid` to standard output.
///
/// One read at a time until a read comes back full; then a window of
/// iounit-sized reads stays in flight. A short read (synthetic files,
/// streams) empties the window and goes on from where it ended, as
/// [`Fid::read_all`] does, but every chunk is written out as it arrives.
async fn copy_out(fid: Arc<Fid>, path: &str) -> Result<(), Failure> {
    let unit = fid.iounit();
    let depth = (READ_AHEAD / unit.max(1) as usize).clamp(2, 64);
    let mut window: VecDeque<(u64, JoinHandle<ninep_client::Result<Vec<u8>>>)> = VecDeque::new();
    let mut next = 0u64;
    let mut pipelining = false;
    let mut stdout = io::stdout();
    loop {
        let want = if pipelining { depth } else { 1 };
        while window.len() < want {
            let f = fid.clone();
            let at = next;
            window.push_back((at, tokio::spawn(async move { f.read(at, unit).await })));
            next += u64::from(unit);
        }
        let Some((at, task)) = window.pop_front() else {
            return Ok(());
        };
        let data = match task.await {
            Ok(r) => r.map_err(|e| Failure::remote(path, &e))?,
            Err(e) => return Err(Failure::at(path, e.to_string())),
        };
        stdout
            .write_all(&data)
            .and_then(|()| stdout.flush())
            .map_err(|e| Failure::io("standard output", &e))?;
        let n = data.len();
        if n == unit as usize {
            pipelining = true;
            continue;
        }
        // Short or empty: what is in flight aimed past a gap. Let those
        // reads finish on their own; their answers are not needed.
        window.clear();
        if n == 0 {
            return Ok(());
        }
        next = at + n as u64;
        pipelining = false;
    }
}

/// `write PATH`: standard input to the file.
///
/// The rule: an existing file is opened for writing with truncation
/// (OTRUNC), as the shell's `>` does, except append-only files (DMAPPEND);
/// synthetic files such as `/ctl` ignore the truncation and take the data
/// as written. A missing file is created, mode 0666 less the umask, in an
/// existing directory. The data goes in sequential writes of at most the
/// iounit, each ending after a newline where one fits
/// ([`format::next_write`]), so every control message arrives whole and
/// lines are applied in order.
pub async fn write(ns: &Ns, path: &str, umask: u32) -> Report {
    let mut report = Report::default();
    report.step(write_one(ns, path, umask).await);
    report
}

async fn write_one(ns: &Ns, path: &str, umask: u32) -> Result<(), Failure> {
    let fid = open_for_write(ns, path, umask).await?;
    let unit = fid.iounit() as usize;
    let mut input = stdin_chunks();
    let mut buf: Vec<u8> = Vec::new();
    let mut offset = 0u64;
    let mut eof = false;
    while !eof || !buf.is_empty() {
        if !eof {
            match input.recv().await {
                Some(Ok(chunk)) => buf.extend_from_slice(&chunk),
                Some(Err(e)) => return Err(Failure::io("standard input", &e)),
                None => eof = true,
            }
            // Whatever else is queued goes in the same writes.
            while buf.len() < 4 * unit {
                match input.try_recv() {
                    Ok(Ok(chunk)) => buf.extend_from_slice(&chunk),
                    Ok(Err(e)) => return Err(Failure::io("standard input", &e)),
                    Err(mpsc::error::TryRecvError::Empty) => break,
                    Err(mpsc::error::TryRecvError::Disconnected) => {
                        eof = true;
                        break;
                    }
                }
            }
        }
        let mut done = 0;
        loop {
            let n = format::next_write(&buf[done..], unit, eof);
            if n == 0 {
                break;
            }
            write_fully(&fid, offset, &buf[done..done + n])
                .await
                .map_err(|e| Failure::remote(path, &e))?;
            offset += n as u64;
            done += n;
        }
        buf.drain(..done);
    }
    fid.clunk().await.map_err(|e| Failure::remote(path, &e))
}

/// Opens `path` for writing by the rule of [`write()`].
async fn open_for_write(ns: &Ns, path: &str, umask: u32) -> Result<Fid, Failure> {
    let mut fid = match ns.root().walk(&elements(path)).await {
        Ok(fid) => fid,
        Err(e) if not_found(&e) => {
            // The parent must exist; if it does not, its walk says so.
            let Some((dir, name)) = ns.walk_parent(path).await? else {
                return Err(Failure::remote(path, &e));
            };
            return dir
                .create(&name, 0o666 & !umask, OpenFlags::WRITE)
                .await
                .map_err(|e| Failure::remote(path, &e));
        }
        Err(e) => return Err(Failure::remote(path, &e)),
    };
    if fid.qid().is_dir() {
        return Err(Failure::at(path, "is a directory"));
    }
    let mut flags = OpenFlags::WRITE;
    if fid.qid().ty & qt::APPEND == 0 {
        flags |= OpenFlags::TRUNC;
    }
    fid.open(flags)
        .await
        .map_err(|e| Failure::remote(path, &e))?;
    Ok(fid)
}

/// Whether a walk failed because a name does not exist.
fn not_found(e: &ninep_client::Error) -> bool {
    matches!(e, ninep_client::Error::WalkIncomplete { .. })
        || e.errno() == Some(libc::ENOENT as u32)
}

/// One write of `data`, completed by more writes if the server takes less.
async fn write_fully(fid: &Fid, mut offset: u64, mut data: &[u8]) -> ninep_client::Result<()> {
    while !data.is_empty() {
        let n = fid.write(offset, data).await? as usize;
        if n == 0 {
            return Err(io::Error::from(io::ErrorKind::WriteZero).into());
        }
        if n > data.len() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("server says it wrote {n} bytes of {}", data.len()),
            )
            .into());
        }
        data = &data[n..];
        offset += n as u64;
    }
    Ok(())
}

/// Standard input in chunks as they arrive, read on a blocking thread so
/// the next chunk is read while the last is being written.
pub(crate) fn stdin_chunks() -> mpsc::Receiver<io::Result<Vec<u8>>> {
    let (tx, rx) = mpsc::channel(STDIN_QUEUE);
    tokio::task::spawn_blocking(move || {
        let mut stdin = io::stdin().lock();
        loop {
            let mut chunk = vec![0u8; STDIN_CHUNK];
            let r = match stdin.read(&mut chunk) {
                Ok(0) => return,
                Ok(n) => {
                    chunk.truncate(n);
                    Ok(chunk)
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => Err(e),
            };
            let stop = r.is_err();
            if tx.blocking_send(r).is_err() || stop {
                return;
            }
        }
    });
    rx
}

/// `stat PATH`.
pub async fn stat(ns: &Ns, path: &str) -> Report {
    let mut report = Report::default();
    report.step(stat_one(ns, path).await);
    report
}

async fn stat_one(ns: &Ns, path: &str) -> Result<(), Failure> {
    let fid = ns.walk(path).await?;
    let st = fid.stat().await.map_err(|e| Failure::remote(path, &e))?;
    print(format::stat_lines(&st).as_bytes())
}

/// `mkdir PATH`: a directory, mode 0777 less the umask.
pub async fn mkdir(ns: &Ns, path: &str, umask: u32) -> Report {
    let mut report = Report::default();
    let made = async {
        let Some((dir, name)) = ns.walk_parent(path).await? else {
            return Err(Failure::at(path, "file already exists"));
        };
        dir.mkdir(&name, 0o777 & !umask)
            .await
            .map_err(|e| Failure::remote(path, &e))?;
        Ok(())
    };
    report.step(made.await);
    report
}

/// `rm PATH`: a file or an empty directory.
pub async fn rm(ns: &Ns, path: &str) -> Report {
    let mut report = Report::default();
    let removed = async {
        let fid = ns.walk(path).await?;
        fid.remove().await.map_err(|e| Failure::remote(path, &e))
    };
    report.step(removed.await);
    report
}

/// `status`: `cat /status`.
pub async fn status(ns: &Ns) -> Report {
    cat(ns, &["/status".to_owned()]).await
}

fn print(data: &[u8]) -> Result<(), Failure> {
    let mut out = io::stdout().lock();
    out.write_all(data)
        .and_then(|()| out.flush())
        .map_err(|e| Failure::io("standard output", &e))
}

/// Writes one control message (text ending in a newline) in one write, as
/// a ctl file needs: a message longer than the file's iounit, or a write
/// the server takes only part of, is an error rather than a cut command.
pub(crate) async fn write_message(fid: &Fid, text: &str) -> ninep_client::Result<()> {
    let data = text.as_bytes();
    if data.len() > fid.iounit() as usize {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "control message of {} bytes is longer than the file's iounit ({})",
                data.len(),
                fid.iounit()
            ),
        )
        .into());
    }
    let n = fid.write(0, data).await? as usize;
    if n != data.len() {
        return Err(io::Error::new(
            io::ErrorKind::WriteZero,
            format!(
                "control message cut short: {n} of {} bytes taken",
                data.len()
            ),
        )
        .into());
    }
    Ok(())
}

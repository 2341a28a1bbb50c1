//! The 9P nodes of `/cpu` and `/cpu/N`.

use std::any::Any;
use std::sync::Arc;

use async_trait::async_trait;
use ninep::Qid;
use ninep_server::synth::{
    dir_qid, entries_with_attrs, file_qid, read_at, CloneFile, CtlFile, GenDir, Generator, TextFile,
};
use ninep_server::{Attr, DirEntry, Error, Handle, Node, OpenMode, Opened, Result};

use crate::ctl::JobCtl;
use crate::job::Job;
use crate::stream::{Output, ReadError};
use crate::{Reader, Shared};

/// Who reads a `/cpu` tree, asked afresh on each use (see
/// [`crate::Cpu::live_tree`]).
pub(crate) type ReaderFn = Arc<dyn Fn() -> Option<Reader> + Send + Sync>;

/// The reader now, or the error that says its share is gone.
fn current(reader: &ReaderFn) -> Result<Reader> {
    reader().ok_or_else(|| Error::new(libc::EACCES, "cpu: your share has been withdrawn"))
}

/// `/cpu` for `reader`.
pub(crate) fn cpu_dir(shared: Arc<Shared>, reader: ReaderFn) -> Arc<dyn Node> {
    let info = {
        let (s, r) = (shared.clone(), reader.clone());
        Arc::new(TextFile::new(move || match r() {
            Some(r) => crate::info::info_text(&s, &r),
            None => "share withdrawn\n".to_owned(),
        }))
    };
    let clone = {
        let (s, r) = (shared.clone(), reader.clone());
        Arc::new(CloneFile::new(move || s.new_job(&current(&r)?)))
    };
    let jobs = {
        let (s, r) = (shared.clone(), reader.clone());
        Arc::new(TextFile::new(move || match r() {
            Some(r) => jobs_text(&s, &r),
            None => String::new(),
        }))
    };
    Arc::new(GenDir::new(
        0o555,
        CpuGen {
            shared,
            reader,
            fixed: vec![("clone", clone), ("info", info), ("jobs", jobs)],
        },
    ))
}

fn jobs_text(shared: &Shared, reader: &Reader) -> String {
    let jobs: Vec<Arc<Job>> = shared
        .lock()
        .values()
        .filter(|e| reader.sees_all || e.job.owner == reader.name)
        .map(|e| e.job.clone())
        .collect();
    jobs.iter()
        .map(|j| {
            let status = j.status();
            let state = status.split(' ').next().unwrap_or("-");
            format!("{} {} {state} {}\n", j.n, j.owner, j.command())
        })
        .collect()
}

struct CpuGen {
    shared: Arc<Shared>,
    reader: ReaderFn,
    fixed: Vec<(&'static str, Arc<dyn Node>)>,
}

#[async_trait]
impl Generator for CpuGen {
    async fn list(&self) -> Result<Vec<(String, Arc<dyn Node>)>> {
        let reader = current(&self.reader)?;
        let mut out: Vec<(String, Arc<dyn Node>)> = self
            .fixed
            .iter()
            .map(|(n, node)| ((*n).to_owned(), node.clone()))
            .collect();
        out.extend(
            self.shared
                .lock()
                .iter()
                .filter(|(_, e)| reader.sees_all || e.job.owner == reader.name)
                .map(|(n, e)| (n.to_string(), e.dir.clone())),
        );
        Ok(out)
    }

    async fn lookup(&self, name: &str) -> Result<Arc<dyn Node>> {
        let reader = current(&self.reader)?;
        if let Some((_, node)) = self.fixed.iter().find(|(n, _)| *n == name) {
            return Ok(node.clone());
        }
        let n: u32 = name.parse().map_err(|_| Error::not_found())?;
        if n.to_string() != name {
            return Err(Error::not_found());
        }
        match self.shared.lock().get(&n) {
            Some(e) if reader.sees_all || e.job.owner == reader.name => Ok(e.dir.clone()),
            _ => Err(Error::not_found()),
        }
    }
}

/// `/cpu/N` and its `ctl` node.
pub(crate) fn job_dir(job: Arc<Job>) -> (Arc<dyn Node>, Arc<dyn Node>) {
    let ctl: Arc<dyn Node> = Arc::new(CtlFile::new("cpu", Arc::new(JobCtl { job: job.clone() })));
    let status = {
        let j = job.clone();
        Arc::new(TextFile::new(move || j.status()))
    };
    let files: Vec<(&'static str, Arc<dyn Node>)> = vec![
        ("ctl", ctl.clone()),
        (
            "stdin",
            JobFile::write_only({
                let j = job.clone();
                move || Opened::new(StdinHandle(j.clone()))
            }),
        ),
        ("stdout", stream_file(&job, job.stdout.clone(), "stdout")),
        ("stderr", stream_file(&job, job.stderr.clone(), "stderr")),
        ("status", status),
        (
            "wait",
            JobFile::read_only({
                let j = job.clone();
                move || Opened::new(WaitHandle(j.clone()))
            }),
        ),
    ];
    let dir = Arc::new(JobDir {
        qid: dir_qid(),
        job,
        files,
    });
    (dir, ctl)
}

struct JobDir {
    qid: Qid,
    job: Arc<Job>,
    files: Vec<(&'static str, Arc<dyn Node>)>,
}

#[async_trait]
impl Node for JobDir {
    fn qid(&self) -> Qid {
        self.qid
    }

    async fn attr(&self) -> Result<Attr> {
        Ok(Attr::synthetic(self.qid, 0o555))
    }

    async fn walk(&self, name: &str) -> Result<Arc<dyn Node>> {
        self.files
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, f)| f.clone())
            .ok_or_else(Error::not_found)
    }

    async fn readdir(&self) -> Result<Vec<DirEntry>> {
        entries_with_attrs(
            self.files
                .iter()
                .map(|(n, f)| ((*n).to_owned(), f.clone()))
                .collect(),
        )
        .await
    }

    /// Removing the directory kills the job and frees its files.
    async fn remove(&self) -> Result<()> {
        self.job.remove().await;
        Ok(())
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// A file of `/cpu/N` that is only read or only written, each open
/// getting a fresh handle from `open`.
struct JobFile<F> {
    qid: Qid,
    writable: bool,
    open: F,
}

impl<F: Fn() -> Opened + Send + Sync + 'static> JobFile<F> {
    fn read_only(open: F) -> Arc<dyn Node> {
        Arc::new(JobFile {
            qid: file_qid(),
            writable: false,
            open,
        })
    }

    fn write_only(open: F) -> Arc<dyn Node> {
        Arc::new(JobFile {
            qid: file_qid(),
            writable: true,
            open,
        })
    }
}

#[async_trait]
impl<F: Fn() -> Opened + Send + Sync + 'static> Node for JobFile<F> {
    fn qid(&self) -> Qid {
        self.qid
    }

    async fn attr(&self) -> Result<Attr> {
        let perm = if self.writable { 0o222 } else { 0o444 };
        Ok(Attr::synthetic(self.qid, perm))
    }

    async fn open(&self, mode: OpenMode) -> Result<Opened> {
        match self.writable {
            true if mode.read => Err(Error::no_read()),
            false if mode.write => Err(Error::no_write()),
            _ => Ok((self.open)()),
        }
    }

    // `echo x > stdin` truncates; there is nothing to truncate.
    async fn setattr(&self, _set: ninep_server::SetAttr) -> Result<()> {
        match self.writable {
            true => Ok(()),
            false => Err(Error::no_wstat()),
        }
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

struct StdinHandle(Arc<Job>);

#[async_trait]
impl Handle for StdinHandle {
    async fn write(&self, _offset: u64, data: &[u8]) -> Result<u32> {
        self.0.write_stdin(data).await.map_err(prefix)?;
        Ok(data.len() as u32)
    }
}

/// `stdout` or `stderr` (`name`): each open reads `out` from its start.
fn stream_file(job: &Arc<Job>, out: Arc<Output>, name: &'static str) -> Arc<dyn Node> {
    let n = job.n;
    JobFile::read_only(move || {
        Opened::new(StreamHandle {
            id: out.open(),
            out: out.clone(),
            n,
            name,
        })
    })
}

struct StreamHandle {
    out: Arc<Output>,
    id: u64,
    n: u32,
    name: &'static str,
}

#[async_trait]
impl Handle for StreamHandle {
    async fn read(&self, offset: u64, count: u32) -> Result<Vec<u8>> {
        self.out.read(self.id, offset, count).await.map_err(|e| {
            let errno = match e {
                ReadError::Dropped(_) => libc::ESPIPE,
                ReadError::Removed => libc::ENOENT,
            };
            Error::new(errno, format!("cpu: {}/{}: {e}", self.n, self.name))
        })
    }

    async fn clunk(&self) {
        self.out.close(self.id);
    }
}

impl Drop for StreamHandle {
    fn drop(&mut self) {
        self.out.close(self.id);
    }
}

struct WaitHandle(Arc<Job>);

#[async_trait]
impl Handle for WaitHandle {
    /// Blocks until the job has ended; a Tflush drops this future, which
    /// holds nothing but a watch receiver.
    async fn read(&self, offset: u64, count: u32) -> Result<Vec<u8>> {
        self.0.wait().await;
        Ok(read_at(self.0.status().as_bytes(), offset, count))
    }
}

fn prefix(e: Error) -> Error {
    Error::new(e.errno, format!("cpu: {}", e.msg))
}

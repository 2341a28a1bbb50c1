//! `grid run [--limit KEY=VALUE,...] -- CMD [ARG...]`: a job through the
//! files of `/cpu` (gridfs(4)), doing only what a person could do with
//! echo and cat:
//!
//! ```text
//! open /cpu/clone (read+write)      the fid is now /cpu/N/ctl; read N
//! write "limit …" to it             refused above the share
//! open N/stdout, N/stderr, N/wait   before exec, so no output is dropped
//! write "exec CMD ARG…"             the job starts
//! stdin -> N/stdin, then "stdin close"; N/stdout -> stdout; N/stderr -> stderr
//! read N/wait                       the status line; exit with its code
//! write "rm"                        the job and its output are freed
//! ```
//!
//! The job is found under a `/cpu` directory given by the caller, so
//! running on another grid (`--on PEER`, with the federation) is the same
//! code with `/n/PEER/cpu`.

use std::io::{self, Write};
use std::sync::Arc;

use ninep_client::{Fid, OpenFlags};
use tokio::task::JoinHandle;

use crate::commands::write_message;
use crate::ns::{message, Failure, Ns};

/// What `grid run` was asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunSpec {
    /// The `/cpu` directory to run in (`/cpu` here).
    pub cpu: String,
    /// `KEY=VALUE` limits.
    pub limits: Vec<String>,
    /// The command and its arguments.
    pub argv: Vec<String>,
}

/// Runs the job and returns the exit code `grid run` should exit with:
/// the job's, 128 + the signal that killed it, 127 when the command
/// could not be found, 126 when it could not be run.
pub async fn run(ns: &Ns, spec: &RunSpec) -> Result<u8, Failure> {
    let cpu = spec.cpu.trim_end_matches('/');
    let mut ctl = ns.walk(&format!("{cpu}/clone")).await?;
    ctl.open(OpenFlags::RDWR)
        .await
        .map_err(|e| Failure::remote(format!("{cpu}/clone"), &e))?;
    let n = String::from_utf8_lossy(
        &ctl.read(0, 64)
            .await
            .map_err(|e| Failure::remote(format!("{cpu}/clone"), &e))?,
    )
    .trim()
    .to_owned();
    let job = Job {
        ctl: Arc::new(ctl),
        dir: format!("{cpu}/{n}"),
    };
    let result = job.run(ns, spec).await;
    // The job goes whatever happened; its output is no longer needed.
    let _ = job.ctl.write(0, b"rm\n").await;
    result
}

struct Job {
    ctl: Arc<Fid>,
    dir: String,
}

impl Job {
    async fn run(&self, ns: &Ns, spec: &RunSpec) -> Result<u8, Failure> {
        if !spec.limits.is_empty() {
            let limits: Vec<String> = spec.limits.iter().map(|l| cmdbuf_quote(l)).collect();
            self.ctl_line(&format!("limit {}", limits.join(" ")))
                .await?;
        }
        let stdout = self.open(ns, "stdout", OpenFlags::READ).await?;
        let stderr = self.open(ns, "stderr", OpenFlags::READ).await?;
        let wait = self.open(ns, "wait", OpenFlags::READ).await?;
        let stdin = self.open(ns, "stdin", OpenFlags::WRITE).await?;
        let exec = format!(
            "exec {}",
            spec.argv
                .iter()
                .map(|a| cmdbuf_quote(a))
                .collect::<Vec<_>>()
                .join(" ")
        );
        if let Err(e) = write_message(&self.ctl, &format!("{exec}\n")).await {
            eprintln!("grid: run: {}", message(&e));
            return Ok(match e.errno().map(|n| n as i32) {
                Some(libc::ENOENT) => 127,
                Some(libc::EACCES | libc::ENOEXEC | libc::EISDIR) => 126,
                _ => 1,
            });
        }
        let out = copy(stdout, self.path("stdout"), Out::Stdout);
        let err = copy(stderr, self.path("stderr"), Out::Stderr);
        let feeder = tokio::spawn(feed(stdin, self.ctl.clone()));
        let signals = tokio::spawn(forward_signals(self.ctl.clone()));
        let status = wait
            .read(0, 4096)
            .await
            .map_err(|e| Failure::remote(self.path("wait"), &e));
        let status = String::from_utf8_lossy(&status?).into_owned();
        for task in [out, err] {
            match task.await {
                Ok(Err(Failure::PipeClosed)) | Ok(Ok(())) => {}
                Ok(Err(f)) => eprintln!("grid: {f}"),
                Err(e) => eprintln!("grid: run: {e}"),
            }
        }
        feeder.abort();
        signals.abort();
        Ok(exit_code(&status, &self.dir))
    }

    fn path(&self, name: &str) -> String {
        format!("{}/{name}", self.dir)
    }

    async fn open(&self, ns: &Ns, name: &str, flags: OpenFlags) -> Result<Arc<Fid>, Failure> {
        let path = self.path(name);
        let mut fid = ns.walk(&path).await?;
        fid.open(flags)
            .await
            .map_err(|e| Failure::remote(&path, &e))?;
        Ok(Arc::new(fid))
    }

    async fn ctl_line(&self, line: &str) -> Result<(), Failure> {
        write_message(&self.ctl, &format!("{line}\n"))
            .await
            .map_err(|e| Failure::at("run", message(&e)))
    }
}

/// The exit code for a status line (gridfs(4)): `exited CODE`, `killed
/// SIGNAL`, `failed`. A job that gridd ended (a limit, a kill) is said so
/// on standard error.
fn exit_code(status: &str, dir: &str) -> u8 {
    let f: Vec<&str> = status.split_whitespace().collect();
    let reason = f.get(7).copied().unwrap_or("-");
    match (f.first().copied(), f.get(2)) {
        (Some("exited"), Some(code)) => code.parse::<u8>().unwrap_or(1),
        (Some("killed"), Some(sig)) => {
            if reason != "-" {
                eprintln!(
                    "grid: run: {dir}: killed by {sig} ({})",
                    reason_text(reason)
                );
            }
            let n = grid_cpu::job::parse_signal(sig).unwrap_or(libc::SIGKILL);
            128u8.saturating_add(n as u8)
        }
        _ => {
            eprintln!("grid: run: {dir}: {}", status.trim());
            127
        }
    }
}

fn reason_text(reason: &str) -> &str {
    match reason {
        "time" => "its wall-clock limit",
        "cpu" => "its CPU-time limit",
        "mem" => "its memory limit",
        "kill" => "a kill message",
        "rm" => "its removal",
        "shutdown" => "gridd shutting down",
        other => other,
    }
}

/// Which of our outputs a stream goes to.
#[derive(Clone, Copy)]
enum Out {
    Stdout,
    Stderr,
}

/// Copies a stream file to one of our outputs as it arrives: two
/// iounit-sized reads in flight, written out in order.
fn copy(fid: Arc<Fid>, path: String, out: Out) -> JoinHandle<Result<(), Failure>> {
    tokio::spawn(async move {
        let unit = fid.iounit();
        let mut offset = 0u64;
        loop {
            let data = fid
                .read(offset, unit)
                .await
                .map_err(|e| Failure::remote(&path, &e))?;
            if data.is_empty() {
                return Ok(());
            }
            offset += data.len() as u64;
            let written = match out {
                Out::Stdout => {
                    let mut o = io::stdout().lock();
                    o.write_all(&data).and_then(|()| o.flush())
                }
                Out::Stderr => io::stderr().lock().write_all(&data),
            };
            written.map_err(|e| Failure::io("standard output", &e))?;
        }
    })
}

/// Our standard input to the job's, then `stdin close`.
async fn feed(stdin: Arc<Fid>, ctl: Arc<Fid>) {
    let mut input = crate::commands::stdin_chunks();
    while let Some(Ok(chunk)) = input.recv().await {
        let mut data = &chunk[..];
        while !data.is_empty() {
            match stdin.write(0, data).await {
                Ok(n) if n > 0 && n as usize <= data.len() => data = &data[n as usize..],
                // The job has ended or closed its input: stop quietly.
                _ => return,
            }
        }
    }
    let _ = write_message(&ctl, "stdin close\n").await;
}

/// SIGINT, SIGTERM and SIGHUP to `grid run` go to the job, as they would
/// to a command run directly.
async fn forward_signals(ctl: Arc<Fid>) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut int), Ok(mut term), Ok(mut hup)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
        signal(SignalKind::hangup()),
    ) else {
        return;
    };
    loop {
        let name = tokio::select! {
            _ = int.recv() => "INT",
            _ = term.recv() => "TERM",
            _ = hup.recv() => "HUP",
        };
        let _ = ctl.write(0, format!("signal {name}\n").as_bytes()).await;
    }
}

fn cmdbuf_quote(s: &str) -> String {
    cmdbuf::quote(s).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_follow_the_shell() {
        let at = "2026-01-01T00:00:00.000Z";
        assert_eq!(
            exit_code(&format!("exited 7 3 0.001 100 {at} {at} -\n"), "/cpu/1"),
            3
        );
        assert_eq!(
            exit_code(&format!("killed 7 TERM 0.001 100 {at} {at} -\n"), "/cpu/1"),
            143
        );
        assert_eq!(
            exit_code(
                &format!("killed 7 KILL 0.001 100 {at} {at} time\n"),
                "/cpu/1"
            ),
            137
        );
        assert_eq!(
            exit_code("failed - - - - - - x: file not found\n", "/cpu/1"),
            127
        );
    }
}

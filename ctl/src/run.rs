//! `grid run [--on PEER|any] [--limit KEY=VALUE,...] -- CMD [ARG...]`: a
//! job through the files of `/cpu` (gridfs(4)), doing only what a person
//! could do with echo and cat:
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
//! Running on another grid (`--on PEER`) is the same code with
//! `/n/PEER/cpu`, the peer's `/cpu` as it grants it to this grid, reached
//! through the local gridd. `--on any` first reads `/cpu/info` and every
//! `/n/PEER/cpu/info` (each bounded by [`PLACE_TIMEOUT`]) and runs where
//! the most granted cores are free ([`free_cores`]), this grid on a tie.

use std::io::{self, Write};
use std::sync::Arc;
use std::time::Duration;

use ninep_client::{Fid, OpenFlags};
use tokio::task::JoinHandle;

use crate::commands::write_message;
use crate::ns::{message, Failure, Ns};

/// What `grid run` was asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunSpec {
    /// Which grid runs the job.
    pub on: Target,
    /// `KEY=VALUE` limits.
    pub limits: Vec<String>,
    /// The command and its arguments.
    pub argv: Vec<String>,
    /// Say on standard error which grid runs the job.
    pub verbose: bool,
}

/// Which grid runs a job (`--on`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// This grid: `/cpu`.
    Here,
    /// A peer: `/n/PEER/cpu`.
    Peer(String),
    /// The grid with the most free granted cores (`--on any`).
    Any,
}

impl Target {
    /// `any`, or a peer's name (letters, digits, `-`, `_`, `.`).
    pub fn parse(s: &str) -> Result<Target, String> {
        if s == "any" {
            return Ok(Target::Any);
        }
        gridd::config::check_name(s).map_err(|e| format!("--on: {e}"))?;
        Ok(Target::Peer(s.to_owned()))
    }
}

/// How long `--on any` waits for one grid's `cpu/info`; a grid that does
/// not answer in time is left out.
pub const PLACE_TIMEOUT: Duration = Duration::from_secs(5);

/// Runs the job and returns the exit code `grid run` should exit with:
/// the job's, 128 + the signal that killed it, 127 when the command
/// could not be found, 126 when it could not be run.
pub async fn run(ns: &Ns, spec: &RunSpec) -> Result<u8, Failure> {
    let (cpu, name) = match &spec.on {
        Target::Here => ("/cpu".to_owned(), "this grid".to_owned()),
        Target::Peer(p) => (format!("/n/{p}/cpu"), format!("peer {p}")),
        Target::Any => place(ns).await?,
    };
    if spec.verbose {
        eprintln!("grid: run: on {name} ({cpu})");
    }
    let cpu = cpu.as_str();
    let mut ctl = match ns.walk(&format!("{cpu}/clone")).await {
        Ok(ctl) => ctl,
        Err(f) => return Err(no_cpu(ns, &spec.on, f).await),
    };
    if let Err(e) = ctl.open(OpenFlags::RDWR).await {
        let msg = with_share(ns, cpu, message(&e)).await;
        return Err(Failure::at(format!("{cpu}/clone"), msg));
    }
    let n = job_number(
        &ctl.read(0, 64)
            .await
            .map_err(|e| Failure::remote(format!("{cpu}/clone"), &e))?,
    )
    .ok_or_else(|| Failure::at(format!("{cpu}/clone"), "did not give a job number"))?;
    let job = Job {
        ctl: Arc::new(ctl),
        cpu: cpu.to_owned(),
        dir: format!("{cpu}/{n}"),
    };
    let result = job.run(ns, spec).await;
    // The job goes whatever happened; its output is no longer needed.
    let _ = job.ctl.write(0, b"rm\n").await;
    result
}

/// The job number a read of `clone` gave; `None` for anything else, so
/// that a misbehaving peer cannot point the job's paths elsewhere.
fn job_number(text: &[u8]) -> Option<u32> {
    std::str::from_utf8(text).ok()?.trim().parse().ok()
}

struct Job {
    ctl: Arc<Fid>,
    /// The `/cpu` directory the job is in.
    cpu: String,
    dir: String,
}

impl Job {
    async fn run(&self, ns: &Ns, spec: &RunSpec) -> Result<u8, Failure> {
        if !spec.limits.is_empty() {
            let limits: Vec<String> = spec.limits.iter().map(|l| cmdbuf_quote(l)).collect();
            let line = format!("limit {}\n", limits.join(" "));
            if let Err(e) = write_message(&self.ctl, &line).await {
                let msg = with_share(ns, &self.cpu, message(&e)).await;
                let msg = match msg.starts_with("cpu: ") {
                    true => msg,
                    false => format!("{} refused: {msg}", line.trim_end()),
                };
                return Err(Failure::at("run", msg));
            }
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
}

/// Why `CPU/clone` could not be walked, said plainly for a peer: it is not
/// one, it cannot be reached, or it grants this grid no cpu.
async fn no_cpu(ns: &Ns, on: &Target, walk: Failure) -> Failure {
    let Target::Peer(peer) = on else {
        return walk;
    };
    if let Err(f) = ns.walk(&format!("/n/{peer}")).await {
        return match ns.walk(&format!("/net/peers/{peer}")).await {
            Err(_) => Failure::at("run", format!("no peer '{peer}' (see grid peer ls)")),
            Ok(_) => f,
        };
    }
    Failure::at(
        "run",
        format!("peer {peer} grants this grid no cpu (see /net/peers/{peer}/policy)"),
    )
}

/// `msg`, with the share `CPU/info` shows when `msg` is not in `/cpu`'s
/// own words: a peer's words do not cross 9P2000.L (only its errno does),
/// so a refusal there would not say which share refused.
async fn with_share(ns: &Ns, cpu: &str, msg: String) -> String {
    if msg.starts_with("cpu: ") {
        return msg;
    }
    let path = format!("{cpu}/info");
    let info = match tokio::time::timeout(PLACE_TIMEOUT, ns.read_text(&path)).await {
        Ok(Ok(info)) => info,
        _ => return msg,
    };
    match info.lines().find_map(|l| l.strip_prefix("share ")) {
        Some(share) => format!("{msg} (your share at {cpu}: {share})"),
        None => msg,
    }
}

/// `--on any`: the `/cpu` directory, and its grid's name, with the most
/// free granted cores; this grid on a tie. Grids whose `info` cannot be
/// read within [`PLACE_TIMEOUT`] are left out.
async fn place(ns: &Ns) -> Result<(String, String), Failure> {
    let mut candidates = vec![("/cpu".to_owned(), "this grid".to_owned())];
    // Listing /n dials nobody; a peer that grants no cpu fails its walk.
    if let Ok(n) = ns.walk("/n").await {
        if let Ok(entries) = n.readdir().await {
            for e in entries {
                candidates.push((format!("/n/{}/cpu", e.name), format!("peer {}", e.name)));
            }
        }
    }
    let mut reads = tokio::task::JoinSet::new();
    for (i, (cpu, _)) in candidates.iter().enumerate() {
        let root = ns
            .root()
            .try_clone()
            .await
            .map_err(|e| Failure::remote(&ns.addr, &e))?;
        let cpu = crate::ns::elements(cpu);
        reads.spawn(async move {
            let read = async {
                let info = read_in(&root, &cpu, "info").await?;
                let jobs = read_in(&root, &cpu, "jobs").await?;
                free_cores(&info, jobs.lines().count())
            };
            (
                i,
                tokio::time::timeout(PLACE_TIMEOUT, read)
                    .await
                    .ok()
                    .flatten(),
            )
        });
    }
    let mut free: Vec<Option<f64>> = vec![None; candidates.len()];
    // A read that panicked leaves its grid out, not the ones after it.
    while let Some(joined) = reads.join_next().await {
        if let Ok((i, f)) = joined {
            free[i] = f;
        }
    }
    let best = free
        .iter()
        .enumerate()
        .filter_map(|(i, f)| f.map(|f| (i, f)))
        // The first of equals: this grid is first.
        .fold(None, |best: Option<(usize, f64)>, (i, f)| match best {
            Some((_, b)) if b >= f => best,
            _ => Some((i, f)),
        });
    match best {
        Some((i, _)) => Ok(candidates.swap_remove(i)),
        None => Err(Failure::at(
            "run",
            "--on any: no grid's cpu/info could be read (this grid's nor any peer's)",
        )),
    }
}

/// The text of `DIR/NAME` below `root`, or `None`.
async fn read_in(root: &Fid, dir: &[String], name: &str) -> Option<String> {
    let mut path = dir.to_vec();
    path.push(name.to_owned());
    let mut f = root.walk(&path).await.ok()?;
    f.open(OpenFlags::READ).await.ok()?;
    let data = f.read_all().await.ok()?;
    Some(String::from_utf8_lossy(&data).into_owned())
}

/// How many cores a `cpu/info` text says are free for its reader: the
/// cores its share grants (all the machine's when unlimited) less its
/// running jobs, and no more than the machine's cores less the load
/// average over a minute. `None` when the reader already has as many jobs
/// (`held`, the lines of its `cpu/jobs`) as its share allows, or the text
/// is not a `cpu/info`.
pub fn free_cores(info: &str, held: usize) -> Option<f64> {
    let field = |key: &str| {
        info.lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix(' '))
    };
    let machine: f64 = field("cores")?.trim().parse().ok()?;
    let load: f64 = field("load")
        .and_then(|l| l.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0);
    let running: f64 = field("jobs")
        .and_then(|j| j.trim().parse().ok())
        .unwrap_or(0.0);
    let share = field("share")?;
    let limit = |key: &str| {
        share
            .split_whitespace()
            .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
            .and_then(|v| v.parse::<f64>().ok())
    };
    if limit("jobs").is_some_and(|jobs| held as f64 >= jobs) {
        return None;
    }
    let granted = limit("cores").unwrap_or(machine).min(machine);
    Some((granted - running).min(machine - load).max(0.0))
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
            let (written, name) = match out {
                Out::Stdout => {
                    let mut o = io::stdout().lock();
                    (
                        o.write_all(&data).and_then(|()| o.flush()),
                        "standard output",
                    )
                }
                Out::Stderr => (io::stderr().lock().write_all(&data), "standard error"),
            };
            written.map_err(|e| Failure::io(name, &e))?;
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

    fn info(cores: u32, load: f64, jobs: u32, share: &str) -> String {
        format!("cores {cores}\nload {load} 0 0\nmemtotal 1\nmemavail 1\narch x\nos linux 6\njobs {jobs}\nsandbox none\ncgroups none\nshare {share}\n")
    }

    #[test]
    fn free_cores_are_the_granted_less_the_busy() {
        let unlimited = "cores=unlimited jobs=unlimited mem=unlimited time=unlimited procs=unlimited confine=preferred";
        assert_eq!(free_cores(&info(4, 1.0, 0, unlimited), 9), Some(3.0));
        assert_eq!(free_cores(&info(4, 0.0, 1, unlimited), 1), Some(3.0));
        let two = "cores=2 jobs=3 mem=256M time=unlimited procs=256 confine=required";
        assert_eq!(free_cores(&info(8, 0.5, 1, two), 1), Some(1.0));
        assert_eq!(free_cores(&info(8, 7.5, 0, two), 0), Some(0.5));
        assert_eq!(free_cores(&info(8, 9.0, 0, two), 0), Some(0.0));
        assert_eq!(free_cores(&info(8, 0.0, 1, two), 3), None, "no job left");
        assert_eq!(free_cores("share withdrawn\n", 0), None);
    }

    #[test]
    fn job_numbers_are_numbers() {
        assert_eq!(job_number(b"7\n"), Some(7));
        assert_eq!(job_number(b"../../ctl\n"), None);
        assert_eq!(job_number(b""), None);
        assert_eq!(job_number(b"\xff"), None);
    }

    #[test]
    fn targets_parse() {
        assert_eq!(Target::parse("any"), Ok(Target::Any));
        assert_eq!(Target::parse("alice"), Ok(Target::Peer("alice".into())));
        assert!(Target::parse("../cpu").is_err());
        assert!(Target::parse("").is_err());
    }

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

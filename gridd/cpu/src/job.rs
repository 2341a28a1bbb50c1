//! One job: its set-up, its processes, how it ended, and its status line.
//!
//! A job is `new` until it starts (`held` if `hold` was written), then
//! `running`, then `exited`, `killed` or `failed`. A supervisor task
//! owns the running processes: it waits for the relay, enforces the
//! wall-clock and CPU-time limits, kills what is left of the job when the
//! command ends, collects the output to its end, and only then marks the
//! job ended, so a reader of `wait` finds all of `stdout` and `stderr`
//! there.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use tokio::io::AsyncReadExt;
use tokio::net::unix::pipe;
use tokio::sync::watch;

use crate::cgroup::JobCgroup;
use crate::sandbox::{self, Report, Spec, Started};
use crate::share::{short, Limits, RootView, Share};
use crate::stream::Output;
use crate::term::{caller_of, Term, TERM_ENV};
use crate::Shared;

/// How long output may still arrive after the job's processes are gone
/// (only a process that escaped the job could still hold its pipes).
const OUTPUT_GRACE: Duration = Duration::from_secs(2);

/// A job.
pub struct Job {
    /// Its number.
    pub n: u32,
    /// The reader that made it.
    pub owner: String,
    /// The share it runs under.
    pub share: Share,
    /// Standard output.
    pub stdout: Arc<Output>,
    /// Standard error.
    pub stderr: Arc<Output>,
    stdin: tokio::sync::Mutex<Option<pipe::Sender>>,
    shared: Arc<Shared>,
    inner: Mutex<Inner>,
    /// True once the job has ended (and its output is complete).
    ended: watch::Sender<bool>,
    /// Set to a reason to have the supervisor kill the job.
    kill: watch::Sender<Option<Reason>>,
}

#[derive(Default)]
struct Inner {
    phase: Phase,
    argv: Option<Vec<String>>,
    dir: Option<PathBuf>,
    env: Vec<(String, String)>,
    limits: Limits,
    hold: bool,
    removed: bool,
    stdin_read: Option<std::os::fd::OwnedFd>,
    pgid: Option<i32>,
    reaped: bool,
    start: Option<SystemTime>,
    end: Option<SystemTime>,
    result: Option<End>,
    reason: Option<Reason>,
    cpu: Option<Duration>,
    rss_kib: Option<u64>,
    cgroup: Option<Arc<JobCgroup>>,
    scratch: Option<PathBuf>,
    term: Option<Term>,
}

#[derive(Default, Clone, Copy, PartialEq, Eq)]
enum Phase {
    #[default]
    New,
    Starting,
    Running,
    Ended,
}

/// How a job ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// The command exited with this code.
    Exited(i32),
    /// The command was killed by this signal.
    Killed(i32),
    /// The command could not be started.
    Failed(String),
}

/// Why gridd ended a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// The `kill` message.
    Kill,
    /// The job was removed.
    Rm,
    /// Its wall-clock limit.
    Time,
    /// Its CPU-time limit.
    Cpu,
    /// Its memory limit.
    Mem,
    /// gridd is shutting down.
    Shutdown,
}

impl Reason {
    fn as_str(self) -> &'static str {
        match self {
            Reason::Kill => "kill",
            Reason::Rm => "rm",
            Reason::Time => "time",
            Reason::Cpu => "cpu",
            Reason::Mem => "mem",
            Reason::Shutdown => "shutdown",
        }
    }
}

/// A ctl message that cannot be carried out; its text becomes `cpu: MSG`.
pub type CtlError = ninep_server::Error;

fn bad(msg: String) -> CtlError {
    ninep_server::Error::invalid_arg(msg)
}

impl Job {
    pub(crate) fn new(
        n: u32,
        owner: String,
        share: Share,
        shared: Arc<Shared>,
    ) -> std::io::Result<Arc<Job>> {
        let (r, w) = sandbox::pipe()?;
        let sender = pipe::Sender::from_owned_fd(w)?;
        Ok(Arc::new(Job {
            n,
            owner,
            share,
            stdout: Output::new(),
            stderr: Output::new(),
            stdin: tokio::sync::Mutex::new(Some(sender)),
            shared,
            inner: Mutex::new(Inner {
                stdin_read: Some(r),
                ..Inner::default()
            }),
            ended: watch::Sender::new(false),
            kill: watch::Sender::new(None),
        }))
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn setup(&self, verb: &str) -> Result<MutexGuard<'_, Inner>, CtlError> {
        let g = self.lock();
        if g.phase != Phase::New {
            return Err(bad(format!("{verb}: job {} has already started", self.n)));
        }
        Ok(g)
    }

    /// `exec CMD ARG...`: the command; starts the job unless held.
    pub async fn exec(self: &Arc<Self>, argv: &[String]) -> Result<(), CtlError> {
        let hold = {
            let mut g = self.setup("exec")?;
            if g.argv.is_some() {
                return Err(bad(format!("exec: job {} already has a command", self.n)));
            }
            g.argv = Some(argv.to_vec());
            g.hold
        };
        if hold {
            return Ok(());
        }
        self.start("exec").await
    }

    /// `dir PATH`.
    pub fn set_dir(&self, path: &str) -> Result<(), CtlError> {
        let mut g = self.setup("dir")?;
        let p = PathBuf::from(path);
        if !p.is_absolute() {
            return Err(bad(format!("dir: path '{}' must be absolute", short(path))));
        }
        if !p.is_dir() {
            return Err(bad(format!("dir: '{}' is not a directory", short(path))));
        }
        g.dir = Some(p);
        Ok(())
    }

    /// `env NAME=VALUE`.
    pub fn set_env(&self, arg: &str) -> Result<(), CtlError> {
        let mut g = self.setup("env")?;
        let Some((k, v)) = arg.split_once('=') else {
            return Err(bad(format!("env: '{}' is not NAME=VALUE", short(arg))));
        };
        if k.is_empty() || k.contains('\0') || v.contains('\0') {
            return Err(bad(format!("env: bad name '{}'", short(k))));
        }
        g.env.retain(|(name, _)| name != k);
        g.env.push((k.to_owned(), v.to_owned()));
        Ok(())
    }

    /// `limit key=value...`.
    pub fn set_limits(&self, args: &[String]) -> Result<(), CtlError> {
        let mut g = self.setup("limit")?;
        let mut l = g.limits;
        for a in args {
            l.set(a, &self.share).map_err(|e| bad(e.to_string()))?;
        }
        g.limits = l;
        Ok(())
    }

    /// `hold`.
    pub fn hold(&self) -> Result<(), CtlError> {
        self.setup("hold")?.hold = true;
        Ok(())
    }

    /// `start`, or `exec` without `hold`. The start runs to its end even
    /// if the request that asked for it goes away (Tflush, a lost
    /// connection): a job abandoned half-made would leave its processes,
    /// cgroups, scratch directory and `/mnt/term` behind, unsupervised.
    pub async fn start(self: &Arc<Self>, verb: &str) -> Result<(), CtlError> {
        let job = self.clone();
        let owned = verb.to_owned();
        tokio::spawn(async move { job.start_now(&owned).await })
            .await
            .unwrap_or_else(|e| Err(ninep_server::Error::io(format!("{verb}: {e}"))))
    }

    async fn start_now(self: &Arc<Self>, verb: &str) -> Result<(), CtlError> {
        let (spec_parts, limits) = {
            let mut g = self.setup(verb)?;
            let Some(argv) = g.argv.clone() else {
                return Err(bad(format!(
                    "{verb}: job {} has no command; write exec first",
                    self.n
                )));
            };
            let Some(stdin) = g.stdin_read.take() else {
                return Err(bad(format!("{verb}: job {} cannot start", self.n)));
            };
            g.phase = Phase::Starting;
            (
                (argv, g.dir.clone(), g.env.clone(), stdin),
                g.limits.effective(&self.share),
            )
        };
        let (argv, dir, env, stdin) = spec_parts;
        match self.launch(argv.clone(), dir, env, stdin, limits).await {
            Ok(Launched {
                started,
                cgroup,
                scratch,
                term,
            }) => {
                {
                    let mut g = self.lock();
                    g.phase = Phase::Running;
                    g.pgid = started.child.id().map(|p| p as i32);
                    g.start = Some(SystemTime::now());
                    g.cgroup = cgroup.clone();
                    g.scratch = scratch;
                    g.term = term;
                }
                let job = self.clone();
                tokio::spawn(async move { job.supervise(started, cgroup, limits).await });
                Ok(())
            }
            Err(e) => {
                let mut g = self.lock();
                g.phase = Phase::Ended;
                g.start = Some(SystemTime::now());
                g.end = g.start;
                g.result = Some(End::Failed(e.msg.to_string()));
                drop(g);
                self.stdout.finish();
                self.stderr.finish();
                self.ended.send_replace(true);
                Err(ninep_server::Error::new(
                    e.errno,
                    format!("{verb}: {}", e.msg),
                ))
            }
        }
    }

    async fn launch(
        &self,
        argv: Vec<String>,
        dir: Option<PathBuf>,
        env: Vec<(String, String)>,
        stdin: std::os::fd::OwnedFd,
        limits: Limits,
    ) -> Result<Launched, CtlError> {
        let sh = &self.shared;
        let confine = sh.confine_for(&self.share).map_err(bad)?;
        let cg = &sh.cgroups;
        if limits.procs.is_some() && !cg.has_pids() && !confine {
            return Err(bad(
                "procs limit needs a pids cgroup or a user namespace; neither is available here"
                    .into(),
            ));
        }
        let cgroup = cg
            .make_job(
                self.n,
                &group_name(&self.owner),
                self.share.cores,
                limits.mem,
                limits.procs,
            )
            .map(Arc::new)
            .map_err(|e| ninep_server::Error::io(format!("cannot make the job's cgroups: {e}")))?;
        let scratch = sh.make_scratch(self.n).map_err(|e| {
            ninep_server::Error::io(format!("cannot make the scratch directory: {e}"))
        });
        let scratch = match scratch {
            Ok(s) => s,
            Err(e) => {
                cgroup.remove().await;
                return Err(e);
            }
        };
        // A peer's job sees its caller's namespace; the mount is made
        // before the job starts.
        let term = match (caller_of(&self.owner), &sh.term) {
            (Some(caller), Some(terms)) => match terms.mount(caller, self.n, sh.run_as).await {
                Ok(t) => Some(t),
                Err(msg) => {
                    cgroup.remove().await;
                    let _ = std::fs::remove_dir_all(&scratch);
                    return Err(ninep_server::Error::io(msg));
                }
            },
            _ => None,
        };
        let mut full_env = vec![
            ("PATH".to_owned(), sh.path_var.clone()),
            ("HOME".to_owned(), scratch.display().to_string()),
            ("TMPDIR".to_owned(), scratch.display().to_string()),
            ("GRID_JOB".to_owned(), self.n.to_string()),
            ("LANG".to_owned(), "C.UTF-8".to_owned()),
        ];
        if let (Some(t), false) = (&term, confine) {
            // No mount namespace of its own to bind it in: say where it is.
            full_env.push((TERM_ENV.to_owned(), t.path().display().to_string()));
        }
        for (k, v) in env {
            full_env.retain(|(name, _)| *name != k);
            full_env.push((k, v));
        }
        let mut hide = sh.hide.clone();
        // (If it went missing, covering it would fail every job.)
        hide.extend(
            sh.term
                .as_ref()
                .map(|t| t.root().to_path_buf())
                .filter(|p| p.is_dir()),
        );
        let joins = cgroup.procs_files().unwrap_or_default();
        let root = (self.share.root == RootView::System).then(|| sandbox::SystemRoot {
            stage: sh.root_stage(),
            scratch: scratch.clone(),
            tmp_size: limits
                .mem
                .map_or(PRIVATE_TMP_SIZE, |m| m.min(PRIVATE_TMP_SIZE)),
        });
        let spec = Spec {
            argv: argv.clone(),
            env: full_env,
            dir: dir.unwrap_or_else(|| scratch.clone()),
            limits,
            confine,
            run_as: sh.run_as,
            cgroups: joins.relay,
            command_cgroups: joins.command,
            rlimit_as: !cg.has_memory(),
            stdin,
            hide,
            term: term.as_ref().map(|t| t.path().to_path_buf()),
            root,
        };
        match sh.spawner.spawn(spec).await {
            Ok(started) => Ok(Launched {
                started,
                cgroup: Some(cgroup),
                scratch: Some(scratch),
                term,
            }),
            Err(e) => {
                cgroup.remove().await;
                let _ = std::fs::remove_dir_all(&scratch);
                if let Some(t) = term {
                    t.release().await;
                }
                Err(spawn_error(&argv, e))
            }
        }
    }

    /// Unmounts the job's `/mnt/term`, if it has one.
    async fn release_term(&self) {
        let term = self.lock().term.take();
        if let Some(t) = term {
            t.release().await;
        }
    }

    async fn supervise(
        self: Arc<Self>,
        mut s: Started,
        cgroup: Option<Arc<JobCgroup>>,
        limits: Limits,
    ) {
        let out = tokio::spawn(crate::stream::pump(self.stdout.clone(), s.stdout));
        let err = tokio::spawn(crate::stream::pump(self.stderr.clone(), s.stderr));
        let pgid = s.child.id().map(|p| p as i32);
        let mut kill = self.kill.subscribe();
        let deadline = limits.time.map(|t| tokio::time::Instant::now() + t);
        let mut tick = tokio::time::interval(Duration::from_millis(200));
        let cpu_cap = limits.cpu.filter(|_| cgroup.is_some());
        let mut reason = None;
        loop {
            tokio::select! {
                _ = s.child.wait() => break,
                _ = sleep_until(deadline) => {
                    reason = Some(Reason::Time);
                    break;
                }
                r = kill.wait_for(|k| k.is_some()) => {
                    reason = r.ok().and_then(|k| *k);
                    break;
                }
                _ = tick.tick(), if cpu_cap.is_some() => {
                    let used = cgroup.as_ref().and_then(|c| c.usage().cpu);
                    if let (Some(u), Some(cap)) = (used, cpu_cap) {
                        if u >= cap {
                            reason = Some(Reason::Cpu);
                            break;
                        }
                    }
                }
            }
        }
        // Whatever is left of the job goes now: its process group (the
        // relay, the init and every process that stayed in the group),
        // then anything else in its cgroups.
        if let Some(p) = pgid {
            // SAFETY: kill(2) of our own child's process group.
            unsafe { libc::kill(-p, libc::SIGKILL) };
        }
        if let Some(cg) = &cgroup {
            cg.kill_all().await;
        }
        let _ = s.child.wait().await;
        self.lock().reaped = true;
        // Nothing of the job can use its /mnt/term any more; it goes
        // before the job is said to have ended.
        self.release_term().await;
        let mut buf = Vec::new();
        let ended = match pipe::Receiver::from_owned_fd(s.report) {
            Ok(mut r) => tokio::time::timeout(OUTPUT_GRACE, r.read_to_end(&mut buf))
                .await
                .is_ok_and(|r| r.is_ok()),
            Err(_) => false,
        };
        // The relay and the init ran in gridd's memory; once the report
        // pipe has ended neither runs any more and their stacks can go.
        if ended {
            drop(s.keep);
        } else {
            s.keep.leak();
        }
        let report = Report::decode(&buf);
        self.stdout.drain();
        self.stderr.drain();
        for (pump, output) in [(out, &self.stdout), (err, &self.stderr)] {
            let abort = pump.abort_handle();
            if tokio::time::timeout(OUTPUT_GRACE, pump).await.is_err() {
                abort.abort();
            }
            output.finish();
        }
        let usage = cgroup.as_ref().map(|c| c.usage()).unwrap_or_default();
        let end = match report {
            Some(r) if libc::WIFEXITED(r.status) => End::Exited(libc::WEXITSTATUS(r.status)),
            Some(r) if libc::WIFSIGNALED(r.status) => End::Killed(libc::WTERMSIG(r.status)),
            _ => End::Killed(libc::SIGKILL),
        };
        if reason.is_none() {
            reason = match end {
                _ if usage.oom_kills > 0 => Some(Reason::Mem),
                End::Killed(libc::SIGXCPU) => Some(Reason::Cpu),
                End::Killed(libc::SIGKILL)
                    if limits
                        .cpu
                        .is_some_and(|c| report.is_some_and(|r| r.cpu >= c)) =>
                {
                    Some(Reason::Cpu)
                }
                _ => None,
            };
        }
        let scratch = {
            let mut g = self.lock();
            g.phase = Phase::Ended;
            g.end = Some(SystemTime::now());
            g.result = Some(end);
            g.reason = reason;
            g.cpu = usage.cpu.or(report.map(|r| r.cpu));
            g.rss_kib = usage
                .peak
                .map(|b| b / 1024)
                .or(report.map(|r| r.maxrss_kib));
            if g.removed {
                g.scratch.take()
            } else {
                None
            }
        };
        self.ended.send_replace(true);
        // Every process is gone and the usage is read: the groups can go
        // after the waiters have their answer.
        if let Some(cg) = &cgroup {
            cg.remove().await;
        }
        if let Some(dir) = scratch {
            let _ = tokio::task::spawn_blocking(move || std::fs::remove_dir_all(dir)).await;
        }
    }

    /// `kill`: ends the job and every process of it. A job that has not
    /// started never will; one that has ended is left as it is.
    pub fn kill(&self, reason: Reason) {
        let mut g = self.lock();
        match g.phase {
            Phase::New => {
                g.phase = Phase::Ended;
                g.result = Some(End::Killed(libc::SIGKILL));
                g.reason = Some(reason);
                g.end = Some(SystemTime::now());
                g.stdin_read = None;
                drop(g);
                self.stdout.finish();
                self.stderr.finish();
                self.ended.send_replace(true);
            }
            Phase::Starting | Phase::Running => {
                drop(g);
                self.kill.send_if_modified(|k| {
                    let fresh = k.is_none();
                    if fresh {
                        *k = Some(reason);
                    }
                    fresh
                });
            }
            Phase::Ended => {}
        }
    }

    /// `signal NAME`: to the command (through the relay and the init);
    /// STOP and CONT go to the whole process group.
    pub fn signal(&self, sig: i32) -> Result<(), CtlError> {
        let g = self.lock();
        let (Phase::Running, Some(pgid), false) = (g.phase, g.pgid, g.reaped) else {
            return Err(bad(format!("signal: job {} is not running", self.n)));
        };
        let target = if sig == libc::SIGSTOP || sig == libc::SIGCONT {
            -pgid
        } else {
            pgid
        };
        // SAFETY: kill(2) of our own child (or its group). The supervisor
        // clears `pgid` under this lock right after reaping the relay, so
        // the number cannot have been reused.
        unsafe { libc::kill(target, sig) };
        Ok(())
    }

    /// `stdin close`.
    pub async fn close_stdin(&self) {
        self.stdin.lock().await.take();
        self.lock().stdin_read = None;
    }

    /// Writes to the job's standard input, all of `data`.
    pub async fn write_stdin(&self, data: &[u8]) -> Result<(), CtlError> {
        use tokio::io::AsyncWriteExt;
        let mut g = self.stdin.lock().await;
        let Some(w) = g.as_mut() else {
            return Err(bad(format!("job {}: stdin is closed", self.n)));
        };
        w.write_all(data).await.map_err(|e| match e.raw_os_error() {
            Some(libc::EPIPE) => ninep_server::Error::new(
                libc::EPIPE,
                format!("job {}: stdin: the job has ended", self.n),
            ),
            _ => {
                let e = ninep_server::Error::from(e);
                ninep_server::Error::new(e.errno, format!("job {}: stdin: {}", self.n, e.msg))
            }
        })
    }

    /// `rm`, or a remove of the directory: kills the job, frees its
    /// output and, once its processes are gone, its scratch directory.
    pub async fn remove(self: &Arc<Self>) {
        let scratch = {
            let mut g = self.lock();
            g.removed = true;
            if g.phase == Phase::Ended {
                g.scratch.take()
            } else {
                None
            }
        };
        self.kill(Reason::Rm);
        self.stdout.remove();
        self.stderr.remove();
        self.stdin.lock().await.take();
        self.shared.forget(self.n);
        if let Some(dir) = scratch {
            let _ = tokio::task::spawn_blocking(move || std::fs::remove_dir_all(dir)).await;
        }
    }

    /// Waits until the job has ended. Cancellation-safe.
    pub async fn wait(&self) {
        let mut rx = self.ended.subscribe();
        let _ = rx.wait_for(|e| *e).await;
    }

    /// Whether the job is running (or starting).
    pub fn is_running(&self) -> bool {
        matches!(self.lock().phase, Phase::Starting | Phase::Running)
    }

    /// The status line (gridfs(4)):
    /// `STATE PGID RESULT CPU RSS START END REASON`.
    pub fn status(&self) -> String {
        let (cpu_now, peak_now) = {
            let g = self.lock();
            match (&g.cgroup, g.phase) {
                (Some(c), Phase::Running) => {
                    let u = c.usage();
                    (u.cpu, u.peak.map(|b| b / 1024))
                }
                _ => (None, None),
            }
        };
        let g = self.lock();
        let state = match (&g.phase, &g.result) {
            (Phase::New, _) if g.hold => "held",
            (Phase::New, _) => "new",
            (Phase::Starting | Phase::Running, _) => "running",
            (Phase::Ended, Some(End::Exited(_))) => "exited",
            (Phase::Ended, Some(End::Failed(_))) => "failed",
            (Phase::Ended, _) => "killed",
        };
        let result = match &g.result {
            Some(End::Exited(c)) => c.to_string(),
            Some(End::Killed(s)) => signal_name(*s),
            _ => "-".into(),
        };
        let cpu = g
            .cpu
            .or(cpu_now)
            .map_or("-".into(), |d| format!("{:.3}", d.as_secs_f64()));
        let rss = g.rss_kib.or(peak_now).map_or("-".into(), |k| k.to_string());
        let t = |t: Option<SystemTime>| t.map_or("-".into(), crate::info::time_text);
        let reason = match (&g.result, g.reason) {
            (Some(End::Failed(m)), _) => m.clone(),
            (_, Some(r)) => r.as_str().to_owned(),
            _ => "-".into(),
        };
        format!(
            "{state} {} {result} {cpu} {rss} {} {} {reason}\n",
            g.pgid.map_or("-".into(), |p| p.to_string()),
            t(g.start),
            t(g.end)
        )
    }

    /// The command as written to `exec`, quoted; `-` if none.
    pub fn command(&self) -> String {
        match &self.lock().argv {
            Some(a) => a
                .iter()
                .map(|f| cmdbuf::quote(f).into_owned())
                .collect::<Vec<_>>()
                .join(" "),
            None => "-".into(),
        }
    }
}

/// What [`Job::launch`] started.
struct Launched {
    started: Started,
    cgroup: Option<Arc<JobCgroup>>,
    scratch: Option<PathBuf>,
    term: Option<Term>,
}

/// The error of a job that could not be spawned: `CMD: why`, or
/// `/mnt/term: why` when its `/mnt/term` could not be made.
/// The largest private `/tmp` (and `/dev/shm`) of a job with its own
/// root; smaller if the job's memory limit is (tmpfs pages count as the
/// job's memory anyway).
const PRIVATE_TMP_SIZE: u64 = 256 << 20;

fn spawn_error(argv: &[String], e: std::io::Error) -> CtlError {
    let root = e
        .get_ref()
        .and_then(|i| i.downcast_ref::<sandbox::RootError>());
    if let Some(r) = root {
        let errno = r.error.raw_os_error().unwrap_or(libc::EIO);
        let msg = ninep_server::Error::from(std::io::Error::from_raw_os_error(errno)).msg;
        return ninep_server::Error::new(errno, format!("private root: {}: {msg}", r.step));
    }
    let term = e
        .get_ref()
        .and_then(|i| i.downcast_ref::<sandbox::TermError>())
        .and_then(|t| t.0.raw_os_error());
    if let Some(errno) = term {
        let inner = ninep_server::Error::from(std::io::Error::from_raw_os_error(errno));
        return ninep_server::Error::new(errno, format!("/mnt/term: {}", inner.msg));
    }
    let what = argv.first().map(|a| short(a)).unwrap_or_default();
    let e = ninep_server::Error::from(e);
    ninep_server::Error::new(e.errno, format!("{what}: {}", e.msg))
}

async fn sleep_until(t: Option<tokio::time::Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

/// Signal names without `SIG`, as `signal` takes them and `status` shows them.
pub const SIGNALS: &[(&str, i32)] = &[
    ("HUP", libc::SIGHUP),
    ("INT", libc::SIGINT),
    ("QUIT", libc::SIGQUIT),
    ("ILL", libc::SIGILL),
    ("TRAP", libc::SIGTRAP),
    ("ABRT", libc::SIGABRT),
    ("BUS", libc::SIGBUS),
    ("FPE", libc::SIGFPE),
    ("KILL", libc::SIGKILL),
    ("USR1", libc::SIGUSR1),
    ("SEGV", libc::SIGSEGV),
    ("USR2", libc::SIGUSR2),
    ("PIPE", libc::SIGPIPE),
    ("ALRM", libc::SIGALRM),
    ("TERM", libc::SIGTERM),
    ("CHLD", libc::SIGCHLD),
    ("CONT", libc::SIGCONT),
    ("STOP", libc::SIGSTOP),
    ("TSTP", libc::SIGTSTP),
    ("TTIN", libc::SIGTTIN),
    ("TTOU", libc::SIGTTOU),
    ("URG", libc::SIGURG),
    ("XCPU", libc::SIGXCPU),
    ("XFSZ", libc::SIGXFSZ),
    ("VTALRM", libc::SIGVTALRM),
    ("PROF", libc::SIGPROF),
    ("WINCH", libc::SIGWINCH),
    ("IO", libc::SIGIO),
    ("PWR", libc::SIGPWR),
    ("SYS", libc::SIGSYS),
];

/// `TERM`, or the number for a signal without a name here.
pub fn signal_name(sig: i32) -> String {
    SIGNALS
        .iter()
        .find(|(_, n)| *n == sig)
        .map_or_else(|| sig.to_string(), |(s, _)| (*s).to_owned())
}

/// `TERM`, `term`, `SIGTERM` or `15`.
pub fn parse_signal(s: &str) -> Option<i32> {
    if let Ok(n) = s.parse::<i32>() {
        return (1..=64).contains(&n).then_some(n);
    }
    let up = s.to_ascii_uppercase();
    let name = up.strip_prefix("SIG").unwrap_or(&up);
    SIGNALS.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
}

/// A reader's name as a cgroup directory name.
fn group_name(owner: &str) -> String {
    let clean: String = owner
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("reader-{clean}")
}

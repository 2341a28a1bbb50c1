//! Starting a job's processes: process group, cgroups, rlimits, an
//! unprivileged uid, and new namespaces where the kernel allows them.
//!
//! ```text
//! gridd ── clone(VM) ──> relay (gridd's pid namespace; the job's process group leader)
//!                          └─ clone(VM) ──> init  (pid 1 of a new pid namespace)   [confined]
//!                                            └─ clone(VM|VFORK) ──> command (exec)
//! gridd ── clone(VM) ──> relay ── clone(VM|VFORK) ──> command (exec)               [unconfined]
//! ```
//!
//! Nothing of gridd's address space is copied for a job, posix_spawn-
//! style: the relay and the init run *in gridd's memory* (`CLONE_VM`),
//! each on a stack of its own that gridd mapped, and the command borrows
//! its parent's until it execs (`CLONE_VFORK` holds the parent until
//! then). A fork of gridd cost each job about a millisecond: copying
//! gridd's page tables, copy-on-write faults (and TLB shootdowns) in
//! gridd's threads afterwards, the relay's own faults, and tearing it all
//! down when the relay exited. Sharing gridd's memory has rules, kept
//! here:
//!
//! - The relay and the init make only raw system calls on a [`Keep`]
//!   (the prepared plan and the stacks), which gridd frees only once they
//!   are gone (the end of the report pipe says so). They never allocate
//!   (gridd's heap is shared, and its locks), never return into gridd's
//!   code, and use glibc only for plain system-call wrappers: set-uid
//!   calls are raw `syscall`s, since glibc's would signal every thread
//!   of gridd to change its credentials too.
//! - They start with every signal blocked (the cloning thread's mask at
//!   that moment), so no handler of gridd's runs in them; they take
//!   signals with sigwaitinfo.
//! - gridd, not the relay, writes the relay's uid and gid maps (the
//!   relay asks on its set-up pipe after `unshare`), so gridd's memory
//!   never has to be made dumpable; under a root gridd it is kept
//!   undumpable, so a job running as the same uid as its relay cannot
//!   ptrace its way into it.
//! - They share one thing they write with the thread that cloned them:
//!   libc's `errno`, a thread-local at the same address, so an error
//!   number that thread reads could be theirs (an error's code only,
//!   never whether there was one: that comes from return values).
//!
//! The command execs itself, searching the job's `PATH` as execvp(3)
//! would; if no exec succeeds, it writes the error number to a pipe of
//! its own that [`spawn`] reads once the command has started or failed.
//! The relay and the init never exec: they pass each signal they receive
//! on to their child, reap, and close every descriptor they inherited
//! (gridd's sockets) so nothing of gridd is held by them.
//!
//! A confined job of a peer may get its caller's namespace at
//! `/mnt/term` ([`crate::term`]): the relay, inside the job's new mount
//! namespace, mounts a tmpfs over `/mnt` and binds the host directory
//! gridd mounted the caller's namespace on to `/mnt/term`.
//!
//! A job whose share gives it the system's files only
//! ([`crate::share::RootView::System`], peers' jobs) gets a root of its
//! own, built by the init (pid 1 of the job's pid namespace, so the
//! `/proc` it mounts is the job's) in the job's mount namespace: a
//! tmpfs on an empty host directory ([`SystemRoot::stage`]), read-only
//! binds of the system's directories (`/usr`, `/etc`, ...; symlinks such
//! as `/bin -> usr/bin` made again as symlinks), a few devices bound
//! from the host's `/dev`, a new `/proc`, a private size-limited `/tmp`
//! and `/dev/shm`, the scratch directory at its own path and `/mnt` (with
//! `/mnt/term`) when there is one; then `pivot_root` into it and the old
//! root detached. The steps are a list of `child::Op`s prepared by
//! `root_plan` before the clone; if one fails, the job fails with the
//! step named ([`RootError`]), never running with the host's view.
//!
//! The last process before the command (the init, or the relay when
//! unconfined) writes one [`Report`] to a pipe when the command exits:
//! its wait status and the rusage of everything it reaped. When the init
//! exits, the kernel kills whatever is left in the pid namespace.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::PathBuf;
use std::time::Duration;

use crate::share::Limits;

/// What [`spawn`] starts.
pub struct Spec {
    /// The command and its arguments.
    pub argv: Vec<String>,
    /// The whole environment.
    pub env: Vec<(String, String)>,
    /// Working directory.
    pub dir: PathBuf,
    /// Limits in force (share already applied).
    pub limits: Limits,
    /// New user, mount, pid, network and IPC namespaces.
    pub confine: bool,
    /// Uid and gid to run as (when gridd is root).
    pub run_as: Option<(u32, u32)>,
    /// Open membership files of the job's groups, for the relay.
    pub cgroups: Vec<OwnedFd>,
    /// Open membership files of the job's groups for the command alone
    /// (see [`crate::cgroup::JobCgroup::procs_files`]).
    pub command_cgroups: Vec<OwnedFd>,
    /// Enforce `mem` with RLIMIT_AS (no memory cgroup).
    pub rlimit_as: bool,
    /// The read end of the job's stdin pipe.
    pub stdin: OwnedFd,
    /// Directories to cover with an empty tmpfs when confined (gridd's
    /// state directory).
    pub hide: Vec<PathBuf>,
    /// A host directory to bind at `/mnt/term` (confined jobs only), on
    /// a tmpfs of the job's own over `/mnt`: the caller's namespace
    /// ([`crate::term`]). Bound before `hide` is applied.
    pub term: Option<PathBuf>,
    /// A root of the job's own instead of the host's (confined jobs
    /// only: asking for it unconfined is an error).
    pub root: Option<SystemRoot>,
}

/// What [`Spec::root`] needs to build a job's own root.
#[derive(Debug, Clone)]
pub struct SystemRoot {
    /// An empty host directory the new root's tmpfs is mounted on, in
    /// the job's mount namespace only (so one serves every job).
    pub stage: PathBuf,
    /// The job's scratch directory, bound at the same path.
    pub scratch: PathBuf,
    /// Size of the job's private `/tmp` and `/dev/shm`, bytes each.
    pub tmp_size: u64,
}

/// A step of building a job's own root failed; the error [`spawn`]
/// returns then wraps one of these.
#[derive(Debug)]
pub struct RootError {
    /// The step, e.g. `bind /usr` or `pivot_root`.
    pub step: String,
    /// Why.
    pub error: io::Error,
}

impl std::fmt::Display for RootError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "private root: {}: {}", self.step, self.error)
    }
}

impl std::error::Error for RootError {}

/// The job's `/mnt/term` could not be made in its mount namespace; the
/// error [`spawn`] returns then wraps one of these.
#[derive(Debug)]
pub struct TermError(pub io::Error);

impl std::fmt::Display for TermError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "/mnt/term: {}", self.0)
    }
}

impl std::error::Error for TermError {}

/// How the command ended, and what it and its descendants used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Report {
    /// wait(2) status.
    pub status: i32,
    /// User plus system CPU time of everything reaped.
    pub cpu: Duration,
    /// Largest resident set of any reaped process, KiB.
    pub maxrss_kib: u64,
}

const REPORT_LEN: usize = 32;

impl Report {
    /// Decodes the record the child wrote.
    pub fn decode(b: &[u8]) -> Option<Report> {
        let b: &[u8; REPORT_LEN] = b.try_into().ok()?;
        let word = |i: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&b[i..i + 8]);
            u64::from_ne_bytes(w)
        };
        Some(Report {
            status: word(0) as i32,
            cpu: Duration::from_micros(word(8).saturating_add(word(16))),
            maxrss_kib: word(24),
        })
    }
}

/// A started job.
pub struct Started {
    /// The relay: the job's process group leader.
    pub child: Relay,
    /// The job's standard output pipe.
    pub stdout: tokio::net::unix::pipe::Receiver,
    /// The job's standard error pipe.
    pub stderr: tokio::net::unix::pipe::Receiver,
    /// Where the [`Report`] arrives.
    pub report: OwnedFd,
    /// The memory the relay and the init run in: drop it only once the
    /// report pipe has reached its end (see [`Keep`]).
    pub keep: Keep,
}

/// The relay, a child of gridd, waited for through a pidfd.
pub struct Relay {
    pid: libc::pid_t,
    pidfd: tokio::io::unix::AsyncFd<OwnedFd>,
    status: Option<i32>,
}

impl Relay {
    /// Its pid, until it has been reaped.
    pub fn id(&self) -> Option<u32> {
        self.status.is_none().then_some(self.pid as u32)
    }

    /// Waits for the relay to end and reaps it; returns its wait status.
    /// Cancellation-safe.
    pub async fn wait(&mut self) -> io::Result<i32> {
        loop {
            if let Some(s) = reap(self.pid, &mut self.status)? {
                return Ok(s);
            }
            let mut ready = self.pidfd.readable().await?;
            if reap(self.pid, &mut self.status)?.is_none() {
                ready.clear_ready();
            }
        }
    }
}

/// Reaps `pid` if it has ended (once: the status is kept in `status`).
fn reap(pid: libc::pid_t, status: &mut Option<i32>) -> io::Result<Option<i32>> {
    if status.is_some() {
        return Ok(*status);
    }
    let mut s = 0;
    // SAFETY: waitpid(2) of our own unreaped child into a local.
    match unsafe { libc::waitpid(pid, &mut s, libc::WNOHANG) } {
        0 => Ok(None),
        rc if rc < 0 => Err(io::Error::last_os_error()),
        _ => {
            *status = Some(s);
            Ok(*status)
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        // Normally reaped by then (the supervisor waits); otherwise
        // (a runtime shutting down) end the job and reap what has ended.
        if self.status.is_none() {
            // SAFETY: kill(2) and waitpid(2) of our own unreaped child.
            unsafe {
                libc::kill(-self.pid, libc::SIGKILL);
                libc::kill(self.pid, libc::SIGKILL);
                libc::waitpid(self.pid, std::ptr::null_mut(), libc::WNOHANG);
            }
        }
    }
}

/// What the relay and the init use of gridd's memory (they share it):
/// the plan they read and the stacks they run on. It must outlive them.
/// The init holds the report pipe until it exits, and the relay until
/// it does, so the end of that pipe says they no longer run here;
/// [`Keep::leak`] it if that end never comes.
pub struct Keep {
    _plan: Box<child::Plan>,
    stacks: Vec<Stack>,
}

impl Drop for Keep {
    fn drop(&mut self) {
        let mut spare = SPARE_STACKS.lock().unwrap_or_else(|p| p.into_inner());
        for s in self.stacks.drain(..) {
            if spare.len() < SPARE_MAX {
                spare.push(s);
            }
        }
    }
}

/// Stacks of jobs whose processes are gone, for the next jobs: one that
/// was used is mapped and faulted in already, and unmapping it would
/// cost gridd's threads a TLB shootdown.
static SPARE_STACKS: std::sync::Mutex<Vec<Stack>> = std::sync::Mutex::new(Vec::new());

/// At most this many spare stacks are kept (256 KiB each).
const SPARE_MAX: usize = 48;

/// A spare stack, or a new one.
fn take_stack() -> io::Result<Stack> {
    let spare = SPARE_STACKS.lock().unwrap_or_else(|p| p.into_inner()).pop();
    match spare {
        Some(s) => Ok(s),
        None => Stack::new(),
    }
}

impl Keep {
    /// Gives up the memory for good: for when the job's processes may
    /// still be running in it.
    pub fn leak(self) {
        std::mem::forget(self);
    }
}

// SAFETY: the plan is read-only once built (see `child::Exec`), and the
// stacks are only reused or unmapped when the value is dropped.
unsafe impl Send for Keep {}

// SAFETY: a stack is plain memory, used by one job's processes at a time
// (see `Keep`).
unsafe impl Send for Stack {}

/// An anonymous mapping a `CLONE_VM` child runs on; unmapped on drop.
pub struct Stack {
    base: *mut libc::c_void,
}

impl Stack {
    const SIZE: usize = 256 << 10;

    fn new() -> io::Result<Stack> {
        // SAFETY: mmap(2) of fresh anonymous memory; no existing mapping
        // is touched.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                Self::SIZE,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_STACK,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Stack { base: p })
    }

    /// The top, where a stack starts.
    fn top(&self) -> *mut libc::c_void {
        // SAFETY: one past the end of our own mapping.
        unsafe { self.base.cast::<u8>().add(Self::SIZE) }.cast()
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        // SAFETY: our own mapping, used by nobody any more (see `Keep`).
        unsafe { libc::munmap(self.base, Self::SIZE) };
    }
}

/// A job's processes as [`launch`] leaves them: running, the command
/// exec'd.
struct Launch {
    pid: libc::pid_t,
    stdout: OwnedFd,
    stderr: OwnedFd,
    report: OwnedFd,
    keep: Keep,
}

/// Starts `spec`. Blocks until the command has been exec'd (or failed
/// to be), so call it from a thread that lives as long as the jobs (see
/// `Spawner`) inside the runtime.
pub fn spawn(spec: Spec) -> io::Result<Started> {
    let l = launch(spec)?;
    for fd in [l.stdout.as_raw_fd(), l.stderr.as_raw_fd()] {
        // SAFETY: F_SETPIPE_SZ on a pipe we own; failure leaves the
        // default size, which only costs speed.
        unsafe {
            libc::fcntl(
                fd,
                libc::F_SETPIPE_SZ,
                crate::stream::PIPE_SIZE as libc::c_int,
            )
        };
    }
    // SAFETY: pidfd_open(2) of our own unreaped child.
    let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, l.pid, libc::PIDFD_NONBLOCK) };
    let relay = if pidfd < 0 {
        Err(io::Error::last_os_error())
    } else {
        // SAFETY: a new descriptor owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(pidfd as RawFd) };
        // SAFETY: `fd` is owned by the AsyncFd for as long as it is
        // registered, and closed only when the AsyncFd is dropped.
        unsafe { tokio::io::unix::AsyncFd::register(fd) }.map_err(|e| e.into_parts().1)
    };
    let relay = match relay {
        Ok(pidfd) => Relay {
            pid: l.pid,
            pidfd,
            status: None,
        },
        Err(e) => {
            end_now(l.pid, &l.report);
            return Err(e);
        }
    };
    let pipes = (
        tokio::net::unix::pipe::Receiver::from_owned_fd(l.stdout),
        tokio::net::unix::pipe::Receiver::from_owned_fd(l.stderr),
    );
    let (Ok(stdout), Ok(stderr)) = pipes else {
        end_now(l.pid, &l.report);
        let mut relay = relay;
        relay.status = Some(0);
        return Err(io::Error::other("the job's output pipes"));
    };
    Ok(Started {
        child: relay,
        stdout,
        stderr,
        report: l.report,
        keep: l.keep,
    })
}

/// What the relay says on its set-up pipe, as (kind, error number).
const SAYS_MAP_ME: i32 = 0;
const SAYS_FAILED: i32 = 1;
const SAYS_TERM_FAILED: i32 = 2;
/// Step `kind - SAYS_ROOT_FAILED` of [`RootPlan`] failed.
const SAYS_ROOT_FAILED: i32 = 16;

/// Starts the relay with `clone(CLONE_VM)`: it runs in gridd's memory
/// on a stack of its own, so nothing of gridd is copied for it (no page
/// tables to copy, no copy-on-write faults in gridd afterwards, nothing
/// to tear down when it exits). Writes its uid and gid maps when it
/// asks, then waits until the command has been exec'd.
fn launch(spec: Spec) -> io::Result<Launch> {
    let confine = spec.confine;
    let run_as = spec.run_as;
    let (plan, fds) = plan(spec)?;
    let stacks = vec![take_stack()?, take_stack()?, take_stack()?];
    let mut plan = Box::new(plan);
    plan.init_stack = stacks[1].top();
    plan.command_stack = stacks[2].top();
    let arg = &*plan as *const child::Plan as *mut libc::c_void;
    let old_mask = block_signals();
    // SAFETY: the relay runs on its own stack and makes only system
    // calls on `plan`, which lives (in `Keep`) as long as it does. It
    // starts with every signal blocked (this thread's mask, for the
    // moment), so no handler of gridd's runs in it.
    let pid = unsafe {
        libc::clone(
            child::relay_main,
            stacks[0].top(),
            libc::CLONE_VM | libc::SIGCHLD,
            arg,
        )
    };
    let clone_err = io::Error::last_os_error();
    restore_signals(&old_mask);
    if pid < 0 {
        return Err(clone_err);
    }
    let ParentFds {
        setup,
        go,
        exec_err,
        stdout,
        stderr,
        report,
        child_ends,
    } = fds;
    drop(child_ends);
    let keep = Keep {
        _plan: plan,
        stacks,
    };
    let fail = |e: io::Error, keep: Keep| {
        end_now(pid, &report);
        drop(keep);
        Err(e)
    };
    if confine {
        match read_message(&setup) {
            Some((SAYS_MAP_ME, _)) => {
                if let Err(e) = write_maps(pid, run_as) {
                    return fail(e, keep);
                }
                // SAFETY: write(2) of a static byte to a pipe we own.
                unsafe { libc::write(go.as_raw_fd(), b"g".as_ptr().cast(), 1) };
            }
            Some((kind, errno)) => return fail(setup_error(&keep, kind, errno), keep),
            None => return fail(io::Error::other("the job's relay ended early"), keep),
        }
    }
    drop(go);
    if let Some((kind, errno)) = read_message(&setup) {
        return fail(setup_error(&keep, kind, errno), keep);
    }
    if let Some(errno) = read_errno(&exec_err) {
        return fail(io::Error::from_raw_os_error(errno), keep);
    }
    Ok(Launch {
        pid,
        stdout,
        stderr,
        report,
        keep,
    })
}

/// Blocks every signal in this thread; returns the mask it had.
fn block_signals() -> libc::sigset_t {
    // SAFETY: sets on the stack; pthread_sigmask(3) changes this
    // thread's mask only.
    unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old);
        old
    }
}

fn restore_signals(old: &libc::sigset_t) {
    // SAFETY: as in `block_signals`.
    unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, old, std::ptr::null_mut()) };
}

fn setup_error(keep: &Keep, kind: i32, errno: i32) -> io::Error {
    let inner = io::Error::from_raw_os_error(errno);
    let root_step = usize::try_from(kind - SAYS_ROOT_FAILED)
        .ok()
        .and_then(|i| keep._plan.root.as_ref()?.what.get(i));
    if kind == SAYS_TERM_FAILED {
        io::Error::new(inner.kind(), TermError(inner))
    } else if let Some(step) = root_step {
        let step = step.clone();
        io::Error::new(inner.kind(), RootError { step, error: inner })
    } else {
        inner
    }
}

/// Kills a job that could not be started and waits until none of its
/// processes runs in gridd's memory: the relay reaped, and the report
/// pipe at its end (the init holds it until it exits).
fn end_now(pid: libc::pid_t, report: &OwnedFd) {
    // SAFETY: kill(2) and waitpid(2) of our own unreaped child and its
    // process group (a group of that number can only be the relay's);
    // read(2) into a local buffer.
    unsafe {
        libc::kill(-pid, libc::SIGKILL);
        libc::kill(pid, libc::SIGKILL);
        while libc::waitpid(pid, std::ptr::null_mut(), 0) < 0
            && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted
        {}
        let mut b = [0u8; REPORT_LEN];
        loop {
            let n = libc::read(report.as_raw_fd(), b.as_mut_ptr().cast(), b.len());
            if n == 0 || (n < 0 && io::Error::last_os_error().kind() != io::ErrorKind::Interrupted)
            {
                break;
            }
        }
    }
}

/// Writes the uid and gid maps of the relay's new user namespace: the
/// job's uid and gid mapped to themselves. gridd writes them, not the
/// relay, so that gridd's memory (which the relay shares) never has to
/// be made dumpable for the relay to open its own maps.
fn write_maps(pid: libc::pid_t, run_as: Option<(u32, u32)>) -> io::Result<()> {
    let (uid, gid) = run_as.unwrap_or_else(|| {
        // SAFETY: geteuid and getegid cannot fail.
        unsafe { (libc::geteuid(), libc::getegid()) }
    });
    let proc = PathBuf::from(format!("/proc/{pid}"));
    let write = |name: &str, text: String| {
        std::fs::OpenOptions::new()
            .write(true)
            .open(proc.join(name))
            .and_then(|mut f| io::Write::write_all(&mut f, text.as_bytes()))
    };
    write("setgroups", "deny".into())?;
    write("uid_map", format!("{uid} {uid} 1\n"))?;
    write("gid_map", format!("{gid} {gid} 1\n"))
}

/// One (kind, error number) message from the relay, or `None` at the
/// pipe's end.
fn read_message(setup: &OwnedFd) -> Option<(i32, i32)> {
    let mut b = [0u8; 8];
    loop {
        // SAFETY: reading into a local buffer from a pipe we own.
        let n = unsafe { libc::read(setup.as_raw_fd(), b.as_mut_ptr().cast(), b.len()) };
        if n < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
            continue;
        }
        if n != 8 {
            return None;
        }
        let word = |i: usize| i32::from_ne_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        return Some((word(0), word(4)));
    }
}

/// The error number the command wrote to `exec_err` when it could not
/// exec, or `None` once every write end is closed without one (the
/// command holds it close-on-exec, the relay and the init close it once
/// the command has started).
fn read_errno(exec_err: &OwnedFd) -> Option<i32> {
    let mut b = [0u8; 4];
    loop {
        // SAFETY: reading into a local buffer from a pipe we own.
        let n = unsafe { libc::read(exec_err.as_raw_fd(), b.as_mut_ptr().cast(), b.len()) };
        if n < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
            continue;
        }
        return (n == 4).then(|| i32::from_ne_bytes(b));
    }
}

/// gridd's ends of a job's pipes, and the child's ends it closes once
/// the relay has its own copies.
struct ParentFds {
    setup: OwnedFd,
    go: OwnedFd,
    exec_err: OwnedFd,
    stdout: OwnedFd,
    stderr: OwnedFd,
    report: OwnedFd,
    child_ends: Vec<OwnedFd>,
}

/// The plan for `spec`, and gridd's ends of its pipes.
fn plan(spec: Spec) -> io::Result<(child::Plan, ParentFds)> {
    let (report_r, report_w) = pipe()?;
    let (exec_err_r, exec_err_w) = pipe()?;
    let (setup_r, setup_w) = pipe()?;
    let (go_r, go_w) = pipe()?;
    let (out_r, out_w) = pipe()?;
    let (err_r, err_w) = pipe()?;
    let exec = child::Exec::new(&spec.argv, &spec.env)?;
    let term = match spec.term.as_ref().filter(|_| spec.confine) {
        Some(dir) => Some(cstring_path(dir)?),
        None => None,
    };
    let root = match &spec.root {
        Some(_) if !spec.confine => {
            return Err(io::Error::other(
                "a root of the job's own needs new namespaces, and this job has none",
            ))
        }
        Some(r) => Some(root_plan(
            r,
            std::path::Path::new("/"),
            term.is_some(),
            &spec.dir,
        )?),
        None => None,
    };
    let plan = child::Plan {
        exec,
        exec_err: exec_err_w.as_raw_fd(),
        confine: spec.confine,
        cgroups: spec.cgroups.iter().map(|f| f.as_raw_fd()).collect(),
        command_cgroups: spec.command_cgroups.iter().map(|f| f.as_raw_fd()).collect(),
        rlimits: rlimits(&spec.limits, spec.rlimit_as),
        nproc: spec.limits.procs.filter(|_| spec.confine).map(u64::from),
        report: report_w.as_raw_fd(),
        hide: spec
            .hide
            .iter()
            .filter_map(|p| CString::new(p.as_os_str().as_encoded_bytes()).ok())
            .collect(),
        term,
        root,
        stdin: spec.stdin.as_raw_fd(),
        stdout: out_w.as_raw_fd(),
        stderr: err_w.as_raw_fd(),
        setup: setup_w.as_raw_fd(),
        go: go_r.as_raw_fd(),
        dir: cstring_path(&spec.dir)?,
        run_as: spec.run_as,
        init_stack: std::ptr::null_mut(),
        command_stack: std::ptr::null_mut(),
        // SAFETY: getpid cannot fail.
        parent: unsafe { libc::getpid() },
    };
    let mut child_ends = vec![
        exec_err_w, report_w, setup_w, go_r, out_w, err_w, spec.stdin,
    ];
    child_ends.extend(spec.cgroups);
    child_ends.extend(spec.command_cgroups);
    Ok((
        plan,
        ParentFds {
            setup: setup_r,
            go: go_w,
            exec_err: exec_err_r,
            stdout: out_r,
            stderr: err_r,
            report: report_r,
            child_ends,
        },
    ))
}

/// Whether this kernel lets gridd make a job's namespaces: runs `true`
/// (or `/bin/sh -c :`) confined and checks that it exits 0. Blocks for
/// a few milliseconds.
pub fn probe(run_as: Option<(u32, u32)>) -> Result<(), String> {
    let (r, _w) = pipe().map_err(|e| e.to_string())?;
    let prog = ["/bin/true", "/usr/bin/true"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists());
    let argv: Vec<String> = match prog {
        Some(p) => vec![p.to_owned()],
        None => vec!["/bin/sh".into(), "-c".into(), ":".into()],
    };
    let spec = Spec {
        argv,
        env: Vec::new(),
        dir: PathBuf::from("/"),
        limits: Limits::default(),
        confine: true,
        run_as,
        cgroups: Vec::new(),
        command_cgroups: Vec::new(),
        rlimit_as: false,
        stdin: r,
        hide: Vec::new(),
        term: None,
        root: None,
    };
    let l = launch(spec).map_err(|e| e.to_string())?;
    // SAFETY: waitpid(2) of our own child.
    unsafe { libc::waitpid(l.pid, std::ptr::null_mut(), 0) };
    let mut buf = [0u8; REPORT_LEN];
    // SAFETY: reading into a local buffer from a pipe we own.
    let n = unsafe { libc::read(l.report.as_raw_fd(), buf.as_mut_ptr().cast(), REPORT_LEN) };
    // The init has written its report and exits; wait for the pipe's end
    // before its memory goes.
    end_now_reaped(&l.report);
    drop(l.keep);
    match Report::decode(buf.get(..n.max(0) as usize).unwrap_or(&[])) {
        Some(r) if libc::WIFEXITED(r.status) && libc::WEXITSTATUS(r.status) == 0 => Ok(()),
        Some(r) => Err(format!("the probe ended with wait status {:#x}", r.status)),
        None => Err("the namespaces could not be made".to_owned()),
    }
}

/// Reads `report` to its end (every writer gone).
fn end_now_reaped(report: &OwnedFd) {
    let mut b = [0u8; REPORT_LEN];
    loop {
        // SAFETY: reading into a local buffer from a pipe we own.
        let n = unsafe { libc::read(report.as_raw_fd(), b.as_mut_ptr().cast(), b.len()) };
        if n == 0 || (n < 0 && io::Error::last_os_error().kind() != io::ErrorKind::Interrupted) {
            break;
        }
    }
}

fn rlimits(l: &Limits, rlimit_as: bool) -> Vec<(libc::__rlimit_resource_t, u64, u64)> {
    let mut v = vec![(libc::RLIMIT_CORE, 0, 0)];
    if let Some(cpu) = l.cpu {
        let s = cpu.as_secs().max(1) + u64::from(cpu.subsec_nanos() > 0);
        v.push((libc::RLIMIT_CPU, s, s + 1));
    }
    if let (Some(m), true) = (l.mem, rlimit_as) {
        v.push((libc::RLIMIT_AS, m, m));
    }
    v
}

/// Host directories a job's own root gets read-only, those that exist
/// (as symlinks where they are symlinks).
const SYSTEM_DIRS: &[&str] = &[
    "usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32", "etc",
];

/// Devices of the host's `/dev` a job's own root gets (bound, since a
/// user namespace cannot make device nodes), those that exist.
const DEVICES: &[&str] = &["null", "zero", "full", "random", "urandom", "tty"];

/// The steps that build a job's own root, and what each is called in an
/// error.
pub(crate) struct RootPlan {
    pub(crate) ops: Vec<child::Op>,
    pub(crate) what: Vec<String>,
}

impl RootPlan {
    fn push(&mut self, op: child::Op, what: String) {
        self.ops.push(op);
        self.what.push(what);
    }
}

/// The steps that build `root` as [`SystemRoot`] describes, looking at
/// the host's tree below `host` (`/`, except in tests) for what exists;
/// `term`: bind the job's `/mnt` (with `/mnt/term`); `dir`: the job's
/// working directory, entered last.
pub(crate) fn root_plan(
    root: &SystemRoot,
    host: &std::path::Path,
    term: bool,
    dir: &std::path::Path,
) -> io::Result<RootPlan> {
    use child::Op;
    let stage = &root.stage;
    let new = |p: &std::path::Path| cstring_path(&stage.join(p.strip_prefix("/").unwrap_or(p)));
    let c = |s: &str| CString::new(s).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL));
    let plain = libc::MS_NOSUID | libc::MS_NODEV;
    let tmpfs = |dst: &std::path::Path, data: String| -> io::Result<Op> {
        Ok(Op::Mount {
            src: c("none")?,
            dst: new(dst)?,
            fstype: Some(c("tmpfs")?),
            flags: plain,
            data: Some(c(&data)?),
            optional: false,
        })
    };
    let bind = |src: &std::path::Path, recursive: bool| -> io::Result<Op> {
        let rec = if recursive { libc::MS_REC } else { 0 };
        Ok(Op::Mount {
            src: cstring_path(src)?,
            dst: new(src)?,
            fstype: None,
            flags: libc::MS_BIND | rec,
            data: None,
            optional: false,
        })
    };
    let mut p = RootPlan {
        ops: Vec::new(),
        what: Vec::new(),
    };
    let slash = std::path::Path::new("/");
    p.push(tmpfs(slash, "size=1m,mode=755".into())?, "tmpfs /".into());
    for name in SYSTEM_DIRS {
        let path = slash.join(name);
        let Ok(meta) = std::fs::symlink_metadata(host.join(name)) else {
            continue;
        };
        if meta.file_type().is_symlink() {
            let target = std::fs::read_link(host.join(name))?;
            let op = Op::Symlink {
                target: cstring_path(&target)?,
                path: new(&path)?,
            };
            p.push(op, format!("symlink /{name} -> {}", target.display()));
        } else if meta.is_dir() {
            p.push(Op::Mkdir(new(&path)?), format!("mkdir /{name}"));
            p.push(bind(&path, true)?, format!("bind /{name}"));
            p.push(
                Op::ReadOnly(new(&path)?, true),
                format!("read-only /{name}"),
            );
        }
    }
    let dev = slash.join("dev");
    p.push(Op::Mkdir(new(&dev)?), "mkdir /dev".into());
    for name in DEVICES {
        if std::fs::symlink_metadata(host.join("dev").join(name)).is_err() {
            continue;
        }
        let path = dev.join(name);
        p.push(Op::Touch(new(&path)?), format!("create /dev/{name}"));
        p.push(bind(&path, false)?, format!("bind /dev/{name}"));
    }
    for (name, target) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        let op = Op::Symlink {
            target: c(target)?,
            path: new(&dev.join(name))?,
        };
        p.push(op, format!("symlink /dev/{name}"));
    }
    let small = format!("size={},mode=1777", root.tmp_size.max(4096));
    for path in ["/dev/shm", "/tmp"].map(std::path::Path::new) {
        p.push(Op::Mkdir(new(path)?), format!("mkdir {}", path.display()));
        p.push(
            tmpfs(path, small.clone())?,
            format!("tmpfs {}", path.display()),
        );
    }
    let proc = slash.join("proc");
    p.push(Op::Mkdir(new(&proc)?), "mkdir /proc".into());
    // Best effort, as for the host's view: a kernel may refuse a new
    // proc where the host's is partly covered (some containers).
    let op = Op::Mount {
        src: c("proc")?,
        dst: new(&proc)?,
        fstype: Some(c("proc")?),
        flags: plain | libc::MS_NOEXEC,
        data: None,
        optional: true,
    };
    p.push(op, "mount /proc".into());
    if term {
        let mnt = slash.join("mnt");
        p.push(Op::Mkdir(new(&mnt)?), "mkdir /mnt".into());
        p.push(bind(&mnt, true)?, "bind /mnt".into());
    }
    // The scratch directory at its own path, parents made as needed
    // (under /tmp: in the job's own /tmp).
    let mut parents: Vec<&std::path::Path> = root.scratch.ancestors().skip(1).collect();
    parents.reverse();
    for a in parents.into_iter().filter(|a| *a != slash) {
        p.push(Op::Mkdir(new(a)?), format!("mkdir {}", a.display()));
    }
    let scratch = &root.scratch;
    p.push(
        Op::Mkdir(new(scratch)?),
        format!("mkdir {}", scratch.display()),
    );
    p.push(bind(scratch, true)?, format!("bind {}", scratch.display()));
    p.push(Op::ReadOnly(new(slash)?, false), "read-only /".into());
    p.push(Op::Pivot(cstring_path(stage)?), "pivot_root".into());
    p.push(
        Op::Chdir(cstring_path(dir)?),
        format!("chdir {}", dir.display()),
    );
    Ok(p)
}

fn cstring_path(p: &std::path::Path) -> io::Result<CString> {
    CString::new(p.as_os_str().as_encoded_bytes())
        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

/// A close-on-exec pipe: (read end, write end).
pub fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: pipe2 writes two descriptors into the array we pass.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both descriptors are new and owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// The code of the relay, the init and the command before exec, all in
/// gridd's memory (see the module's notes). Nothing here allocates,
/// takes a lock or touches std's I/O: only system calls through libc on
/// the prepared `Plan`.
mod child {
    use std::ffi::CString;
    use std::io;
    use std::os::fd::RawFd;

    use libc::{c_char, c_int, c_void};

    /// What the command execs: the candidate paths in the order execvp(3)
    /// would try them, and argv and envp as NULL-terminated arrays; for
    /// each path, the argv of `/bin/sh PATH ARG...`, which execvp runs
    /// when the file is not an executable format (a script without `#!`).
    pub(super) struct Exec {
        paths: Vec<CString>,
        argv: Vec<*const c_char>,
        sh_argv: Vec<Vec<*const c_char>>,
        envp: Vec<*const c_char>,
        // Owners of the strings the pointers above point into; a CString
        // keeps its heap buffer where it is when it moves.
        _strings: Vec<CString>,
    }

    // SAFETY: the raw pointers point into `_strings`, owned by the same
    // value and never changed after `new`; sharing or sending the value
    // shares or sends read-only data.
    unsafe impl Send for Exec {}
    // SAFETY: as for Send.
    unsafe impl Sync for Exec {}

    impl Exec {
        /// Resolves `argv[0]` against the `PATH` of `env` (execvp's
        /// default when there is none) into candidates; relative ones are
        /// taken from the job's directory, which std enters before exec.
        pub(super) fn new(argv: &[String], env: &[(String, String)]) -> io::Result<Exec> {
            let nul = |_| io::Error::new(io::ErrorKind::InvalidInput, "nul byte in argument");
            let program = argv
                .first()
                .ok_or_else(|| io::Error::from_raw_os_error(libc::EINVAL))?;
            let paths = if program.contains('/') {
                vec![CString::new(program.as_str()).map_err(nul)?]
            } else {
                let path = env
                    .iter()
                    .rev()
                    .find(|(k, _)| k == "PATH")
                    .map_or("/bin:/usr/bin", |(_, v)| v.as_str());
                path.split(':')
                    .map(|d| {
                        let d = if d.is_empty() { "." } else { d };
                        CString::new(format!("{}/{program}", d.trim_end_matches('/')))
                    })
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(nul)?
            };
            let mut strings = Vec::with_capacity(argv.len() + env.len());
            for a in argv {
                strings.push(CString::new(a.as_str()).map_err(nul)?);
            }
            for (k, v) in env {
                strings.push(CString::new(format!("{k}={v}")).map_err(nul)?);
            }
            let ptrs = |s: &[CString]| {
                s.iter()
                    .map(|c| c.as_ptr())
                    .chain(std::iter::once(std::ptr::null()))
                    .collect::<Vec<_>>()
            };
            let sh_argv = paths
                .iter()
                .map(|p| {
                    [c"/bin/sh".as_ptr(), p.as_ptr()]
                        .into_iter()
                        .chain(strings[1..argv.len()].iter().map(|c| c.as_ptr()))
                        .chain(std::iter::once(std::ptr::null()))
                        .collect()
                })
                .collect();
            Ok(Exec {
                paths,
                sh_argv,
                argv: ptrs(&strings[..argv.len()]),
                envp: ptrs(&strings[argv.len()..]),
                _strings: strings,
            })
        }
    }

    /// Everything the relay, the init and the command need, built
    /// before the relay is cloned. Descriptors are numbers in the relay's
    /// copy of gridd's descriptor table.
    pub(super) struct Plan {
        pub(super) exec: Exec,
        pub(super) exec_err: RawFd,
        pub(super) confine: bool,
        pub(super) cgroups: Vec<RawFd>,
        pub(super) command_cgroups: Vec<RawFd>,
        pub(super) rlimits: Vec<(libc::__rlimit_resource_t, u64, u64)>,
        pub(super) nproc: Option<u64>,
        pub(super) report: RawFd,
        pub(super) hide: Vec<CString>,
        /// The host directory to bind at `/mnt/term`.
        pub(super) term: Option<CString>,
        /// How the init builds the job's own root, if it gets one.
        pub(super) root: Option<super::RootPlan>,
        pub(super) stdin: RawFd,
        pub(super) stdout: RawFd,
        pub(super) stderr: RawFd,
        /// Where the relay says what it needs or why it failed
        /// (`SAYS_*`); its end means the relay is set up.
        pub(super) setup: RawFd,
        /// Where gridd says the maps are written.
        pub(super) go: RawFd,
        pub(super) dir: CString,
        pub(super) run_as: Option<(u32, u32)>,
        pub(super) init_stack: *mut c_void,
        pub(super) command_stack: *mut c_void,
        pub(super) parent: libc::pid_t,
    }

    fn check(rc: c_int) -> io::Result<()> {
        if rc < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    }

    /// The relay: gridd's child, made with `CLONE_VM` (see
    /// [`super::launch`]). Sets itself up as `std::process::Command`
    /// would (descriptors, uid, directory, process group), then `run`s;
    /// tells gridd on `setup` if that fails, and exits.
    pub(super) extern "C" fn relay_main(arg: *mut c_void) -> c_int {
        // SAFETY: `arg` is the `Plan` gridd keeps until we are gone.
        let plan = unsafe { &*(arg as *const Plan) };
        // (Nothing here may allocate: this process shares gridd's heap.)
        if let Err(e) = prepare(plan).and_then(|()| run(plan)) {
            say(
                plan,
                super::SAYS_FAILED,
                e.raw_os_error().unwrap_or(libc::EIO),
            );
        }
        // SAFETY: _exit(2) never returns.
        unsafe { libc::_exit(127) }
    }

    /// Writes (kind, errno) to gridd's set-up pipe.
    fn say(plan: &Plan, kind: c_int, errno: c_int) {
        let mut b = [0u8; 8];
        b[..4].copy_from_slice(&kind.to_ne_bytes());
        b[4..].copy_from_slice(&errno.to_ne_bytes());
        // SAFETY: write(2) of a local buffer to a descriptor of the plan.
        unsafe { libc::write(plan.setup, b.as_ptr().cast(), b.len()) };
    }

    /// Standard descriptors, uid and gid, directory, process group.
    /// setgid/setgroups/setuid are raw system calls: glibc's wrappers
    /// would change every thread of what they take for this process,
    /// and this process shares gridd's memory and so glibc's idea of
    /// gridd's threads.
    fn prepare(plan: &Plan) -> io::Result<()> {
        // SAFETY: system calls with integers and a NUL-terminated path
        // prepared before the clone.
        unsafe {
            for (from, to) in [(plan.stdin, 0), (plan.stdout, 1), (plan.stderr, 2)] {
                check(libc::dup2(from, to))?;
            }
            if let Some((uid, gid)) = plan.run_as {
                check(libc::syscall(libc::SYS_setgid, gid) as c_int)?;
                check(
                    libc::syscall(libc::SYS_setgroups, 0, std::ptr::null::<libc::gid_t>()) as c_int,
                )?;
                check(libc::syscall(libc::SYS_setuid, uid) as c_int)?;
            }
            check(libc::chdir(plan.dir.as_ptr()))?;
            check(libc::setpgid(0, 0))?;
        }
        Ok(())
    }

    /// Runs in the relay. Returns only on failure.
    fn run(plan: &Plan) -> io::Result<()> {
        let report = plan.report;
        // Die with gridd (more exactly, with its spawner thread, which
        // lives as long as gridd serves /cpu).
        // SAFETY: prctl(2) and getppid(2) take and return integers.
        unsafe {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            if libc::getppid() != plan.parent {
                libc::_exit(127);
            }
        }
        for &fd in &plan.cgroups {
            // SAFETY: write(2) of a static buffer to a descriptor we own;
            // "0" moves the writer into the group.
            check(unsafe { libc::write(fd, b"0".as_ptr().cast(), 1) } as c_int)?;
        }
        let init_stack = plan.init_stack;
        let command_stack = plan.command_stack;
        for &(res, soft, hard) in &plan.rlimits {
            let lim = libc::rlimit {
                rlim_cur: soft,
                rlim_max: hard,
            };
            // SAFETY: setrlimit(2) with a valid pointer to a local.
            check(unsafe { libc::setrlimit(res, &lim) })?;
        }
        if plan.confine {
            confine(plan)?;
        }
        // The relay blocks every signal and takes them with sigwaitinfo;
        // its children inherit the mask until the command unblocks it.
        block_all();
        if plan.confine {
            // pid 1 of the new namespace shares this process's memory
            // (see `init`); nothing of gridd stays open in the relay.
            let arg = InitArg {
                plan,
                stack: command_stack,
            };
            // SAFETY: `init` runs on its own new stack and only reads
            // `arg` and the plan, which live as long as this process: the
            // relay never returns from this frame once the init exists.
            let pid = unsafe {
                libc::clone(
                    init,
                    init_stack,
                    libc::CLONE_VM | libc::SIGCHLD,
                    &arg as *const InitArg as *mut c_void,
                )
            };
            if pid < 0 {
                return Err(io::Error::last_os_error());
            }
            close_from(0, -1);
            relay(pid, -1, false);
        }
        let pid = spawn_command(plan, command_stack)?;
        close_from(0, report);
        relay(pid, report, false);
    }

    /// What the relay hands the init.
    struct InitArg<'a> {
        plan: &'a Plan,
        /// For the command.
        stack: *mut c_void,
    }

    /// The init: pid 1 of the job's pid namespace, made by the relay
    /// with `CLONE_VM`. Mounts a /proc of its own (best effort), makes
    /// the command its only child, then relays signals, reaps and
    /// reports. Never returns.
    ///
    /// The init and the relay run at once in the same memory, each on
    /// its own stack, and make only system calls on data neither changes.
    /// They share one thing they write: libc's `errno`, a thread-local
    /// at the same address in both, so an error number read here or in
    /// the relay could be the other's (an error's code only, never
    /// whether there was one: that comes from return values).
    extern "C" fn init(arg: *mut c_void) -> c_int {
        // SAFETY: `arg` is the relay's `&InitArg`, on the relay's stack in
        // a frame the relay never leaves while this process lives (it
        // reaps it).
        let arg = unsafe { &*(arg as *const InitArg) };
        let plan = arg.plan;
        let report = plan.report;
        // SAFETY: prctl(2) with integers.
        unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
        match &plan.root {
            Some(root) => {
                if let Err((step, e)) = build_root(&root.ops) {
                    let kind = super::SAYS_ROOT_FAILED.saturating_add(step as c_int);
                    say(plan, kind, e.raw_os_error().unwrap_or(libc::EIO));
                    // SAFETY: _exit(2) never returns.
                    unsafe { libc::_exit(127) }
                }
            }
            // SAFETY: mount(2) with static, NUL-terminated strings; best
            // effort (see `root_plan`).
            None => unsafe {
                libc::mount(
                    c"proc".as_ptr(),
                    c"/proc".as_ptr(),
                    c"proc".as_ptr(),
                    libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
                    std::ptr::null(),
                );
            },
        }
        match spawn_command(plan, arg.stack) {
            Ok(pid) => {
                close_from(0, report);
                relay(pid, report, true);
            }
            Err(e) => {
                exec_failed(plan, e.raw_os_error().unwrap_or(libc::EINVAL));
                // SAFETY: _exit(2) never returns.
                unsafe { libc::_exit(127) }
            }
        }
    }

    /// One step of building a job's own root (see [`super::root_plan`]).
    /// Paths are NUL-terminated, made before the clone.
    pub(crate) enum Op {
        /// mount(2); failures of an `optional` one are passed over.
        Mount {
            src: CString,
            dst: CString,
            fstype: Option<CString>,
            flags: libc::c_ulong,
            data: Option<CString>,
            optional: bool,
        },
        /// Makes the mount at the path read-only and nosuid (and every
        /// mount below it, if `true`).
        ReadOnly(CString, bool),
        /// mkdir(2), mode 755; an existing directory will do.
        Mkdir(CString),
        /// An empty file to bind a device on.
        Touch(CString),
        /// symlink(2).
        Symlink { target: CString, path: CString },
        /// Makes the directory (a mount) the root and detaches the old.
        Pivot(CString),
        /// chdir(2).
        Chdir(CString),
    }

    /// Runs `ops` in order; on failure, the index of the step and why.
    fn build_root(ops: &[Op]) -> Result<(), (usize, io::Error)> {
        for (i, op) in ops.iter().enumerate() {
            run_op(op).map_err(|e| (i, e))?;
        }
        Ok(())
    }

    fn run_op(op: &Op) -> io::Result<()> {
        let opt_ptr = |s: &Option<CString>| s.as_ref().map_or(std::ptr::null(), |s| s.as_ptr());
        // SAFETY: system calls with NUL-terminated strings prepared before
        // the clone, integers and pointers to locals.
        unsafe {
            match op {
                Op::Mount {
                    src,
                    dst,
                    fstype,
                    flags,
                    data,
                    optional,
                } => {
                    let rc = libc::mount(
                        src.as_ptr(),
                        dst.as_ptr(),
                        opt_ptr(fstype),
                        *flags,
                        opt_ptr(data).cast(),
                    );
                    if *optional {
                        return Ok(());
                    }
                    check(rc)
                }
                Op::ReadOnly(path, recursive) => read_only(path, *recursive),
                Op::Mkdir(path) => {
                    if libc::mkdir(path.as_ptr(), 0o755) < 0 && errno() != libc::EEXIST {
                        return Err(io::Error::last_os_error());
                    }
                    Ok(())
                }
                Op::Touch(path) => {
                    let fd = libc::open(
                        path.as_ptr(),
                        libc::O_CREAT | libc::O_WRONLY | libc::O_CLOEXEC | libc::O_NOFOLLOW,
                        0o444,
                    );
                    check(fd)?;
                    libc::close(fd);
                    Ok(())
                }
                Op::Symlink { target, path } => {
                    check(libc::symlink(target.as_ptr(), path.as_ptr()))
                }
                Op::Pivot(new_root) => {
                    // pivot_root(".", "."): the old root ends up on top of
                    // the new one at "/", and is then detached from under
                    // every process of the namespace (pivot_root(2)).
                    check(libc::chdir(new_root.as_ptr()))?;
                    let dot = c".".as_ptr();
                    check(libc::syscall(libc::SYS_pivot_root, dot, dot) as c_int)?;
                    check(libc::umount2(dot, libc::MNT_DETACH))?;
                    check(libc::chdir(c"/".as_ptr()))
                }
                Op::Chdir(path) => check(libc::chdir(path.as_ptr())),
            }
        }
    }

    /// mount_setattr(2)'s `struct mount_attr`.
    #[repr(C)]
    struct MountAttr {
        attr_set: u64,
        attr_clr: u64,
        propagation: u64,
        userns_fd: u64,
    }

    const MOUNT_ATTR_RDONLY: u64 = 0x1;
    const MOUNT_ATTR_NOSUID: u64 = 0x2;
    const AT_RECURSIVE: libc::c_uint = 0x8000;

    /// Read-only and nosuid, with mount_setattr(2) (which can do a whole
    /// tree of mounts at once), or on kernels before 5.12 a remount of
    /// the top mount that keeps the flags a user namespace may not drop.
    fn read_only(path: &CString, recursive: bool) -> io::Result<()> {
        let attr = MountAttr {
            attr_set: MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID,
            attr_clr: 0,
            propagation: 0,
            userns_fd: 0,
        };
        let flags = if recursive { AT_RECURSIVE } else { 0 };
        // SAFETY: mount_setattr(2) with a path prepared before the clone
        // and a pointer to a local of the size passed.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_mount_setattr,
                libc::AT_FDCWD,
                path.as_ptr(),
                flags,
                &attr as *const MountAttr,
                std::mem::size_of::<MountAttr>(),
            )
        };
        if rc == 0 {
            return Ok(());
        }
        if errno() != libc::ENOSYS {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: statvfs(3) (a plain statfs(2)) into a zeroed local, and
        // mount(2) with the path and null pointers.
        unsafe {
            let mut st: libc::statvfs = std::mem::zeroed();
            check(libc::statvfs(path.as_ptr(), &mut st))?;
            let keep = st.f_flag & (libc::ST_NODEV | libc::ST_NOEXEC);
            check(libc::mount(
                std::ptr::null(),
                path.as_ptr(),
                std::ptr::null(),
                libc::MS_REMOUNT | libc::MS_BIND | libc::MS_RDONLY | libc::MS_NOSUID | keep,
                std::ptr::null(),
            ))
        }
    }

    /// Starts the command with `CLONE_VM | CLONE_VFORK`: it runs on
    /// `stack` in this process's memory, and this process waits until it
    /// has exec'd or exited. Returns its pid.
    fn spawn_command(plan: &Plan, stack: *mut c_void) -> io::Result<libc::pid_t> {
        let arg = plan as *const Plan as *mut c_void;
        // SAFETY: `command` runs on its own new stack, only reads `plan`
        // (which outlives it: we are held until it execs or exits) and
        // makes only system calls.
        let pid = unsafe {
            libc::clone(
                command,
                stack,
                libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
                arg,
            )
        };
        if pid < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(pid)
    }

    /// The command, before exec: dies with its relay or init, default
    /// dispositions, nothing blocked, then each candidate path. If none
    /// execs, the error goes to `exec_err` and the exit status is 127.
    extern "C" fn command(arg: *mut c_void) -> c_int {
        // SAFETY: `arg` is the `&Plan` of our parent, held by CLONE_VFORK
        // until we exec or exit.
        let plan = unsafe { &*(arg as *const Plan) };
        // SAFETY: prctl(2) with integer arguments.
        unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
        for sig in 1..libc::SIGRTMAX() {
            if sig != libc::SIGKILL && sig != libc::SIGSTOP {
                // SAFETY: signal(2) with SIG_DFL; without CLONE_SIGHAND
                // the dispositions are this process's own.
                unsafe { libc::signal(sig, libc::SIG_DFL) };
            }
        }
        for &fd in &plan.command_cgroups {
            // SAFETY: write(2) of a static buffer to a descriptor we
            // inherited; "0" moves the writer into the group.
            if unsafe { libc::write(fd, b"0".as_ptr().cast(), 1) } != 1 {
                exec_failed(plan, errno());
                return 127;
            }
        }
        // SAFETY: an empty set on the stack, passed by pointer.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
        }
        exec_failed(plan, exec(&plan.exec));
        127
    }

    /// Execs as execvp(3) does; returns the error if nothing could be.
    /// Paths that do not exist or may not be executed are passed over,
    /// and EACCES is the error if one of them was not executable; a file
    /// in no executable format is run by /bin/sh.
    fn exec(e: &Exec) -> c_int {
        let mut eacces = false;
        let mut err = libc::ENOENT;
        for (path, sh_argv) in e.paths.iter().zip(&e.sh_argv) {
            // SAFETY: NUL-terminated strings and NULL-terminated pointer
            // arrays prepared before the clone; execve returns only on error.
            unsafe { libc::execve(path.as_ptr(), e.argv.as_ptr(), e.envp.as_ptr()) };
            err = errno();
            match err {
                libc::ENOEXEC => {
                    // SAFETY: as above.
                    unsafe { libc::execve(c"/bin/sh".as_ptr(), sh_argv.as_ptr(), e.envp.as_ptr()) };
                    return errno();
                }
                libc::EACCES => eacces = true,
                libc::ENOENT | libc::ENOTDIR | libc::ESTALE | libc::ENODEV | libc::ETIMEDOUT => {}
                _ => return err,
            }
        }
        if eacces {
            libc::EACCES
        } else {
            err
        }
    }

    fn errno() -> c_int {
        io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EINVAL)
    }

    /// Tells [`super::spawn`] that the command could not be started.
    fn exec_failed(plan: &Plan, errno: c_int) {
        let b = errno.to_ne_bytes();
        // SAFETY: write(2) of a local buffer to a descriptor of the plan.
        unsafe { libc::write(plan.exec_err, b.as_ptr().cast(), b.len()) };
    }

    /// New user, mount, pid, network and IPC namespaces; the user's own
    /// uid and gid mapped to themselves; mounts private; loopback up.
    fn confine(plan: &Plan) -> io::Result<()> {
        let flags = libc::CLONE_NEWUSER
            | libc::CLONE_NEWNS
            | libc::CLONE_NEWPID
            | libc::CLONE_NEWNET
            | libc::CLONE_NEWIPC;
        // SAFETY: unshare(2) of a single-threaded child.
        check(unsafe { libc::unshare(flags) })?;
        // gridd writes our maps (see `super::write_maps`) and says when.
        say(plan, super::SAYS_MAP_ME, 0);
        let mut b = [0u8; 1];
        // SAFETY: read(2) into a local buffer from a descriptor of the plan.
        if unsafe { libc::read(plan.go, b.as_mut_ptr().cast(), 1) } != 1 {
            return Err(io::Error::from_raw_os_error(libc::EPERM));
        }
        // SAFETY: mount(2) with static strings; MS_REC|MS_PRIVATE keeps
        // the job's mounts from propagating back to the host.
        check(unsafe {
            libc::mount(
                std::ptr::null(),
                c"/".as_ptr(),
                std::ptr::null(),
                libc::MS_REC | libc::MS_PRIVATE,
                std::ptr::null(),
            )
        })?;
        // Before `hide`, which covers the directory the source is in.
        if let Some(src) = &plan.term {
            if let Err(e) = mount_term(src) {
                say(
                    plan,
                    super::SAYS_TERM_FAILED,
                    e.raw_os_error().unwrap_or(libc::EIO),
                );
                // SAFETY: _exit(2) never returns.
                unsafe { libc::_exit(127) }
            }
        }
        for path in &plan.hide {
            // SAFETY: mount(2) of an empty read-only tmpfs over a path
            // prepared before the clone.
            check(unsafe {
                libc::mount(
                    c"none".as_ptr(),
                    path.as_ptr(),
                    c"tmpfs".as_ptr(),
                    libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
                    c"size=4k".as_ptr().cast(),
                )
            })?;
        }
        if let Some(n) = plan.nproc {
            // After the user namespace exists, RLIMIT_NPROC counts the
            // job's own processes only.
            let lim = libc::rlimit {
                rlim_cur: n,
                rlim_max: n,
            };
            // SAFETY: setrlimit(2) with a valid pointer to a local.
            check(unsafe { libc::setrlimit(libc::RLIMIT_NPROC, &lim) })?;
        }
        loopback_up();
        Ok(())
    }

    /// A tmpfs of the job's own over `/mnt` (the host's `/mnt` is not
    /// the job's business, and this one can have a `term` without
    /// touching the host), `/mnt/term` in it with `src` bound there, and
    /// then `/mnt` read-only.
    fn mount_term(src: &std::ffi::CStr) -> io::Result<()> {
        let plain = libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;
        // SAFETY: mount(2) and mkdir(2) with static strings and `src`,
        // a NUL-terminated path prepared before the clone.
        unsafe {
            check(libc::mount(
                c"none".as_ptr(),
                c"/mnt".as_ptr(),
                c"tmpfs".as_ptr(),
                plain,
                c"size=16k,mode=755".as_ptr().cast(),
            ))?;
            check(libc::mkdir(c"/mnt/term".as_ptr(), 0o755))?;
            // MS_REC: the mount is locked to this namespace's copy of the
            // host's tree, and a bind without its submounts is refused.
            check(libc::mount(
                src.as_ptr(),
                c"/mnt/term".as_ptr(),
                std::ptr::null(),
                libc::MS_BIND | libc::MS_REC,
                std::ptr::null(),
            ))?;
            check(libc::mount(
                std::ptr::null(),
                c"/mnt".as_ptr(),
                std::ptr::null(),
                libc::MS_REMOUNT | libc::MS_BIND | libc::MS_RDONLY | plain,
                std::ptr::null(),
            ))
        }
    }

    fn loopback_up() {
        // SAFETY: a socket and two ioctls on a zeroed ifreq naming "lo";
        // failures are ignored (the job then has no loopback).
        unsafe {
            let s = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
            if s < 0 {
                return;
            }
            let mut req: libc::ifreq = std::mem::zeroed();
            req.ifr_name[0] = b'l' as libc::c_char;
            req.ifr_name[1] = b'o' as libc::c_char;
            if libc::ioctl(s, libc::SIOCGIFFLAGS, &mut req) == 0 {
                req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
                libc::ioctl(s, libc::SIOCSIFFLAGS, &req);
            }
            libc::close(s);
        }
    }

    fn block_all() {
        // SAFETY: a full set on the stack, passed by pointer.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigfillset(&mut set);
            libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
        }
    }

    /// Closes every descriptor except `keep` (-1: none).
    fn close_from(first: c_int, keep: RawFd) {
        let close = |lo: c_int, hi: c_int| {
            if lo <= hi {
                // SAFETY: close_range(2) takes plain integers.
                unsafe { libc::syscall(libc::SYS_close_range, lo as u32, hi as u32, 0u32) };
            }
        };
        if keep < 0 {
            close(first, c_int::MAX);
        } else {
            close(first, keep - 1);
            close(keep + 1, c_int::MAX);
        }
    }

    /// Passes signals on to `child`, reaps, and when `child` is gone,
    /// writes the report (if `report` >= 0) and exits. An init reaps
    /// every orphan of its namespace too.
    fn relay(child: libc::pid_t, report: RawFd, init: bool) -> ! {
        // SAFETY: only system calls on locals; _exit never returns.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigfillset(&mut set);
            loop {
                let sig = libc::sigwaitinfo(&set, std::ptr::null_mut());
                if sig < 0 {
                    continue;
                }
                if sig != libc::SIGCHLD {
                    libc::kill(child, sig);
                    continue;
                }
                loop {
                    let mut status = 0;
                    let pid =
                        libc::waitpid(if init { -1 } else { child }, &mut status, libc::WNOHANG);
                    if pid <= 0 {
                        break;
                    }
                    if pid == child {
                        if report >= 0 {
                            let mut ru: libc::rusage = std::mem::zeroed();
                            libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru);
                            let us = |t: libc::timeval| {
                                (t.tv_sec as u64)
                                    .saturating_mul(1_000_000)
                                    .saturating_add(t.tv_usec as u64)
                            };
                            let mut rec = [0u8; super::REPORT_LEN];
                            rec[0..8].copy_from_slice(&(status as u32 as u64).to_ne_bytes());
                            rec[8..16].copy_from_slice(&us(ru.ru_utime).to_ne_bytes());
                            rec[16..24].copy_from_slice(&us(ru.ru_stime).to_ne_bytes());
                            rec[24..32].copy_from_slice(&(ru.ru_maxrss as u64).to_ne_bytes());
                            libc::write(report, rec.as_ptr().cast(), rec.len());
                        }
                        libc::_exit(0);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use tokio::io::AsyncReadExt;

    fn run_as() -> Option<(u32, u32)> {
        // SAFETY: geteuid cannot fail.
        (unsafe { libc::geteuid() } == 0).then_some((65534, 65534))
    }

    fn spec(argv: &[&str], term: &std::path::Path) -> Spec {
        let (r, _w) = pipe().unwrap();
        Spec {
            argv: argv.iter().map(|a| (*a).to_owned()).collect(),
            env: vec![("PATH".into(), "/usr/bin:/bin".into())],
            dir: PathBuf::from("/"),
            limits: Limits::default(),
            confine: true,
            run_as: run_as(),
            cgroups: Vec::new(),
            command_cgroups: Vec::new(),
            rlimit_as: false,
            stdin: r,
            hide: Vec::new(),
            term: Some(term.to_path_buf()),
            root: None,
        }
    }

    #[tokio::test]
    async fn term_is_bound_at_mnt_term_or_the_failure_says_so() {
        if let Err(e) = probe(run_as()) {
            eprintln!("SKIP: jobs cannot be confined here ({e})");
            return;
        }
        if !std::path::Path::new("/mnt").is_dir() {
            eprintln!("SKIP: no /mnt here");
            return;
        }
        let mut b = [0u8; 8];
        let _ = getrandom::getrandom(&mut b);
        let dir = std::env::temp_dir().join(format!("grid-sandbox-term.{}", u64::from_ne_bytes(b)));
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(dir.join("f"), "from the caller\n").unwrap();

        let mut s = spawn(spec(&["cat", "/mnt/term/f"], &dir)).unwrap();
        let mut out = String::new();
        s.stdout.read_to_string(&mut out).await.unwrap();
        let _ = s.child.wait().await;
        assert_eq!(out, "from the caller\n");

        let e = spawn(spec(&["true"], &dir.join("missing")))
            .err()
            .expect("a missing source fails");
        let t = e
            .get_ref()
            .and_then(|i| i.downcast_ref::<TermError>())
            .expect("a TermError");
        assert_eq!(t.0.raw_os_error(), Some(libc::ENOENT));
        assert!(t.to_string().starts_with("/mnt/term: "), "{t}");

        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn temp_dir(what: &str) -> PathBuf {
        let mut b = [0u8; 8];
        let _ = getrandom::getrandom(&mut b);
        let dir = std::env::temp_dir().join(format!("grid-{what}.{}", u64::from_ne_bytes(b)));
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        dir
    }

    #[test]
    fn root_plan_follows_the_host_tree() {
        let host = temp_dir("sandbox-host");
        std::fs::create_dir_all(host.join("usr/bin")).unwrap();
        std::fs::create_dir(host.join("etc")).unwrap();
        std::os::unix::fs::symlink("usr/bin", host.join("bin")).unwrap();
        std::fs::create_dir(host.join("dev")).unwrap();
        std::fs::write(host.join("dev/null"), "").unwrap();
        let root = SystemRoot {
            stage: PathBuf::from("/stage"),
            scratch: PathBuf::from("/tmp/grid-cpu.x/3"),
            tmp_size: 1 << 20,
        };
        let dir = std::path::Path::new("/tmp/grid-cpu.x/3");
        let with_term = root_plan(&root, &host, true, dir).unwrap();
        let what = &with_term.what;
        assert_eq!(what.len(), with_term.ops.len());
        let at = |w: &str| {
            what.iter()
                .position(|x| x == w)
                .unwrap_or_else(|| panic!("no step '{w}' in {what:?}"))
        };
        assert_eq!(at("tmpfs /"), 0);
        for w in [
            "bind /usr",
            "read-only /usr",
            "bind /etc",
            "symlink /bin -> usr/bin",
            "bind /dev/null",
            "mount /proc",
            "bind /mnt",
        ] {
            at(w);
        }
        assert!(at("tmpfs /tmp") < at("mkdir /tmp/grid-cpu.x"));
        assert!(at("mkdir /tmp/grid-cpu.x") < at("bind /tmp/grid-cpu.x/3"));
        assert!(at("bind /tmp/grid-cpu.x/3") < at("read-only /"));
        for absent in ["bind /lib", "bind /dev/zero", "bind /bin", "mkdir /"] {
            assert!(!what.iter().any(|w| w == absent), "{absent} in {what:?}");
        }
        assert_eq!(
            &what[what.len() - 2..],
            ["pivot_root", "chdir /tmp/grid-cpu.x/3"]
        );
        let without = root_plan(&root, &host, false, dir).unwrap();
        assert!(!without.what.iter().any(|w| w.contains("/mnt")));
        std::fs::remove_dir_all(&host).unwrap();
    }

    #[tokio::test]
    async fn an_own_root_shows_the_system_and_the_scratch_only() {
        if let Err(e) = probe(run_as()) {
            eprintln!("SKIP: jobs cannot be confined here ({e})");
            return;
        }
        // Outside /tmp, which the job has its own of.
        let private = PathBuf::from(format!(
            "/var/tmp/grid-sandbox-private.{}",
            std::process::id()
        ));
        std::fs::create_dir_all(&private).unwrap();
        std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(private.join("secret"), "host only\n").unwrap();
        let stage = temp_dir("sandbox-stage");
        let scratch = temp_dir("sandbox-scratch");
        if let Some((uid, gid)) = run_as() {
            std::os::unix::fs::chown(&scratch, Some(uid), Some(gid)).unwrap();
        }
        let script = format!(
            "ls /; echo x > /tmp/t && cat /tmp/t; echo y > f && cat f; pwd; \
             touch /usr/grid-x || echo usr-ro; cat {}/secret",
            private.display()
        );
        let root = SystemRoot {
            stage: stage.clone(),
            scratch: scratch.clone(),
            tmp_size: 1 << 20,
        };
        let job = Spec {
            dir: scratch.clone(),
            term: None,
            root: Some(root),
            ..spec(&["sh", "-c", &script], std::path::Path::new("/"))
        };
        let mut s = spawn(job).unwrap();
        let (mut out, mut err) = (String::new(), String::new());
        s.stdout.read_to_string(&mut out).await.unwrap();
        s.stderr.read_to_string(&mut err).await.unwrap();
        let _ = s.child.wait().await;
        let mut lines = out.lines();
        let names: Vec<&str> = lines.by_ref().take_while(|l| *l != "x").collect();
        let allowed = [
            "bin", "dev", "etc", "lib", "lib32", "lib64", "libx32", "proc", "sbin", "tmp", "usr",
        ];
        assert!(names.contains(&"usr") && names.contains(&"tmp"), "{out}");
        assert!(names.iter().all(|n| allowed.contains(n)), "{out}");
        let rest: Vec<&str> = lines.collect();
        let cwd = scratch.display().to_string();
        assert_eq!(rest, ["y", cwd.as_str(), "usr-ro"], "{out}{err}");
        assert!(err.contains("secret"), "{err}");
        assert_eq!(std::fs::read_to_string(scratch.join("f")).unwrap(), "y\n");
        for d in [&private, &stage, &scratch] {
            std::fs::remove_dir_all(d).unwrap();
        }
    }

    #[tokio::test]
    async fn a_failed_root_step_fails_the_job_and_is_named() {
        if let Err(e) = probe(run_as()) {
            eprintln!("SKIP: jobs cannot be confined here ({e})");
            return;
        }
        let (r, _w) = pipe().unwrap();
        let root = SystemRoot {
            stage: PathBuf::from("/nonexistent/grid-stage"),
            scratch: PathBuf::from("/"),
            tmp_size: 1 << 20,
        };
        let failing = Spec {
            term: None,
            root: Some(root),
            stdin: r,
            ..spec(&["true"], std::path::Path::new("/"))
        };
        let e = spawn(failing).err().expect("a missing stage fails");
        let r = e
            .get_ref()
            .and_then(|i| i.downcast_ref::<RootError>())
            .expect("a RootError");
        assert_eq!(r.step, "tmpfs /");
        assert_eq!(r.error.raw_os_error(), Some(libc::ENOENT));
        assert!(r.to_string().starts_with("private root: tmpfs /: "), "{r}");

        // And never without namespaces.
        let (r, _w) = pipe().unwrap();
        let unconfined = Spec {
            confine: false,
            term: None,
            root: Some(SystemRoot {
                stage: PathBuf::from("/"),
                scratch: PathBuf::from("/"),
                tmp_size: 1 << 20,
            }),
            stdin: r,
            ..spec(&["true"], std::path::Path::new("/"))
        };
        assert!(spawn(unconfined).is_err());
    }
}

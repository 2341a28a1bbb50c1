//! Starting a job's processes: process group, cgroups, rlimits, an
//! unprivileged uid, and new namespaces where the kernel allows them.
//!
//! ```text
//! gridd ── fork ──> relay (gridd's pid namespace; the job's process group leader)
//!                     └─ clone(VM) ──> init  (pid 1 of a new pid namespace)   [confined]
//!                                       └─ clone(VM|VFORK) ──> command (exec)
//! gridd ── fork ──> relay ── clone(VM|VFORK) ──> command (exec)               [unconfined]
//! ```
//!
//! Everything between fork and exec runs in `pre_exec`, in a child of a
//! multi-threaded process, so it makes only async-signal-safe calls (raw
//! system calls) on data prepared before the fork. The relay and the init
//! never exec: they block every signal, pass each one they receive on to
//! their child, reap, and close every descriptor they inherited (gridd's
//! sockets, std's exec-error pipe) so nothing of gridd is held by them.
//!
//! Only the relay copies gridd's address space (std's fork). The init
//! and the command are made with `clone(CLONE_VM)` on stacks of their
//! own, posix_spawn-style: the init shares the relay's memory (both only
//! read the prepared plan and use their own stacks), and the command
//! borrows its parent's memory until it execs (`CLONE_VFORK` holds the
//! parent until then). The command execs itself, searching the job's
//! `PATH` as execvp(3) would; if no exec succeeds, it writes the error
//! number to a pipe of its own that [`spawn`] reads once the command has
//! started or failed.
//!
//! The last process before the command (the init, or the relay when
//! unconfined) writes one [`Report`] to a pipe when the command exits:
//! its wait status and the rusage of everything it reaped. When the init
//! exits, the kernel kills whatever is left in the pid namespace.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::Stdio;
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
    /// Open `cgroup.procs` files of the job's groups.
    pub cgroups: Vec<OwnedFd>,
    /// Enforce `mem` with RLIMIT_AS (no memory cgroup).
    pub rlimit_as: bool,
    /// The read end of the job's stdin pipe.
    pub stdin: OwnedFd,
    /// Directories to cover with an empty tmpfs when confined (gridd's
    /// state directory).
    pub hide: Vec<PathBuf>,
}

/// A started job.
pub struct Started {
    /// The relay: the job's process group leader.
    pub child: tokio::process::Child,
    /// The job's standard output pipe.
    pub stdout: tokio::process::ChildStdout,
    /// The job's standard error pipe.
    pub stderr: tokio::process::ChildStderr,
    /// Where the [`Report`] arrives.
    pub report: OwnedFd,
}

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

/// Starts `spec`. Blocks until the command has been exec'd (or failed
/// to be), so call it from a blocking thread of the runtime.
pub fn spawn(spec: Spec) -> io::Result<Started> {
    let (cmd, report, exec_err) = command(spec)?;
    let mut cmd = tokio::process::Command::from(cmd);
    let mut child = cmd.kill_on_drop(false).spawn()?;
    // Our copy of the write end of `exec_err` goes with the command.
    drop(cmd);
    if let Some(errno) = read_errno(&exec_err) {
        // The relay and the init end by themselves once the failed
        // command is reaped; this only hurries them.
        let _ = child.start_kill();
        return Err(io::Error::from_raw_os_error(errno));
    }
    let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
        return Err(io::Error::other("no output pipes"));
    };
    for fd in [stdout.as_raw_fd(), stderr.as_raw_fd()] {
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
    Ok(Started {
        child,
        stdout,
        stderr,
        report,
    })
}

/// The error number the command wrote to `exec_err` when it could not
/// exec, or `None` once every write end is closed without one (every
/// process of the job holds it close-on-exec or has closed it by the
/// time std's spawn returns).
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

/// The command for `spec`, the read end of its report pipe, and the
/// read end of its exec-error pipe.
fn command(spec: Spec) -> io::Result<(std::process::Command, OwnedFd, OwnedFd)> {
    let mut argv = spec.argv.iter();
    let program = argv
        .next()
        .ok_or_else(|| io::Error::from_raw_os_error(libc::EINVAL))?;
    let mut cmd = std::process::Command::new(program);
    cmd.args(argv)
        .env_clear()
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .current_dir(&spec.dir)
        .process_group(0)
        .stdin(Stdio::from(spec.stdin))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some((uid, gid)) = spec.run_as {
        cmd.uid(uid).gid(gid);
    }
    let (uid, gid) = spec.run_as.unwrap_or_else(|| {
        // SAFETY: getuid and getgid cannot fail.
        unsafe { (libc::getuid(), libc::getgid()) }
    });
    let (report_r, report_w) = pipe()?;
    let (exec_err_r, exec_err_w) = pipe()?;
    let exec = child::Exec::new(&spec.argv, &spec.env)?;
    let plan = child::Plan {
        exec,
        exec_err: exec_err_w,
        confine: spec.confine,
        cgroups: spec.cgroups,
        rlimits: rlimits(&spec.limits, spec.rlimit_as),
        nproc: spec.limits.procs.filter(|_| spec.confine).map(u64::from),
        uid_map: cstring(format!("{uid} {uid} 1\n"))?,
        gid_map: cstring(format!("{gid} {gid} 1\n"))?,
        report: report_w,
        hide: spec
            .hide
            .iter()
            .filter_map(|p| CString::new(p.as_os_str().as_encoded_bytes()).ok())
            .collect(),
        // SAFETY: getpid cannot fail.
        parent: unsafe { libc::getpid() },
    };
    // SAFETY: the closure runs in the forked child before exec; it only
    // makes async-signal-safe system calls on `plan`, which was fully
    // built (allocated) before the fork. See `child`. The descriptors in
    // `plan` close in gridd when the command is dropped after spawning.
    unsafe {
        cmd.pre_exec(move || child::run(&plan));
    }
    Ok((cmd, report_r, exec_err_r))
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
        rlimit_as: false,
        stdin: r,
        hide: Vec::new(),
    };
    let (mut cmd, report, exec_err) = command(spec).map_err(|e| e.to_string())?;
    let mut child = cmd.spawn().map_err(|e| e.to_string())?;
    drop(cmd);
    let errno = read_errno(&exec_err);
    let _ = child.wait();
    if let Some(e) = errno {
        return Err(io::Error::from_raw_os_error(e).to_string());
    }
    let mut buf = [0u8; REPORT_LEN];
    // SAFETY: reading into a local buffer from a pipe we own.
    let n = unsafe { libc::read(report.as_raw_fd(), buf.as_mut_ptr().cast(), REPORT_LEN) };
    match Report::decode(buf.get(..n.max(0) as usize).unwrap_or(&[])) {
        Some(r) if libc::WIFEXITED(r.status) && libc::WEXITSTATUS(r.status) == 0 => Ok(()),
        Some(r) => Err(format!("the probe ended with wait status {:#x}", r.status)),
        None => Err("the namespaces could not be made".to_owned()),
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

fn cstring(s: String) -> io::Result<CString> {
    CString::new(s).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
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

/// The code that runs between fork and exec. Nothing here allocates,
/// takes a lock or touches std's I/O: only system calls through libc on
/// the prepared `Plan`.
mod child {
    use std::ffi::CString;
    use std::io;
    use std::os::fd::{AsRawFd, OwnedFd, RawFd};

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

    pub(super) struct Plan {
        pub(super) exec: Exec,
        pub(super) exec_err: OwnedFd,
        pub(super) confine: bool,
        pub(super) cgroups: Vec<OwnedFd>,
        pub(super) rlimits: Vec<(libc::__rlimit_resource_t, u64, u64)>,
        pub(super) nproc: Option<u64>,
        pub(super) uid_map: CString,
        pub(super) gid_map: CString,
        pub(super) report: OwnedFd,
        pub(super) hide: Vec<CString>,
        pub(super) parent: libc::pid_t,
    }

    fn check(rc: c_int) -> io::Result<()> {
        if rc < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    }

    /// Runs in the relay (gridd's child). Returns only in the process
    /// that is to exec the command.
    pub(super) fn run(plan: &Plan) -> io::Result<()> {
        let report = plan.report.as_raw_fd();
        // Die with gridd (more exactly, with its spawner thread, which
        // lives as long as gridd serves /cpu).
        // SAFETY: prctl(2) and getppid(2) take and return integers.
        unsafe {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            if libc::getppid() != plan.parent {
                libc::_exit(127);
            }
        }
        for fd in &plan.cgroups {
            // SAFETY: write(2) of a static buffer to a descriptor we own;
            // "0" moves the writer into the group.
            check(unsafe { libc::write(fd.as_raw_fd(), b"0".as_ptr().cast(), 1) } as c_int)?;
        }
        // The stacks of the init and the command, mapped before
        // RLIMIT_AS applies: this process is as large as gridd.
        let init_stack = stack()?;
        let command_stack = stack()?;
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
        let report = plan.report.as_raw_fd();
        // SAFETY: mount(2) with static, NUL-terminated strings; prctl(2)
        // with integers.
        unsafe {
            libc::mount(
                c"proc".as_ptr(),
                c"/proc".as_ptr(),
                c"proc".as_ptr(),
                libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
                std::ptr::null(),
            );
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
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

    /// A new stack for a `CLONE_VM` child: an anonymous mapping that is
    /// never unmapped (the process that uses it ends with it). Returns
    /// its top, where the stack starts.
    fn stack() -> io::Result<*mut c_void> {
        const SIZE: usize = 256 << 10;
        // SAFETY: mmap(2) of fresh anonymous memory; no existing mapping
        // is touched.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                SIZE,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_STACK,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: one past the end of the mapping just made.
        Ok(unsafe { p.cast::<u8>().add(SIZE) }.cast())
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
            // arrays prepared before the fork; execve returns only on error.
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
        unsafe { libc::write(plan.exec_err.as_raw_fd(), b.as_ptr().cast(), b.len()) };
    }

    /// New user, mount, pid, network and IPC namespaces; the user's own
    /// uid and gid mapped to themselves; mounts private; loopback up.
    fn confine(plan: &Plan) -> io::Result<()> {
        // std's setuid made us undumpable, which leaves /proc/self/*_map
        // owned by root; we must be able to write our own maps.
        // SAFETY: prctl(2) with integer arguments.
        unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 1) };
        let flags = libc::CLONE_NEWUSER
            | libc::CLONE_NEWNS
            | libc::CLONE_NEWPID
            | libc::CLONE_NEWNET
            | libc::CLONE_NEWIPC;
        // SAFETY: unshare(2) of a single-threaded child.
        check(unsafe { libc::unshare(flags) })?;
        write_file(c"/proc/self/setgroups", b"deny")?;
        write_file(c"/proc/self/uid_map", plan.uid_map.as_bytes())?;
        write_file(c"/proc/self/gid_map", plan.gid_map.as_bytes())?;
        // Back to undumpable: this process is a copy of gridd's memory.
        // SAFETY: prctl(2) with integer arguments.
        unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0) };
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
        for path in &plan.hide {
            // SAFETY: mount(2) of an empty read-only tmpfs over a path
            // prepared before the fork.
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

    fn write_file(path: &std::ffi::CStr, data: &[u8]) -> io::Result<()> {
        // SAFETY: open/write/close on a NUL-terminated path and a slice.
        unsafe {
            let fd = libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
            check(fd)?;
            let n = libc::write(fd, data.as_ptr().cast(), data.len());
            let e = io::Error::last_os_error();
            libc::close(fd);
            if n < 0 {
                return Err(e);
            }
        }
        Ok(())
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

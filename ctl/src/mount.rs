//! `grid mount` and `grid umount`: mount options, foreground and
//! background runs, signals, and unmounting.
//!
//! A mount runs in the foreground until it is unmounted (`grid umount`,
//! fusermount3 -u, umount(8)), until SIGINT, SIGTERM or SIGHUP (then it
//! unmounts itself), or until gridd hangs up (then it unmounts too, rather
//! than leave a mount whose every call fails).
//!
//! In the background (`-b`, and always for `mount.grid`) the command
//! starts itself again with [`CHILD_ENV`] set. The child makes its own
//! session (setsid), mounts, and says `ready` on its standard output; only
//! then does the parent exit 0. If the child fails first, the parent
//! passes on its error and exit status. Re-executing instead of forking
//! keeps the tokio runtime and the FUSE thread out of a forked copy.

use std::ffi::CString;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::Duration;

use fuser::{Config, MountOption, SessionACL};
use ninep::Dialect;
use tokio::signal::unix::{signal, SignalKind};

use crate::fuse::GridFs;
use crate::ns::{Failure, Ns};

/// Set in the environment of the background child: "you are the server;
/// say `ready` on stdout once mounted".
pub const CHILD_ENV: &str = "GRID_MOUNT_CHILD";
/// What the child prints when the mount works.
const READY: &str = "ready";
/// How long a mount that was told to stop waits for the kernel to let go.
const STOP_WAIT: Duration = Duration::from_secs(5);
/// How often the mount checks that gridd is still there.
const LIVENESS_TICK: Duration = Duration::from_millis(500);
/// How long the walk to `aname` may take.
const WALK_WAIT: Duration = Duration::from_secs(20);

/// What to mount where.
#[derive(Debug, Clone)]
pub struct MountSpec {
    /// gridd's dial string.
    pub addr: String,
    /// The directory to mount on.
    pub mountpoint: PathBuf,
    /// From `-o`.
    pub options: MountOptions,
    /// Return once mounted, leaving a background process to serve.
    pub background: bool,
}

/// Mount options, parsed from `-o` (mount(8) style, comma-separated).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MountOptions {
    /// Options for the kernel and fusermount3.
    pub fuse: Vec<MountOption>,
    /// Who may use the mount besides its owner.
    pub acl: SessionACL,
    /// The namespace path to mount (`aname=PATH`, as v9fs names it);
    /// `None`: the root.
    pub aname: Option<String>,
}

/// Options that mount(8), systemd or fstab use for themselves, and atime
/// flavours FUSE has no use for: accepted and ignored.
const IGNORED: &[&str] = &[
    "defaults",
    "auto",
    "noauto",
    "user",
    "users",
    "nouser",
    "owner",
    "group",
    "nofail",
    "_netdev",
    "relatime",
    "norelatime",
    "strictatime",
    "nostrictatime",
    "lazytime",
    "nolazytime",
    "diratime",
    "nodiratime",
    "silent",
    "loud",
    "symfollow",
    "nosymfollow",
];

impl MountOptions {
    /// Parses `ro,nosuid,allow_other,...`. Unknown options are an error,
    /// so a typo does not pass silently; mount(8)'s and systemd's own
    /// (`defaults`, `_netdev`, `noauto`, `x-systemd.*`, ...) are ignored.
    pub fn parse(s: &str) -> Result<MountOptions, String> {
        let mut o = MountOptions::default();
        for opt in s.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let fuse = match opt {
                "ro" => MountOption::RO,
                "rw" => MountOption::RW,
                "nosuid" => MountOption::NoSuid,
                "suid" => MountOption::Suid,
                "nodev" => MountOption::NoDev,
                "dev" => MountOption::Dev,
                "noexec" => MountOption::NoExec,
                "exec" => MountOption::Exec,
                "noatime" => MountOption::NoAtime,
                "atime" => MountOption::Atime,
                "sync" => MountOption::Sync,
                "async" => MountOption::Async,
                "dirsync" => MountOption::DirSync,
                "default_permissions" => MountOption::DefaultPermissions,
                "allow_other" => {
                    o.acl = SessionACL::All;
                    continue;
                }
                "allow_root" => {
                    o.acl = SessionACL::RootAndOwner;
                    continue;
                }
                s if s.starts_with("aname=") => {
                    let path = &s["aname=".len()..];
                    o.aname = (!ns_root(path)).then(|| path.to_owned());
                    continue;
                }
                // mount(8) adds user=NAME for fstab `user` mounts.
                s if IGNORED.contains(&s)
                    || s.starts_with("x-")
                    || s.starts_with("comment=")
                    || s.starts_with("user=") =>
                {
                    continue
                }
                s => return Err(format!("unknown mount option '{s}'")),
            };
            // A later option wins over an earlier contrary one (ro,rw).
            o.fuse.retain(|f| !contrary(f, &fuse));
            if !o.fuse.contains(&fuse) {
                o.fuse.push(fuse);
            }
        }
        Ok(o)
    }

    /// The fuser configuration for a mount of `addr`: these options plus
    /// the source name (`fsname`, what /proc/mounts shows) and subtype.
    fn config(&self, addr: &str) -> Config {
        let mut c = Config::default();
        let source = match &self.aname {
            Some(path) => format!("{addr}:{path}"),
            None => addr.to_owned(),
        };
        // fusermount3 splits options at commas.
        c.mount_options = vec![
            MountOption::FSName(source.replace(',', "_")),
            MountOption::Subtype("grid".into()),
        ];
        c.mount_options.extend(self.fuse.iter().cloned());
        c.acl = self.acl;
        c
    }
}

/// Whether `path` names the namespace root (`/`, empty, `.`).
fn ns_root(path: &str) -> bool {
    crate::ns::elements(path).is_empty()
}

fn contrary(a: &MountOption, b: &MountOption) -> bool {
    use MountOption::*;
    matches!(
        (a, b),
        (RO, RW)
            | (RW, RO)
            | (Suid, NoSuid)
            | (NoSuid, Suid)
            | (Dev, NoDev)
            | (NoDev, Dev)
            | (Exec, NoExec)
            | (NoExec, Exec)
            | (Atime, NoAtime)
            | (NoAtime, Atime)
            | (Sync, Async)
            | (Async, Sync)
    )
}

/// Runs a mount as `spec` says; `prog` prefixes error lines. In the
/// foreground this returns when the mount is gone.
pub fn run(spec: &MountSpec, prog: &str) -> ExitCode {
    let child = std::env::var_os(CHILD_ENV).is_some();
    let result = if spec.background && !child {
        return background(prog);
    } else {
        serve(spec, child)
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("{prog}: {f}");
            ExitCode::from(1)
        }
    }
}

/// Starts this command again as the background server and waits until it
/// is ready or has failed.
fn background(prog: &str) -> ExitCode {
    let fail = |msg: String| {
        eprintln!("{prog}: {msg}");
        ExitCode::from(1)
    };
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => return fail(format!("cannot find myself: {e}")),
    };
    let mut args = std::env::args_os();
    let arg0 = args.next().unwrap_or_else(|| exe.clone().into_os_string());
    let spawned = Command::new(&exe)
        .arg0(arg0)
        .args(args)
        .env(CHILD_ENV, "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match spawned {
        Ok(c) => c,
        Err(e) => return fail(format!("{}: {e}", exe.display())),
    };
    let mut line = String::new();
    if let Some(out) = child.stdout.take() {
        let _ = BufReader::new(out).read_line(&mut line);
    }
    if line.trim_end() == READY {
        return ExitCode::SUCCESS;
    }
    // The child failed before mounting: its error is on its stderr.
    let mut err = Vec::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_end(&mut err);
    }
    let _ = io::stderr().write_all(&err);
    match child.wait() {
        Ok(status) if !status.success() => ExitCode::from(
            status
                .code()
                .and_then(|c| u8::try_from(c).ok())
                .unwrap_or(1),
        ),
        Ok(_) | Err(_) if err.is_empty() => fail("mount process exited before mounting".into()),
        _ => ExitCode::from(1),
    }
}

/// Why a mount stops.
enum Stop {
    Signal,
    Unmounted(io::Result<()>),
    ServerGone,
}

/// Mounts and serves until the mount goes away or the process is told to
/// stop. `child`: the background server, which reports readiness on
/// stdout and then detaches from it.
fn serve(spec: &MountSpec, child: bool) -> Result<(), Failure> {
    if child {
        // SAFETY: setsid(2) has no preconditions; failing (already a
        // session leader) is harmless.
        unsafe { libc::setsid() };
    }
    let mountpoint = &spec.mountpoint;
    let dir = mountpoint
        .canonicalize()
        .map_err(|e| Failure::io(mountpoint.display(), &e))?;
    if !dir.is_dir() {
        return Err(Failure::at(mountpoint.display(), "not a directory"));
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("grid-mount")
        .enable_all()
        .build()
        .map_err(|e| Failure::io("runtime", &e))?;
    // Signals are caught from here on, so one that arrives while mounting
    // still ends in a clean unmount rather than a dead mount.
    let signals = {
        let _guard = runtime.enter();
        (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
            signal(SignalKind::hangup()),
        )
    };
    let (Ok(mut term), Ok(mut int), Ok(mut hup)) = signals else {
        return Err(Failure::at(
            "signals",
            "cannot catch SIGTERM, SIGINT, SIGHUP",
        ));
    };
    let ns = runtime.block_on(Ns::connect(&spec.addr, Dialect::L))?;
    let client = ns.client().clone();
    let root = match &spec.options.aname {
        Some(path) => runtime.block_on(walk_to_dir(&ns, path))?,
        None => ns.into_root(),
    };
    let fs = GridFs::new(runtime.handle().clone(), root);
    let session = fuser::Session::new(fs, &dir, &spec.options.config(&spec.addr))
        .map_err(|e| Failure::io(mountpoint.display(), &e))?;
    let (done_tx, mut done_rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("fuse".into())
        .spawn(move || {
            let _ = done_tx.send(session.run());
        })
        .map_err(|e| Failure::io("fuse thread", &e))?;
    if child {
        announce_ready();
    }
    let stop = runtime.block_on(async {
        let gone = async {
            while !client.is_closed() {
                tokio::time::sleep(LIVENESS_TICK).await;
            }
        };
        tokio::select! {
            _ = term.recv() => Stop::Signal,
            _ = int.recv() => Stop::Signal,
            _ = hup.recv() => Stop::Signal,
            r = &mut done_rx => Stop::Unmounted(r.unwrap_or(Ok(()))),
            () = gone => Stop::ServerGone,
        }
    });
    let result = match stop {
        Stop::Unmounted(Ok(())) => Ok(()),
        Stop::Unmounted(Err(e)) => Err(Failure::io(mountpoint.display(), &e)),
        Stop::Signal | Stop::ServerGone => {
            let unmounted = unmount(&dir, false).or_else(|_| unmount(&dir, true));
            // The FUSE loop ends once the kernel drops the connection; a lazy
            // unmount with files still open may not, so do not wait forever.
            let _ = runtime.block_on(async { tokio::time::timeout(STOP_WAIT, done_rx).await });
            match stop {
                Stop::ServerGone => Err(Failure::at(&spec.addr, "connection lost; unmounted")),
                _ => unmounted,
            }
        }
    };
    runtime.shutdown_timeout(Duration::from_secs(1));
    result
}

/// A fid for the directory `path` (`aname=`), the root of the mount.
/// Bounded: the path may lead to another grid (`/n/PEER`).
async fn walk_to_dir(ns: &Ns, path: &str) -> Result<ninep_client::Fid, Failure> {
    let fid = match tokio::time::timeout(WALK_WAIT, ns.walk(path)).await {
        Ok(r) => r?,
        Err(_) => return Err(Failure::at(path, "timed out")),
    };
    if !fid.qid().is_dir() {
        return Err(Failure::at(path, "not a directory"));
    }
    Ok(fid)
}

/// Tells the waiting parent the mount works, then lets go of its pipes
/// and of the working directory, so the parent (and whoever reads its
/// output, such as mount(8)) can finish.
fn announce_ready() {
    let mut out = io::stdout();
    let _ = writeln!(out, "{READY}").and_then(|()| out.flush());
    if let Ok(null) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
    {
        use std::os::fd::AsRawFd;
        for fd in 0..=2 {
            // SAFETY: dup2 onto the standard descriptors, from a descriptor
            // that is open for the duration of the call.
            unsafe { libc::dup2(null.as_raw_fd(), fd) };
        }
    }
    let _ = std::env::set_current_dir("/");
}

/// Unmounts `path`: umount2(2) when root, else `fusermount3 -u`. `lazy`
/// detaches a busy mount (MNT_DETACH, `-z`).
pub fn unmount(path: &Path, lazy: bool) -> Result<(), Failure> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        let c = CString::new(path.as_os_str().as_bytes())
            .map_err(|_| Failure::at(path.display(), "path contains a NUL byte"))?;
        let flags = if lazy { libc::MNT_DETACH } else { 0 };
        // SAFETY: `c` is a valid NUL-terminated string for the call.
        if unsafe { libc::umount2(c.as_ptr(), flags) } == 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::EINVAL) {
            return Err(Failure::at(path.display(), "not mounted"));
        }
        return Err(Failure::io(path.display(), &e));
    }
    let mut last = None;
    for tool in ["fusermount3", "fusermount"] {
        let mut cmd = Command::new(tool);
        cmd.arg("-u");
        if lazy {
            cmd.arg("-z");
        }
        match cmd.arg("--").arg(path).stdin(Stdio::null()).output() {
            Ok(out) if out.status.success() => return Ok(()),
            Ok(out) => {
                let text = String::from_utf8_lossy(&out.stderr);
                let text = text.trim();
                let text = text.strip_prefix(&format!("{tool}: ")).unwrap_or(text);
                return Err(Failure::at(path.display(), text));
            }
            Err(e) => last = Some(e),
        }
    }
    let e = last.unwrap_or_else(|| io::Error::from(io::ErrorKind::NotFound));
    Err(Failure::at(
        path.display(),
        format!("cannot run fusermount3: {}", crate::ns::io_message(&e)),
    ))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn options_map_to_fuse_and_ignore_mount8s_own() {
        let o = MountOptions::parse("defaults,_netdev,ro,nosuid,x-systemd.after=gridd.service")
            .unwrap();
        assert_eq!(o.fuse, [MountOption::RO, MountOption::NoSuid]);
        assert_eq!(o.acl, SessionACL::Owner);
        let o = MountOptions::parse("rw,allow_other,ro").unwrap();
        assert_eq!(o.fuse, [MountOption::RO]);
        assert_eq!(o.acl, SessionACL::All);
        assert_eq!(MountOptions::parse("").unwrap(), MountOptions::default());
        let o = MountOptions::parse("ro,aname=/n/bob/files").unwrap();
        assert_eq!(o.aname.as_deref(), Some("/n/bob/files"));
        assert_eq!(MountOptions::parse("aname=/").unwrap().aname, None);
        // What mount(8) passes for an fstab `user` mount.
        let o = MountOptions::parse("user=alice,nosuid,nodev,noexec,symfollow").unwrap();
        assert_eq!(
            o.fuse,
            [MountOption::NoSuid, MountOption::NoDev, MountOption::NoExec]
        );
        assert_eq!(
            MountOptions::parse("ro,bogus").unwrap_err(),
            "unknown mount option 'bogus'"
        );
    }

    #[test]
    fn config_names_the_source() {
        let c = MountOptions::parse("ro").unwrap().config("tcp!a,b!1");
        assert_eq!(
            c.mount_options,
            [
                MountOption::FSName("tcp!a_b!1".into()),
                MountOption::Subtype("grid".into()),
                MountOption::RO
            ]
        );
    }
}

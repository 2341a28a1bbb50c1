//! `/mnt/term` for peers' jobs: the caller's namespace, mounted for the
//! job's sandbox to bind (grid-cpu's [`TermMounter`]).
//!
//! What a job of peer CALLER sees at `/mnt/term` is this grid's import of
//! the caller, `/n/CALLER`: exactly what the caller's own gridd grants
//! this grid, under the caller's policy, and nothing more. It is mounted
//! with FUSE by this installation's `grid` command, run as
//! `grid -a unix!STATE/gridd.sock mount -o aname=/n/CALLER,... DIR` in
//! the mode `grid mount -b` uses for its background server: it says
//! `ready` on its standard output once the mount works, and unmounts
//! itself if gridd goes away. gridd keeps it as a child and, when the job
//! has ended, unmounts the directory and kills it.

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use async_trait::async_trait;
use grid_cpu::term::{TermMount, TermMounter};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::{Child, ChildStderr, Command};

/// What `grid mount` reads to act as the background server that says
/// `ready` (`CHILD_ENV` in ctl/src/mount.rs).
const MOUNT_CHILD_ENV: &str = "GRID_MOUNT_CHILD";
/// What it says once mounted.
const READY: &str = "ready";
/// How long the mount may take: dialing the caller is part of it.
const READY_WAIT: Duration = Duration::from_secs(30);
/// How long a helper that was killed may take to be reaped, and a failed
/// one to finish its error message.
const EXIT_WAIT: Duration = Duration::from_secs(5);

/// Mounts peers' namespaces with the `grid` command.
#[derive(Debug)]
pub struct GridTerm {
    /// The `grid` binary.
    grid: PathBuf,
    /// This gridd's owner socket, as a dial string.
    addr: String,
    /// Whether gridd runs as root (and so jobs as another uid).
    root: bool,
}

impl GridTerm {
    /// Mounts through the gridd listening on `socket` (its state
    /// directory's unix socket), with the `grid` installed beside this
    /// program, else the one in `PATH`. Fails, saying why, where FUSE
    /// cannot be used: then peers' jobs run without a `/mnt/term`
    /// rather than not at all.
    pub fn new(socket: &Path) -> Result<GridTerm, String> {
        // SAFETY: geteuid has no preconditions and cannot fail.
        let root = unsafe { libc::geteuid() } == 0;
        if !Path::new("/dev/fuse").exists() {
            return Err("FUSE is not available (no /dev/fuse)".into());
        }
        if !root {
            // `grid mount` opens /dev/fuse itself, then mounts with
            // fusermount3.
            // SAFETY: access(2) with a static NUL-terminated path.
            if unsafe { libc::access(c"/dev/fuse".as_ptr(), libc::R_OK | libc::W_OK) } != 0 {
                return Err(format!("/dev/fuse: {}", io::Error::last_os_error()));
            }
            if !in_path("fusermount3") && !in_path("fusermount") {
                return Err("FUSE mounts need fusermount3, which is not installed".into());
            }
        }
        Ok(GridTerm {
            grid: grid_binary(),
            addr: format!("unix!{}", socket.display()),
            root,
        })
    }

    /// `grid mount`'s options for `caller`'s namespace.
    fn options(&self, caller: &str) -> String {
        let mut o = format!("nosuid,nodev,aname=/n/{caller}");
        if self.root {
            // The job runs as another uid; FUSE lets it (and processes of
            // user namespaces below ours) in only with allow_other.
            o.push_str(",allow_other");
        }
        o
    }
}

#[async_trait]
impl TermMounter for GridTerm {
    async fn mount(&self, caller: &str, dir: &Path) -> Result<Box<dyn TermMount>, String> {
        if caller.is_empty() || caller.contains([',', '/', '\0']) {
            return Err(format!("cannot mount peer '{caller}': bad name"));
        }
        let mut child = Command::new(&self.grid)
            .arg("-a")
            .arg(&self.addr)
            .arg("mount")
            .arg("-o")
            .arg(self.options(caller))
            .arg(dir)
            .env(MOUNT_CHILD_ENV, "1")
            .env_remove("GRID_ADDR")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", self.grid.display()))?;
        let said = match child.stdout.take() {
            Some(out) => tokio::time::timeout(READY_WAIT, first_line(out)).await,
            None => Ok(String::new()),
        };
        let helper = Helper {
            child,
            dir: dir.to_path_buf(),
            root: self.root,
            stopped: false,
        };
        match said {
            Ok(line) if line == READY => Ok(Box::new(helper)),
            Ok(_) => Err(helper.failure(caller).await),
            Err(_) => {
                helper.stop().await;
                Err(format!(
                    "the mount of /n/{caller} was not ready after {}s",
                    READY_WAIT.as_secs()
                ))
            }
        }
    }
}

/// A running `grid mount` and the directory it serves.
struct Helper {
    child: Child,
    dir: PathBuf,
    root: bool,
    /// Set by [`Helper::stop`]; otherwise dropping unmounts (the child
    /// itself is killed on drop).
    stopped: bool,
}

impl Helper {
    /// Why a helper that did not say `ready` failed: its error message.
    async fn failure(mut self, caller: &str) -> String {
        let stderr = self.child.stderr.take();
        let status = tokio::time::timeout(EXIT_WAIT, self.child.wait()).await;
        let text = match stderr {
            Some(e) => read_all(e).await,
            None => String::new(),
        };
        self.stop().await;
        match (helper_error(&text), status) {
            // A walk into a peer that cannot be reached loses its reason
            // (a partial Rwalk); the peer's status has it.
            (Some(msg), _) if msg.ends_with("file not found") => {
                format!("{msg} (see /net/peers/{caller}/status)")
            }
            (Some(msg), _) => msg,
            (None, Ok(Ok(s))) => format!("grid mount ended ({s}) without mounting"),
            (None, _) => "grid mount ended without mounting".to_owned(),
        }
    }

    /// Unmounts the directory (if it is still mounted) and kills the helper.
    async fn stop(mut self) {
        let dir = self.dir.clone();
        let root = self.root;
        let _ = tokio::task::spawn_blocking(move || unmount(&dir, root)).await;
        let _ = self.child.start_kill();
        let _ = tokio::time::timeout(EXIT_WAIT, self.child.wait()).await;
        self.stopped = true;
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        if !self.stopped {
            unmount(&self.dir, self.root);
        }
    }
}

#[async_trait]
impl TermMount for Helper {
    async fn unmount(self: Box<Self>) {
        // Every process of the job is gone: nothing holds the mount.
        self.stop().await;
    }
}

/// The `grid` next to this program (an installation or a build
/// directory), else `grid` from `PATH`.
fn grid_binary() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|d| d.join("grid")))
        .filter(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from("grid"))
}

/// Whether `tool` is in one of the directories of `PATH`.
fn in_path(tool: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
}

/// The first line `out` says (without its newline); empty at end of file.
async fn first_line(out: tokio::process::ChildStdout) -> String {
    let mut line = String::new();
    let _ = BufReader::new(out).read_line(&mut line).await;
    line.trim_end().to_owned()
}

async fn read_all(mut e: ChildStderr) -> String {
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(EXIT_WAIT, e.read_to_end(&mut buf)).await;
    String::from_utf8_lossy(&buf).into_owned()
}

/// The helper's error without the `grid: ` its lines start with: its
/// first non-empty line.
fn helper_error(stderr: &str) -> Option<String> {
    let line = stderr.lines().map(str::trim).find(|l| !l.is_empty())?;
    Some(line.strip_prefix("grid: ").unwrap_or(line).to_owned())
}

/// Detaches the mount on `dir`: umount2(MNT_DETACH) as root, else
/// `fusermount3 -u -z`. Not mounted (the helper unmounted it when it
/// lost gridd, or never mounted) is fine.
fn unmount(dir: &Path, root: bool) {
    if root {
        let Ok(c) = CString::new(dir.as_os_str().as_bytes()) else {
            return;
        };
        // SAFETY: umount2(2) with a NUL-terminated path we own.
        let rc = unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
        let e = io::Error::last_os_error();
        if rc != 0 && e.raw_os_error() != Some(libc::EINVAL) {
            eprintln!("gridd: /mnt/term: cannot unmount {}: {e}", dir.display());
        }
        return;
    }
    for tool in ["fusermount3", "fusermount"] {
        let ran = std::process::Command::new(tool)
            .args(["-u", "-z", "--"])
            .arg(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if ran.is_ok() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_helpers_error_loses_its_prefix() {
        assert_eq!(
            helper_error("grid: /n/bob: file not found\n").as_deref(),
            Some("/n/bob: file not found")
        );
        assert_eq!(helper_error("\n  \n"), None);
    }

    #[test]
    fn options_name_the_callers_import() {
        let t = GridTerm {
            grid: PathBuf::from("grid"),
            addr: "unix!/s".into(),
            root: true,
        };
        assert_eq!(t.options("bob"), "nosuid,nodev,aname=/n/bob,allow_other");
    }

    #[tokio::test]
    async fn a_missing_grid_command_is_a_clear_error() {
        let t = GridTerm {
            grid: PathBuf::from("/nonexistent/grid"),
            addr: "unix!/s".into(),
            root: false,
        };
        let err = t.mount("bob", Path::new("/tmp")).await.err();
        assert!(
            err.as_deref()
                .is_some_and(|e| e.starts_with("cannot run /nonexistent/grid")),
            "{err:?}"
        );
        let err = t.mount("a,b", Path::new("/tmp")).await.err();
        assert!(err.is_some_and(|e| e.contains("bad name")));
    }
}

//! The servers under test, each a real process owned by a guard that stops
//! it on drop: our `gridd` exporting the directory read-only, and Debian's
//! `diod` exporting the same directory. Both listen on loopback TCP only.

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// How long a server may take to start or to stop.
const LIMIT: Duration = Duration::from_secs(30);

/// A running server process; killed (after a polite SIGTERM) on drop.
pub struct ServerProc {
    /// "gridd" or "diod".
    pub name: &'static str,
    child: Option<Child>,
    /// Dial string of its loopback TCP listener.
    pub addr: String,
    /// The aname that attaches to the exported directory.
    pub aname: String,
    log: Log,
}

/// What a measurement needs of a server.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// Dial string.
    pub addr: String,
    /// The aname of the exported directory.
    pub aname: String,
    /// The process, for its CPU time.
    pub pid: u32,
}

/// Where a server's stderr went.
enum Log {
    Lines(Arc<Mutex<Vec<String>>>),
    File(PathBuf),
}

impl ServerProc {
    /// Starts `gridd --state STATE --listen tcp!127.0.0.1!0 --export b=DIR:ro`
    /// and waits for its `serving tcp!127.0.0.1!PORT` line.
    pub fn gridd(bin: &Path, state: &Path, dir: &Path) -> Result<ServerProc> {
        let mut cmd = Command::new(bin);
        cmd.arg("--state")
            .arg(state)
            .args(["--listen", "tcp!127.0.0.1!0", "--export"])
            .arg(format!("b={}:ro", dir.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        die_with_parent(&mut cmd);
        let mut child = cmd
            .spawn()
            .with_context(|| format!("cannot run {}", bin.display()))?;
        let stderr = child.stderr.take().context("gridd stderr")?;
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        {
            let lines = lines.clone();
            // Keeps draining stderr for the server's whole life.
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    if let Some((_, addr)) = line.split_once(" serving ") {
                        if addr.starts_with("tcp!") {
                            let _ = tx.send(addr.to_owned());
                        }
                    }
                    lines.lock().unwrap_or_else(|p| p.into_inner()).push(line);
                }
            });
        }
        let mut server = ServerProc {
            name: "gridd",
            child: Some(child),
            addr: String::new(),
            aname: "/files/b".into(),
            log: Log::Lines(lines),
        };
        match rx.recv_timeout(LIMIT) {
            Ok(addr) => server.addr = addr,
            Err(_) => bail!("gridd did not start serving; its log:\n{}", server.log()),
        }
        Ok(server)
    }

    /// Starts `diod -f -n -S -U root -d 0 -c /dev/null -l 127.0.0.1:PORT -e DIR`
    /// (without `-U root` when not root) and waits until it accepts.
    pub fn diod(bin: &Path, dir: &Path, log: &Path) -> Result<ServerProc> {
        let port = free_port()?;
        let listen = format!("127.0.0.1:{port}");
        let logfile = std::fs::File::create(log)?;
        let mut cmd = Command::new(bin);
        cmd.args(["-f", "-n", "-S"]);
        // -S squashes every user to the squash user; as root make that root.
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            cmd.args(["-U", "root"]);
        }
        cmd.args(["-d", "0", "-c", "/dev/null", "-l", &listen, "-e"])
            .arg(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(logfile);
        die_with_parent(&mut cmd);
        let child = cmd
            .spawn()
            .with_context(|| format!("cannot run {}", bin.display()))?;
        let mut server = ServerProc {
            name: "diod",
            child: Some(child),
            addr: format!("tcp!127.0.0.1!{port}"),
            aname: dir.to_str().context("export path is not UTF-8")?.to_owned(),
            log: Log::File(log.to_owned()),
        };
        let deadline = Instant::now() + LIMIT;
        loop {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Ok(server);
            }
            if let Some(Ok(Some(status))) = server.child.as_mut().map(Child::try_wait) {
                bail!("diod exited with {status}; its log:\n{}", server.log());
            }
            if Instant::now() > deadline {
                bail!(
                    "diod did not listen on {listen}; its log:\n{}",
                    server.log()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Where and what to attach, and the process id.
    pub fn endpoint(&self) -> Endpoint {
        Endpoint {
            addr: self.addr.clone(),
            aname: self.aname.clone(),
            pid: self.pid(),
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// Peak resident set size (VmHWM) in KiB, from /proc.
    pub fn peak_rss_kib(&self) -> Option<u64> {
        vm_hwm_kib(&format!("/proc/{}/status", self.pid()))
    }

    /// What the server printed so far.
    pub fn log(&self) -> String {
        match &self.log {
            Log::Lines(l) => l.lock().unwrap_or_else(|p| p.into_inner()).join("\n"),
            Log::File(p) => std::fs::read_to_string(p).unwrap_or_default(),
        }
    }

    /// SIGTERM, a bounded wait, then SIGKILL.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if let Ok(pid) = i32::try_from(child.id()) {
            // SAFETY: kill(2) on our own child, which has not been reaped.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for ServerProc {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Peak RSS in KiB from a /proc status file.
pub fn vm_hwm_kib(status: &str) -> Option<u64> {
    let text = std::fs::read_to_string(status).ok()?;
    let line = text.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// A port nobody listens on right now (diod needs one on its command line).
fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

/// The server gets SIGKILL if the benchmark dies without running its
/// destructors. (Servers are started from the main thread, whose exit is
/// what PR_SET_PDEATHSIG watches.)
fn die_with_parent(cmd: &mut Command) {
    // SAFETY: the closure runs between fork and exec and calls only
    // prctl(2), which is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
}

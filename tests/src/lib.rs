//! Helpers for the end-to-end tests: [`TestGrid`] starts a real `gridd`
//! in a temporary state directory and stops it on drop; [`bin`] finds the
//! workspace's binaries; [`run`] runs a command with a time limit.
//!
//! The binaries must be built first (`cargo build --workspace --bins`,
//! which `./test.sh` does): cargo does not build another package's
//! binaries for an integration test.

pub mod manpage;
pub mod netns;

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long anything in a test may take before it counts as hung.
pub const LIMIT: Duration = Duration::from_secs(30);

/// The path of a workspace binary, next to the test executable's directory.
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/debug/deps/test-xxxx -> target/debug/NAME
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target directory");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --workspace --bins` first (./test.sh does)",
        path.display()
    );
    path
}

/// Says why a test cannot run here, on stderr as `SKIP: WHY`. Under
/// `GRID_TESTS_STRICT=1`, which `./test.sh` sets once it has installed
/// every tool (as it does in CI, as root), a skip fails the test instead:
/// the suite must never pass by not running.
pub fn skip(why: &str) {
    if std::env::var_os("GRID_TESTS_STRICT").is_some_and(|v| v == "1") {
        panic!("GRID_TESTS_STRICT=1, and this test would skip: {why}");
    }
    eprintln!("SKIP: {why}");
}

/// The standard output of a command that must succeed (else a panic
/// naming `what`, with its status and standard error).
pub fn ok(out: Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what}: status {:?}, stderr {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The standard error of a command that must fail.
pub fn fails(out: Output, what: &str) -> String {
    assert!(
        !out.status.success(),
        "{what}: succeeded, stdout {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Whether a system tool is installed (tests that need one skip, loudly, when not;
/// `./test.sh` installs them).
pub fn have(tool: &str) -> bool {
    ["/usr/sbin", "/usr/bin", "/sbin", "/bin"]
        .iter()
        .any(|d| Path::new(d).join(tool).exists())
}

/// A running gridd.
pub struct TestGrid {
    /// The state directory (removed on drop).
    pub state: tempfile::TempDir,
    child: Option<Child>,
    log: Arc<Mutex<Vec<String>>>,
    /// Addresses it announced, in order (the unix socket first).
    pub addrs: Vec<String>,
}

impl TestGrid {
    /// Starts gridd with a fresh state directory and `args`, and waits
    /// until every listener is serving.
    pub fn start(args: &[&str]) -> TestGrid {
        let state = tempfile::tempdir().expect("state dir");
        Self::start_in(state, args)
    }

    /// Starts gridd on an existing state directory (for restart tests).
    pub fn start_in(state: tempfile::TempDir, args: &[&str]) -> TestGrid {
        let (child, log, rx) = spawn_gridd(
            Command::new(bin("gridd"))
                .arg("--state")
                .arg(state.path())
                .args(args),
        );
        let expected = 1 + args.iter().filter(|a| **a == "--listen").count();
        let mut grid = TestGrid {
            state,
            child: Some(child),
            log,
            addrs: Vec::new(),
        };
        let deadline = Instant::now() + LIMIT;
        while grid.addrs.len() < expected {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(addr) => grid.addrs.push(addr),
                Err(_) => panic!("gridd did not start serving; its log:\n{}", grid.log()),
            }
        }
        grid
    }

    /// Starts gridd and expects it to fail; returns its exit status and log.
    pub fn start_failing(args: &[&str]) -> (ExitStatus, String) {
        let state = tempfile::tempdir().expect("state dir");
        let out = run(Command::new(bin("gridd"))
            .arg("--state")
            .arg(state.path())
            .args(args));
        (
            out.status,
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// The unix socket's dial string.
    pub fn unix_addr(&self) -> &str {
        &self.addrs[0]
    }

    /// The unix socket's path.
    pub fn socket(&self) -> PathBuf {
        PathBuf::from(self.unix_addr().trim_start_matches("unix!"))
    }

    /// The first TCP address as `host:port` (for diod's tools and mount).
    pub fn tcp(&self) -> (String, u16) {
        let a = self
            .addrs
            .iter()
            .find(|a| a.starts_with("tcp!"))
            .expect("a tcp listener");
        let mut it = a.split('!').skip(1);
        let host = it.next().expect("host").to_owned();
        let port = it.next().and_then(|p| p.parse().ok()).expect("port");
        (host, port)
    }

    /// The first QUIC listener's dial string (`quic!HOST!PORT`).
    pub fn quic(&self) -> String {
        self.addrs
            .iter()
            .find(|a| a.starts_with("quic!"))
            .expect("a quic listener")
            .clone()
    }

    /// The `grid` command aimed at this gridd's unix socket.
    pub fn grid(&self) -> Command {
        let mut cmd = Command::new(bin("grid"));
        cmd.env_remove("GRID_ADDR").arg("-a").arg(self.unix_addr());
        cmd
    }

    /// `grid cat PATH` on this grid.
    pub fn cat(&self, path: &str) -> Output {
        run(self.grid().args(["cat", path]))
    }

    /// Writes one control message to `/ctl`; it must be accepted.
    pub fn ctl(&self, line: &str) {
        ok(
            run_with_input(
                self.grid().args(["write", "/ctl"]),
                format!("{line}\n").as_bytes(),
            ),
            line,
        );
    }

    /// Waits (up to [`LIMIT`]) until the file at `path` reads successfully
    /// and contains `needle` (proposals and discoveries travel in the
    /// background); returns its text.
    pub fn wait_for(&self, path: &str, needle: &str) -> String {
        let deadline = Instant::now() + LIMIT;
        loop {
            let out = self.cat(path);
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            if out.status.success() && text.contains(needle) {
                return text;
            }
            assert!(
                Instant::now() < deadline,
                "{path}: no '{needle}' in:\n{text}{}",
                String::from_utf8_lossy(&out.stderr)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The grid's public key, from the `key` line of its `/status`.
    pub fn key(&self) -> String {
        ok(self.cat("/status"), "/status")
            .lines()
            .find_map(|l| l.strip_prefix("key "))
            .expect("a key line")
            .to_owned()
    }

    /// Everything gridd printed so far.
    pub fn log(&self) -> String {
        self.log.lock().expect("log").join("\n")
    }

    /// SIGTERM, then wait (bounded) for a clean exit.
    pub fn stop(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("running");
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        wait_bounded(&mut child)
    }

    /// Stops gridd and hands back the state directory for a restart.
    pub fn stop_keep_state(mut self) -> tempfile::TempDir {
        let status = self.stop();
        assert!(
            status.success(),
            "gridd exited with {status}; log:\n{}",
            self.log()
        );
        let dir = tempfile::tempdir().expect("placeholder");
        std::mem::replace(&mut self.state, dir)
    }
}

/// The log a gridd has printed so far, one entry a line.
pub type GriddLog = Arc<Mutex<Vec<String>>>;

/// Spawns `cmd`, a gridd command line (perhaps behind `ip netns exec`),
/// collecting its standard error into a log and sending the address of
/// each of its `serving` lines, as they come, to the receiver.
pub fn spawn_gridd(cmd: &mut Command) -> (Child, GriddLog, Receiver<String>) {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot spawn gridd ({cmd:?}): {e}"));
    let stderr = child.stderr.take().expect("stderr");
    let log: GriddLog = Arc::new(Mutex::new(Vec::new()));
    let (tx, rx) = std::sync::mpsc::channel();
    let lines = log.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some((_, addr)) = line.split_once(" serving ") {
                let _ = tx.send(addr.to_owned());
            }
            if let Ok(mut l) = lines.lock() {
                l.push(line);
            }
        }
    });
    (child, log, rx)
}

impl Drop for TestGrid {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn wait_bounded(child: &mut Child) -> ExitStatus {
    let deadline = Instant::now() + LIMIT;
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("process did not exit within {LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Runs a command to completion with a time limit, capturing its output.
pub fn run(cmd: &mut Command) -> Output {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let out = child.stdout.take().expect("stdout");
    let err = child.stderr.take().expect("stderr");
    let out = std::thread::spawn(move || read_all(out));
    let err = std::thread::spawn(move || read_all(err));
    let status = wait_bounded(&mut child);
    Output {
        status,
        stdout: out.join().expect("stdout reader"),
        stderr: err.join().expect("stderr reader"),
    }
}

fn read_all(mut r: impl std::io::Read) -> Vec<u8> {
    let mut v = Vec::new();
    let _ = r.read_to_end(&mut v);
    v
}

/// Runs `cmd` with `input` on its standard input, within [`LIMIT`].
pub fn run_with_input(cmd: &mut Command, input: &[u8]) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let mut stdin = child.stdin.take().expect("stdin");
    let input = input.to_vec();
    let feeder = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let mut out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let out = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out.read_to_end(&mut v);
        v
    });
    let err = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err.read_to_end(&mut v);
        v
    });
    let deadline = Instant::now() + LIMIT;
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{cmd:?} did not finish within {LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let _ = feeder.join();
    Output {
        status,
        stdout: out.join().expect("stdout reader"),
        stderr: err.join().expect("stderr reader"),
    }
}

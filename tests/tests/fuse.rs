//! `grid mount` as a user meets it: real shell commands on a FUSE mount
//! of a real gridd, checked against the exported host directory; the
//! three ways a mount ends (`grid umount`, SIGTERM, gridd going away);
//! and `mount.grid` called the way mount(8) calls it.
//!
//! Skipped (with `SKIP:`) without /dev/fuse or fusermount3. Every mount
//! is undone by a guard even when a test fails, and every command runs
//! with a time limit, so a broken mount cannot hang the suite.

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use grid_tests::{bin, have, run, TestGrid, LIMIT};

fn fuse_missing() -> bool {
    if !Path::new("/dev/fuse").exists() || !have("fusermount3") {
        grid_tests::skip("FUSE needs /dev/fuse and fusermount3 (./test.sh installs fuse3)");
        return true;
    }
    false
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Whether something is mounted on `dir` (per /proc/self/mountinfo).
fn mounted(dir: &Path) -> bool {
    let info = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    let dir = dir.to_string_lossy();
    info.lines()
        .any(|l| l.split(' ').nth(4).is_some_and(|m| m == dir))
}

/// The pid of a process other than us that has `dir` among its
/// arguments: the server of a mount on it.
fn server_of(dir: &Path) -> Option<i32> {
    let want = dir.as_os_str().as_encoded_bytes();
    let me = std::process::id() as i32;
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|p| {
        let pid: i32 = p.file_name().to_str()?.parse().ok()?;
        let cmdline = std::fs::read(p.path().join("cmdline")).ok()?;
        (pid != me && cmdline.split(|&b| b == 0).any(|arg| arg == want)).then_some(pid)
    })
}

fn served(dir: &Path) -> bool {
    server_of(dir).is_some()
}

/// Waits, within [`LIMIT`], until `done()`.
fn wait_until(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + LIMIT;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A mount point that is unmounted (lazily, so a busy one goes too) when
/// dropped, even if the test failed first. Declared after the things it
/// uses, so it drops before them.
struct MountPoint {
    dir: tempfile::TempDir,
    path: PathBuf,
}

impl MountPoint {
    fn new() -> MountPoint {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().canonicalize().expect("canonical path");
        MountPoint { dir, path }
    }
}

impl Drop for MountPoint {
    fn drop(&mut self) {
        if mounted(&self.path) {
            let _ = Command::new("fusermount3")
                .args(["-u", "-z", "--"])
                .arg(&self.path)
                .output();
            if mounted(&self.path) {
                let _ = Command::new("umount").arg("-l").arg(&self.path).output();
            }
        }
        let _ = &self.dir;
    }
}

/// A child process killed on drop (a foreground `grid mount`).
struct Running(Option<Child>);

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn ok(out: Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what}: {}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `sh -c script` in `dir`, bounded.
fn sh(dir: &Path, script: &str) -> Output {
    run(Command::new("sh").arg("-c").arg(script).current_dir(dir))
}

fn grid(g: &TestGrid) -> Command {
    let mut cmd = Command::new(bin("grid"));
    cmd.env_remove("GRID_ADDR").arg("-a").arg(g.unix_addr());
    cmd
}

/// Writes `len` pseudo-random bytes to `path`.
fn noise_file(path: &Path, len: usize) {
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        seed ^= seed >> 12;
        seed ^= seed << 25;
        seed ^= seed >> 27;
        v.extend_from_slice(&seed.wrapping_mul(0x9e37_79b9_7f4a_7c15).to_le_bytes());
    }
    v.truncate(len);
    std::fs::write(path, v).expect("write noise");
}

#[test]
fn shell_commands_on_a_mount_reach_the_export() {
    if fuse_missing() {
        return;
    }
    let export = tempfile::tempdir().expect("tempdir");
    let other = tempfile::tempdir().expect("tempdir");
    let scratch = tempfile::tempdir().expect("tempdir");
    std::fs::write(export.path().join("hello.txt"), "hello from gridd\n").expect("write");
    let g = TestGrid::start(&["--export", &format!("t={}", export.path().display())]);
    let mnt = MountPoint::new();
    let m = &mnt.path;

    ok(run(grid(&g).args(["mount", "-b"]).arg(m)), "grid mount -b");
    assert!(
        mounted(m),
        "grid mount -b returned before the mount was live"
    );

    assert_eq!(
        ok(sh(m, "ls"), "ls").replace("cpu\n", ""),
        "ctl\nfiles\nn\nnet\nns\nstatus\n"
    );
    assert!(ok(sh(m, "cat status"), "cat status").starts_with("name "));
    assert_eq!(ok(sh(m, "ls files"), "ls files"), "t\n");
    let t = m.join("files/t");
    let host = export.path();
    assert_eq!(ok(sh(&t, "cat hello.txt"), "cat"), "hello from gridd\n");

    ok(sh(&t, "echo x > f && echo y >> f"), "> and >>");
    assert_eq!(ok(sh(&t, "cat f"), "cat f"), "x\ny\n");
    assert_eq!(
        std::fs::read_to_string(host.join("f")).expect("f"),
        "x\ny\n"
    );
    ok(sh(&t, "echo z > f"), "> truncates");
    assert_eq!(std::fs::read_to_string(host.join("f")).expect("f"), "z\n");

    ok(sh(&t, "mkdir d && cp f d/g && mv d/g d/h"), "mkdir cp mv");
    assert_eq!(ok(sh(&t, "ls d"), "ls d"), "h\n");
    assert_eq!(
        std::fs::read_to_string(host.join("d/h")).expect("d/h"),
        "z\n"
    );
    assert!(!host.join("d/g").exists());
    assert_eq!(
        ok(sh(&t, "stat -c '%s %F %a' d/h"), "stat"),
        "2 regular file 644\n"
    );
    ok(
        sh(&t, "chmod 600 d/h && touch -d 2001-02-03 d/h"),
        "chmod touch",
    );
    assert_eq!(
        ok(sh(&t, "stat -c '%a %y' d/h"), "stat after"),
        ok(sh(&host.join("d"), "stat -c '%a %y' h"), "host stat")
    );
    ok(sh(&t, "rm d/h && rmdir d && rm f"), "rm rmdir");
    assert!(!host.join("d").exists() && !host.join("f").exists());
    let err = sh(&t, "rm nope");
    assert!(!err.status.success());
    assert!(
        String::from_utf8_lossy(&err.stderr).contains("No such file or directory"),
        "{}",
        String::from_utf8_lossy(&err.stderr)
    );

    // 20 MiB both ways, byte for byte.
    noise_file(&scratch.path().join("big"), 20 << 20);
    let big = scratch.path().join("big");
    ok(
        run(Command::new("cp").arg(&big).arg(t.join("big"))),
        "cp in",
    );
    ok(
        run(Command::new("cmp").arg(&big).arg(host.join("big"))),
        "cmp host",
    );
    ok(
        run(Command::new("cp")
            .arg(t.join("big"))
            .arg(scratch.path().join("back"))),
        "cp out",
    );
    ok(
        run(Command::new("cmp")
            .arg(&big)
            .arg(scratch.path().join("back"))),
        "cmp back",
    );

    // The control file, through the mount.
    let line = format!("echo 'export u {}' > ctl", other.path().display());
    ok(sh(m, &line), "export through the mount");
    assert_eq!(ok(sh(m, "ls files"), "ls files"), "t\nu\n");
    let bad = sh(m, "echo 'exce foo' > ctl");
    assert!(!bad.status.success(), "a bad ctl line must fail the write");
    ok(sh(m, "echo 'unexport u' > ctl"), "unexport");
    // Names are cached for a second at most.
    wait_until("u disappears", || {
        ok(sh(m, "ls files"), "ls files") == "t\n"
    });
    assert!(ok(sh(m, "df ."), "df").contains(&m.to_string_lossy().into_owned()));

    ok(run(grid(&g).arg("umount").arg(m)), "grid umount");
    assert!(!mounted(m));
    wait_until("the mount's process exits", || !served(m));
}

#[test]
fn sigterm_unmounts_a_foreground_mount() {
    if fuse_missing() {
        return;
    }
    let g = TestGrid::start(&[]);
    let mnt = MountPoint::new();
    let m = &mnt.path;
    let child = grid(&g)
        .arg("mount")
        .arg(m)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn grid mount");
    let mut mount = Running(Some(child));
    wait_until("the foreground mount is live", || mounted(m));
    assert_eq!(
        ok(sh(m, "ls"), "ls").replace("cpu\n", ""),
        "ctl\nfiles\nn\nnet\nns\nstatus\n"
    );
    let pid = mount.0.as_ref().map(|c| c.id()).expect("child");
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    let mut child = mount.0.take().expect("child");
    let deadline = Instant::now() + LIMIT;
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        assert!(Instant::now() < deadline, "grid mount ignored SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        use std::io::Read;
        let _ = e.read_to_string(&mut err);
    }
    assert!(status.success(), "{status}: {err}");
    assert!(!mounted(m), "SIGTERM must unmount");

    // The same for a mount in the background.
    ok(run(grid(&g).args(["mount", "-b"]).arg(m)), "grid mount -b");
    assert!(mounted(m));
    let pid = server_of(m).expect("the background mount's process");
    // SAFETY: kill(2) of the mount process this test started.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    wait_until("SIGTERM unmounts the background mount", || !mounted(m));
    wait_until("the background mount's process exits", || !served(m));
}

#[test]
fn a_mount_goes_away_with_its_gridd() {
    if fuse_missing() {
        return;
    }
    let mut g = TestGrid::start(&[]);
    let mnt = MountPoint::new();
    let m = &mnt.path;
    ok(run(grid(&g).args(["mount", "-b"]).arg(m)), "grid mount -b");
    assert!(mounted(m));
    g.stop();
    wait_until("the mount is gone", || !mounted(m));
    wait_until("the mount's process exits", || !served(m));
}

#[test]
fn mount_grid_as_mount8_runs_it() {
    if fuse_missing() {
        return;
    }
    if !is_root() {
        grid_tests::skip("mount(8) helpers run as root");
        return;
    }
    let g = TestGrid::start(&[]);
    // What `install` would put in /sbin: a link named mount.grid.
    let sbin = tempfile::tempdir().expect("tempdir");
    let helper = sbin.path().join("mount.grid");
    symlink(bin("grid"), &helper).expect("symlink");
    let mnt = MountPoint::new();
    let m = &mnt.path;

    // -f: everything but the mount.
    ok(
        run(Command::new(&helper)
            .arg(g.unix_addr())
            .arg(m)
            .args(["-f", "-o", "rw,_netdev"])),
        "mount.grid -f",
    );
    assert!(!mounted(m));

    let out = run(Command::new(&helper)
        .arg("unix!/nonexistent/gridd.sock")
        .arg(m));
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "mount.grid: unix!/nonexistent/gridd.sock: no such file or directory\n"
    );
    assert!(!mounted(m));
    let out = run(Command::new(&helper)
        .arg(g.unix_addr())
        .arg(m)
        .args(["-o", "defaults,bogus"]));
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "mount.grid: unknown mount option 'bogus'\n"
    );
    let out = run(Command::new(&helper).arg("onlyone"));
    assert_eq!(out.status.code(), Some(1));

    // As mount(8) runs it for `mount -t grid SPEC DIR` from fstab.
    ok(
        run(Command::new(&helper).arg(g.unix_addr()).arg(m).args([
            "-n",
            "-o",
            "rw,nosuid,_netdev,x-systemd.after=gridd.service",
        ])),
        "mount.grid",
    );
    assert!(mounted(m), "mount.grid returned before the mount was live");
    assert!(ok(sh(m, "cat status"), "cat status").starts_with("name "));
    ok(run(grid(&g).arg("umount").arg(m)), "grid umount");
    assert!(!mounted(m));
    wait_until("the mount's process exits", || !served(m));
}

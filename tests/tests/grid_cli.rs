//! The `grid` command against a real gridd: every subcommand through `-a`
//! and through `GRID_ADDR`, error lines and exit codes, control messages,
//! binary data, a closed pipe, and state that survives a restart.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use grid_tests::{bin, run, run_with_input, TestGrid, LIMIT};

/// How the command finds gridd.
#[derive(Debug, Clone, Copy)]
enum Addr {
    Flag,
    Env,
}

/// `grid` aimed at `g`.
fn grid(g: &TestGrid, how: Addr) -> Command {
    let mut cmd = Command::new(bin("grid"));
    match how {
        Addr::Flag => {
            cmd.env_remove("GRID_ADDR").arg("-a").arg(g.unix_addr());
        }
        Addr::Env => {
            cmd.env("GRID_ADDR", g.unix_addr());
        }
    }
    cmd
}

/// Asserts success and returns standard output as text.
fn ok(out: Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what}: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Asserts exit status `code` and returns standard error as text.
fn fails(out: Output, code: i32, what: &str) -> String {
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(code), "{what}: stderr {err}");
    err
}

fn export_arg(dir: &Path) -> String {
    format!("t={}", dir.display())
}

/// Deterministic pseudo-random bytes (xorshift64*).
fn noise(len: usize, mut seed: u64) -> Vec<u8> {
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        seed ^= seed >> 12;
        seed ^= seed << 25;
        seed ^= seed >> 27;
        v.extend_from_slice(&seed.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    v.truncate(len);
    v
}

#[test]
fn every_subcommand_by_flag_and_by_environment() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("hello.txt"), "hello from gridd\n").expect("write");
    let g = TestGrid::start(&["--export", &export_arg(dir.path())]);
    for how in [Addr::Flag, Addr::Env] {
        let what = format!("{how:?}");
        let status = ok(run(grid(&g, how).arg("status")), &what);
        assert!(status.starts_with("name "), "{status}");
        assert!(status.contains("\nversion "), "{status}");

        // ls sorts; /cpu is there when the job service could start.
        let root = ok(run(grid(&g, how).args(["ls", "/"])), &what);
        let root = root.replace("cpu\n", "");
        assert_eq!(root, "ctl\nfiles\nn\nnet\nns\nstatus\n");
        assert_eq!(
            ok(run(grid(&g, how).args(["ls", "/status", "files"])), &what),
            "/status\nt\n"
        );
        let long = ok(run(grid(&g, how).args(["ls", "-l", "/files/t"])), &what);
        let line = long.lines().next().expect("a line");
        let f: Vec<&str> = line.split(' ').collect();
        assert_eq!(f.len(), 7, "{line}");
        assert_eq!(f[0], "-rw-r--r--", "{line}");
        assert_eq!(f[3], "17", "{line}");
        assert_eq!(f[4].len(), 10, "date {line}");
        assert_eq!(f[5].len(), 5, "time {line}");
        assert_eq!(f[6], "hello.txt", "{line}");
        let root = ok(run(grid(&g, how).args(["ls", "-l", "/"])), &what);
        assert!(root
            .lines()
            .any(|l| l.starts_with("dr-xr-xr-x ") && l.ends_with(" files")));

        assert_eq!(
            ok(
                run(grid(&g, how).args(["cat", "/files/t/hello.txt"])),
                &what
            ),
            "hello from gridd\n"
        );
        ok(run(grid(&g, how).args(["mkdir", "/files/t/d"])), &what);
        assert!(dir.path().join("d").is_dir());
        ok(
            run_with_input(grid(&g, how).args(["write", "/files/t/d/f"]), b"one\ntwo\n"),
            &what,
        );
        assert_eq!(
            std::fs::read_to_string(dir.path().join("d/f")).expect("read"),
            "one\ntwo\n"
        );
        // An existing file is truncated first, as by `>`.
        ok(
            run_with_input(grid(&g, how).args(["write", "files/t/d/f"]), b"3\n"),
            &what,
        );
        assert_eq!(
            ok(
                run(grid(&g, how).args(["cat", "/files/t/d/f", "/files/t/hello.txt"])),
                &what
            ),
            "3\nhello from gridd\n"
        );
        let stat = ok(run(grid(&g, how).args(["stat", "/files/t/d/f"])), &what);
        let keys: Vec<&str> = stat
            .lines()
            .map(|l| l.split_once(' ').map_or(l, |(k, _)| k))
            .collect();
        assert_eq!(
            keys,
            ["name", "qid", "type", "mode", "size", "mtime", "uid", "gid"],
            "{stat}"
        );
        assert!(stat.contains("name f\n"), "{stat}");
        assert!(stat.contains("type file\n"), "{stat}");
        assert!(stat.contains("size 2\n"), "{stat}");
        let dstat = ok(run(grid(&g, how).args(["stat", "/files/t/d"])), &what);
        assert!(dstat.contains("type dir\n"), "{dstat}");
        assert_eq!(
            ok(run(grid(&g, how).args(["ls", "/files/t/d"])), &what),
            "f\n"
        );
        ok(run(grid(&g, how).args(["rm", "/files/t/d/f"])), &what);
        ok(run(grid(&g, how).args(["rm", "/files/t/d"])), &what);
        assert!(!dir.path().join("d").exists());

        let help = ok(run(grid(&g, how).arg("help")), &what);
        for cmd in [
            "ls", "cat", "write", "stat", "mkdir", "rm", "status", "mount", "umount",
        ] {
            let listed = help
                .lines()
                .any(|l| l.starts_with("grid ") && l.split(' ').any(|w| w == cmd));
            assert!(listed, "{cmd}: {help}");
        }
    }
}

#[test]
fn errors_name_the_path_and_set_the_exit_status() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("a"), "A\n").expect("write");
    std::fs::create_dir(dir.path().join("full")).expect("mkdir");
    std::fs::write(dir.path().join("full/x"), "x").expect("write");
    let g = TestGrid::start(&["--export", &export_arg(dir.path())]);
    let how = Addr::Flag;

    let err = fails(
        run(grid(&g, how).args(["cat", "/files/t/nope"])),
        1,
        "missing",
    );
    assert_eq!(err, "grid: /files/t/nope: file not found\n");
    // The other paths are still done.
    let out = run(grid(&g, how).args(["cat", "/files/t/nope", "/files/t/a"]));
    assert_eq!(out.stdout, b"A\n");
    assert_eq!(
        fails(out, 1, "one missing"),
        "grid: /files/t/nope: file not found\n"
    );
    let err = fails(
        run(grid(&g, how).args(["ls", "/nope/deeper"])),
        1,
        "missing dir",
    );
    assert_eq!(err, "grid: /nope/deeper: file not found\n");
    let err = fails(run(grid(&g, how).args(["rm", "/files/t/full"])), 1, "rm");
    assert!(err.starts_with("grid: /files/t/full: "), "{err}");
    let err = fails(
        run(grid(&g, how).args(["mkdir", "/files/t/full"])),
        1,
        "mkdir",
    );
    assert_eq!(err, "grid: /files/t/full: file already exists\n");
    let err = fails(
        run_with_input(grid(&g, how).args(["write", "/files/t/full"]), b"x"),
        1,
        "write dir",
    );
    assert_eq!(err, "grid: /files/t/full: is a directory\n");
    let err = fails(
        run_with_input(grid(&g, how).args(["write", "/files/t/no/such"]), b"x"),
        1,
        "write in missing dir",
    );
    assert_eq!(err, "grid: /files/t/no/such: file not found\n");
    let err = fails(
        run_with_input(grid(&g, how).args(["write", "/status"]), b"x"),
        1,
        "write read-only",
    );
    assert!(err.starts_with("grid: /status: "), "{err}");

    // Usage errors exit 2, with clap's message.
    for bad in [
        &["frob"][..],
        &["cat"],
        &["ls"],
        &["write"],
        &["stat", "a", "b"],
    ] {
        let err = fails(run(grid(&g, how).args(bad)), 2, &format!("{bad:?}"));
        assert!(err.contains("Usage") || err.contains("usage"), "{err}");
    }
    ok(run(grid(&g, how).arg("--help")), "--help");

    // Not about a path: the address is named.
    let err = fails(
        run(Command::new(bin("grid")).args(["-a", "unix!/nonexistent/gridd.sock", "status"])),
        1,
        "no server",
    );
    assert_eq!(
        err,
        "grid: unix!/nonexistent/gridd.sock: no such file or directory\n"
    );
    let err = fails(
        run(Command::new(bin("grid")).args(["-a", "udp!x!1", "status"])),
        1,
        "bad dial string",
    );
    assert!(err.starts_with("grid: udp!x!1: "), "{err}");
}

#[test]
fn control_messages_export_and_unexport() {
    let dir = tempfile::tempdir().expect("tempdir");
    let other = tempfile::tempdir().expect("tempdir");
    std::fs::write(other.path().join("song"), "la\n").expect("write");
    let g = TestGrid::start(&["--export", &export_arg(dir.path())]);
    let how = Addr::Env;

    let err = fails(
        run_with_input(grid(&g, how).args(["write", "/ctl"]), b"exce foo\n"),
        1,
        "bad verb",
    );
    assert!(err.contains("ctl: unknown verb 'exce'"), "{err}");
    assert!(err.starts_with("grid: /ctl: "), "{err}");

    let line = format!("export u {} ro\n", other.path().display());
    ok(
        run_with_input(grid(&g, how).args(["write", "/ctl"]), line.as_bytes()),
        "export",
    );
    assert_eq!(
        ok(run(grid(&g, how).args(["ls", "/files"])), "ls"),
        "t\nu\n"
    );
    assert_eq!(
        ok(run(grid(&g, how).args(["cat", "/files/u/song"])), "cat"),
        "la\n"
    );
    let err = fails(
        run_with_input(grid(&g, how).args(["write", "/files/u/new"]), b"x"),
        1,
        "read-only export",
    );
    assert!(err.starts_with("grid: /files/u/new: "), "{err}");

    // Several lines in one write are applied in order; a bad one stops
    // the rest and is reported.
    let lines = format!(
        "unexport u\nexport v {}\nexport v {}\n",
        other.path().display(),
        other.path().display()
    );
    let err = fails(
        run_with_input(grid(&g, how).args(["write", "/ctl"]), lines.as_bytes()),
        1,
        "second export of v",
    );
    assert!(err.contains("already exported"), "{err}");
    assert_eq!(
        ok(run(grid(&g, how).args(["ls", "/files"])), "ls"),
        "t\nv\n"
    );
    ok(
        run_with_input(grid(&g, how).args(["write", "/ctl"]), b"unexport v"),
        "unexport without newline",
    );
    assert_eq!(ok(run(grid(&g, how).args(["ls", "/files"])), "ls"), "t\n");
}

#[test]
fn binary_data_round_trips() {
    let dir = tempfile::tempdir().expect("tempdir");
    let g = TestGrid::start(&["--export", &export_arg(dir.path())]);
    let data = noise(3 << 20, 0x9e37_79b9_7f4a_7c15);
    ok(
        run_with_input(grid(&g, Addr::Flag).args(["write", "/files/t/blob"]), &data),
        "write",
    );
    assert!(std::fs::read(dir.path().join("blob")).expect("read") == data);
    let out = run(grid(&g, Addr::Flag).args(["cat", "/files/t/blob"]));
    assert!(out.status.success());
    assert_eq!(out.stdout.len(), data.len());
    assert!(out.stdout == data, "cat returned different bytes");

    // A shorter write leaves no tail of the old contents.
    ok(
        run_with_input(
            grid(&g, Addr::Flag).args(["write", "/files/t/blob"]),
            b"tiny",
        ),
        "rewrite",
    );
    assert_eq!(
        std::fs::read(dir.path().join("blob")).expect("read"),
        b"tiny"
    );
}

#[test]
fn a_closed_pipe_is_success() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("big"), noise(8 << 20, 7)).expect("write");
    let g = TestGrid::start(&["--export", &export_arg(dir.path())]);
    let mut child = grid(&g, Addr::Flag)
        .args(["cat", "/files/t/big"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut first = [0u8; 1];
    child
        .stdout
        .take()
        .expect("stdout")
        .read_exact(&mut first)
        .expect("a byte");
    // The read end is closed here (dropped), as `| head -c 1` would.
    let mut err = String::new();
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut err)
        .expect("stderr");
    let deadline = Instant::now() + LIMIT;
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        assert!(Instant::now() < deadline, "grid cat did not stop");
        std::thread::sleep(Duration::from_millis(5));
    };
    assert!(status.success(), "{status}: {err}");
    assert_eq!(err, "");
}

#[test]
fn exports_and_files_survive_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let other = tempfile::tempdir().expect("tempdir");
    let export = export_arg(dir.path());
    let g = TestGrid::start(&["--export", &export]);
    let line = format!("export u {}\n", other.path().display());
    ok(
        run_with_input(
            grid(&g, Addr::Flag).args(["write", "/ctl"]),
            line.as_bytes(),
        ),
        "export",
    );
    ok(
        run_with_input(
            grid(&g, Addr::Flag).args(["write", "/files/u/kept"]),
            b"kept\n",
        ),
        "write u",
    );
    ok(
        run_with_input(
            grid(&g, Addr::Flag).args(["write", "/files/t/also"]),
            b"also\n",
        ),
        "write t",
    );
    let state = g.stop_keep_state();

    let g = TestGrid::start_in(state, &["--export", &export]);
    assert_eq!(
        ok(run(grid(&g, Addr::Flag).args(["ls", "/files"])), "ls"),
        "t\nu\n"
    );
    assert_eq!(
        ok(
            run(grid(&g, Addr::Flag).args(["cat", "/files/u/kept", "/files/t/also"])),
            "cat"
        ),
        "kept\nalso\n"
    );
}

#[test]
fn binds_through_ctl_show_in_ns_and_survive_a_restart() {
    let g = TestGrid::start(&[]);
    let bind = b"bind /status /files/st\nbind -a /files /files/again\n";
    ok(
        run_with_input(grid(&g, Addr::Flag).args(["write", "/ctl"]), bind),
        "bind",
    );
    let status = ok(
        run(grid(&g, Addr::Flag).args(["cat", "/files/st"])),
        "cat bound",
    );
    assert!(status.starts_with("name "), "{status}");
    let ns = ok(run(grid(&g, Addr::Flag).args(["cat", "/ns"])), "cat /ns");
    assert!(ns.contains("bind /status /files/st"), "{ns}");
    assert!(ns.contains("/files /files/again"), "{ns}");
    let err = fails(
        run_with_input(
            grid(&g, Addr::Flag).args(["write", "/ctl"]),
            b"bind /nope /x\n",
        ),
        1,
        "bad bind",
    );
    assert!(err.contains("ctl: ns: "), "{err}");

    let state = g.stop_keep_state();
    assert!(state.path().join("ns").exists());
    let g = TestGrid::start_in(state, &[]);
    let status = ok(
        run(grid(&g, Addr::Env).args(["cat", "/files/st"])),
        "cat after restart",
    );
    assert!(status.starts_with("name "), "{status}");
    ok(
        run_with_input(
            grid(&g, Addr::Env).args(["write", "/ctl"]),
            b"unmount /files/st\n",
        ),
        "unmount",
    );
    fails(
        run(grid(&g, Addr::Env).args(["cat", "/files/st"])),
        1,
        "unmounted",
    );
}

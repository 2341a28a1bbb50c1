//! `/mnt/term`: a job that peer b runs on grid a sees, at `/mnt/term`,
//! what b grants a, and nothing else (as in Plan 9's cpu(1)). Two real
//! gridd processes on loopback, paired over QUIC; the jobs are run with
//! `grid run --on a` from b.
//!
//! Needs root (jobs then run as nobody, in namespaces of their own) and
//! FUSE (/dev/fuse and fusermount3); says SKIP otherwise.

use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use grid_tests::{have, ok, run, run_with_input, TestGrid};
use ninep::Dialect;
use ninep_client::{Client, ClientConfig, OpenFlags};

const QUIC: &str = "quic!127.0.0.1!0";

fn skip_reason() -> Option<&'static str> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Some(
            "/mnt/term is tested as root (jobs run as another uid, FUSE with allow_other)",
        );
    }
    if !Path::new("/dev/fuse").exists() || !have("fusermount3") {
        return Some("FUSE needs /dev/fuse and fusermount3 (./test.sh installs fuse3)");
    }
    if !Path::new("/mnt").is_dir() {
        return Some("this machine has no /mnt for the job's /mnt/term");
    }
    None
}

fn text(out: &Output) -> String {
    format!(
        "status {:?}\nstdout {}\nstderr {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `grid run --on a -- ARGV` from `b`.
fn run_on_a(b: &TestGrid, argv: &[&str]) -> Output {
    run(b.grid().args(["run", "--on", "a", "--"]).args(argv))
}

/// The number of b's running job on a whose command is `command`, once
/// there is one (up to 20 s).
fn running_job(b: &TestGrid, command: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let out = run(b.grid().args(["cat", "/n/a/cpu/jobs"]));
        let jobs = String::from_utf8_lossy(&out.stdout).into_owned();
        // N OWNER STATE COMMAND
        let found = jobs.lines().find_map(|l| {
            let f: Vec<&str> = l.splitn(4, ' ').collect();
            (f.len() == 4 && f[2] == "running" && f[3] == command).then(|| f[0].to_owned())
        });
        if let Some(n) = found {
            return n;
        }
        assert!(
            Instant::now() < deadline,
            "no running '{command}' in:\n{jobs}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Mounts of the host's mount namespace that `a`'s `/mnt/term` helpers
/// made: their source names a's socket.
fn term_mounts(a: &TestGrid) -> Vec<String> {
    let socket = a.socket().display().to_string();
    std::fs::read_to_string("/proc/self/mountinfo")
        .expect("mountinfo")
        .lines()
        .filter(|l| l.contains(&socket))
        .map(str::to_owned)
        .collect()
}

/// `grid mount` processes serving `a`'s `/mnt/term`s: their command
/// line names a's socket.
fn term_helpers(a: &TestGrid) -> Vec<String> {
    let socket = a.socket().display().to_string();
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Ok(cmdline) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.contains(&socket) && cmdline.contains(" mount ") {
            found.push(format!("{}: {cmdline}", e.file_name().to_string_lossy()));
        }
    }
    found
}

/// Nothing of a job's `/mnt/term` outlives it: no mount, no helper.
fn assert_nothing_left(a: &TestGrid, after: &str) {
    assert_eq!(term_mounts(a), Vec::<String>::new(), "mounts after {after}");
    assert_eq!(
        term_helpers(a),
        Vec::<String>::new(),
        "helpers after {after}"
    );
}

#[test]
fn a_peers_job_sees_what_the_caller_grants_at_mnt_term() {
    if let Some(why) = skip_reason() {
        grid_tests::skip(&format!("cpu_term: {why}"));
        return;
    }
    let files = tempfile::tempdir().expect("tempdir");
    let (public, private) = (files.path().join("pub"), files.path().join("priv"));
    std::fs::create_dir(&public).expect("mkdir pub");
    std::fs::create_dir(&private).expect("mkdir priv");
    std::fs::write(public.join("f"), "from b\n").expect("write f");
    std::fs::write(private.join("secret"), "not for a\n").expect("write secret");
    // The job runs as nobody; the export is read by gridd (root).
    let a = TestGrid::start(&["--listen", QUIC]);
    let b = TestGrid::start(&[
        "--listen",
        QUIC,
        "--export",
        &format!("pub={}", public.display()),
        "--export",
        &format!("priv={}", private.display()),
    ]);

    a.ctl(&format!("peer add b {} {}", b.key(), b.quic()));
    b.ctl(&format!("peer add a {} {}", a.key(), a.quic()));
    a.ctl("offer b cpu");
    b.ctl("request a cpu");
    b.ctl("offer a files/pub r");
    a.ctl("request b files/pub r");
    b.wait_for("/net/peers/a/policy", "received cpu");
    a.wait_for("/net/peers/b/policy", "received files/pub r");

    // b's file, read by a job on a.
    let out = run_on_a(&b, &["cat", "/mnt/term/files/pub/f"]);
    assert_eq!(ok(out, "cat /mnt/term/files/pub/f"), "from b\n");
    assert_nothing_left(&a, "cat");

    // Only what b grants: pub, not priv.
    let out = run_on_a(&b, &["ls", "/mnt/term/files"]);
    assert_eq!(ok(out, "ls /mnt/term/files"), "pub\n");
    let out = run_on_a(&b, &["cat", "/mnt/term/files/priv/secret"]);
    assert!(!out.status.success(), "priv: {}", text(&out));
    assert!(!String::from_utf8_lossy(&out.stdout).contains("not for a"));

    // The grant is read-only: writing fails, and nothing arrives at b.
    let out = run_on_a(&b, &["sh", "-c", "echo from a > /mnt/term/files/pub/new"]);
    assert!(!out.status.success(), "write: {}", text(&out));
    assert!(!public.join("new").exists());
    assert_nothing_left(&a, "the failed write");

    // The job's own /mnt is not the host's: /mnt/term is all it holds,
    // and nothing was made in the host's /mnt.
    let out = run_on_a(&b, &["ls", "/mnt"]);
    assert_eq!(ok(out, "ls /mnt"), "term\n");
    assert!(!Path::new("/mnt/term").exists() || Path::new("/mnt/term").is_dir());

    // gridd's state directory is still hidden from the job (a peer's job
    // has a root of its own, where it does not exist at all).
    let state = a.state.path().display().to_string();
    let out = run_on_a(&b, &["ls", "-A", &state]);
    assert!(
        !out.status.success() || out.stdout.is_empty(),
        "state directory visible: {}",
        text(&out)
    );

    // The owner's own jobs have no /mnt/term.
    let host_has_term = Path::new("/mnt/term").exists();
    let out = run(a.grid().args(["run", "--", "test", "-e", "/mnt/term"]));
    assert_eq!(
        out.status.code(),
        Some(if host_has_term { 0 } else { 1 }),
        "owner's job: {}",
        text(&out)
    );

    // A job that is still running has its mount; its removal takes it.
    let mut sleeper = b
        .grid()
        .args(["run", "--on", "a", "--", "sleep", "60"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("grid run sleep");
    let n = running_job(&b, "sleep 60");
    assert_eq!(term_mounts(&a).len(), 1, "{:?}", term_mounts(&a));
    assert_eq!(term_helpers(&a).len(), 1, "{:?}", term_helpers(&a));
    ok(
        run_with_input(
            b.grid().args(["write", &format!("/n/a/cpu/{n}/ctl")]),
            b"rm\n",
        ),
        "rm",
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while !(term_mounts(&a).is_empty() && term_helpers(&a).is_empty()) {
        assert!(
            Instant::now() < deadline,
            "the removed job's mount stayed: {:?} {:?}\na's log:\n{}",
            term_mounts(&a),
            term_helpers(&a),
            a.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = sleeper.kill();
    let _ = sleeper.wait();

    // When b grants nothing, /mnt/term is an empty directory.
    b.ctl("offer a");
    a.wait_for("/net/peers/b/policy", "received \n");
    let out = run_on_a(&b, &["ls", "-A", "/mnt/term"]);
    assert_eq!(ok(out, "ls -A /mnt/term"), "");
    assert_nothing_left(&a, "the empty grant");
}

#[test]
fn a_job_whose_callers_namespace_cannot_be_mounted_fails_and_says_why() {
    if let Some(why) = skip_reason() {
        grid_tests::skip(&format!("cpu_term: {why}"));
        return;
    }
    let a = TestGrid::start(&["--listen", QUIC]);
    let b = TestGrid::start(&["--listen", QUIC]);
    // a knows b by key but at an address where nothing listens, so a
    // cannot import b; b reaches a.
    a.ctl(&format!("peer add b {} quic!127.0.0.1!9", b.key()));
    b.ctl(&format!("peer add a {} {}", a.key(), a.quic()));
    a.ctl("offer b cpu");
    b.ctl("request a cpu");
    b.wait_for("/net/peers/a/policy", "received cpu");

    let out = run_on_a(&b, &["true"]);
    assert!(!out.status.success(), "{}", text(&out));
    assert_nothing_left(&a, "the failed mount");

    // By hand, to read the status before anyone removes the job: across
    // two grids over 9P2000.L only the errno of the failed exec arrives,
    // and the status says why.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let status = rt.block_on(failed_exec_status(&b));
    eprintln!("the failed job's status: {status}");
    assert!(
        status.starts_with("failed ") && status.contains(" /mnt/term: "),
        "{status}"
    );
    assert_nothing_left(&a, "the second failed mount");
}

/// From `b`: clone a job on a, `exec true` (which must fail), and read
/// the job's status.
async fn failed_exec_status(b: &TestGrid) -> String {
    let config = ClientConfig {
        dialect: Dialect::U,
        ..ClientConfig::default()
    };
    let client = Client::dial_with(b.unix_addr(), config)
        .await
        .expect("dial b");
    let root = client.attach_as("test", 0, "").await.expect("attach");
    let mut ctl = root
        .walk(&["n", "a", "cpu", "clone"])
        .await
        .expect("walk clone");
    ctl.open(OpenFlags::RDWR).await.expect("open clone");
    let n = String::from_utf8(ctl.read(0, 64).await.expect("read N")).expect("utf8");
    let n = n.trim();
    let exec = ctl.write(0, b"exec true\n").await;
    assert!(exec.is_err(), "exec succeeded");
    let mut status = root
        .walk(&["n", "a", "cpu", n, "status"])
        .await
        .expect("walk status");
    status.open(OpenFlags::READ).await.expect("open status");
    let text = status.read(0, 4096).await.expect("read status");
    let _ = ctl.write(0, b"rm\n").await;
    String::from_utf8_lossy(&text).into_owned()
}

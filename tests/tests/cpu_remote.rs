//! Jobs on a peer's `/cpu`: real gridd processes on loopback, paired with
//! `peer add` and QUIC listeners. Grid a offers grid b `cpu jobs=2
//! mem=256M` and grid c nothing; b runs jobs on a with `grid run --on a`
//! and through `/n/a/cpu` files, under that share and seeing only its own
//! jobs; c sees no cpu at all; and when b's gridd dies, a kills b's jobs.
//! A peer's job sees a's system files only, never a's private ones.

use std::time::{Duration, Instant};

use grid_tests::{ok, run, run_with_input, skip, TestGrid};
use ninep::Dialect;
use ninep_client::{Client, ClientConfig, Fid, OpenFlags};

const QUIC: &str = "quic!127.0.0.1!0";

/// `x` and `y` know each other; `x` offers `y` `offer`, and `y` asks for
/// `cpu` (the grant is the overlap: what `x` offers of cpu).
fn pair(x: (&str, &TestGrid), y: (&str, &TestGrid), offer: &str) {
    let ((xn, xg), (yn, yg)) = (x, y);
    xg.ctl(&format!("peer add {yn} {} {}", yg.key(), yg.quic()));
    xg.ctl(&format!("offer {yn} '{offer}'"));
    yg.ctl(&format!("peer add {xn} {} {}", xg.key(), xg.quic()));
    yg.ctl(&format!("request {xn} cpu"));
    xg.wait_for(&format!("/net/peers/{yn}/policy"), "their-request cpu\n");
}

/// `grid run ARGS` on `g` with `input`: (exit code, stdout, stderr).
fn grid_run(g: &TestGrid, args: &[&str], input: &[u8]) -> (i32, Vec<u8>, String) {
    let out = run_with_input(g.grid().arg("run").args(args), input);
    (
        out.status.code().unwrap_or(-1),
        out.stdout,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

async fn attach(g: &TestGrid) -> Fid {
    let config = ClientConfig {
        dialect: Dialect::U,
        ..ClientConfig::default()
    };
    let client = Client::dial_with(g.unix_addr(), config)
        .await
        .expect("dial gridd");
    client.attach_as("test", 0, "").await.expect("attach")
}

/// Opens `CPU/clone` below `root` and returns the job's ctl fid and number.
async fn clone_job(root: &Fid, cpu: &[&str]) -> Result<(Fid, String), String> {
    let mut path = cpu.to_vec();
    path.push("clone");
    let mut ctl = root.walk(&path).await.map_err(|e| e.to_string())?;
    ctl.open(OpenFlags::RDWR).await.map_err(|e| e.to_string())?;
    let n = ctl.read(0, 64).await.map_err(|e| e.to_string())?;
    Ok((ctl, String::from_utf8_lossy(&n).trim().to_owned()))
}

/// Lines of a's `/cpu/jobs` (the owner sees every job) whose owner is `who`.
fn jobs_of(g: &TestGrid, who: &str) -> Vec<String> {
    ok(g.cat("/cpu/jobs"), "a's jobs")
        .lines()
        .filter(|l| l.split(' ').nth(1) == Some(who))
        .map(str::to_owned)
        .collect()
}

/// Whether a process of process group `pgid` is alive (not a zombie).
fn group_alive(pgid: i32) -> bool {
    std::fs::read_dir("/proc")
        .expect("/proc")
        .flatten()
        .filter_map(|e| e.file_name().to_string_lossy().parse::<i32>().ok())
        .filter_map(|pid| std::fs::read_to_string(format!("/proc/{pid}/stat")).ok())
        .any(|stat| {
            let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
            let f: Vec<&str> = rest.split_whitespace().collect();
            f.first() != Some(&"Z") && f.get(2).and_then(|g| g.parse().ok()) == Some(pgid)
        })
}

#[test]
fn remote_jobs_run_under_the_peers_share_and_end_with_its_connection() {
    let a = TestGrid::start(&["--listen", QUIC]);
    let b = TestGrid::start(&["--listen", QUIC]);
    let c = TestGrid::start(&["--listen", QUIC]);
    pair(("a", &a), ("b", &b), "cpu jobs=2 mem=256M");
    pair(("a", &a), ("c", &c), "files/nothing r");
    b.wait_for("/net/peers/a/policy", "received cpu jobs=2 mem=256M\n");

    // Exit code and output of a job on a, run from b.
    let (code, out, err) = grid_run(&b, &["--on", "a", "--", "sh", "-c", "echo hi; exit 3"], b"");
    assert_eq!((code, out.as_slice()), (3, &b"hi\n"[..]), "{err}");
    assert_eq!(err, "", "nothing said on stderr without -v");

    // Standard input goes round through the remote job.
    let data: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let (code, out, err) = grid_run(&b, &["--on", "a", "--", "cat"], &data);
    assert_eq!(code, 0, "{err}");
    assert!(out == data, "cat on a changed the data");

    // b's view of a's /cpu: its share, and its jobs only.
    let info = ok(b.cat("/n/a/cpu/info"), "b reads a's info");
    assert!(
        info.contains(
            "share cores=unlimited jobs=2 mem=256M time=unlimited procs=256 confine=required\n"
        ),
        "{info}"
    );

    // A limit above the share is refused, naming the share.
    let (code, _, err) = grid_run(&b, &["--on", "a", "--limit", "mem=1G", "--", "true"], b"");
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("mem=256M"), "{err}");

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let (sleeper_pgid, _a_root, _b_root, _owner_job) = rt.block_on(async {
        // An owner job on a, which b must not see.
        let a_root = attach(&a).await;
        let owner_job = clone_job(&a_root, &["cpu"]).await.expect("owner clone");
        owner_job
            .0
            .write(0, b"exec sleep 1000\n")
            .await
            .expect("owner exec");

        // b's first job sleeps; its second is made and left.
        let b_root = attach(&b).await;
        let (sleeper, n1) = clone_job(&b_root, &["n", "a", "cpu"])
            .await
            .expect("b's first job");
        sleeper
            .write(0, b"exec sleep 1000\n")
            .await
            .expect("b's exec");
        let (second, n2) = clone_job(&b_root, &["n", "a", "cpu"])
            .await
            .expect("b's second job");
        let listed = ok(b.cat("/n/a/cpu/jobs"), "b's jobs on a");
        let owners: Vec<&str> = listed.lines().filter_map(|l| l.split(' ').nth(1)).collect();
        assert_eq!(owners, ["b", "b"], "{listed}");
        let dirs = ok(run(b.grid().args(["ls", "/n/a/cpu"])), "ls b's cpu on a");
        let mut dirs: Vec<&str> = dirs.lines().collect();
        dirs.sort_unstable();
        let mut want = [n1.as_str(), n2.as_str(), "clone", "info", "jobs"];
        want.sort_unstable();
        assert_eq!(
            dirs, want,
            "b sees exactly its own jobs (the owner's is {})",
            owner_job.1
        );
        assert_eq!(jobs_of(&a, "owner").len(), 1);

        // A third job is refused (jobs=2), with the share in the error,
        // until one is removed.
        let (code, _, err) = grid_run(&b, &["--on", "a", "--", "true"], b"");
        assert_eq!(code, 1, "{err}");
        assert!(err.contains("jobs=2"), "{err}");
        second.write(0, b"rm\n").await.expect("rm the second");
        let (code, out, err) = grid_run(&b, &["--on", "a", "--", "echo", "third"], b"");
        assert_eq!((code, out.as_slice()), (0, &b"third\n"[..]), "{err}");

        // `--on any` places the job somewhere, and says where with -v.
        let (code, out, err) = grid_run(&b, &["--on", "any", "-v", "--", "echo", "placed"], b"");
        assert_eq!((code, out.as_slice()), (0, &b"placed\n"[..]), "{err}");
        assert!(err.starts_with("grid: run: on "), "{err}");

        let status = ok(a.cat(&format!("/cpu/{n1}/status")), "sleeper status");
        assert!(status.starts_with("running "), "{status}");
        let pgid: i32 = status
            .split(' ')
            .nth(1)
            .and_then(|p| p.parse().ok())
            .expect("a pgid");
        (pgid, a_root, b_root, owner_job)
    });
    assert!(group_alive(sleeper_pgid));

    // c is granted no cpu: there is none to walk, and grid run says why.
    let ls = ok(run(c.grid().args(["ls", "/n/a"])), "c lists a");
    assert!(!ls.contains("cpu"), "{ls}");
    assert!(!c.cat("/n/a/cpu/info").status.success());
    let (code, _, err) = grid_run(&c, &["--on", "a", "--", "true"], b"");
    assert_eq!(code, 1);
    assert_eq!(
        err,
        "grid: run: peer a grants this grid no cpu (see /net/peers/a/policy)\n"
    );
    let (code, _, err) = grid_run(&c, &["--on", "nobody", "--", "true"], b"");
    assert_eq!(
        (code, err.as_str()),
        (1, "grid: run: no peer 'nobody' (see grid peer ls)\n")
    );

    // b's gridd dies: a notices the connection is gone and kills b's
    // jobs, and only b's.
    drop(b);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !jobs_of(&a, "b").is_empty() || group_alive(sleeper_pgid) {
        assert!(
            Instant::now() < deadline,
            "b's jobs outlived its connection: {:?}; a's log:\n{}",
            jobs_of(&a, "b"),
            a.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(jobs_of(&a, "owner").len(), 1, "the owner's job stays");
    drop(rt);
}

/// A world-readable directory on a's host outside every directory a
/// peer's job gets (`/var` is not bound; `/tmp` is the job's own),
/// removed on drop.
struct HostPrivate(std::path::PathBuf);

impl HostPrivate {
    fn new() -> HostPrivate {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::path::PathBuf::from(format!("/var/tmp/grid-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mkdir under /var/tmp");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let secret = dir.join("secret");
        std::fs::write(&secret, "a's own\n").expect("write the secret");
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        HostPrivate(dir)
    }
}

impl Drop for HostPrivate {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn a_peers_job_sees_the_systems_files_and_not_the_hosts() {
    let a = TestGrid::start(&["--listen", QUIC]);
    let info = ok(a.cat("/cpu/info"), "a's info");
    if info.contains("\nsandbox none\n") {
        skip("jobs cannot have their own namespaces here, so peers' jobs are refused");
        return;
    }
    let b = TestGrid::start(&["--listen", QUIC]);
    pair(("a", &a), ("b", &b), "cpu jobs=2 mem=256M");
    b.wait_for("/net/peers/a/policy", "received cpu jobs=2 mem=256M\n");
    let private = HostPrivate::new();
    let dir = private.0.display().to_string();
    let secret = format!("{dir}/secret");

    // The owner's job sees the host's tree.
    let (code, out, err) = grid_run(&a, &["--", "cat", &secret], b"");
    assert_eq!((code, out.as_slice()), (0, &b"a's own\n"[..]), "{err}");

    // The peer's job can neither read it nor list its directory.
    let (code, out, err) = grid_run(&b, &["--on", "a", "--", "cat", &secret], b"");
    assert_ne!(
        code,
        0,
        "b read a's private file: {}",
        String::from_utf8_lossy(&out)
    );
    assert!(err.contains("No such file"), "{err}");
    let (code, out, _) = grid_run(&b, &["--on", "a", "--", "ls", &dir], b"");
    assert_ne!(code, 0, "b listed {dir}: {}", String::from_utf8_lossy(&out));

    // It runs programs, reads the system's configuration, and writes
    // to its own /tmp and working directory.
    let script = "echo t > /tmp/x && cat /tmp/x && echo c > ./y && cat y && pwd";
    let (code, out, err) = grid_run(&b, &["--on", "a", "--", "sh", "-c", script], b"");
    let out = String::from_utf8_lossy(&out).into_owned();
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[..2], ["t", "c"], "{out}");
    assert!(lines.get(2).is_some_and(|d| d.starts_with('/')), "{out}");
    if let Ok(hostname) = std::fs::read_to_string("/etc/hostname") {
        let (code, out, err) = grid_run(&b, &["--on", "a", "--", "cat", "/etc/hostname"], b"");
        assert_eq!(
            (code, String::from_utf8_lossy(&out)),
            (0, hostname.into()),
            "{err}"
        );
    }

    // Its root holds the system's directories and its own, nothing else.
    let (code, out, err) = grid_run(&b, &["--on", "a", "--", "ls", "/"], b"");
    assert_eq!(code, 0, "{err}");
    let out = String::from_utf8_lossy(&out).into_owned();
    let names: Vec<&str> = out.lines().collect();
    let allowed = [
        "bin", "dev", "etc", "lib", "lib32", "lib64", "libx32", "mnt", "proc", "sbin", "tmp", "usr",
    ];
    for name in &names {
        assert!(allowed.contains(name), "a peer's job sees /{name}: {out}");
    }
    for name in ["dev", "etc", "proc", "tmp", "usr"] {
        assert!(names.contains(&name), "no /{name} in {out}");
    }
    // And it cannot change the system's files.
    let (code, _, _) = grid_run(&b, &["--on", "a", "--", "touch", "/usr/grid-test"], b"");
    assert_ne!(code, 0, "b's job wrote to a's /usr");
}

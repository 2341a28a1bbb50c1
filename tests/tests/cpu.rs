//! `/cpu` against a real gridd, through 9P (ninep_client, 9P2000.u so
//! errors arrive as text) and through `grid run`: exit codes, signals,
//! binary stdin and stdout, 50 jobs at once, limits (memory, processes,
//! wall clock), kill and removal taking every process of a job, exact
//! errors for bad ctl lines, and a wait cancelled by Tflush.

use std::sync::Arc;
use std::time::{Duration, Instant};

use grid_tests::{bin, TestGrid, LIMIT};
use ninep::Dialect;
use ninep_client::{Client, ClientConfig, Fid, OpenFlags};

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

/// A job: its ctl fid (from /cpu/clone) and its number.
struct Job {
    root: Fid,
    ctl: Fid,
    n: String,
}

impl Job {
    async fn new(root: &Fid) -> Job {
        let mut ctl = root.walk(&["cpu", "clone"]).await.expect("walk clone");
        ctl.open(OpenFlags::RDWR).await.expect("open clone");
        let n = String::from_utf8(ctl.read(0, 64).await.expect("read N")).expect("utf8");
        Job {
            root: root.try_clone().await.expect("clone root"),
            ctl,
            n: n.trim().to_owned(),
        }
    }

    async fn ctl(&self, line: &str) -> Result<(), String> {
        self.ctl
            .write(0, line.as_bytes())
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    async fn open(&self, name: &str, flags: OpenFlags) -> Fid {
        let mut f = self
            .root
            .walk(&["cpu", &self.n, name])
            .await
            .unwrap_or_else(|e| panic!("walk {name}: {e}"));
        f.open(flags)
            .await
            .unwrap_or_else(|e| panic!("open {name}: {e}"));
        f
    }

    /// Everything of a stream file, to its end.
    async fn read(&self, name: &str) -> Vec<u8> {
        let f = self.open(name, OpenFlags::READ).await;
        let mut out = Vec::new();
        loop {
            let chunk = tokio::time::timeout(LIMIT, f.read(out.len() as u64, f.iounit()))
                .await
                .expect("read hung")
                .expect("read");
            if chunk.is_empty() {
                return out;
            }
            out.extend(chunk);
        }
    }

    /// The status line from `wait`, split into fields.
    async fn wait(&self) -> Vec<String> {
        let text = String::from_utf8(self.read("wait").await).expect("utf8");
        assert!(text.ends_with('\n'), "{text:?}");
        text.split_whitespace().map(str::to_owned).collect()
    }

    async fn status(&self) -> Vec<String> {
        let text = String::from_utf8(self.read("status").await).expect("utf8");
        text.split_whitespace().map(str::to_owned).collect()
    }
}

/// Processes whose process group is `pgid`.
fn in_group(pgid: i32) -> Vec<i32> {
    procs()
        .into_iter()
        .filter(|&(_, g, _)| g == pgid)
        .map(|(p, _, _)| p)
        .collect()
}

/// Processes in a cgroup whose path ends with `/job-N`, below `grid-cpu.GRIDD_PID.`.
fn in_job_cgroup(gridd: i32, n: &str) -> Vec<i32> {
    let tag = format!("/grid-cpu.{gridd}.");
    let leaf = format!("/job-{n}");
    procs()
        .into_iter()
        .filter(|(_, _, cg)| cg.lines().any(|l| l.contains(&tag) && l.ends_with(&leaf)))
        .map(|(p, _, _)| p)
        .collect()
}

/// (pid, pgid, /proc/PID/cgroup) of every process.
fn procs() -> Vec<(i32, i32, String)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // Fields after the command name, which is in parentheses.
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
            continue;
        };
        let f: Vec<&str> = rest.split_whitespace().collect();
        if f.first() == Some(&"Z") {
            continue;
        }
        let pgid = f.get(2).and_then(|s| s.parse().ok()).unwrap_or(0);
        let cg = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
        out.push((pid, pgid, cg));
    }
    out
}

fn ppid(pid: i32) -> i32 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    rest.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn exit_codes_and_signals() {
    let g = TestGrid::start(&[]);
    let root = attach(&g).await;
    let j = Job::new(&root).await;
    j.ctl("exec sh -c 'echo out; echo err >&2; exit 3'")
        .await
        .expect("exec");
    let w = j.wait().await;
    assert_eq!(
        (w[0].as_str(), w[2].as_str(), w[7].as_str()),
        ("exited", "3", "-"),
        "{w:?}"
    );
    assert_eq!(j.read("stdout").await, b"out\n");
    assert_eq!(j.read("stderr").await, b"err\n");

    let j = Job::new(&root).await;
    j.ctl("exec sleep 60").await.expect("exec");
    j.ctl("signal TERM").await.expect("signal");
    let w = j.wait().await;
    assert_eq!((w[0].as_str(), w[2].as_str()), ("killed", "TERM"), "{w:?}");

    let j = Job::new(&root).await;
    j.ctl("exec sh -c 'kill -USR1 $$'").await.expect("exec");
    let w = j.wait().await;
    assert_eq!(
        (w[0].as_str(), w[2].as_str(), w[7].as_str()),
        ("killed", "USR1", "-"),
        "{w:?}"
    );

    let j = Job::new(&root).await;
    j.ctl("hold\nexec sleep 60\n").await.expect("hold, exec");
    assert_eq!(j.status().await[0], "held");
    j.ctl("start").await.expect("start");
    assert_eq!(j.status().await[0], "running");
    j.ctl("kill").await.expect("kill");
    let w = j.wait().await;
    assert_eq!(
        (w[0].as_str(), w[2].as_str(), w[7].as_str()),
        ("killed", "KILL", "kill"),
        "{w:?}"
    );
}

#[tokio::test]
async fn binary_stdin_and_stdout_round_trip() {
    let g = TestGrid::start(&[]);
    let root = attach(&g).await;
    let data: Vec<u8> = (0..3_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let j = Job::new(&root).await;
    let stdout = j.open("stdout", OpenFlags::READ).await;
    j.ctl("exec cat").await.expect("exec");
    let stdin = j.open("stdin", OpenFlags::WRITE).await;
    let writer = {
        let data = data.clone();
        tokio::spawn(async move {
            for chunk in data.chunks(100_000) {
                let mut c = chunk;
                while !c.is_empty() {
                    let n = stdin.write(0, c).await.expect("write stdin") as usize;
                    c = &c[n..];
                }
            }
        })
    };
    let mut got = Vec::new();
    let reader = async {
        loop {
            let chunk = stdout
                .read(got.len() as u64, stdout.iounit())
                .await
                .expect("read");
            if chunk.is_empty() {
                break;
            }
            got.extend(chunk);
        }
    };
    let closer = async {
        writer.await.expect("writer");
        j.ctl("stdin close").await.expect("stdin close");
    };
    tokio::time::timeout(LIMIT, async { tokio::join!(reader, closer) })
        .await
        .expect("round trip hung");
    assert_eq!(got.len(), data.len());
    assert!(got == data, "stdout differs from stdin");
    assert_eq!(j.wait().await[0], "exited");
}

#[tokio::test]
async fn fifty_jobs_at_once() {
    let g = TestGrid::start(&[]);
    let root = Arc::new(attach(&g).await);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..50 {
        let root = root.clone();
        tasks.push(tokio::spawn(async move {
            let j = Job::new(&root).await;
            j.ctl(&format!("exec sh -c 'echo {i} $GRID_JOB'"))
                .await
                .expect("exec");
            let w = j.wait().await;
            assert_eq!(w[0], "exited", "{w:?}");
            let out = String::from_utf8(j.read("stdout").await).expect("utf8");
            assert_eq!(out, format!("{i} {}\n", j.n));
            j.ctl("rm").await.expect("rm");
        }));
    }
    for t in tasks {
        tokio::time::timeout(LIMIT, t)
            .await
            .expect("job hung")
            .expect("job");
    }
    eprintln!("50 jobs in {:?}", start.elapsed());
    let jobs = String::from_utf8(
        root.walk(&["cpu", "jobs"])
            .await
            .expect("walk")
            .read_all_opened()
            .await,
    )
    .expect("utf8");
    assert_eq!(jobs, "", "removed jobs are gone from /cpu/jobs");
}

trait ReadAllOpened {
    async fn read_all_opened(self) -> Vec<u8>;
}

impl ReadAllOpened for Fid {
    async fn read_all_opened(mut self) -> Vec<u8> {
        self.open(OpenFlags::READ).await.expect("open");
        self.read_all().await.expect("read")
    }
}

#[tokio::test]
async fn memory_and_process_limits() {
    let g = TestGrid::start(&[]);
    let root = attach(&g).await;

    let info = String::from_utf8(
        root.walk(&["cpu", "info"])
            .await
            .expect("walk info")
            .read_all_opened()
            .await,
    )
    .expect("utf8");
    let cgroups = info
        .lines()
        .find(|l| l.starts_with("cgroups "))
        .unwrap_or("cgroups none")
        .to_owned();
    if !cgroups.contains(" memory") || !cgroups.contains(" pids") {
        grid_tests::skip(&format!(
            "memory and process limits: gridd has no memory and pids cgroups here ({cgroups})"
        ));
        return;
    }
    // tail -n keeps a line without newlines in memory, and /dev/zero has
    // no newline: it grows until the limit kills it.
    let hog = Job::new(&root).await;
    hog.ctl("limit mem=32M time=20s\nexec tail -n 1 /dev/zero")
        .await
        .expect("exec hog");
    let w = hog.wait().await;
    assert_eq!(
        (w[0].as_str(), w[2].as_str(), w[7].as_str()),
        ("killed", "KILL", "mem"),
        "{w:?}"
    );
    let peak: u64 = w[4].parse().expect("rss");
    assert!(peak <= 32 * 1024, "peak {peak} KiB above the 32M limit");
    // In a pipeline the kernel's OOM killer picks the victim: usually
    // tail, and the shell reports 137; sometimes the shell itself. Either
    // way the job ends and the status blames the memory limit.
    let hog = Job::new(&root).await;
    hog.ctl("limit mem=32M time=20s\nexec sh -c 'head -c 300000000 /dev/zero | tail -n 1'")
        .await
        .expect("exec hog");
    let w = hog.wait().await;
    let ended = (w[0].as_str(), w[2].as_str(), w[7].as_str());
    assert!(
        ended == ("exited", "137", "mem") || ended == ("killed", "KILL", "mem"),
        "{w:?}"
    );

    // A fork bomb: bounded by procs, ended by its wall clock. The shell
    // then waits with a builtin (stdin stays open until `stdin close`):
    // at the process limit it could not fork a `sleep`, and would end
    // before the wall clock does.
    let bomb = Job::new(&root).await;
    bomb.ctl("limit procs=16 time=2s\nexec sh -c 'b() { b | b & }; b; read x'")
        .await
        .expect("exec bomb");
    let pgid: i32 = bomb.status().await[1].parse().expect("pgid");
    let gridd = ppid(pgid);
    // Watch the job's cgroup while the bomb forks (until just before its
    // 2 s wall clock): it must grow, and never past the limit.
    let mut during = 0;
    let watch_until = Instant::now() + Duration::from_millis(1500);
    while Instant::now() < watch_until {
        during = during.max(in_job_cgroup(gridd, &bomb.n).len());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(during > 1, "the bomb never forked");
    assert!(
        during <= 16 + 2,
        "{during} processes in a job limited to 16"
    );
    let w = bomb.wait().await;
    assert_eq!((w[0].as_str(), w[7].as_str()), ("killed", "time"), "{w:?}");
    assert!(
        in_job_cgroup(gridd, &bomb.n).is_empty(),
        "the bomb left processes"
    );
    assert!(
        in_group(pgid).is_empty(),
        "the bomb left processes in its group"
    );
}

#[tokio::test]
async fn wall_clock_and_cpu_time_limits() {
    let g = TestGrid::start(&[]);
    let root = attach(&g).await;
    let spinner = Job::new(&root).await;
    spinner
        .ctl("limit cpu=1s time=20s\nexec sh -c 'while :; do :; done'")
        .await
        .expect("exec spinner");
    let w = spinner.wait().await;
    assert_eq!((w[0].as_str(), w[7].as_str()), ("killed", "cpu"), "{w:?}");
    // The kernel's accounting of a job killed by RLIMIT_CPU=1 can read a
    // little under a second; what matters is that it was the cpu limit.
    let cpu: f64 = w[3].parse().expect("cpu seconds");
    assert!((0.5..5.0).contains(&cpu), "{w:?}");

    let sleeper = Job::new(&root).await;
    let t0 = Instant::now();
    sleeper
        .ctl("limit time=1s\nexec sleep 30")
        .await
        .expect("exec sleeper");
    let w = sleeper.wait().await;
    assert_eq!(
        (w[0].as_str(), w[2].as_str(), w[7].as_str()),
        ("killed", "KILL", "time"),
        "{w:?}"
    );
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(15),
        "{took:?}"
    );
}

#[tokio::test]
async fn kill_and_remove_take_every_process() {
    let g = TestGrid::start(&[]);
    let root = attach(&g).await;
    for how in ["kill", "rm", "remove"] {
        let j = Job::new(&root).await;
        j.ctl("exec sh -c 'sleep 100 & sleep 100 & setsid sleep 100 & echo up; wait'")
            .await
            .expect("exec");
        let stdout = j.open("stdout", OpenFlags::READ).await;
        let first = tokio::time::timeout(LIMIT, stdout.read(0, 10))
            .await
            .expect("hung")
            .expect("read");
        assert_eq!(first, b"up\n");
        let pgid: i32 = j.status().await[1].parse().expect("pgid");
        let gridd = ppid(pgid);
        let before = in_job_cgroup(gridd, &j.n);
        assert!(
            before.len() >= 5,
            "{how}: relay, init, sh and three sleeps expected, found {before:?}"
        );
        let wait = j.open("wait", OpenFlags::READ).await;
        match how {
            "kill" => j.ctl("kill").await.expect("kill"),
            "rm" => j.ctl("rm").await.expect("rm"),
            _ => root
                .walk(&["cpu", &j.n])
                .await
                .expect("walk N")
                .remove()
                .await
                .expect("remove N"),
        }
        let w = String::from_utf8(
            tokio::time::timeout(LIMIT, wait.read(0, 4096))
                .await
                .expect("wait hung")
                .expect("wait"),
        )
        .expect("utf8");
        assert!(w.starts_with("killed "), "{how}: {w}");
        let deadline = Instant::now() + Duration::from_secs(5);
        while !(in_job_cgroup(gridd, &j.n).is_empty() && in_group(pgid).is_empty()) {
            assert!(
                Instant::now() < deadline,
                "{how}: processes survived: {:?} {:?}",
                in_job_cgroup(gridd, &j.n),
                in_group(pgid)
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        for p in before {
            assert!(
                !std::path::Path::new(&format!("/proc/{p}")).exists() || ppid(p) != pgid,
                "{how}: {p} survived"
            );
        }
        if how != "kill" {
            assert!(
                root.walk(&["cpu", &j.n]).await.is_err(),
                "{how}: /cpu/{} still there",
                j.n
            );
        }
    }
}

#[tokio::test]
async fn bad_ctl_lines_get_exact_errors() {
    let g = TestGrid::start(&[]);
    let root = attach(&g).await;
    let j = Job::new(&root).await;
    let n = &j.n;
    let cases: Vec<(&str, String)> = vec![
        (
            "exce ls",
            "cpu: unknown verb 'exce' (did you mean 'exec'?)".into(),
        ),
        ("exec", "cpu: usage: exec CMD [ARG...]".into()),
        ("exec 'ls", "cpu: unterminated ' quote at byte 5".into()),
        (
            "limit mem=lots",
            "cpu: bad value 'lots' for mem (use e.g. 64M, 2G)".into(),
        ),
        (
            "limit disk=1G",
            "cpu: unknown limit 'disk=1G' (use cpu=, mem=, time= or procs=)".into(),
        ),
        (
            "limit procs=0",
            "cpu: bad value '0' for procs (use a count, e.g. 64)".into(),
        ),
        ("dir tmp", "cpu: dir: path 'tmp' must be absolute".into()),
        (
            "dir /nonexistent/x",
            "cpu: dir: '/nonexistent/x' is not a directory".into(),
        ),
        (
            "env NOEQUALS",
            "cpu: env: 'NOEQUALS' is not NAME=VALUE".into(),
        ),
        (
            "signal TERM",
            format!("cpu: signal: job {n} is not running"),
        ),
        ("signal FOO", "cpu: signal: unknown signal 'FOO'".into()),
        ("stdin open", "cpu: usage: stdin close".into()),
        (
            "start",
            format!("cpu: start: job {n} has no command; write exec first"),
        ),
        ("kill now", "cpu: usage: kill".into()),
    ];
    for (line, want) in &cases {
        assert_eq!(
            j.ctl(line).await.err().as_deref(),
            Some(want.as_str()),
            "{line}"
        );
    }
    j.ctl("exec sleep 60").await.expect("exec");
    assert_eq!(
        j.ctl("limit mem=1G").await.err(),
        Some(format!("cpu: limit: job {n} has already started"))
    );
    assert_eq!(
        j.ctl("exec true").await.err(),
        Some(format!("cpu: exec: job {n} has already started"))
    );
    j.ctl("rm").await.expect("rm");
    let j = Job::new(&root).await;
    let e = j.ctl("exec /nonexistent/cmd").await.err();
    assert_eq!(
        e.as_deref(),
        Some("cpu: exec: /nonexistent/cmd: file not found")
    );
    assert_eq!(j.wait().await[0], "failed");
}

#[tokio::test]
async fn a_flushed_wait_leaves_the_connection_working() {
    let g = TestGrid::start(&[]);
    let root = attach(&g).await;
    let j = Job::new(&root).await;
    j.ctl("exec sleep 60").await.expect("exec");
    let wait = j.open("wait", OpenFlags::READ).await;
    // Dropping the read's future sends Tflush for it.
    let r = tokio::time::timeout(Duration::from_millis(300), wait.read(0, 4096)).await;
    assert!(r.is_err(), "wait returned while the job runs: {r:?}");
    let info = root
        .walk(&["cpu", "info"])
        .await
        .expect("walk info")
        .read_all_opened()
        .await;
    assert!(
        String::from_utf8_lossy(&info).contains("\njobs 1\n"),
        "{}",
        String::from_utf8_lossy(&info)
    );
    j.ctl("kill").await.expect("kill");
    let w = tokio::time::timeout(LIMIT, wait.read(0, 4096))
        .await
        .expect("wait hung")
        .expect("wait");
    assert!(w.starts_with(b"killed "), "{}", String::from_utf8_lossy(&w));
}

/// `grid run` with input, and the exit code it ends with.
fn grid_run(g: &TestGrid, args: &[&str], input: &[u8]) -> (i32, Vec<u8>, String) {
    let mut cmd = std::process::Command::new(bin("grid"));
    cmd.arg("-a").arg(g.unix_addr()).arg("run").args(args);
    let out = grid_tests::run_with_input(&mut cmd, input);
    (
        out.status.code().unwrap_or(-1),
        out.stdout,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn grid_run_end_to_end() {
    let g = TestGrid::start(&[]);
    let data: Vec<u8> = (0..1_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let (code, out, err) = grid_run(&g, &["--", "cat"], &data);
    assert_eq!(code, 0, "{err}");
    assert!(out == data, "cat through grid run changed the data");
    let (code, out, err) = grid_run(
        &g,
        &["--", "sh", "-c", "echo out; echo err >&2; exit 42"],
        b"",
    );
    assert_eq!(
        (code, out.as_slice(), err.as_str()),
        (42, &b"out\n"[..], "err\n")
    );
    let (code, _, _) = grid_run(&g, &["--", "sh", "-c", "kill -TERM $$"], b"");
    assert_eq!(code, 143);
    let (code, _, err) = grid_run(&g, &["--limit", "time=1s", "--", "sleep", "30"], b"");
    assert_eq!(code, 137);
    assert!(
        err.contains("killed by KILL (its wall-clock limit)"),
        "{err}"
    );
    let (code, _, err) = grid_run(&g, &["--", "/nonexistent/cmd"], b"");
    assert_eq!(code, 127);
    assert_eq!(
        err,
        "grid: run: cpu: exec: /nonexistent/cmd: file not found\n"
    );
    let (code, _, err) = grid_run(&g, &["--limit", "mem=lots", "--", "true"], b"");
    assert_eq!(code, 1);
    assert_eq!(
        err,
        "grid: run: cpu: bad value 'lots' for mem (use e.g. 64M, 2G)\n"
    );
    let (code, out, _) = grid_run(&g, &["--", "cat", "/cpu/jobs"], b"");
    assert_eq!(
        (code, out.is_empty()),
        (1, true),
        "a job cannot see gridd's namespace files"
    );
}

//! cpu_bench: jobs through `/cpu` against the same work done directly.
//!
//! ```text
//! cargo build --release -p gridd -p grid && cargo build --release -p grid-bench --bin cpu_bench
//! [GRID_BENCH_INSTALL_SSH=1] target/release/cpu_bench [ROUNDS] [STREAM_MIB]
//! ```
//!
//! (Both commands: `--bin` selects that binary of every package named, so
//! `-p gridd -p grid-bench --bin cpu_bench` leaves an old gridd in place.
//! A peer's job gets `/mnt/term` from the `grid` next to gridd, hence
//! `-p grid`.)
//!
//! Starts two gridds (the one next to this binary), each in a temporary
//! state directory, and measures, over their unix sockets:
//!
//! - job round trip: open `/cpu/clone`, write `exec true`, read `N/wait`,
//!   write `rm`; against `sh -c true` and `true` forked and exec'd
//!   directly (the floor), as jobs per second and median latency, with
//!   the median of each step of the round trip;
//! - the same round trip on a peer: a second gridd (b) pairs with the
//!   first (a) over QUIC on loopback, a grants b `cpu`, and the jobs go
//!   through b's `/n/a/cpu`, confined as every peer's job is;
//! - `ssh localhost true` as the remote floor, when an sshd can be run:
//!   a private one on a loopback port with throw-away keys (nothing of the
//!   system's ssh set-up is touched). When `sshd` is missing, run as root
//!   with `GRID_BENCH_INSTALL_SSH=1` to have `apt-get install -y
//!   openssh-server` tried first; otherwise the line says `ssh: not
//!   available`;
//! - streaming: `cat` of a STREAM_MIB file (default 1024) read through
//!   `/cpu/N/stdout`, against the same `cat` into a pipe read here.
//!
//! Numbers never gate tests; they are printed as a table with ratios.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use ninep::Dialect;
use ninep_client::{Client, ClientConfig, Fid, OpenFlags};

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let rounds: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(300);
    let mib: u64 = args.next().map(|a| a.parse()).transpose()?.unwrap_or(1024);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let a = Gridd::start(true)?;
    let b = Gridd::start(true)?;
    let ssh = Sshd::start().map_err(|e| format!("{e:#}"));
    rt.block_on(bench(&a, &b, ssh.as_ref(), rounds, mib))
}

/// A gridd of ours in a temporary state directory, killed on drop.
struct Gridd {
    child: Child,
    /// The unix socket, then the QUIC listener when asked for.
    addrs: Vec<String>,
    _state: tempfile::TempDir,
}

impl Gridd {
    fn start(quic: bool) -> anyhow::Result<Gridd> {
        let state = tempfile::tempdir()?;
        let exe = std::env::current_exe()?;
        let gridd = exe.parent().context("binary directory")?.join("gridd");
        let mut cmd = Command::new(&gridd);
        cmd.arg("--state").arg(state.path());
        if quic {
            cmd.args(["--listen", "quic!127.0.0.1!0"]);
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {}", gridd.display()))?;
        let mut lines = BufReader::new(child.stderr.take().context("stderr")?).lines();
        let mut addrs = Vec::new();
        while addrs.len() < 1 + usize::from(quic) {
            let Some(line) = lines.next() else {
                bail!("gridd exited before serving")
            };
            if let Some((_, a)) = line?.split_once(" serving ") {
                addrs.push(a.to_owned());
            }
        }
        std::thread::spawn(move || for _ in lines {});
        Ok(Gridd {
            child,
            addrs,
            _state: state,
        })
    }

    async fn attach(&self) -> anyhow::Result<Fid> {
        let config = ClientConfig {
            dialect: Dialect::U,
            ..ClientConfig::default()
        };
        let client = Client::dial_with(&self.addrs[0], config).await?;
        Ok(client.attach_as("bench", 0, "").await?)
    }
}

impl Drop for Gridd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Writes `line` to `/ctl` below `root`.
async fn ctl(root: &Fid, line: String) -> anyhow::Result<()> {
    let mut f = root.walk(&["ctl"]).await?;
    f.open(OpenFlags::WRITE).await?;
    f.write(0, line.as_bytes()).await?;
    Ok(())
}

/// Makes `a` and `b` peers, `a` granting `b` all of `cpu`; returns once
/// `a` has heard `b` ask for it (until then the grant would be the offer,
/// after it the overlap).
async fn pair(a: (&Gridd, &Fid), b: (&Gridd, &Fid)) -> anyhow::Result<()> {
    let key = |status: String| {
        status
            .lines()
            .find_map(|l| l.strip_prefix("key ").map(str::to_owned))
            .context("no key in /status")
    };
    let a_key = key(read_file(a.1, &["status"]).await?)?;
    let b_key = key(read_file(b.1, &["status"]).await?)?;
    ctl(a.1, format!("peer add b {b_key} {}\n", b.0.addrs[1])).await?;
    ctl(a.1, "offer b cpu\n".into()).await?;
    ctl(b.1, format!("peer add a {a_key} {}\n", a.0.addrs[1])).await?;
    ctl(b.1, "request a cpu\n".into()).await?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while !read_file(a.1, &["net", "peers", "b", "policy"])
        .await?
        .contains("their-request cpu\n")
    {
        if Instant::now() > deadline {
            bail!("a never heard b's request");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

async fn bench(
    a: &Gridd,
    b: &Gridd,
    ssh: Result<&Sshd, &String>,
    rounds: usize,
    mib: u64,
) -> anyhow::Result<()> {
    let root = a.attach().await?;
    let b_root = b.attach().await?;
    pair((a, &root), (b, &b_root))
        .await
        .context("pairing the two gridds")?;
    let info = read_file(&root, &["cpu", "info"]).await?;
    let sandbox = info
        .lines()
        .find(|l| l.starts_with("sandbox "))
        .unwrap_or("sandbox ?")
        .to_owned();

    // Warm up every path.
    for _ in 0..10 {
        job_round_trip(&root, &["cpu"])
            .await
            .context("a job here")?;
        job_round_trip(&b_root, &["n", "a", "cpu"])
            .await
            .context("a job on the peer")?;
        Command::new("sh").args(["-c", "true"]).status()?;
    }
    let (mut jobs, mut phases, jobs_total) = round_trips(&root, &["cpu"], rounds).await?;
    let (mut remote, mut remote_phases, remote_total) =
        round_trips(&b_root, &["n", "a", "cpu"], rounds).await?;
    let sh = floor(rounds, &["sh", "-c", "true"])?;
    let tr = floor(rounds, &["true"])?;
    let ssh_rounds = (rounds / 10).max(20);
    let ssh = match ssh {
        Ok(sshd) => sshd.floor(ssh_rounds).map_err(|e| format!("{e:#}")),
        Err(e) => Err(e.clone()),
    };

    let dir = tempfile::Builder::new().prefix("cpu-bench").tempdir()?;
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )?;
    let file = dir.path().join("stream");
    let f = std::fs::File::create(&file)?;
    f.set_len(mib << 20)?;
    drop(f);
    std::fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(0o644))?;
    let path = file.display().to_string();
    let pipe = pipe_stream(&path)?;
    let cpu = cpu_stream(&root, &path).await?;
    drop(b_root);
    let bytes = (mib << 20) as f64;

    println!("cpu_bench: {rounds} rounds, {mib} MiB stream; gridd {sandbox}");
    println!();
    println!(
        "{:<44} {:>10} {:>12} {:>10} {:>8}",
        "job round trip", "jobs/s", "median", "vs floor", "ratio"
    );
    let (sh_rate, sh_med) = sh;
    let (tr_rate, tr_med) = tr;
    let row = |name: &str, rate: f64, med: Duration| {
        println!(
            "{:<44} {:>10.0} {:>12} {:>10} {:>8}",
            name,
            rate,
            ms(med),
            format!("+{}", ms(med.saturating_sub(sh_med))),
            format!("{:.1}x", med.as_secs_f64() / sh_med.as_secs_f64())
        );
    };
    let print_phases = |phases: &mut [Vec<Duration>; 4]| {
        for (name, v) in ["clone", "exec (until started)", "wait (until ended)", "rm"]
            .into_iter()
            .zip(phases.iter_mut())
        {
            println!(
                "{:<44} {:>10} {:>12}",
                format!("  {name}"),
                "",
                ms(median(v))
            );
        }
    };
    row(
        "/cpu: clone, exec true, wait, rm",
        rounds as f64 / jobs_total.as_secs_f64(),
        median(&mut jobs),
    );
    print_phases(&mut phases);
    row(
        "peer's /n/a/cpu, QUIC loopback, confined",
        rounds as f64 / remote_total.as_secs_f64(),
        median(&mut remote),
    );
    print_phases(&mut remote_phases);
    row("sh -c true, fork+exec (floor)", sh_rate, sh_med);
    row("true, fork+exec", tr_rate, tr_med);
    match ssh {
        Ok((rate, med)) => row(
            &format!("ssh localhost true ({ssh_rounds} rounds)"),
            rate,
            med,
        ),
        Err(e) => println!("ssh: not available ({e})"),
    }
    println!();
    println!(
        "{:<44} {:>10} {:>12} {:>10}",
        "stream (cat FILE)", "MiB/s", "time", "vs pipe"
    );
    let mbs = |d: Duration| bytes / d.as_secs_f64() / (1 << 20) as f64;
    println!(
        "{:<44} {:>10.0} {:>12} {:>10}",
        "/cpu/N/stdout",
        mbs(cpu),
        ms(cpu),
        format!("{:.2}", mbs(cpu) / mbs(pipe))
    );
    println!(
        "{:<44} {:>10.0} {:>12} {:>10}",
        "pipe",
        mbs(pipe),
        ms(pipe),
        "1.00"
    );
    Ok(())
}

/// Where one round trip's time went: clone (walk, open, read N), the
/// `exec` write (returns once the command is started), the `wait` read
/// (walk, open, read) and the `rm` write.
type Phases = [Duration; 4];

/// `rounds` round trips in the `/cpu` directory at `cpu`: each one's time,
/// each one's phases, and the time of all.
async fn round_trips(
    root: &Fid,
    cpu: &[&str],
    rounds: usize,
) -> anyhow::Result<(Vec<Duration>, [Vec<Duration>; 4], Duration)> {
    let mut jobs = Vec::with_capacity(rounds);
    let mut phases: [Vec<Duration>; 4] = Default::default();
    let t0 = Instant::now();
    for _ in 0..rounds {
        let t = Instant::now();
        let p = job_round_trip(root, cpu).await?;
        jobs.push(t.elapsed());
        for (v, d) in phases.iter_mut().zip(p) {
            v.push(d);
        }
    }
    Ok((jobs, phases, t0.elapsed()))
}

async fn job_round_trip(root: &Fid, cpu: &[&str]) -> anyhow::Result<Phases> {
    let at = |name: &str| {
        let mut path: Vec<String> = cpu.iter().map(|s| (*s).to_owned()).collect();
        path.push(name.to_owned());
        path
    };
    let t = Instant::now();
    let mut ctl = root.walk(&at("clone")).await?;
    ctl.open(OpenFlags::RDWR).await?;
    let n = String::from_utf8(ctl.read(0, 32).await?)?.trim().to_owned();
    let t_clone = t.elapsed();
    ctl.write(0, b"exec true\n").await?;
    let t_exec = t.elapsed();
    let mut path = at(&n);
    path.push("wait".into());
    let mut wait = root.walk(&path).await?;
    wait.open(OpenFlags::READ).await?;
    let status = String::from_utf8(wait.read(0, 4096).await?)?;
    if !status.starts_with("exited ") {
        bail!("job {n}: {status}");
    }
    let t_wait = t.elapsed();
    ctl.write(0, b"rm\n").await?;
    let t_rm = t.elapsed();
    Ok([t_clone, t_exec - t_clone, t_wait - t_exec, t_rm - t_wait])
}

/// A private sshd on a loopback port, with a throw-away host key and a
/// throw-away client key it alone accepts; killed on drop.
struct Sshd {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Sshd {
    fn start() -> anyhow::Result<Sshd> {
        let sshd = Path::new("/usr/sbin/sshd");
        if !sshd.exists() {
            install_sshd()?;
        }
        for tool in ["ssh", "ssh-keygen"] {
            if !Path::new("/usr/bin").join(tool).exists() {
                bail!("{tool} is not installed");
            }
        }
        let dir = tempfile::tempdir()?;
        let p = |name: &str| -> PathBuf { dir.path().join(name) };
        for key in ["host", "client"] {
            let s = Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-f"])
                .arg(p(key))
                .status()?;
            if !s.success() {
                bail!("ssh-keygen: {s}");
            }
        }
        std::fs::copy(p("client.pub"), p("authorized_keys"))?;
        // sshd refuses keys in a directory others can write.
        std::fs::set_permissions(
            dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o700),
        )?;
        std::fs::create_dir_all("/run/sshd")?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        std::fs::write(
            p("sshd_config"),
            format!(
                "ListenAddress 127.0.0.1:{port}\nHostKey {}\nAuthorizedKeysFile {}\nPasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\nPidFile none\nUseDNS no\n",
                p("host").display(),
                p("authorized_keys").display()
            ),
        )?;
        let child = Command::new(sshd)
            .arg("-D")
            .arg("-f")
            .arg(p("sshd_config"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let sshd = Sshd { child, port, dir };
        // Ready once it answers.
        let deadline = Instant::now() + Duration::from_secs(10);
        while sshd.ssh_true().is_err() {
            if Instant::now() > deadline {
                bail!("the private sshd on port {port} does not let us in");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(sshd)
    }

    fn ssh_true(&self) -> anyhow::Result<()> {
        let s = Command::new("ssh")
            .args(["-q", "-p", &self.port.to_string(), "-i"])
            .arg(self.dir.path().join("client"))
            .args([
                "-o",
                "BatchMode=yes",
                "-o",
                "StrictHostKeyChecking=no",
                "-o",
                "UserKnownHostsFile=/dev/null",
                "-o",
                "LogLevel=ERROR",
                "-o",
                "GSSAPIAuthentication=no",
                "127.0.0.1",
                "true",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .status()?;
        if !s.success() {
            bail!("ssh localhost true: {s}");
        }
        Ok(())
    }

    fn floor(&self, rounds: usize) -> anyhow::Result<(f64, Duration)> {
        let mut v = Vec::with_capacity(rounds);
        let t0 = Instant::now();
        for _ in 0..rounds {
            let t = Instant::now();
            self.ssh_true()?;
            v.push(t.elapsed());
        }
        Ok((rounds as f64 / t0.elapsed().as_secs_f64(), median(&mut v)))
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `apt-get install -y openssh-server`, only as root and only when
/// `GRID_BENCH_INSTALL_SSH=1` asks for it.
fn install_sshd() -> anyhow::Result<()> {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if !root || std::env::var("GRID_BENCH_INSTALL_SSH").as_deref() != Ok("1") {
        bail!("sshd is not installed (as root, GRID_BENCH_INSTALL_SSH=1 installs it)");
    }
    let s = Command::new("apt-get")
        .args(["install", "-y", "-q", "openssh-server"])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdout(Stdio::null())
        .status()?;
    if !s.success() {
        bail!("apt-get install openssh-server: {s}");
    }
    Ok(())
}

fn floor(rounds: usize, argv: &[&str]) -> anyhow::Result<(f64, Duration)> {
    let mut v = Vec::with_capacity(rounds);
    let t0 = Instant::now();
    for _ in 0..rounds {
        let t = Instant::now();
        let s = Command::new(argv[0])
            .args(&argv[1..])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .status()?;
        if !s.success() {
            bail!("{argv:?}: {s}");
        }
        v.push(t.elapsed());
    }
    Ok((rounds as f64 / t0.elapsed().as_secs_f64(), median(&mut v)))
}

fn pipe_stream(path: &str) -> anyhow::Result<Duration> {
    let t = Instant::now();
    let mut child = Command::new("cat")
        .arg(path)
        .stdout(Stdio::piped())
        .spawn()?;
    let mut out = child.stdout.take().context("stdout")?;
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = out.read(&mut buf)?;
        if n == 0 {
            break;
        }
        total += n as u64;
    }
    child.wait()?;
    let d = t.elapsed();
    if total == 0 {
        bail!("cat read nothing");
    }
    Ok(d)
}

async fn cpu_stream(root: &Fid, path: &str) -> anyhow::Result<Duration> {
    let t = Instant::now();
    let mut ctl = root.walk(&["cpu", "clone"]).await?;
    ctl.open(OpenFlags::RDWR).await?;
    let n = String::from_utf8(ctl.read(0, 32).await?)?.trim().to_owned();
    let mut out = root.walk(&["cpu", &n, "stdout"]).await?;
    out.open(OpenFlags::READ).await?;
    ctl.write(0, format!("exec cat {path}\n").as_bytes())
        .await?;
    let unit = out.iounit();
    let mut offset = 0u64;
    loop {
        let data = out.read(offset, unit).await?;
        if data.is_empty() {
            break;
        }
        offset += data.len() as u64;
    }
    let d = t.elapsed();
    ctl.write(0, b"rm\n").await?;
    if offset == 0 {
        bail!("the job wrote nothing");
    }
    Ok(d)
}

async fn read_file(root: &Fid, path: &[&str]) -> anyhow::Result<String> {
    let mut f = root.walk(path).await?;
    f.open(OpenFlags::READ).await?;
    Ok(String::from_utf8(f.read_all().await?)?)
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1000.0)
}

//! cpu_bench: jobs through `/cpu` against the same work done directly.
//!
//! ```text
//! cargo build --release -p gridd && cargo build --release -p grid-bench --bin cpu_bench
//! target/release/cpu_bench [ROUNDS] [STREAM_MIB]
//! ```
//!
//! (Both commands: `--bin` selects that binary of every package named, so
//! `-p gridd -p grid-bench --bin cpu_bench` leaves an old gridd in place.)
//!
//! Starts a gridd (the one next to this binary) in a temporary state
//! directory and measures, over its unix socket:
//!
//! - job round trip: open `/cpu/clone`, write `exec true`, read `N/wait`,
//!   write `rm`; against `sh -c true` and `true` forked and exec'd
//!   directly (the floor), as jobs per second and median latency, with
//!   the median of each step of the round trip;
//! - streaming: `cat` of a STREAM_MIB file (default 1024) read through
//!   `/cpu/N/stdout`, against the same `cat` into a pipe read here.
//!
//! Numbers never gate tests; they are printed as a table with ratios.

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
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
    let state = tempfile::tempdir()?;
    let exe = std::env::current_exe()?;
    let gridd = exe.parent().context("binary directory")?.join("gridd");
    let mut child = Command::new(&gridd)
        .arg("--state")
        .arg(state.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {}", gridd.display()))?;
    let mut lines = BufReader::new(child.stderr.take().context("stderr")?).lines();
    let addr = loop {
        let Some(line) = lines.next() else {
            bail!("gridd exited before serving")
        };
        let line = line?;
        if let Some((_, a)) = line.split_once(" serving ") {
            break a.to_owned();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    let result = rt.block_on(bench(&addr, rounds, mib));
    let _ = child.kill();
    let _ = child.wait();
    result
}

async fn bench(addr: &str, rounds: usize, mib: u64) -> anyhow::Result<()> {
    let config = ClientConfig {
        dialect: Dialect::U,
        ..ClientConfig::default()
    };
    let client = Client::dial_with(addr, config).await?;
    let root = client.attach_as("bench", 0, "").await?;
    let info = read_file(&root, &["cpu", "info"]).await?;
    let sandbox = info
        .lines()
        .find(|l| l.starts_with("sandbox "))
        .unwrap_or("sandbox ?")
        .to_owned();

    // Warm up both paths.
    for _ in 0..10 {
        job_round_trip(&root).await?;
        Command::new("sh").args(["-c", "true"]).status()?;
    }
    let mut jobs = Vec::with_capacity(rounds);
    let mut phases: [Vec<Duration>; 4] = Default::default();
    let t0 = Instant::now();
    for _ in 0..rounds {
        let t = Instant::now();
        let p = job_round_trip(&root).await?;
        jobs.push(t.elapsed());
        for (v, d) in phases.iter_mut().zip(p) {
            v.push(d);
        }
    }
    let jobs_total = t0.elapsed();
    let sh = floor(rounds, &["sh", "-c", "true"])?;
    let tr = floor(rounds, &["true"])?;

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
    let bytes = (mib << 20) as f64;

    println!("cpu_bench: {rounds} rounds, {mib} MiB stream; gridd {sandbox}");
    println!();
    println!(
        "{:<44} {:>10} {:>12} {:>10}",
        "job round trip", "jobs/s", "median", "vs floor"
    );
    let med = median(&mut jobs);
    let rate = rounds as f64 / jobs_total.as_secs_f64();
    let (sh_rate, sh_med) = sh;
    let (tr_rate, tr_med) = tr;
    println!(
        "{:<44} {:>10.0} {:>12} {:>10}",
        "/cpu: clone, exec true, wait, rm",
        rate,
        ms(med),
        format!("+{}", ms(med.saturating_sub(sh_med)))
    );
    for (name, v) in ["clone", "exec (until started)", "wait (until ended)", "rm"]
        .into_iter()
        .zip(phases.iter_mut())
    {
        println!(
            "{:<44} {:>10} {:>12} {:>10}",
            format!("  {name}"),
            "",
            ms(median(v)),
            ""
        );
    }
    println!(
        "{:<44} {:>10.0} {:>12} {:>10}",
        "sh -c true, fork+exec (floor)",
        sh_rate,
        ms(sh_med),
        "-"
    );
    println!(
        "{:<44} {:>10.0} {:>12} {:>10}",
        "true, fork+exec",
        tr_rate,
        ms(tr_med),
        "-"
    );
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

async fn job_round_trip(root: &Fid) -> anyhow::Result<Phases> {
    let t = Instant::now();
    let mut ctl = root.walk(&["cpu", "clone"]).await?;
    ctl.open(OpenFlags::RDWR).await?;
    let n = String::from_utf8(ctl.read(0, 32).await?)?.trim().to_owned();
    let t_clone = t.elapsed();
    ctl.write(0, b"exec true\n").await?;
    let t_exec = t.elapsed();
    let mut wait = root.walk(&["cpu", &n, "wait"]).await?;
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

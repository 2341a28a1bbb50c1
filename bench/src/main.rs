//! ninep-bench: the same 9P client against our directory export (a real
//! `gridd`) and against Debian's `diod` exporting the same directory, on
//! loopback TCP, with raw TCP loopback throughput as the ceiling.
//!
//! For each asked msize it measures a bulk read of one large file (MB/s)
//! and walk+getattr+clunk round trips (ops/s), sequentially and with
//! several tasks sharing the connection; every measurement is repeated and
//! the median is reported in one markdown table on stdout (progress goes to
//! stderr). Both servers read from the page cache: caches are not dropped.
//! Every server started is stopped at the end and the temporary directory
//! (test file, gridd's state) removed, also on Ctrl-C.
//!
//! `bench/run.sh` builds in release and runs this; see bench/README.md.

mod measure;
mod servers;

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use clap::{Parser, ValueEnum};

use servers::{Endpoint, ServerProc};

/// The test file's name in the exported directory.
const FILE: &str = "big";
/// Bytes of the test file compared after each read.
const HEAD: usize = 4096;

/// Benchmark our 9P server against diod and raw TCP, on loopback.
#[derive(Parser, Debug, Clone)]
#[command(name = "ninep-bench", version, about)]
struct Args {
    /// Size of the test file (suffix K, M or G: powers of 1024)
    #[arg(long, default_value = "1G", value_parser = parse_size)]
    size: u64,
    /// Sequential walk+getattr+clunk round trips per measurement
    #[arg(long, default_value_t = 20_000)]
    ops: u32,
    /// Runs of every measurement; the median is reported
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    runs: u32,
    /// Tasks sharing one connection in the concurrent op variant (0: skip it)
    #[arg(long, default_value_t = 16)]
    tasks: u32,
    /// msizes to ask for, comma-separated (the server may lower them)
    #[arg(long, value_delimiter = ',', default_value = "65536,1048576")]
    msize: Vec<u32>,
    /// What to measure, comma-separated
    #[arg(long, value_delimiter = ',', default_value = "raw,ours,diod")]
    only: Vec<Target>,
    /// Read with Fid::read_all (the whole file into one buffer) instead of
    /// a streaming window of Fid::read
    #[arg(long)]
    read_all: bool,
    /// The gridd binary [default: the one next to this binary]
    #[arg(long, value_name = "PATH")]
    gridd: Option<PathBuf>,
    /// The diod binary
    #[arg(long, value_name = "PATH", default_value = "/usr/sbin/diod")]
    diod: PathBuf,
    /// Where to make the temporary directory [default: $TMPDIR or /tmp]
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Target {
    /// Raw TCP loopback.
    Raw,
    /// Our gridd.
    Ours,
    /// diod.
    Diod,
}

fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let t = t
        .strip_suffix("iB")
        .or_else(|| t.strip_suffix('B'))
        .unwrap_or(t);
    let (num, shift) = match t.char_indices().last() {
        Some((i, 'K' | 'k')) => (&t[..i], 10),
        Some((i, 'M' | 'm')) => (&t[..i], 20),
        Some((i, 'G' | 'g')) => (&t[..i], 30),
        _ => (t, 0),
    };
    let n: u64 = num
        .trim()
        .parse()
        .map_err(|_| format!("bad size '{s}' (examples: 1G, 64M, 4096)"))?;
    match n.checked_shl(shift) {
        Some(v) if v > 0 && v >> shift == n => Ok(v),
        _ => Err(format!("size '{s}' must be positive and fit in 64 bits")),
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    // As gridd and grid do: msize-sized buffers stay in the heap.
    gridd::alloc::tune_for_large_buffers();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ninep-bench: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// Medians per row; a row is one setup at one asked msize.
struct Row {
    label: String,
    target: Target,
    asked: u32,
    /// Negotiated msize of each run.
    msize: Vec<u32>,
    read: Vec<f64>,
    seq: Vec<f64>,
    par: Vec<f64>,
    /// CPU time of (server, client) per GB read, in ms.
    read_cpu: (Vec<f64>, Vec<f64>),
    /// CPU time of (server, client) per sequential op, in µs.
    ops_cpu: (Vec<f64>, Vec<f64>),
}

fn run(args: &Args) -> Result<()> {
    let want = |t| args.only.contains(&t);
    let mut builder = tempfile::Builder::new();
    builder.prefix("ninep-bench.");
    let tmp = match &args.dir {
        Some(d) => builder.tempdir_in(d),
        None => builder.tempdir(),
    }
    .context("temporary directory")?;
    let data = tmp.path().join("data");
    std::fs::create_dir(&data)?;
    eprintln!(
        "ninep-bench: writing the {} test file in {}",
        human(args.size),
        data.display()
    );
    let head = make_file(&data.join(FILE), args.size)?;

    // Servers are started here, on the main thread (see die_with_parent),
    // and stopped by their guards however this function returns.
    let mut gridd = None;
    let mut diod = None;
    if want(Target::Ours) {
        let bin = match &args.gridd {
            Some(p) => p.clone(),
            None => std::env::current_exe()?
                .parent()
                .context("binary directory")?
                .join("gridd"),
        };
        let state = tmp.path().join("state");
        let s = ServerProc::gridd(&bin, &state, &data)?;
        eprintln!("ninep-bench: gridd pid {} at {}", s.pid(), s.addr);
        gridd = Some(s);
    }
    if want(Target::Diod) {
        let s = ServerProc::diod(&args.diod, &data, &tmp.path().join("diod.log"))?;
        eprintln!("ninep-bench: diod pid {} at {}", s.pid(), s.addr);
        diod = Some(s);
    }

    let load_start = loadavg();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    // On a worker thread, as a real application's tasks would run: not on
    // this thread inside block_on, where every reply would cost a wake-up
    // of another thread.
    let task = runtime.spawn(bench(
        args.clone(),
        gridd.as_ref().map(ServerProc::endpoint),
        diod.as_ref().map(ServerProc::endpoint),
        head,
    ));
    let rows = runtime.block_on(async {
        tokio::select! {
            r = task => r.unwrap_or_else(|e| Err(e.into())),
            _ = tokio::signal::ctrl_c() => bail!("interrupted"),
        }
    });
    drop(runtime);
    let rss = [&gridd, &diod]
        .into_iter()
        .flatten()
        .map(|s| (s.name, s.peak_rss_kib()))
        .collect::<Vec<_>>();
    let client_rss = servers::vm_hwm_kib("/proc/self/status");
    for s in [&mut gridd, &mut diod].into_iter().flatten() {
        s.stop();
    }
    let rows = match rows {
        Ok(rows) => rows,
        Err(e) => {
            for s in [&gridd, &diod].into_iter().flatten() {
                let log = s.log();
                if !log.trim().is_empty() {
                    eprintln!("--- {} log ---\n{}", s.name, log.trim_end());
                }
            }
            return Err(e);
        }
    };
    let load = (load_start, loadavg());
    let report = report(args, &rows, &rss, client_rss, &load);
    std::io::stdout().write_all(report.as_bytes())?;
    drop(tmp);
    Ok(())
}

/// Every measurement `runs` times, the setups interleaved within a run so
/// that a change in the machine's load hits them alike.
async fn bench(
    args: Args,
    gridd: Option<Endpoint>,
    diod: Option<Endpoint>,
    head: Vec<u8>,
) -> Result<Vec<Row>> {
    let mut rows = Vec::new();
    if args.only.contains(&Target::Raw) {
        rows.push(Row::new(
            "raw TCP loopback (1 MiB writes)".into(),
            Target::Raw,
            0,
        ));
    }
    for &m in &args.msize {
        for (t, s) in [(Target::Ours, &gridd), (Target::Diod, &diod)] {
            if s.is_some() {
                let who = if t == Target::Ours { "ours" } else { "diod" };
                rows.push(Row::new(format!("{who} @{}", short(m)), t, m));
            }
        }
    }
    for run in 1..=args.runs {
        for row in rows.iter_mut() {
            let server = match row.target {
                Target::Raw => None,
                Target::Ours => gridd.as_ref(),
                Target::Diod => diod.as_ref(),
            };
            let Some(server) = server else {
                let cpu = Cpu::now(None);
                let t = measure::raw_tcp(args.size).await?;
                let (_, client) = cpu.since(None);
                row.read.push(mb_per_s(args.size, t));
                row.read_cpu.1.push(ms_per_gb(client, args.size));
                eprintln!(
                    "run {run}/{}: {:<34} read {:>8.0} MB/s",
                    args.runs,
                    row.label,
                    mb_per_s(args.size, t)
                );
                continue;
            };
            let pid = Some(server.pid);
            let s = measure::connect(&server.addr, &server.aname, row.asked).await?;
            let what = |e: anyhow::Error| e.context(format!("{} (run {run})", row.label));
            let cpu = Cpu::now(pid);
            let t_read = measure::read_file(&s, FILE, args.size, &head, args.read_all)
                .await
                .map_err(what)?;
            let (srv, cli) = cpu.since(pid);
            row.msize.push(s.client.msize());
            row.read.push(mb_per_s(args.size, t_read));
            row.read_cpu.0.push(ms_per_gb(srv, args.size));
            row.read_cpu.1.push(ms_per_gb(cli, args.size));
            let mut line = format!(
                "run {run}/{}: {:<34} msize {:>7}  read {:>6.0} MB/s",
                args.runs,
                row.label,
                s.client.msize(),
                mb_per_s(args.size, t_read),
            );
            if args.ops > 0 {
                let cpu = Cpu::now(pid);
                let t_seq = measure::ops_sequential(&s, FILE, args.ops)
                    .await
                    .map_err(what)?;
                let (srv, cli) = cpu.since(pid);
                row.seq.push(per_s(args.ops, t_seq));
                row.ops_cpu.0.push(us_per(srv, args.ops));
                row.ops_cpu.1.push(us_per(cli, args.ops));
                let _ = write!(line, "  seq {:>6.0} ops/s", per_s(args.ops, t_seq));
                if args.tasks > 0 {
                    let t = measure::ops_parallel(&s, FILE, args.ops, args.tasks)
                        .await
                        .map_err(what)?;
                    row.par.push(per_s(args.ops, t));
                    let _ = write!(
                        line,
                        "  {} tasks {:>6.0} ops/s",
                        args.tasks,
                        per_s(args.ops, t)
                    );
                }
            }
            eprintln!("{line}");
        }
    }
    Ok(rows)
}

impl Row {
    fn new(label: String, target: Target, asked: u32) -> Row {
        Row {
            label,
            target,
            asked,
            msize: Vec::new(),
            read: Vec::new(),
            seq: Vec::new(),
            par: Vec::new(),
            read_cpu: Default::default(),
            ops_cpu: Default::default(),
        }
    }
}

fn mb_per_s(bytes: u64, t: Duration) -> f64 {
    bytes as f64 / 1e6 / t.as_secs_f64()
}

fn ms_per_gb(cpu: Duration, bytes: u64) -> f64 {
    cpu.as_secs_f64() * 1e3 / (bytes as f64 / 1e9)
}

fn us_per(cpu: Duration, n: u32) -> f64 {
    cpu.as_secs_f64() * 1e6 / f64::from(n)
}

/// CPU time used so far by a server process (all its threads) and by this
/// process (the client), to charge each measurement with what it cost.
struct Cpu {
    server: Duration,
    client: Duration,
}

impl Cpu {
    fn now(server: Option<u32>) -> Cpu {
        Cpu {
            server: server.and_then(process_cpu).unwrap_or_default(),
            client: self_cpu(),
        }
    }

    /// (server, client) CPU time since `self`.
    fn since(&self, server: Option<u32>) -> (Duration, Duration) {
        let now = Cpu::now(server);
        (
            now.server.saturating_sub(self.server),
            now.client.saturating_sub(self.client),
        )
    }
}

/// utime + stime of a process, from /proc/PID/stat (clock-tick resolution).
fn process_cpu(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which may contain spaces: state is
    // field 3, utime 14 and stime 15.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut f = rest.split_whitespace().skip(11);
    let ticks: u64 = f.next()?.parse::<u64>().ok()? + f.next()?.parse::<u64>().ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = u64::try_from(unsafe { libc::sysconf(libc::_SC_CLK_TCK) }).ok()?;
    Some(Duration::from_nanos(ticks * 1_000_000_000 / hz.max(1)))
}

/// User + system CPU time of this process (all threads).
fn self_cpu() -> Duration {
    // SAFETY: getrusage fills the struct we pass; zeroed is a valid rusage.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: RUSAGE_SELF and a valid pointer.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } != 0 {
        return Duration::ZERO;
    }
    let tv = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
    };
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

fn per_s(n: u32, t: Duration) -> f64 {
    f64::from(n) / t.as_secs_f64()
}

fn median(v: &[f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

/// The table and what goes with it, in markdown.
fn report(
    args: &Args,
    rows: &[Row],
    rss: &[(&str, Option<u64>)],
    client_rss: Option<u64>,
    load: &(String, String),
) -> String {
    let raw = rows
        .iter()
        .find(|r| r.target == Target::Raw)
        .and_then(|r| median(&r.read));
    let diod_at = |asked: u32| {
        rows.iter()
            .find(|r| r.target == Target::Diod && r.asked == asked)
    };
    let mut out = String::new();
    let _ = writeln!(
        out,
        "## 9P read and op rates, loopback TCP ({} file, {} ops, median of {} run{})\n",
        human(args.size),
        args.ops,
        args.runs,
        if args.runs == 1 { "" } else { "s" }
    );
    let _ = writeln!(
        out,
        "{} Load average (1, 5, 15 min) {} at the start, {} at the end.\n",
        machine(),
        load.0,
        load.1
    );
    let par_head = if args.tasks > 0 {
        format!(" ops/s ({} tasks) | vs diod |", args.tasks)
    } else {
        String::new()
    };
    let _ = writeln!(
        out,
        "| setup | msize | read MB/s | vs diod | vs raw TCP | ops/s (sequential) | vs diod |{par_head}"
    );
    let _ = writeln!(
        out,
        "|---|---:|---:|---:|---:|---:|---:|{}",
        if args.tasks > 0 { "---:|---:|" } else { "" }
    );
    for r in rows {
        let read = median(&r.read);
        let seq = median(&r.seq);
        let par = median(&r.par);
        let d = if r.target == Target::Ours {
            diod_at(r.asked)
        } else {
            None
        };
        let msize = match (r.msize.iter().min(), r.msize.iter().max()) {
            (Some(a), Some(b)) if a == b => a.to_string(),
            (Some(a), Some(b)) => format!("{a}-{b}"),
            _ => "—".into(),
        };
        let vs_raw = match (read, raw) {
            (Some(a), Some(b)) => format!("{:.0}%", 100.0 * a / b),
            _ => "—".into(),
        };
        let _ = write!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} |",
            r.label,
            msize,
            num(read),
            ratio(read, d.and_then(|d| median(&d.read))),
            vs_raw,
            num(seq),
            ratio(seq, d.and_then(|d| median(&d.seq))),
        );
        if args.tasks > 0 {
            let _ = write!(
                out,
                " {} | {} |",
                num(par),
                ratio(par, d.and_then(|d| median(&d.par)))
            );
        }
        out.push('\n');
    }

    let _ = writeln!(
        out,
        "\nCPU time per unit of work (median; the server's from /proc/PID/stat, the client's \
         from getrusage, so it is the whole benchmark process: for raw TCP both ends):\n"
    );
    let _ = writeln!(
        out,
        "| setup | server ms/GB read | client ms/GB read | server µs/op | client µs/op |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---:|");
    for r in rows {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} |",
            r.label,
            num(median(&r.read_cpu.0)),
            num(median(&r.read_cpu.1)),
            num1(median(&r.ops_cpu.0)),
            num1(median(&r.ops_cpu.1)),
        );
    }

    // The targets of the issue.
    let mut checks = Vec::new();
    for r in rows.iter().filter(|r| r.target == Target::Ours) {
        if let Some(d) = diod_at(r.asked) {
            for (what, a, b) in [
                ("read", median(&r.read), median(&d.read)),
                ("sequential ops", median(&r.seq), median(&d.seq)),
            ] {
                if let (Some(a), Some(b)) = (a, b) {
                    checks.push(format!(
                        "{} {what} ≥ diod: {:.2}× {}",
                        r.label,
                        a / b,
                        pass(a >= b)
                    ));
                }
            }
        }
    }
    if let (Some(r), Some(raw)) = (
        rows.iter()
            .filter(|r| r.target == Target::Ours)
            .max_by_key(|r| r.asked),
        raw,
    ) {
        if let Some(a) = median(&r.read) {
            checks.push(format!(
                "{} read ≥ 60% of raw TCP: {:.0}% {}",
                r.label,
                100.0 * a / raw,
                pass(a >= 0.6 * raw)
            ));
        }
    }
    if !checks.is_empty() {
        let _ = writeln!(out, "\nTargets:");
        for c in checks {
            let _ = writeln!(out, "- {c}");
        }
    }
    let mut mem: Vec<String> = rss
        .iter()
        .map(|(name, kib)| format!("{name} {}", kib.map_or("?".into(), mib)))
        .collect();
    if let Some(k) = client_rss {
        mem.push(format!("benchmark client {}", mib(k)));
    }
    let _ = writeln!(
        out,
        "\nPeak RSS (VmHWM, whole benchmark): {}.",
        mem.join(", ")
    );
    let _ = writeln!(
        out,
        "\nMB = 10^6 bytes. All traffic on 127.0.0.1. Both servers read the file from the page \
         cache (written just before, caches not dropped). Reads keep {} in flight; ops are \
         Twalk of one name from the root fid to a new fid, Tgetattr, Tclunk. Servers are real \
         processes: gridd --export b=DIR:ro (aname /files/b) and diod -e DIR (aname DIR).",
        if args.read_all {
            "Fid::read_all's window (4 MiB of iounit-sized Treads, 2 to 64)"
        } else {
            "a streaming window of Fid::read, 4 MiB of iounit-sized Treads (2 to 64), like Fid::read_all,"
        }
    );
    out
}

fn pass(ok: bool) -> &'static str {
    if ok {
        "PASS"
    } else {
        "MISS"
    }
}

fn num(v: Option<f64>) -> String {
    v.map_or("—".into(), |v| format!("{v:.0}"))
}

fn num1(v: Option<f64>) -> String {
    v.map_or("—".into(), |v| format!("{v:.1}"))
}

fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}×", a / b),
        _ => "—".into(),
    }
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

/// 65536 as 64K, 1048576 as 1M.
fn short(msize: u32) -> String {
    match msize {
        m if m >= 1 << 20 && m % (1 << 20) == 0 => format!("{}M", m >> 20),
        m if m >= 1 << 10 && m % (1 << 10) == 0 => format!("{}K", m >> 10),
        m => m.to_string(),
    }
}

fn human(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 30 && b % (1 << 30) == 0 => format!("{} GiB", b >> 30),
        b if b >= 1 << 20 && b % (1 << 20) == 0 => format!("{} MiB", b >> 20),
        b if b >= 1 << 10 && b % (1 << 10) == 0 => format!("{} KiB", b >> 10),
        b => format!("{b} bytes"),
    }
}

/// Writes `size` bytes: 1 MiB of pseudo-random bytes, repeated. Returns
/// the first [`HEAD`] bytes. The file is synced so that writeback does not
/// run during the measurements; its pages stay cached.
fn make_file(path: &Path, size: u64) -> Result<Vec<u8>> {
    let mut chunk = vec![0u8; 1 << 20];
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for b in chunk.chunks_mut(8) {
        // xorshift64
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        b.copy_from_slice(&x.to_le_bytes()[..b.len()]);
    }
    let mut f = std::fs::File::create(path).with_context(|| path.display().to_string())?;
    let mut left = size;
    while left > 0 {
        let n = left.min(chunk.len() as u64) as usize;
        f.write_all(&chunk[..n])?;
        left -= n as u64;
    }
    f.sync_all()?;
    Ok(chunk[..HEAD.min(size as usize)].to_vec())
}

/// The first three fields of /proc/loadavg.
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

/// Cores, CPU, memory, kernel and the date, for the report.
fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or("unknown CPU".into(), |(_, m)| m.trim().to_owned());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            let l = m.lines().find(|l| l.starts_with("MemTotal:"))?.to_owned();
            l.split_whitespace().nth(1)?.parse::<u64>().ok()
        })
        .map_or("?".into(), |k| {
            format!("{:.0} GiB", k as f64 / (1 << 20) as f64)
        });
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!(
        "Machine: {cores} cores ({model}), {mem} RAM, Linux {}; {}.",
        kernel.trim(),
        utc_now()
    )
}

/// The current UTC time as `YYYY-MM-DD HH:MM UTC`.
fn utc_now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let days = (secs / 86_400) as i64;
    let (h, m) = ((secs % 86_400) / 3600, (secs % 3600) / 60);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let mo = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(mo <= 2);
    format!("{y:04}-{mo:02}-{d:02} {h:02}:{m:02} UTC")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1G").unwrap(), 1 << 30);
        assert_eq!(parse_size("64M").unwrap(), 64 << 20);
        assert_eq!(parse_size("64MiB").unwrap(), 64 << 20);
        assert_eq!(parse_size("512k").unwrap(), 512 << 10);
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert!(parse_size("0").is_err());
        assert!(parse_size("x").is_err());
        assert!(parse_size("99999999999G").is_err());
    }

    #[test]
    fn medians_and_names() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0]), Some(2.5));
        assert_eq!(median(&[]), None);
        assert_eq!(short(65536), "64K");
        assert_eq!(short(1 << 20), "1M");
        assert_eq!(short(8216), "8216");
        assert_eq!(human(1 << 30), "1 GiB");
    }
}

//! Jobs through the `/cpu` nodes, in process: the tree, the ctl verbs,
//! output, exit codes and signals, without 9P in between.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use grid_cpu::{Confine, Cpu, CpuConfig, Reader, Share};
use ninep_server::{Handle, Node, OpenMode};

const LIMIT: Duration = Duration::from_secs(30);

async fn walk(node: &Arc<dyn Node>, path: &str) -> Arc<dyn Node> {
    let mut n = node.clone();
    for name in path.split('/').filter(|s| !s.is_empty()) {
        n = n
            .walk(name)
            .await
            .unwrap_or_else(|e| panic!("walk {path}: {e}"));
    }
    n
}

async fn open(node: &Arc<dyn Node>, path: &str, write: bool) -> Arc<dyn Handle> {
    let mode = OpenMode {
        read: !write,
        write,
        ..OpenMode::default()
    };
    walk(node, path)
        .await
        .open(mode)
        .await
        .unwrap_or_else(|e| panic!("open {path}: {e}"))
        .handle
}

async fn read_all(h: &Arc<dyn Handle>) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let chunk = tokio::time::timeout(LIMIT, h.read(out.len() as u64, 65536))
            .await
            .expect("read hung")
            .unwrap();
        if chunk.is_empty() {
            return out;
        }
        out.extend(chunk);
    }
}

/// Clones a job and writes `lines` to its ctl; returns N.
async fn job(cpu: &Arc<dyn Node>, lines: &str) -> (u32, Result<u32, ninep_server::Error>) {
    let clone = walk(cpu, "clone").await;
    let opened = clone
        .open(OpenMode {
            read: true,
            write: true,
            ..OpenMode::default()
        })
        .await
        .unwrap();
    let n: u32 = String::from_utf8(opened.handle.read(0, 100).await.unwrap())
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    (n, opened.handle.write(0, lines.as_bytes()).await)
}

async fn text(cpu: &Arc<dyn Node>, path: &str) -> String {
    String::from_utf8(read_all(&open(cpu, path, false).await).await).unwrap()
}

fn tree(confine: Confine) -> (Cpu, Arc<dyn Node>) {
    let cpu = Cpu::new(CpuConfig::default()).unwrap();
    let share = Share {
        confine,
        ..Share::unlimited()
    };
    let t = cpu.tree(Reader {
        share,
        ..Reader::owner()
    });
    (cpu, t)
}

#[tokio::test]
async fn echo_exit_codes_and_signals() {
    for confine in [Confine::Preferred, Confine::Off] {
        let (cpu, t) = tree(confine);
        let (n, r) = job(&t, "exec sh -c 'echo out; echo err >&2; exit 3'\n").await;
        r.unwrap();
        let wait = text(&t, &format!("{n}/wait")).await;
        assert!(wait.starts_with("exited "), "{confine:?}: {wait}");
        assert_eq!(wait.split(' ').nth(2), Some("3"), "{wait}");
        assert_eq!(text(&t, &format!("{n}/stdout")).await, "out\n");
        assert_eq!(text(&t, &format!("{n}/stderr")).await, "err\n");

        let (n, r) = job(&t, "exec sleep 100").await;
        r.unwrap();
        let ctl = open(&t, &format!("{n}/ctl"), true).await;
        ctl.write(0, b"signal TERM").await.unwrap();
        let wait = text(&t, &format!("{n}/wait")).await;
        assert!(wait.starts_with("killed "), "{wait}");
        assert_eq!(wait.split(' ').nth(2), Some("TERM"), "{wait}");
        cpu.shutdown().await;
    }
}

#[tokio::test]
async fn confined_jobs_see_their_own_namespaces() {
    let (cpu, t) = tree(Confine::Required);
    let info = text(&t, "info").await;
    assert!(
        info.contains("\nsandbox user mount pid net ipc\n"),
        "{info}"
    );
    let (n, r) = job(&t, "exec sh -c 'echo $$; id -u; set -- /proc/[0-9]*; echo $#; cat /sys/class/net/lo/operstate 2>/dev/null || echo none; pwd; echo $HOME'").await;
    r.unwrap();
    let out = text(&t, &format!("{n}/stdout")).await;
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "2", "the command is pid 2 under its init: {out}");
    // SAFETY: geteuid cannot fail.
    let want_uid = if unsafe { libc::geteuid() } == 0 {
        "65534".to_owned()
    } else {
        unsafe { libc::geteuid() }.to_string()
    };
    assert_eq!(lines[1], want_uid, "{out}");
    // Counted by the shell's own glob: a pipeline's processes would be
    // counted or not depending on when each started.
    assert_eq!(lines[2], "2", "only init and sh in /proc: {out}");
    assert_eq!(lines[4], lines[5], "starts in its scratch directory: {out}");
    let status = text(&t, &format!("{n}/wait")).await;
    assert!(status.starts_with("exited "), "{status}");
    cpu.shutdown().await;
}

/// Not a test: where a job's round trip goes (`cargo test --release -p
/// grid-cpu --test jobs -- --ignored --nocapture`).
#[tokio::test]
#[ignore]
async fn round_trip_by_confinement() {
    for confine in [Confine::Off, Confine::Preferred] {
        let (cpu, t) = tree(confine);
        let mut v = Vec::new();
        for _ in 0..100 {
            let t0 = std::time::Instant::now();
            let (n, r) = job(&t, "exec true").await;
            r.unwrap();
            let _ = text(&t, &format!("{n}/wait")).await;
            v.push(t0.elapsed());
            let ctl = open(&t, &format!("{n}/ctl"), true).await;
            ctl.write(0, b"rm").await.unwrap();
        }
        v.sort();
        eprintln!("{confine:?}: median {:?}", v[50]);
        cpu.shutdown().await;
    }
}

/// The command is found and exec'd as execvp(3) would: through the job's
/// PATH, a script without `#!` run by /bin/sh, and an error at `exec` for
/// a missing or non-executable file; confined or not.
#[tokio::test]
async fn exec_finds_commands_as_execvp() {
    let dir = std::env::temp_dir().join(format!("grid-cpu-exec-test.{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let script = dir.join("script");
    std::fs::write(&script, "echo from-script \"$1\"\n").unwrap();
    let plain = dir.join("plain");
    std::fs::write(&plain, "echo no\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&plain, std::fs::Permissions::from_mode(0o644)).unwrap();
    for confine in [Confine::Off, Confine::Preferred] {
        let (cpu, t) = tree(confine);
        let (n, r) = job(&t, "exec echo hello").await;
        r.unwrap();
        assert_eq!(text(&t, &format!("{n}/stdout")).await, "hello\n");
        let (n, r) = job(&t, &format!("exec {} arg", script.display())).await;
        r.unwrap();
        assert_eq!(
            text(&t, &format!("{n}/stdout")).await,
            "from-script arg\n",
            "{confine:?}"
        );
        let (n, r) = job(&t, &format!("env PATH={}\nexec script x", dir.display())).await;
        r.unwrap();
        assert_eq!(text(&t, &format!("{n}/stdout")).await, "from-script x\n");
        let (_, r) = job(&t, "exec /nonexistent/cmd").await;
        assert_eq!(r.unwrap_err().errno, libc::ENOENT, "{confine:?}");
        let (_, r) = job(&t, "exec no-such-command-anywhere").await;
        assert_eq!(r.unwrap_err().errno, libc::ENOENT, "{confine:?}");
        let (_, r) = job(&t, &format!("exec {}", plain.display())).await;
        assert_eq!(r.unwrap_err().errno, libc::EACCES, "{confine:?}");
        cpu.shutdown().await;
    }
    let _ = std::fs::remove_dir_all(&dir);
}

//! LAN discovery (mDNS/DNS-SD) between two real gridd processes, each in
//! its own network namespace, the two joined by a veth pair on a private
//! /24: each lists the other in `/net/lan`; a peer added by key alone is
//! dialed where the LAN saw it; a stopped grid leaves the other's list.
//!
//! Needs root and iproute2 (`ip`); says SKIP otherwise. The namespaces are
//! named `gridt-PID-lanX` (so a later overlay test run reaps them if this
//! one is killed) and are removed on drop, also when a test panics.

use std::path::Path;
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

use grid_tests::{bin, have, run, run_with_input, spawn_gridd, GriddLog, LIMIT};

/// How long discovery, pairing and expiry may take.
const WAIT: Duration = Duration::from_secs(30);
/// The QUIC port of both grids (each in its own namespace).
const PORT: u16 = 5641;

/// Two namespaces joined by a veth pair: `lana` (10.79.0.1) and `lanb`
/// (10.79.0.2).
struct Lan {
    ns: [String; 2],
}

const ADDRS: [&str; 2] = ["10.79.0.1", "10.79.0.2"];

impl Lan {
    fn skip_reason() -> Option<String> {
        // SAFETY: geteuid(2) has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return Some("not root (network namespaces need it)".into());
        }
        if !have("ip") {
            return Some("ip (iproute2) is not installed (./test.sh installs it)".into());
        }
        None
    }

    fn start() -> Lan {
        let pid = std::process::id();
        let lan = Lan {
            ns: [format!("gridt-{pid}-lana"), format!("gridt-{pid}-lanb")],
        };
        for ns in &lan.ns {
            // A leftover of a killed run with our pid (pids are reused).
            let _ = run(Command::new("ip").args(["netns", "del", ns]));
            must(Command::new("ip").args(["netns", "add", ns]));
            must(Command::new("ip").args(["-n", ns, "link", "set", "lo", "up"]));
        }
        let [a, b] = &lan.ns;
        must(Command::new("ip").args([
            "-n", a, "link", "add", "lan0", "type", "veth", "peer", "name", "lan0", "netns", b,
        ]));
        for (ns, addr) in lan.ns.iter().zip(ADDRS) {
            let cidr = format!("{addr}/24");
            must(Command::new("ip").args(["-n", ns, "addr", "add", &cidr, "dev", "lan0"]));
            must(Command::new("ip").args(["-n", ns, "link", "set", "lan0", "up"]));
        }
        lan.wait_for_dad();
        lan
    }

    /// Waits until no address of the veth is tentative (IPv6 duplicate
    /// address detection, a second or two): mDNS started before would
    /// lose the interface for its first interface check (5 s), which is
    /// how a machine just booted behaves, but not what is tested here.
    fn wait_for_dad(&self) {
        let deadline = Instant::now() + LIMIT;
        for ns in &self.ns {
            loop {
                let out = run(Command::new("ip").args([
                    "-n",
                    ns,
                    "addr",
                    "show",
                    "dev",
                    "lan0",
                    "tentative",
                ]));
                if out.status.success() && out.stdout.is_empty() {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "{ns}: lan0 still has tentative addresses:\n{}",
                    String::from_utf8_lossy(&out.stdout)
                );
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }

    /// Starts gridd in namespace `i` as grid `name`, with QUIC on
    /// 0.0.0.0 and LAN discovery on, serving `exports`.
    fn gridd(&self, i: usize, name: &str, exports: &[(&str, &Path)]) -> NsGridd {
        let state = tempfile::tempdir().expect("state dir");
        let config = format!(
            "name = \"{name}\"\nlisten = [\"quic!0.0.0.0!{PORT}\"]\n\n[lan]\ndiscover = true\n"
        );
        std::fs::write(state.path().join("grid.toml"), config).expect("grid.toml");
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.ns[i]])
            .arg(bin("gridd"))
            .arg("--state")
            .arg(state.path());
        for (n, dir) in exports {
            cmd.arg("--export").arg(format!("{n}={}", dir.display()));
        }
        // `ip netns exec` execs gridd: the child is gridd itself.
        let (child, log, rx) = spawn_gridd(&mut cmd);
        let g = NsGridd {
            name: name.to_owned(),
            state,
            child: Some(child),
            log,
        };
        // The unix socket and the QUIC listener.
        let deadline = Instant::now() + LIMIT;
        for _ in 0..2 {
            let left = deadline.saturating_duration_since(Instant::now());
            if rx.recv_timeout(left).is_err() {
                panic!("gridd {name} did not start serving:\n{}", g.log());
            }
        }
        g
    }
}

impl Drop for Lan {
    fn drop(&mut self) {
        for ns in &self.ns {
            // Deleting a namespace deletes its end of the veth pair too.
            let _ = run(Command::new("ip").args(["netns", "del", ns]));
        }
    }
}

/// A gridd in a namespace; killed on drop if still running.
struct NsGridd {
    name: String,
    state: tempfile::TempDir,
    child: Option<Child>,
    log: GriddLog,
}

impl NsGridd {
    fn log(&self) -> String {
        self.log.lock().map(|l| l.join("\n")).unwrap_or_default()
    }

    /// `grid -a unix!STATE/gridd.sock`: the socket is reachable from
    /// outside the namespace.
    fn grid(&self) -> Command {
        let mut cmd = Command::new(bin("grid"));
        cmd.env_remove("GRID_ADDR").arg("-a").arg(format!(
            "unix!{}",
            self.state.path().join("gridd.sock").display()
        ));
        cmd
    }

    fn cat(&self, path: &str) -> Output {
        run(self.grid().args(["cat", path]))
    }

    fn ctl(&self, line: &str) {
        let out = run_with_input(
            self.grid().args(["write", "/ctl"]),
            format!("{line}\n").as_bytes(),
        );
        assert!(
            out.status.success(),
            "{}: {line}: {}",
            self.name,
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn key(&self) -> String {
        let out = self.cat("/status");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .find_map(|l| l.strip_prefix("key "))
            .unwrap_or_else(|| panic!("{}: no key in /status:\n{}", self.name, self.log()))
            .to_owned()
    }

    /// Polls `path` until `done` holds for its text (or stderr); returns it.
    fn wait_until(&self, path: &str, what: &str, done: impl Fn(&Output, &str) -> bool) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let out = self.cat(path);
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            if done(&out, &text) {
                return text;
            }
            assert!(
                Instant::now() < deadline,
                "{}: {path}: {what} not within {WAIT:?}; last:\n{text}\nlog:\n{}",
                self.name,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// SIGTERM (a clean stop sends mDNS goodbyes), then a bounded wait.
    fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + LIMIT;
        while child.try_wait().ok().flatten().is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{} did not stop:\n{}", self.name, self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for NsGridd {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn must(cmd: &mut Command) {
    let out = run(cmd);
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The `/net/lan` line for `key`, if there is one.
fn lan_line(text: &str, key: &str) -> Option<String> {
    text.lines()
        .find(|l| l.split(' ').nth(1) == Some(key))
        .map(str::to_owned)
}

#[test]
fn grids_on_one_lan_find_each_other_and_pair_by_key_alone() {
    if let Some(why) = Lan::skip_reason() {
        grid_tests::skip(&format!("lan test: {why}"));
        return;
    }
    let lan = Lan::start();
    let files = tempfile::tempdir().expect("files");
    let public = files.path().join("pub");
    std::fs::create_dir(&public).expect("mkdir");
    std::fs::write(public.join("hello.txt"), "hello over the lan\n").expect("write");
    let a = lan.gridd(0, "a", &[]);
    let mut b = lan.gridd(1, "b", &[("pub", &public)]);
    let (ka, kb) = (a.key(), b.key());
    let t = Instant::now();

    // Each lists the other (and not itself) with its LAN address.
    let seen = |g: &NsGridd, key: &str| {
        g.wait_until("/net/lan", "the other grid", |out, text| {
            out.status.success() && lan_line(text, key).is_some()
        })
    };
    let on_a = seen(&a, &kb);
    eprintln!("a saw b {:?} after both started", t.elapsed());
    let on_b = seen(&b, &ka);
    eprintln!("b saw a {:?} after both started", t.elapsed());
    let want = format!("b {kb} quic!{}!{PORT}", ADDRS[1]);
    assert_eq!(lan_line(&on_a, &kb), Some(want), "{on_a}");
    let want = format!("a {ka} quic!{}!{PORT}", ADDRS[0]);
    assert_eq!(lan_line(&on_b, &ka), Some(want), "{on_b}");
    assert!(lan_line(&on_a, &ka).is_none(), "a lists itself:\n{on_a}");

    // Pairing by key alone: no address is typed on either side.
    a.ctl(&format!("peer add b {kb}"));
    b.ctl(&format!("peer add a {ka}"));
    b.ctl("offer a files/pub r");
    a.ctl("request b files/pub r");
    let addr = a.cat("/net/peers/b/addr");
    assert!(addr.status.success() && addr.stdout.is_empty(), "{addr:?}");
    let text = a.wait_until("/n/b/files/pub/hello.txt", "a read of /n/b", |out, _| {
        out.status.success()
    });
    assert_eq!(text, "hello over the lan\n");
    eprintln!("a read b's file by key alone {:?} after start", t.elapsed());
    let on_a = a.cat("/net/lan");
    let on_a = String::from_utf8_lossy(&on_a.stdout);
    assert!(
        lan_line(&on_a, &kb).is_some_and(|l| l.ends_with(" peer b")),
        "{on_a}"
    );
    // `grid lan` lays the file out as a table.
    let out = run(a.grid().arg("lan"));
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "grid lan: {out:?}");
    assert!(table.starts_with("NAME "), "{table}");
    let row: Vec<&str> = table
        .lines()
        .find(|l| l.contains(&kb))
        .unwrap_or_else(|| panic!("grid lan does not list b:\n{table}"))
        .split_whitespace()
        .collect();
    let addr = format!("quic!{}!{PORT}", ADDRS[1]);
    assert_eq!(row, ["b", kb.as_str(), "b", addr.as_str()], "{table}");
    // The grant is b's, not the LAN's: outside it, nothing.
    let denied = a.cat("/n/b/status");
    assert!(!denied.status.success(), "{denied:?}");

    // b stops: its goodbye takes it off a's list.
    b.stop();
    let t = Instant::now();
    a.wait_until("/net/lan", "b gone", |out, text| {
        out.status.success() && lan_line(text, &kb).is_none()
    });
    eprintln!("b left a's /net/lan {:?} after it stopped", t.elapsed());
}

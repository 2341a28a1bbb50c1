//! Network namespaces with real yggdrasil daemons, for the multi-host
//! overlay tests: [`Line`] builds three namespaces in a line a—b—c
//! joined by veth pairs, runs one `yggdrasil` per namespace (a and c
//! peer with b), and can cut and restore the b—c link.
//!
//! Everything is named `gridt-<pid>-<n><node>` so parallel tests and
//! runs do not collide, and is removed on drop (daemons killed,
//! namespaces deleted), also when a test panics; namespaces left by a
//! run that was killed are removed by the next one. Every wait is
//! bounded. Traffic never leaves the namespaces.
//!
//! Needs root, `ip` (iproute2), `yggdrasil` and `ping`:
//! [`Line::skip_reason`] says which is missing, so tests can SKIP.
//!
//! [`Line::start`] runs the system's daemon (Debian 12's 0.4.7);
//! [`Line::start_with`] takes a [`Ygg`], and [`Ygg::V05`] runs the 0.5
//! daemon that `tests/overlay/fetch-yggdrasil-0.5.sh` unpacks (0.5 and 0.4
//! do not peer with each other, so a line runs one version throughout).

use std::fs::File;
use std::net::Ipv6Addr;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use grid_overlay::{Admin, AdminAddr, SelfInfo, YggConfig};

/// The TCP port the daemons listen on for peers (inside each namespace).
pub const PEER_PORT: u16 = 7000;

/// How long a daemon may take to answer its admin socket.
const START_LIMIT: Duration = Duration::from_secs(15);

static SERIAL: AtomicU32 = AtomicU32::new(0);

/// Where `tests/overlay/fetch-yggdrasil-0.5.sh` unpacks yggdrasil 0.5
/// (`GRID_YGGDRASIL_05` overrides it, for the script and for the tests).
pub const YGGDRASIL_05_DIR: &str = "/var/cache/grid-tests/yggdrasil-0.5";

/// Which yggdrasil a [`Line`] runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ygg {
    /// The system's `yggdrasil` (0.4.7 in Debian 12).
    System,
    /// 0.5 from bookworm-backports, unpacked under [`YGGDRASIL_05_DIR`].
    V05,
}

impl Ygg {
    /// The daemon's executable.
    pub fn binary(self) -> PathBuf {
        match self {
            Ygg::System => PathBuf::from("yggdrasil"),
            Ygg::V05 => {
                let dir = std::env::var_os("GRID_YGGDRASIL_05")
                    .map_or_else(|| PathBuf::from(YGGDRASIL_05_DIR), PathBuf::from);
                dir.join("usr/sbin/yggdrasil")
            }
        }
    }

    /// Why this daemon cannot run here, if it cannot.
    pub fn missing(self) -> Option<String> {
        match self {
            Ygg::System if !crate::have("yggdrasil") => {
                Some("yggdrasil is not installed (./test.sh installs it)".into())
            }
            Ygg::V05 if !self.binary().exists() => Some(format!(
                "{} is missing (tests/overlay/fetch-yggdrasil-0.5.sh fetches it; \
                 ./test.sh runs that as root)",
                self.binary().display()
            )),
            _ => None,
        }
    }
}

/// One namespace and its daemon.
pub struct Node {
    /// `a`, `b` or `c`.
    pub label: char,
    /// The namespace's name.
    pub ns: String,
    /// The daemon's config.
    pub config: YggConfig,
    /// Where its admin socket is (a unix socket: reachable from outside
    /// the namespace).
    pub admin: Admin,
    /// The 32-byte seed of its key (the grid key, for a gridd in it).
    pub seed: [u8; 32],
    child: Option<Child>,
    log: PathBuf,
}

impl Node {
    /// The node's overlay address.
    pub fn address(&self) -> Ipv6Addr {
        self.config.address()
    }

    /// A command that runs `prog` inside this namespace.
    pub fn command(&self, prog: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.ns, prog]);
        c
    }

    /// The daemon's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// Three namespaces a—b—c with yggdrasil daemons.
pub struct Line {
    /// a, b, c.
    pub nodes: Vec<Node>,
    dir: tempfile::TempDir,
    rt: tokio::runtime::Runtime,
    /// `/etc/netns/NS` directories we created (removed on drop).
    etc: Vec<PathBuf>,
    /// The daemon every node runs.
    ygg: Ygg,
}

/// One veth pair between two nodes, with static addresses on both ends.
struct Link {
    /// Node indexes.
    ends: [usize; 2],
    /// Interface names, inside each end's namespace.
    ifs: [&'static str; 2],
    v4: [&'static str; 2],
    v6: [&'static str; 2],
}

/// a—b and b—c.
const LINKS: [Link; 2] = [
    Link {
        ends: [0, 1],
        ifs: ["ab", "ba"],
        v4: ["10.77.1.1", "10.77.1.2"],
        v6: ["fd77:1::1", "fd77:1::2"],
    },
    Link {
        ends: [1, 2],
        ifs: ["bc", "cb"],
        v4: ["10.77.2.2", "10.77.2.3"],
        v6: ["fd77:2::2", "fd77:2::3"],
    },
];

impl Line {
    /// Why the overlay tests cannot run here with the system's daemon, if
    /// they cannot.
    pub fn skip_reason() -> Option<String> {
        Line::skip_reason_for(Ygg::System)
    }

    /// Why a line of `ygg` daemons cannot run here, if it cannot.
    pub fn skip_reason_for(ygg: Ygg) -> Option<String> {
        // SAFETY: geteuid(2) has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return Some("not root (network namespaces need it)".into());
        }
        for tool in ["ip", "ping"] {
            if !crate::have(tool) {
                return Some(format!("{tool} is not installed (./test.sh installs it)"));
            }
        }
        if let Some(why) = ygg.missing() {
            return Some(why);
        }
        if !std::path::Path::new("/dev/net/tun").exists() {
            return Some("/dev/net/tun is missing".into());
        }
        let n = SERIAL.fetch_add(1, Ordering::Relaxed);
        let probe = format!("gridt-{}-{n}probe", std::process::id());
        let ok = quiet(Command::new("ip").args(["netns", "add", &probe]));
        let _ = quiet(Command::new("ip").args(["netns", "del", &probe]));
        if !ok {
            return Some("cannot create network namespaces here".into());
        }
        None
    }

    /// Builds a—b—c and starts the system's daemons (b first, so a's and
    /// c's first dial finds its listener: 0.4.7 would redial only after
    /// 60 s). Returns when every daemon answers its admin socket.
    pub fn start() -> Line {
        Line::start_with(Ygg::System)
    }

    /// [`Line::start`] with the daemon `ygg` on every node (check
    /// [`Ygg::missing`] first).
    pub fn start_with(ygg: Ygg) -> Line {
        reap_stale();
        let n = SERIAL.fetch_add(1, Ordering::Relaxed);
        let dir = tempfile::tempdir().expect("temp dir");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let mut nodes = Vec::new();
        for label in ['a', 'b', 'c'] {
            let ns = format!("gridt-{}-{n}{label}", std::process::id());
            let mut seed = [0u8; 32];
            random(&mut seed);
            let mut config = YggConfig::for_seed(&seed);
            let sock = dir.path().join(format!("{label}.sock"));
            config.admin_listen = format!("unix://{}", sock.display());
            config.if_name = "ygg0".into();
            config.if_mtu = 65535;
            let admin = Admin::new(AdminAddr::Unix(sock)).with_timeout(Duration::from_secs(3));
            let log = dir.path().join(format!("{label}.log"));
            nodes.push(Node {
                label,
                ns,
                config,
                admin,
                seed,
                child: None,
                log,
            });
        }
        // Constructed now, so drop cleans up whatever the set-up below
        // got to before a failure.
        let mut line = Line {
            nodes,
            dir,
            rt,
            etc: Vec::new(),
            ygg,
        };
        for node in &line.nodes {
            must(Command::new("ip").args(["netns", "add", &node.ns]));
            must(Command::new("ip").args(["-n", &node.ns, "link", "set", "lo", "up"]));
        }
        for link in &LINKS {
            let ns = link.ends.map(|e| line.nodes[e].ns.clone());
            let [li, ri] = link.ifs;
            must(Command::new("ip").args([
                "-n", &ns[0], "link", "add", li, "type", "veth", "peer", "name", ri, "netns",
                &ns[1],
            ]));
            for end in 0..2 {
                let (ns, ifc) = (&ns[end], link.ifs[end]);
                let v4 = format!("{}/24", link.v4[end]);
                let v6 = format!("{}/64", link.v6[end]);
                must(Command::new("ip").args(["-n", ns, "addr", "add", &v4, "dev", ifc]));
                must(Command::new("ip").args(["-n", ns, "addr", "add", &v6, "dev", ifc, "nodad"]));
                must(Command::new("ip").args(["-n", ns, "link", "set", ifc, "up"]));
            }
        }
        line.nodes[1].config.listen = vec![format!("tcp://0.0.0.0:{PEER_PORT}")];
        line.nodes[0].config.peers = vec![line.peer_uri(0)];
        line.nodes[2].config.peers = vec![line.peer_uri(2)];
        for i in [1, 0, 2] {
            line.spawn(i);
        }
        line
    }

    /// The URI node `i` (a or c) dials to reach b.
    pub fn peer_uri(&self, i: usize) -> String {
        let b4 = if i == 0 {
            LINKS[0].v4[1]
        } else {
            LINKS[1].v4[0]
        };
        format!("tcp://{b4}:{PEER_PORT}")
    }

    fn spawn(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        let cfg = self.dir.path().join(format!("{}.conf", node.label));
        std::fs::write(&cfg, node.config.to_json()).expect("write config");
        let log = File::create(&node.log).expect("log file");
        let err = log.try_clone().expect("log file");
        let child = Command::new("ip")
            .args(["netns", "exec", &node.ns])
            .arg(self.ygg.binary())
            .arg("-useconffile")
            .arg(&cfg)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn()
            .expect("spawn yggdrasil");
        node.child = Some(child);
        let deadline = Instant::now() + START_LIMIT;
        loop {
            if self.rt.block_on(node.admin.get_self()).is_ok() {
                return;
            }
            if let Some(Ok(Some(st))) = node.child.as_mut().map(Child::try_wait) {
                panic!("yggdrasil in {} exited: {st}\n{}", node.ns, node.log());
            }
            assert!(
                Instant::now() < deadline,
                "yggdrasil in {} did not answer its admin socket in {START_LIMIT:?}\n{}",
                node.ns,
                node.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Stops node `i`'s daemon (its TUN and overlay address go with it).
    pub fn stop_daemon(&mut self, i: usize) {
        if let Some(mut child) = self.nodes[i].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts node `i`'s daemon again with the same config; returns when
    /// it answers its admin socket.
    pub fn restart_daemon(&mut self, i: usize) {
        self.stop_daemon(i);
        self.spawn(i);
    }

    /// getSelf of node `i`.
    pub fn get_self(&self, i: usize) -> SelfInfo {
        self.rt
            .block_on(self.nodes[i].admin.get_self())
            .unwrap_or_else(|e| panic!("getSelf on {}: {e}", self.nodes[i].label))
    }

    /// The daemon every node runs.
    pub fn ygg(&self) -> Ygg {
        self.ygg
    }

    /// Runs an async admin call (or anything else) on the line's runtime.
    pub fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }

    /// One `ping -6 -c1 -W1` from node `from` to `to`: whether it answered.
    pub fn ping(&self, from: usize, to: Ipv6Addr) -> bool {
        quiet(
            self.nodes[from]
                .command("ping")
                .args(["-6", "-n", "-c1", "-W1", &to.to_string()]),
        )
    }

    /// Pings until an answer or `limit`; returns how long it took.
    pub fn wait_reachable(&self, from: usize, to: Ipv6Addr, limit: Duration) -> Option<Duration> {
        let start = Instant::now();
        while start.elapsed() < limit {
            if self.ping(from, to) {
                return Some(start.elapsed());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        None
    }

    /// Takes the b—c veth down (both ends).
    pub fn cut_bc(&self) {
        self.set_bc("down");
    }

    /// Brings the b—c veth back up. With 0.4.7, c then redials b through
    /// the admin socket, so recovery does not wait for 0.4.7's 60 s
    /// redial; 0.5 redials by itself with a short backoff (about a second
    /// after a cut of a few seconds), which this leaves to it, so the
    /// tests show it does.
    pub fn restore_bc(&self) {
        self.set_bc("up");
        if self.ygg == Ygg::V05 {
            return;
        }
        let uri = self.peer_uri(2);
        if let Err(e) = self.rt.block_on(self.nodes[2].admin.redial(&uri)) {
            panic!("redial {uri} from c: {e}\n{}", self.nodes[2].log());
        }
    }

    /// Brings the b—c veth back up and leaves redialing to the daemons
    /// (and to a gridd that keeps the link: `[overlay] links`). 0.4.7 by
    /// itself redials only every 60 s.
    pub fn restore_bc_without_redial(&self) {
        self.set_bc("up");
    }

    /// Whether node `i`'s daemon lists a link to `uri` that is up (`false`
    /// when its admin socket does not answer).
    pub fn link_up(&self, i: usize, uri: &str) -> bool {
        self.rt
            .block_on(self.nodes[i].admin.get_peers())
            .map(|peers| {
                peers
                    .iter()
                    .any(|p| p.up && p.remote.as_deref() == Some(uri))
            })
            .unwrap_or(false)
    }

    fn set_bc(&self, how: &str) {
        let link = &LINKS[1];
        for end in 0..2 {
            let ns = &self.nodes[link.ends[end]].ns;
            must(Command::new("ip").args(["-n", ns, "link", "set", link.ifs[end], how]));
        }
    }

    /// Makes `name` resolve to `addr` for programs run in node `i`'s
    /// namespace (an `/etc/netns/NS/hosts`, which `ip netns exec` mounts
    /// over `/etc/hosts`): for tools such as diodcat that cannot take an
    /// IPv6 literal with a port.
    pub fn add_host(&mut self, i: usize, name: &str, addr: Ipv6Addr) {
        let d = PathBuf::from("/etc/netns").join(&self.nodes[i].ns);
        std::fs::create_dir_all(&d).expect("mkdir /etc/netns/NS");
        if !self.etc.contains(&d) {
            self.etc.push(d.clone());
        }
        let hosts = d.join("hosts");
        let mut text = std::fs::read_to_string(&hosts)
            .unwrap_or_else(|_| "127.0.0.1 localhost\n::1 localhost\n".into());
        text.push_str(&format!("{addr} {name}\n"));
        std::fs::write(&hosts, text).expect("write hosts");
    }

    /// Starts a real gridd inside node `i`'s namespace, named after the
    /// node (`a`, `b`, `c`), whose grid key is that node's yggdrasil key
    /// (so its overlay address is derived from its grid key) and whose
    /// `[overlay]` points at the node's admin socket: it serves plain 9P on
    /// `tcp!OVERLAY!564` (to its peers only) and QUIC on
    /// `quic!OVERLAY!5640`, plus whatever `args` add. Returns when every
    /// listener is serving.
    pub fn start_gridd(&self, i: usize, args: &[&str]) -> NsGrid {
        let grid = self.spawn_gridd(i, &self.nodes[i].seed, args);
        grid.wait_serving(3 + args.iter().filter(|a| **a == "--listen").count())
    }

    /// Starts a gridd in node `i`'s namespace as [`Line::start_gridd`]
    /// does, but with the grid key of `seed`, which need not be the node's
    /// overlay key, and returns at once (wait with
    /// [`NsGrid::wait_serving`] or [`NsGrid::wait_log`]).
    pub fn spawn_gridd(&self, i: usize, seed: &[u8; 32], args: &[&str]) -> NsGrid {
        self.spawn_gridd_with(i, seed, "", args)
    }

    /// [`Line::start_gridd`] with `overlay` (grid.toml lines, such as
    /// `port = 0\n`) added to its `[overlay]` table; returns once its
    /// `listeners` (the unix socket included) are serving.
    pub fn start_gridd_with(
        &self,
        i: usize,
        overlay: &str,
        listeners: usize,
        args: &[&str],
    ) -> NsGrid {
        self.spawn_gridd_with(i, &self.nodes[i].seed, overlay, args)
            .wait_serving(listeners)
    }

    fn spawn_gridd_with(&self, i: usize, seed: &[u8; 32], overlay: &str, args: &[&str]) -> NsGrid {
        let node = &self.nodes[i];
        let state = tempfile::tempdir().expect("state dir");
        write_identity(&state.path().join("identity.key"), seed);
        let config = format!(
            "name = \"{}\"\n\n[overlay]\nyggdrasil = \"{}\"\n{overlay}",
            node.label,
            node.admin.addr()
        );
        std::fs::write(state.path().join("grid.toml"), config).expect("write grid.toml");
        let mut cmd = node.command(&crate::bin("gridd").display().to_string());
        let (child, log, rx) = crate::spawn_gridd(cmd.arg("--state").arg(state.path()).args(args));
        let public = YggConfig::for_seed(seed).public_key();
        NsGrid {
            label: node.label,
            key: public.iter().map(|b| format!("{b:02x}")).collect(),
            state,
            child,
            log,
            serving: Mutex::new(rx),
            addrs: Vec::new(),
        }
    }

    /// Every daemon's log, for failure messages.
    pub fn logs(&self) -> String {
        self.nodes
            .iter()
            .map(|n| format!("--- {} ({})\n{}", n.label, n.ns, n.log()))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for Line {
    fn drop(&mut self) {
        for d in &self.etc {
            let _ = std::fs::remove_dir_all(d);
        }
        for node in &mut self.nodes {
            if let Some(mut child) = node.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        for node in &self.nodes {
            // Deleting a namespace also deletes its veth ends and TUN.
            let _ = quiet(Command::new("ip").args(["netns", "del", &node.ns]));
        }
    }
}

/// Removes `gridt-PID-…` namespaces whose test process is gone.
fn reap_stale() {
    let Ok(dir) = std::fs::read_dir("/run/netns") else {
        return;
    };
    for e in dir.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix("gridt-")
            .and_then(|r| r.split('-').next())
            .and_then(|p| p.parse::<i32>().ok())
        else {
            continue;
        };
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            // Kill what still runs in it first, or its TUN keeps it alive.
            let out = run_out(Command::new("ip").args(["netns", "pids", &name]));
            for p in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                if let Ok(p) = p.parse::<i32>() {
                    // SAFETY: kill(2); the pid is a process in a test
                    // namespace whose owner is gone.
                    unsafe { libc::kill(p, libc::SIGKILL) };
                }
            }
            let _ = quiet(Command::new("ip").args(["netns", "del", &name]));
        }
    }
}

/// A gridd running in a namespace; killed on drop.
pub struct NsGrid {
    /// The node it runs in, which is also its name.
    pub label: char,
    /// Its grid key (the node's overlay key), hex.
    pub key: String,
    /// Its state directory (removed on drop).
    pub state: tempfile::TempDir,
    /// Addresses it announced, in order (the unix socket first).
    pub addrs: Vec<String>,
    child: Child,
    log: Arc<Mutex<Vec<String>>>,
    /// The addresses of its `serving` lines, as they come.
    serving: Mutex<std::sync::mpsc::Receiver<String>>,
}

impl NsGrid {
    /// Everything it printed so far.
    pub fn log(&self) -> String {
        self.log.lock().map(|l| l.join("\n")).unwrap_or_default()
    }

    /// Waits until `count` listeners are serving (the unix socket, each
    /// --listen, and the overlay's TCP and QUIC when it joins).
    pub fn wait_serving(mut self, count: usize) -> NsGrid {
        let deadline = Instant::now() + crate::LIMIT;
        while self.addrs.len() < count {
            let left = deadline.saturating_duration_since(Instant::now());
            let next = self.serving.lock().map(|rx| rx.recv_timeout(left));
            match next {
                Ok(Ok(addr)) => self.addrs.push(addr),
                _ => panic!(
                    "gridd in {} did not start serving:\n{}",
                    self.label,
                    self.log()
                ),
            }
        }
        self
    }

    /// Waits (up to [`crate::LIMIT`]) until a line of its log contains
    /// `needle`, and returns that line.
    pub fn wait_log(&self, needle: &str) -> String {
        let deadline = Instant::now() + crate::LIMIT;
        loop {
            if let Some(l) = self.log().lines().find(|l| l.contains(needle)) {
                return l.to_owned();
            }
            assert!(
                Instant::now() < deadline,
                "gridd in {}: no '{needle}' in its log:\n{}",
                self.label,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Its unix socket's dial string (reachable from outside the namespace).
    pub fn unix_addr(&self) -> &str {
        &self.addrs[0]
    }

    /// `grid -a UNIX-SOCKET`, run on the host: the owner's view.
    pub fn grid(&self) -> Command {
        let mut cmd = Command::new(crate::bin("grid"));
        cmd.env_remove("GRID_ADDR").arg("-a").arg(self.unix_addr());
        cmd
    }

    /// Writes `line` to its /ctl; panics with its log if that fails.
    pub fn ctl(&self, line: &str) {
        let out = crate::run_with_input(
            self.grid().args(["write", "/ctl"]),
            format!("{line}\n").as_bytes(),
        );
        assert!(
            out.status.success(),
            "{line}: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
    }

    /// Its /status.
    pub fn status(&self) -> String {
        let out = crate::run(self.grid().args(["cat", "/status"]));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for NsGrid {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Writes a grid identity key (PKCS#8 v1 PEM, mode 0600, as gridd keeps
/// it) for an Ed25519 seed.
fn write_identity(path: &std::path::Path, seed: &[u8; 32]) {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    // SEQUENCE { INTEGER 0, SEQUENCE { OID 1.3.101.112 }, OCTET STRING {
    // OCTET STRING seed } }
    let mut der = vec![
        0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04,
        0x20,
    ];
    der.extend_from_slice(seed);
    let pem = format!(
        "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
        base64(&der)
    );
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .expect("create identity.key");
    f.write_all(pem.as_bytes()).expect("write identity.key");
}

fn base64(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(A[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn random(buf: &mut [u8]) {
    use std::io::Read;
    File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(buf))
        .expect("/dev/urandom");
}

fn run_out(cmd: &mut Command) -> Output {
    crate::run(cmd)
}

fn quiet(cmd: &mut Command) -> bool {
    run_out(cmd).status.success()
}

fn must(cmd: &mut Command) {
    let out = run_out(cmd);
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

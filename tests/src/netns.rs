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

use std::fs::File;
use std::io::{BufRead, BufReader};
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
    /// Why the overlay tests cannot run here, if they cannot.
    pub fn skip_reason() -> Option<String> {
        // SAFETY: geteuid(2) has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return Some("not root (network namespaces need it)".into());
        }
        for tool in ["ip", "yggdrasil", "ping"] {
            if !crate::have(tool) {
                return Some(format!("{tool} is not installed (./test.sh installs it)"));
            }
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

    /// Builds a—b—c and starts the daemons (b first, so a's and c's first
    /// dial finds its listener: 0.4.7 would redial only after 60 s).
    /// Returns when every daemon answers its admin socket.
    pub fn start() -> Line {
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
            .args(["netns", "exec", &node.ns, "yggdrasil", "-useconffile"])
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

    /// getSelf of node `i`.
    pub fn get_self(&self, i: usize) -> SelfInfo {
        self.rt
            .block_on(self.nodes[i].admin.get_self())
            .unwrap_or_else(|e| panic!("getSelf on {}: {e}", self.nodes[i].label))
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

    /// Brings the b—c veth back up and has c redial b through the admin
    /// socket, so recovery does not wait for 0.4.7's 60 s redial.
    pub fn restore_bc(&self) {
        self.set_bc("up");
        let uri = self.peer_uri(2);
        if let Err(e) = self.rt.block_on(self.nodes[2].admin.redial(&uri)) {
            panic!("redial {uri} from c: {e}\n{}", self.nodes[2].log());
        }
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

    /// Starts a real gridd inside node `i`'s namespace whose grid key is
    /// that node's yggdrasil key (so its overlay address is derived from
    /// its grid key), listening for 9P on `tcp!OVERLAY-ADDRESS!564` and on
    /// whatever `args` add. Returns when every listener is serving.
    pub fn start_gridd(&self, i: usize, args: &[&str]) -> NsGrid {
        let node = &self.nodes[i];
        let state = tempfile::tempdir().expect("state dir");
        write_identity(&state.path().join("identity.key"), &node.seed);
        let listen = format!("tcp!{}!564", node.address());
        let mut cmd = node.command(&crate::bin("gridd").display().to_string());
        cmd.arg("--state")
            .arg(state.path())
            .args(["--listen", &listen])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn gridd");
        let stderr = child.stderr.take().expect("stderr");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        {
            let log = log.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    if line.contains(" serving ") {
                        let _ = tx.send(());
                    }
                    if let Ok(mut l) = log.lock() {
                        l.push(line);
                    }
                }
            });
        }
        let grid = NsGrid {
            _state: state,
            child,
            log,
        };
        // The unix socket, --listen, and whatever args add.
        let expected = 2 + args.iter().filter(|a| **a == "--listen").count();
        let deadline = Instant::now() + crate::LIMIT;
        for _ in 0..expected {
            let left = deadline.saturating_duration_since(Instant::now());
            if rx.recv_timeout(left).is_err() {
                panic!(
                    "gridd in {} did not start serving:\n{}",
                    node.ns,
                    grid.log()
                );
            }
        }
        grid
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
    _state: tempfile::TempDir,
    child: Child,
    log: Arc<Mutex<Vec<String>>>,
}

impl NsGrid {
    /// Everything it printed so far.
    pub fn log(&self) -> String {
        self.log.lock().map(|l| l.join("\n")).unwrap_or_default()
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

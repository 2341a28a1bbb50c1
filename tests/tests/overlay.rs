//! The Yggdrasil overlay across network namespaces a—b—c, with one real
//! daemon each (see `grid_tests::netns`), and real gridd processes on it:
//! a mounts c's grid through b (`/n/c`, 9P over plain TCP between the
//! two grids' overlay addresses), reads it with `grid` over plain TCP 9P,
//! gets prompt errors while b—c is cut and works again on its own once it
//! returns; b, not a peer of c, is refused. Needs root, iproute2,
//! yggdrasil, ping and coreutils' timeout; says SKIP otherwise.
//!
//! The address check, the a—b—c mount and gridd's `--yggdrasil-config`
//! run against both daemons Debian 12 has: its own 0.4.7 and 0.5 from
//! bookworm-backports (`tests/overlay/fetch-yggdrasil-0.5.sh`), one test
//! per version (`…_yggdrasil_0_5`).

use std::net::Ipv6Addr;
use std::process::Output;
use std::time::{Duration, Instant};

use grid_overlay::{address_for_key, address_matches_key, subnet_for_key};
use grid_tests::netns::{Line, NsGrid, Ygg};

/// How long a—c may take to route after the daemons start or a link
/// returns. 0.4.7 takes a few seconds. 0.5.12 usually does too, but now
/// and then (about one start in five here) the first session between two
/// nodes stalls: the responder keeps a half-open session (0 bytes) and the
/// initiator's packets go nowhere until it times out, about a minute
/// later (or until the responder sends first), after which it works.
const CONVERGE: Duration = Duration::from_secs(90);

/// How long b may take to notice that the link to c is down.
const PEER_TIMEOUT: Duration = Duration::from_secs(30);

fn line() -> Option<Line> {
    line_of(Ygg::System)
}

/// A line of `ygg` daemons, when it can run here. 0.5 missing is a skip
/// that `GRID_TESTS_STRICT=1` turns into a failure: `./test.sh` fetches
/// it.
fn line_of(ygg: Ygg) -> Option<Line> {
    if let (Ygg::V05, Some(why)) = (ygg, ygg.missing()) {
        grid_tests::skip(&format!("overlay test with yggdrasil 0.5: {why}"));
        return None;
    }
    if let Some(why) = Line::skip_reason_for(ygg) {
        eprintln!("SKIP: overlay test: {why}");
        return None;
    }
    Some(Line::start_with(ygg))
}

/// How long a read through /n may take before the test calls it hung:
/// longer than a dead connection's idle timeout plus a dial.
const READ_LIMIT: &str = "25";
/// `timeout`'s exit status when it had to kill the command.
const TIMED_OUT: i32 = 124;
/// How long a—c may take to work again after b—c returns: the overlay
/// converging, plus /n's backoff (at most 30 s) running out.
const RECOVER: Duration = Duration::from_secs(90);

/// A line, when the tests that also run `timeout` can run here.
fn line_with_timeout() -> Option<Line> {
    line_with_timeout_of(Ygg::System)
}

/// [`line_with_timeout`] with `ygg` daemons.
fn line_with_timeout_of(ygg: Ygg) -> Option<Line> {
    if !grid_tests::have("timeout") {
        eprintln!("SKIP: overlay test: timeout (coreutils) is not installed");
        return None;
    }
    line_of(ygg)
}

fn hex(key: &[u8; 32]) -> String {
    key.iter().map(|b| format!("{b:02x}")).collect()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The value of the `keyword VALUE` line of a /status.
fn status_value<'a>(status: &'a str, keyword: &str) -> Option<&'a str> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(keyword)?.strip_prefix(' '))
}

/// A directory with `hello` in it, to export as `pub`.
fn export_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("hello"), "hello\n").expect("write hello");
    dir
}

/// Makes `x` and `y` peers of each other by key and overlay address; y
/// offers x `files/pub r`, which x requests.
fn pair(x: &NsGrid, y: &NsGrid, x_addr: Ipv6Addr, y_addr: Ipv6Addr) {
    let (xn, yn) = (x.label, y.label);
    y.ctl(&format!("peer add {xn} {} quic!{x_addr}!5640", x.key));
    y.ctl(&format!("offer {xn} files/pub r"));
    x.ctl(&format!("peer add {yn} {} quic!{y_addr}!5640", y.key));
    x.ctl(&format!("request {yn} files/pub r"));
}

/// `grid -a ADDR ARGS` inside node `i`'s namespace, killed by `timeout`
/// if it has not returned after [`READ_LIMIT`] seconds.
fn grid_in(line: &Line, i: usize, addr: &str, args: &[&str]) -> Output {
    let grid = grid_tests::bin("grid");
    grid_tests::run(
        line.nodes[i]
            .command("timeout")
            .arg(READ_LIMIT)
            .arg(&grid)
            .args(["-a", addr])
            .args(args),
    )
}

/// `grid cat /n/PEER/files/pub/hello` inside `g`'s namespace, through its
/// unix socket.
fn read_n(line: &Line, g: &NsGrid, peer: char) -> Output {
    let i = line
        .nodes
        .iter()
        .position(|n| n.label == g.label)
        .expect("node");
    let path = format!("/n/{peer}/files/pub/hello");
    grid_in(line, i, g.unix_addr(), &["cat", &path])
}

fn read_n_c(line: &Line, a: &NsGrid) -> Output {
    read_n(line, a, 'c')
}

/// The established TCP connections to local `port` in node `i`'s
/// namespace, as `ss` lists them.
fn tcp_connections_to(line: &Line, i: usize, port: u16) -> String {
    let filter = format!("( sport = :{port} )");
    let out = grid_tests::run(line.nodes[i].command("ss").args([
        "-Htn",
        "state",
        "established",
        &filter,
    ]));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `g`'s `/net/peers/PEER/status`.
fn peer_status(g: &NsGrid, peer: char) -> String {
    let path = format!("/net/peers/{peer}/status");
    let out = grid_tests::run(g.grid().args(["cat", &path]));
    assert!(out.status.success(), "cat {path}: {}", stderr(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Reads `/n/PEER/files/pub/hello` through `g` every 200 ms until it
/// works (the output and how long it took) or `limit` passes (the last
/// error).
fn poll_until(
    line: &Line,
    g: &NsGrid,
    peer: char,
    limit: Duration,
) -> Result<(Output, Duration), String> {
    let start = Instant::now();
    let mut last = String::new();
    while start.elapsed() < limit {
        let out = read_n(line, g, peer);
        if out.status.success() {
            return Ok((out, start.elapsed()));
        }
        last = stderr(&out);
        std::thread::sleep(Duration::from_millis(200));
    }
    Err(last)
}

#[test]
fn a_reaches_c_through_b_and_recovers_after_a_cut() {
    reaches_through_b_and_recovers(Ygg::System);
}

#[test]
fn a_reaches_c_through_b_and_recovers_after_a_cut_yggdrasil_0_5() {
    reaches_through_b_and_recovers(Ygg::V05);
}

/// The daemons take the addresses our derivation gives for their keys,
/// b lists a and c as peers with their keys' addresses, and a reaches c
/// through b, loses it when b—c is cut, and reaches it again once c
/// redials b.
fn reaches_through_b_and_recovers(ygg: Ygg) {
    let Some(line) = line_of(ygg) else { return };

    // The daemons took the addresses our derivation gives for their keys.
    for (i, node) in line.nodes.iter().enumerate() {
        let me = line.get_self(i);
        assert_eq!(me.key, node.config.public_key(), "{}", node.label);
        assert_eq!(me.address, address_for_key(&me.key), "{}", node.label);
        assert_eq!(me.subnet, subnet_for_key(&me.key), "{}", node.label);
        assert_eq!(me.address, node.address());
        eprintln!("{}: {} version {}", node.label, me.address, me.version);
    }

    let c = line.nodes[2].address();
    let t = line
        .wait_reachable(0, c, CONVERGE)
        .unwrap_or_else(|| panic!("a never reached c\n{}", line.logs()));
    eprintln!("a reached c over the overlay in {t:?}");

    // b's peers are a and c, and their addresses are their keys'.
    let peers = line
        .block_on(line.nodes[1].admin.get_peers())
        .unwrap_or_else(|e| panic!("getPeers on b: {e}"));
    for want in [0, 2] {
        let key = line.nodes[want].config.public_key();
        let p = peers
            .iter()
            .find(|p| p.key == key)
            .unwrap_or_else(|| panic!("b does not list {}: {peers:?}", line.nodes[want].label));
        assert!(address_matches_key(&p.address, &key));
    }

    line.cut_bc();
    let start = Instant::now();
    assert!(!line.ping(0, c), "a still reaches c with b—c cut");
    let failed_in = start.elapsed();
    assert!(
        failed_in < Duration::from_secs(3),
        "failing took {failed_in:?}"
    );
    eprintln!("with b—c cut, a's ping to c failed in {failed_in:?}");

    // Keep it cut until b notices c is gone, so the restore below needs
    // a real redial (0.4.7 alone would wait up to 60 s for it).
    let key_c = line.nodes[2].config.public_key();
    let start = Instant::now();
    let mut dropped = None;
    while start.elapsed() < PEER_TIMEOUT {
        let peers = line.block_on(line.nodes[1].admin.get_peers());
        // 0.5 may list a link that is down, with `up` false.
        if peers.is_ok_and(|p| p.iter().all(|p| p.key != key_c || !p.up)) {
            dropped = Some(start.elapsed());
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    eprintln!("b dropped its link to c after {dropped:?}");

    line.restore_bc();
    let t = line
        .wait_reachable(0, c, CONVERGE)
        .unwrap_or_else(|| panic!("a did not reach c after b—c returned\n{}", line.logs()));
    let how = match ygg {
        Ygg::System => "c redialed b through the admin socket",
        Ygg::V05 => "c's daemon redialed b by itself",
    };
    eprintln!("after b—c returned ({how}), a reached c in {t:?}");
}

/// A real gridd in c, its grid key the same as c's overlay key, read
/// from a over the overlay with diod's own client once a's key is c's
/// peer; b's key is not, and b is refused.
#[test]
fn gridd_in_c_serves_a_over_the_overlay() {
    if !grid_tests::have("diodcat") {
        eprintln!("SKIP: diodcat is not installed (./test.sh installs it)");
        return;
    }
    let Some(mut line) = line() else { return };
    let c = line.nodes[2].address();
    line.wait_reachable(0, c, CONVERGE)
        .unwrap_or_else(|| panic!("a never reached c\n{}", line.logs()));
    line.wait_reachable(1, c, CONVERGE)
        .unwrap_or_else(|| panic!("b never reached c\n{}", line.logs()));
    let dir = export_dir();
    let grid = line.start_gridd(2, &["--export", &format!("pub={}", dir.path().display())]);
    let status = grid.status();
    assert_eq!(
        status_value(&status, "key"),
        Some(grid.key.as_str()),
        "gridd's grid key is c's overlay key:\n{status}"
    );
    assert_eq!(
        status_value(&status, "overlay"),
        Some(c.to_string().as_str())
    );
    grid.ctl(&format!(
        "peer add a {}",
        hex(&line.nodes[0].config.public_key())
    ));
    grid.ctl("offer a files/pub r");
    // diodcat takes HOST[:PORT], not an IPv6 literal.
    line.add_host(0, "gridc", c);
    line.add_host(1, "gridc", c);
    let diodcat = |i: usize| {
        grid_tests::run(line.nodes[i].command("diodcat").args([
            "-s",
            "gridc",
            "-a",
            "/files/pub",
            "-t",
            "20",
            "hello",
        ]))
    };
    let out = diodcat(0);
    assert!(
        out.status.success(),
        "diodcat from a: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        grid.log()
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello\n");
    eprintln!("a read c's /files/pub/hello over the overlay from [{c}]:564");

    let out = diodcat(1);
    assert!(!out.status.success(), "b, not a peer, read c over TCP");
    let b = line.nodes[1].address();
    grid.wait_log(&format!("refused 9P from {b}: not a known peer"));
}

/// The issue's test: gridd in a and c, each the other's peer by key and
/// overlay address; a reads c's files through `/n/c` (9P over plain TCP
/// from a's overlay address to c's, through b, as `/net/peers/c/status`
/// shows) and with `grid` over plain TCP 9P; b is refused; with b—c cut
/// a read fails promptly, and once it returns reads work again on their
/// own.
#[test]
fn a_mounts_c_through_b_over_the_overlay() {
    mounts_c_through_b(Ygg::System);
}

#[test]
fn a_mounts_c_through_b_over_the_overlay_yggdrasil_0_5() {
    mounts_c_through_b(Ygg::V05);
}

fn mounts_c_through_b(ygg: Ygg) {
    let Some(line) = line_with_timeout_of(ygg) else {
        return;
    };
    let (a_addr, b_addr, c_addr) = (
        line.nodes[0].address(),
        line.nodes[1].address(),
        line.nodes[2].address(),
    );
    line.wait_reachable(0, c_addr, CONVERGE)
        .unwrap_or_else(|| panic!("a never reached c\n{}", line.logs()));
    line.wait_reachable(1, c_addr, CONVERGE)
        .unwrap_or_else(|| panic!("b never reached c\n{}", line.logs()));
    let dir = export_dir();
    let c = line.start_gridd(2, &["--export", &format!("pub={}", dir.path().display())]);
    let a = line.start_gridd(0, &[]);

    // Each advertises its overlay address and serves TCP and QUIC on it.
    for (g, addr) in [(&a, a_addr), (&c, c_addr)] {
        let status = g.status();
        assert_eq!(
            status_value(&status, "overlay"),
            Some(addr.to_string().as_str()),
            "{status}"
        );
        for want in [format!("tcp!{addr}!564"), format!("quic!{addr}!5640")] {
            assert!(
                status.lines().any(|l| l == format!("listen {want}")),
                "no 'listen {want}' in:\n{status}"
            );
        }
    }

    pair(&a, &c, a_addr, c_addr);
    let (out, took) = poll_until(&line, &a, 'c', CONVERGE)
        .unwrap_or_else(|last| panic!("a never read /n/c: {last}\n{}\n{}", a.log(), c.log()));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello\n");
    eprintln!("a read /n/c/files/pub/hello over the overlay after {took:?}");
    // Both grids are on the overlay with their own keys, and c's address
    // is its key's: /n/c went over plain TCP to c's 9P port, not QUIC.
    let status = peer_status(&a, 'c');
    assert_eq!(
        status,
        format!("connected tcp!{c_addr}!564\n"),
        "/n/c is not on TCP\n{}\n{}",
        a.log(),
        c.log()
    );
    eprintln!("a's /net/peers/c/status: {}", status.trim());
    // And c sees it: a TCP connection to its 9P port from a's overlay
    // address (the only one to that port so far).
    if grid_tests::have("ss") {
        let conns = tcp_connections_to(&line, 2, 564);
        assert!(
            conns.contains(&format!("[{a_addr}]:")),
            "c has no TCP connection from [{a_addr}] on port 564:\n{conns}"
        );
    } else {
        eprintln!("ss (iproute2) is not installed: not checking c's side of /n/c");
    }

    // Plain 9P over TCP on c's overlay address: a is a peer and sees its
    // grant (and nothing else); b is not a peer and is refused.
    let tcp = format!("tcp!{c_addr}!564");
    let out = grid_in(&line, 0, &tcp, &["cat", "/files/pub/hello"]);
    assert!(out.status.success(), "TCP 9P from a: {}", stderr(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello\n");
    let out = grid_in(&line, 0, &tcp, &["cat", "/status"]);
    assert!(!out.status.success(), "a read c's /status beyond its grant");
    let out = grid_in(&line, 1, &tcp, &["cat", "/files/pub/hello"]);
    assert!(!out.status.success(), "b, not a peer, read c over TCP");
    c.wait_log(&format!("refused 9P from {b_addr}: not a known peer"));

    // b—c cut: reads through /n/c fail, and return by themselves (the
    // first may wait for the dead connection's idle timeout).
    line.cut_bc();
    for attempt in 0..2 {
        let start = Instant::now();
        let out = read_n_c(&line, &a);
        assert_ne!(
            out.status.code(),
            Some(TIMED_OUT),
            "attempt {attempt}: reading /n/c with b—c cut hung\n{}",
            a.log()
        );
        assert!(!out.status.success(), "read /n/c with b—c cut");
        eprintln!(
            "with b—c cut, attempt {attempt} returned in {:?}: {}",
            start.elapsed(),
            stderr(&out).trim()
        );
    }
    // The walk fails part-way (a partial Rwalk, "file not found"); the
    // reason is in /net/peers/c/status.
    let status = peer_status(&a, 'c');
    assert!(
        status.starts_with("unreachable"),
        "with b—c cut, /net/peers/c/status: {status}"
    );
    eprintln!("with b—c cut, /net/peers/c/status: {}", status.trim());

    // Restored (c redials b: 0.4.7 told to, 0.5 by itself): reads work
    // again, with no help.
    line.restore_bc();
    let (out, took) = poll_until(&line, &a, 'c', RECOVER)
        .unwrap_or_else(|last| panic!("a never read /n/c again: {last}\n{}", a.log()));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello\n");
    eprintln!("after b—c returned, a read /n/c again in {took:?}");
    // TCP has a head start over QUIC on each dial; which won this one is
    // shown, not asserted (the overlay may still be settling).
    eprintln!(
        "after b—c returned, a's /net/peers/c/status: {}",
        peer_status(&a, 'c').trim()
    );

    // Once c removes a, a's overlay address is refused like any other.
    c.ctl("peer rm a");
    let out = grid_in(&line, 0, &tcp, &["cat", "/files/pub/hello"]);
    assert!(!out.status.success(), "a read c over TCP after peer rm");
    c.wait_log(&format!("refused 9P from {a_addr}: not a known peer"));
}

/// How long a's `/n/c` may take to work again after b—c returns when
/// c's gridd keeps the link (`[overlay] links`) and nothing else redials:
/// gridd checks every 5 s, the redial and 0.4.7's routing take a few
/// seconds more, and a did not read during the cut, so /n has no backoff
/// to wait out. 0.4.7 alone redials after 60 s (measured: ~53 s after the
/// link returned), so reading within this bound shows gridd redialed.
const KEPT_LINK_RECOVER: Duration = Duration::from_secs(30);

/// c's gridd is started with `links = [c's URI for b]`; b—c is cut until
/// c's daemon drops the link, then restored with no redial by the
/// harness: gridd's redial brings `/n/c` back well before 0.4.7's own
/// 60 s one would.
#[test]
fn gridd_redials_its_links_so_n_c_returns_before_0_4_7_would() {
    let Some(line) = line_with_timeout() else {
        return;
    };
    let (a_addr, c_addr) = (line.nodes[0].address(), line.nodes[2].address());
    line.wait_reachable(0, c_addr, CONVERGE)
        .unwrap_or_else(|| panic!("a never reached c\n{}", line.logs()));
    let uri = line.peer_uri(2);
    let dir = export_dir();
    let c = line.start_gridd_with(
        2,
        &format!("links = [\"{uri}\"]\n"),
        3,
        &["--export", &format!("pub={}", dir.path().display())],
    );
    let a = line.start_gridd(0, &[]);
    // The link is up already: gridd says so once and does not redial it.
    c.wait_log(&format!("link {uri} is up"));
    pair(&a, &c, a_addr, c_addr);
    let (out, _) = poll_until(&line, &a, 'c', CONVERGE)
        .unwrap_or_else(|last| panic!("a never read /n/c: {last}\n{}\n{}", a.log(), c.log()));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello\n");

    // Cut until c's daemon has dropped the link, so that coming back
    // needs a redial; c's gridd notices and says so once.
    line.cut_bc();
    let start = Instant::now();
    while line.link_up(2, &uri) {
        assert!(
            start.elapsed() < PEER_TIMEOUT + CUT_NOTICE_SLACK,
            "c's daemon kept its link to b with b—c cut\n{}",
            line.logs()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    eprintln!("c dropped its link to b after {:?}", start.elapsed());
    c.wait_log(&format!("link {uri} is down"));
    // 0.4.7 redials once right after a link drops (about a second later);
    // the cut outlasts that, so only its 60 s loop, or gridd, redials.
    std::thread::sleep(HOLD_CUT);

    line.restore_bc_without_redial();
    let (out, took) = poll_until(&line, &a, 'c', KEPT_LINK_RECOVER).unwrap_or_else(|last| {
        panic!(
            "a did not read /n/c within {KEPT_LINK_RECOVER:?} of b—c returning: {last}\n{}\n{}\n{}",
            c.log(),
            a.log(),
            line.logs()
        )
    });
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello\n");
    eprintln!("after b—c returned (c's gridd redialed b), a read /n/c again in {took:?}");
    c.wait_log(&format!("link {uri} is up again"));
    // One line per change, not one per check.
    let downs = c.log().matches(&format!("link {uri} is down")).count();
    assert_eq!(downs, 1, "{}", c.log());
}

/// More than [`PEER_TIMEOUT`] for c's daemon to drop a cut link: 0.4.7
/// notices a dead peer by its own keepalive timeout.
const CUT_NOTICE_SLACK: Duration = Duration::from_secs(30);

/// How long b—c stays cut after c's daemon dropped the link: well past
/// 0.4.7's one quick redial after a drop (seen about 1 s after it), which
/// would otherwise bring the link back by itself when the cut is short.
const HOLD_CUT: Duration = Duration::from_secs(10);

/// c serves no plain TCP on the overlay (`[overlay] port = 0`): a's
/// `/n/c` finds nothing on c's 9P port and reads over QUIC instead.
#[test]
fn n_c_falls_back_to_quic_when_c_serves_no_tcp() {
    let Some(line) = line_with_timeout() else {
        return;
    };
    let (a_addr, c_addr) = (line.nodes[0].address(), line.nodes[2].address());
    line.wait_reachable(0, c_addr, CONVERGE)
        .unwrap_or_else(|| panic!("a never reached c\n{}", line.logs()));
    let dir = export_dir();
    let export = format!("pub={}", dir.path().display());
    // The unix socket and QUIC on the overlay; no TCP.
    let c = line.start_gridd_with(2, "port = 0\n", 2, &["--export", &export]);
    assert!(
        !c.status().contains("listen tcp!"),
        "c serves TCP:\n{}",
        c.status()
    );
    let a = line.start_gridd(0, &[]);
    pair(&a, &c, a_addr, c_addr);
    let (out, took) = poll_until(&line, &a, 'c', CONVERGE)
        .unwrap_or_else(|last| panic!("a never read /n/c: {last}\n{}\n{}", a.log(), c.log()));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello\n");
    assert_eq!(peer_status(&a, 'c'), "connected\n", "/n/c is not on QUIC");
    eprintln!("with no TCP at c, a read /n/c over QUIC after {took:?}");
}

/// A gridd started before its yggdrasil daemon says once that it waits,
/// and joins the overlay by itself when the daemon comes.
#[test]
fn gridd_joins_when_yggdrasil_comes_later() {
    joins_when_yggdrasil_comes_later(Ygg::System);
}

#[test]
fn gridd_joins_when_yggdrasil_comes_later_yggdrasil_0_5() {
    joins_when_yggdrasil_comes_later(Ygg::V05);
}

fn joins_when_yggdrasil_comes_later(ygg: Ygg) {
    let Some(mut line) = line_of(ygg) else { return };
    line.stop_daemon(0);
    let a = line
        .spawn_gridd(0, &line.nodes[0].seed.clone(), &[])
        .wait_serving(1);
    let said = a.wait_log("retrying in the background");
    eprintln!("with no daemon: {said}");
    let status = a.status();
    assert!(
        status_value(&status, "overlay").is_some_and(|o| o.starts_with("waiting")),
        "{status}"
    );
    line.restart_daemon(0);
    let a = a.wait_serving(3);
    let addr = line.nodes[0].address();
    assert_eq!(
        a.addrs[1..],
        [format!("tcp!{addr}!564"), format!("quic!{addr}!5640")]
    );
    assert_eq!(
        status_value(&a.status(), "overlay"),
        Some(addr.to_string().as_str())
    );
    // However often it retried, the same problem was logged once.
    let times = a.log().lines().filter(|l| *l == said).count();
    assert_eq!(times, 1, "the wait is logged once:\n{}", a.log());
}

/// A gridd whose grid key is not its node's overlay key: it says so and
/// stays off the overlay; and when it dials c from its overlay address
/// with that key, c's QUIC handshake check closes the connection, while a
/// real peer's dial works.
#[test]
fn a_key_that_is_not_the_overlay_address_is_refused() {
    let Some(line) = line_with_timeout() else {
        return;
    };
    let (b_addr, c_addr) = (line.nodes[1].address(), line.nodes[2].address());
    line.wait_reachable(1, c_addr, CONVERGE)
        .unwrap_or_else(|| panic!("b never reached c\n{}", line.logs()));
    let dir = export_dir();
    let c = line.start_gridd(2, &["--export", &format!("pub={}", dir.path().display())]);
    // b's gridd with a key of its own, not b's node key.
    let b = line.spawn_gridd(1, &[5u8; 32], &[]).wait_serving(1);
    let said = b.wait_log("runs with another key");
    assert!(said.contains("gridd --yggdrasil-config"), "{said}");
    assert!(
        status_value(&b.status(), "overlay").is_some_and(|o| o.starts_with("waiting")),
        "{}",
        b.status()
    );
    pair(&b, &c, b_addr, c_addr);
    let out = read_n(&line, &b, 'c');
    assert_ne!(out.status.code(), Some(TIMED_OUT), "reading /n/c hung");
    assert!(
        !out.status.success(),
        "b's gridd read c from an overlay address that is not its key's"
    );
    // Everything else is set for b to succeed (c knows b's key and offers
    // it files/pub): c closed the connection after the handshake.
    let out = grid_tests::run(b.grid().args(["cat", "/net/peers/c/status"]));
    let status = String::from_utf8_lossy(&out.stdout);
    eprintln!(
        "b with a foreign key: /net/peers/c/status: {}",
        status.trim()
    );
    assert!(status.starts_with("unreachable"), "{status}");

    // Plain TCP from b's overlay address is not b's key's either.
    let out = grid_in(
        &line,
        1,
        &format!("tcp!{c_addr}!564"),
        &["cat", "/files/pub/hello"],
    );
    assert!(
        !out.status.success(),
        "b read c over TCP with a foreign key"
    );
    c.wait_log(&format!("refused 9P from {b_addr}: not a known peer"));
}

/// Bulk-read throughput over the overlay a→c: iperf3 (the ceiling)
/// against 9P over TCP to a gridd in c (`grid cat` and diodcat), and
/// through a gridd in a's `/n/c` (`grid cat` on a's unix socket). Run by
/// `bench/overlay.sh`; the issue's target is 9P at 70% of iperf3 or more.
#[test]
#[ignore = "benchmark: bench/overlay.sh runs it"]
fn bench_overlay_throughput() {
    if !grid_tests::have("iperf3") || !grid_tests::have("diodcat") {
        eprintln!("SKIP: iperf3 or diodcat is not installed");
        return;
    }
    let Some(mut line) = line() else { return };
    let size_mb: u64 = std::env::var("OVERLAY_BENCH_MB")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(128);
    let secs = std::env::var("OVERLAY_BENCH_SECS").unwrap_or_else(|_| "5".into());
    let c = line.nodes[2].address();
    line.wait_reachable(0, c, CONVERGE)
        .unwrap_or_else(|| panic!("a never reached c\n{}", line.logs()));

    // iperf3: one server run in c, the client in a, over c's overlay address.
    let mut server = line.nodes[2]
        .command("iperf3")
        .args(["-s", "-1", "-B", &c.to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("iperf3 -s");
    let mut iperf = None;
    for _ in 0..50 {
        let out = grid_tests::run(line.nodes[0].command("iperf3").args([
            "-6",
            "-f",
            "m",
            "-t",
            &secs,
            "-c",
            &c.to_string(),
        ]));
        if out.status.success() {
            iperf = Some(String::from_utf8_lossy(&out.stdout).into_owned());
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = server.kill();
    let _ = server.wait();
    let iperf = iperf.expect("iperf3 over the overlay");
    let iperf_mbit = iperf
        .lines()
        .find(|l| l.contains("receiver"))
        .and_then(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            let i = w.iter().position(|t| *t == "Mbits/sec")?;
            w.get(i.checked_sub(1)?)?.parse::<f64>().ok()
        })
        .unwrap_or_else(|| panic!("no receiver line in iperf3's output:\n{iperf}"));

    // 9P over TCP: a gridd in c exporting one big file.
    let dir = tempfile::tempdir().expect("tempdir");
    let big = dir.path().join("big");
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&big).expect("create");
        let mut chunk = vec![0u8; 1 << 20];
        let mut n = 1u64;
        for _ in 0..size_mb {
            for b in chunk.iter_mut() {
                n = n.wrapping_mul(6364136223846793005).wrapping_add(1);
                *b = (n >> 56) as u8;
            }
            f.write_all(&chunk).expect("write");
        }
    }
    let export = format!("t={}", dir.path().display());
    let grid = line.start_gridd(2, &["--export", &export]);
    // Plain TCP on the overlay is served to peers only.
    grid.ctl(&format!(
        "peer add a {}",
        hex(&line.nodes[0].config.public_key())
    ));
    grid.ctl("offer a files/t r");
    line.add_host(0, "gridc", c);
    let addr = format!("tcp!{c}!564");
    // A gridd in a with c as its peer: /n/c, as a's users read it.
    let a = line.start_gridd(0, &[]);
    a.ctl(&format!("peer add c {} quic!{c}!5640", grid.key));
    a.ctl("request c files/t r");
    wait_for_n_c(&a);
    let via = peer_status(&a, 'c');
    let n_row = format!("/n/c grid cat ({})", via.trim());
    let grid_bin = grid_tests::bin("grid").display().to_string();
    let mut rows = vec![("iperf3 TCP a→c".to_owned(), iperf_mbit)];
    for (name, mut cmd) in [
        ("9P/TCP grid cat", {
            let mut c = line.nodes[0].command(&grid_bin);
            c.args(["-a", &addr, "cat", "/files/t/big"]);
            c
        }),
        ("9P/TCP diodcat", {
            let mut c = line.nodes[0].command("diodcat");
            c.args(["-s", "gridc", "-a", "/files/t", "-t", "60", "big"]);
            c
        }),
        (n_row.as_str(), {
            let mut c = line.nodes[0].command(&grid_bin);
            c.args(["-a", a.unix_addr(), "cat", "/n/c/files/t/big"]);
            c
        }),
    ] {
        let mbit = time_read(name, &mut cmd, size_mb, &grid);
        rows.push((name.to_owned(), mbit));
    }
    // /n/c again with c serving no plain TCP on the overlay: a's import
    // falls back to QUIC (the transport /n/PEER used before).
    drop(grid);
    let grid = line.start_gridd_with(2, "port = 0\n", 2, &["--export", &export]);
    grid.ctl(&format!(
        "peer add a {}",
        hex(&line.nodes[0].config.public_key())
    ));
    grid.ctl("offer a files/t r");
    wait_for_n_c(&a);
    let name = format!("/n/c grid cat ({})", peer_status(&a, 'c').trim());
    let mut cmd = line.nodes[0].command(&grid_bin);
    cmd.args(["-a", a.unix_addr(), "cat", "/n/c/files/t/big"]);
    let mbit = time_read(&name, &mut cmd, size_mb, &grid);
    rows.push((name, mbit));
    // The same server core and a pipelined client (bench's overlay_9p), over
    // 9P on plain TCP and on QUIC.
    // OVERLAY_9P=target/release/overlay_9p measures an optimized build.
    let tool = std::env::var("OVERLAY_9P")
        .unwrap_or_else(|_| grid_tests::bin("overlay_9p").display().to_string());
    let tcp = format!("[{c}]:5640");
    let quic = format!("[{c}]:5641");
    // The nodes' own keys: a QUIC peer's key must derive to its overlay
    // address.
    let seeds = [
        ("OVERLAY_9P_SERVER_SEED", hex(&line.nodes[2].seed)),
        ("OVERLAY_9P_CLIENT_SEED", hex(&line.nodes[0].seed)),
    ];
    let mut server = line.nodes[2]
        .command(&tool)
        .envs(seeds.clone())
        .args([
            "serve",
            &dir.path().display().to_string(),
            "--tcp",
            &tcp,
            "--quic",
            &quic,
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("overlay_9p serve");
    for (name, transport, addr) in [
        ("9P/TCP overlay_9p", "tcp", &tcp),
        ("9P/QUIC overlay_9p", "quic", &quic),
    ] {
        let mut out = None;
        for _ in 0..50 {
            let o = grid_tests::run(
                line.nodes[0]
                    .command(&tool)
                    .envs(seeds.clone())
                    .args(["read", transport, addr, "big"]),
            );
            if o.status.success() {
                out = Some(String::from_utf8_lossy(&o.stdout).into_owned());
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let mbit = out
            .as_deref()
            .and_then(|o| o.split_whitespace().next()?.parse::<f64>().ok())
            .unwrap_or_else(|| panic!("{name}: no result: {out:?}"));
        rows.push((name.to_owned(), mbit));
    }
    let _ = server.kill();
    let _ = server.wait();

    println!("| a→c over yggdrasil ({size_mb} MiB) | Mbit/s | of iperf3 |");
    println!("|---|---:|---:|");
    for (name, mbit) in &rows {
        println!("| {name} | {mbit:.0} | {:.0}% |", 100.0 * mbit / iperf_mbit);
    }
}

/// Waits until `a` lists `/n/c/files/t`.
fn wait_for_n_c(a: &NsGrid) {
    let listed = (0..150).any(|_| {
        let ok = grid_tests::run(a.grid().args(["ls", "/n/c/files/t"]))
            .status
            .success();
        if !ok {
            std::thread::sleep(Duration::from_millis(200));
        }
        ok
    });
    assert!(listed, "a never listed /n/c/files/t\n{}", a.log());
}

/// Runs `cmd`, which must print `size_mb` MiB, and gives its throughput
/// in Mbit/s.
fn time_read(name: &str, cmd: &mut std::process::Command, size_mb: u64, server: &NsGrid) -> f64 {
    let start = Instant::now();
    let out = grid_tests::run(cmd);
    let t = start.elapsed();
    assert!(
        out.status.success(),
        "{name}: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        server.log()
    );
    assert_eq!(out.stdout.len() as u64, size_mb << 20, "{name}: short read");
    ((size_mb << 20) * 8) as f64 / t.as_secs_f64() / 1e6
}

/// Reconnect time after a link returns: a reads c's files through `/n/c`
/// (9P over TCP on the overlay, QUIC as the fallback), b—c is cut until b drops its link to c, then
/// restored (c redials b); the time from the restore to the first answered
/// ping a→c, and to the first successful read of `/n/c`. Run by
/// `bench/overlay.sh`.
#[test]
#[ignore = "benchmark: bench/overlay.sh runs it"]
fn bench_overlay_reconnect() {
    let Some(line) = line_with_timeout() else {
        return;
    };
    let (a_addr, c_addr) = (line.nodes[0].address(), line.nodes[2].address());
    line.wait_reachable(0, c_addr, CONVERGE)
        .unwrap_or_else(|| panic!("a never reached c\n{}", line.logs()));
    let dir = export_dir();
    let c = line.start_gridd(2, &["--export", &format!("pub={}", dir.path().display())]);
    let a = line.start_gridd(0, &[]);
    pair(&a, &c, a_addr, c_addr);
    poll_until(&line, &a, 'c', CONVERGE)
        .unwrap_or_else(|last| panic!("a never read /n/c: {last}\n{}", a.log()));

    line.cut_bc();
    let key_c = line.nodes[2].config.public_key();
    let start = Instant::now();
    while start.elapsed() < PEER_TIMEOUT {
        let peers = line.block_on(line.nodes[1].admin.get_peers());
        if peers.is_ok_and(|p| p.iter().all(|p| p.key != key_c)) {
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    // A read while cut, so /n/c knows the peer is gone and backs off.
    let _ = read_n_c(&line, &a);
    let cut_for = start.elapsed();

    line.restore_bc();
    let restored = Instant::now();
    let ping = line.wait_reachable(0, c_addr, RECOVER);
    let read = loop {
        if read_n_c(&line, &a).status.success() {
            break Some(restored.elapsed());
        }
        if restored.elapsed() > RECOVER {
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    println!("| after b—c was cut for {cut_for:.1?} and restored | seconds |");
    println!("|---|---:|");
    let secs =
        |d: Option<Duration>| d.map_or("never".to_owned(), |d| format!("{:.2}", d.as_secs_f64()));
    println!("| first ping a→c answered | {} |", secs(ping));
    let via = peer_status(&a, 'c');
    println!("| first read of /n/c ({}) | {} |", via.trim(), secs(read));
}

/// `gridd --yggdrasil-config` writes a config the real daemon reads, whose
/// overlay address is the one gridd derives from its grid key.
#[test]
fn the_yggdrasil_config_gridd_prints_gives_the_grid_key_address() {
    config_gives_the_grid_key_address(Ygg::System);
}

#[test]
fn the_yggdrasil_config_gridd_prints_gives_the_grid_key_address_yggdrasil_0_5() {
    config_gives_the_grid_key_address(Ygg::V05);
}

fn config_gives_the_grid_key_address(ygg: Ygg) {
    match (ygg, ygg.missing()) {
        (_, None) => {}
        (Ygg::V05, Some(why)) => {
            return grid_tests::skip(&format!("yggdrasil 0.5: {why}"));
        }
        (_, Some(why)) => {
            eprintln!("SKIP: {why}");
            return;
        }
    }
    let state = tempfile::tempdir().expect("state dir");
    let out = grid_tests::run(
        std::process::Command::new(grid_tests::bin("gridd"))
            .arg("--state")
            .arg(state.path())
            .arg("--yggdrasil-config"),
    );
    assert!(
        out.status.success(),
        "gridd --yggdrasil-config: {}",
        stderr(&out)
    );
    let conf = state.path().join("yggdrasil.conf");
    std::fs::write(&conf, &out.stdout).expect("write yggdrasil.conf");
    let out = grid_tests::run(
        std::process::Command::new(ygg.binary())
            .arg("-useconffile")
            .arg(&conf)
            .arg("-address"),
    );
    assert!(out.status.success(), "yggdrasil -address: {}", stderr(&out));
    let addr: Ipv6Addr = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("an IPv6 address");
    // gridd made its key on the way; its /status would show this key.
    let grid = grid_tests::TestGrid::start_in(state, &[]);
    let status = String::from_utf8_lossy(
        &grid_tests::run(
            std::process::Command::new(grid_tests::bin("grid"))
                .env_remove("GRID_ADDR")
                .args(["-a", grid.unix_addr(), "cat", "/status"]),
        )
        .stdout,
    )
    .into_owned();
    let key = status_value(&status, "key").expect("a key line");
    let mut bytes = [0u8; 32];
    for (i, b) in bytes.iter_mut().enumerate() {
        *b = u8::from_str_radix(&key[2 * i..2 * i + 2], 16).expect("hex key");
    }
    assert_eq!(addr, address_for_key(&bytes), "{status}");
}

//! Grids as peers of each other: real gridd processes on loopback,
//! talking QUIC, each serving the others under its policy, driven through
//! `/ctl` and read through `/n/PEER` with the `grid` command.

use std::path::Path;

use std::time::{Duration, Instant};

use grid_tests::{fails, ok, run, run_with_input, TestGrid};

const QUIC: &str = "quic!127.0.0.1!0";
/// A key no grid here holds.
const GHOST: &str = "3b6a27bcceb6a42d62a3a8d02a6f0d73653215771de243a63ac048a18b59da29";

fn start(exports: &[(&str, &Path)]) -> TestGrid {
    let mut args = vec!["--listen".to_owned(), QUIC.to_owned()];
    for (name, dir) in exports {
        args.push("--export".into());
        args.push(format!("{name}={}", dir.display()));
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    TestGrid::start(&args)
}

/// Bob's files: `pub` (granted rw), `ro` (granted r), `priv` (not granted).
fn bob_files() -> tempfile::TempDir {
    let d = tempfile::tempdir().expect("tempdir");
    for sub in ["pub", "ro", "priv", "club"] {
        std::fs::create_dir(d.path().join(sub)).expect("mkdir");
        std::fs::write(d.path().join(sub).join("hello.txt"), format!("{sub}\n")).expect("write");
    }
    d
}

#[test]
fn peers_read_and_write_as_granted_and_nothing_else() {
    let files = bob_files();
    let p = files.path();
    let bob = start(&[
        ("pub", &p.join("pub")),
        ("ro", &p.join("ro")),
        ("priv", &p.join("priv")),
    ]);
    let alice = start(&[]);
    let carol = start(&[]);
    let t = Instant::now();

    bob.ctl(&format!("peer add alice {} {}", alice.key(), alice.quic()));
    bob.ctl("offer alice 'files/pub rw; files/ro r'");
    alice.ctl(&format!("peer add bob {} {}", bob.key(), bob.quic()));
    // Alice asks for more than she is offered; the grant is the overlap,
    // and both sides show it.
    alice.ctl("request bob 'files/pub rw; files/ro r; files/priv r'");
    bob.wait_for(
        "/net/peers/alice/policy",
        "their-request files/priv r; files/pub rw; files/ro r\n",
    );
    alice.wait_for(
        "/net/peers/bob/policy",
        "received files/pub rw; files/ro r\n",
    );

    // /n lists peers without dialing; /net/peers describes them.
    assert_eq!(ok(run(alice.grid().args(["ls", "/n"])), "ls /n"), "bob\n");
    assert_eq!(ok(alice.cat("/net/peers/bob/key"), "key").trim(), bob.key());
    assert_eq!(ok(alice.cat("/net/peers/bob/status"), "status"), "idle\n");
    let policy = ok(bob.cat("/net/peers/alice/policy"), "policy");
    assert!(
        policy.contains("grant files/pub rw; files/ro r"),
        "{policy}"
    );

    // Read and write as granted.
    assert_eq!(
        ok(alice.cat("/n/bob/files/pub/hello.txt"), "read pub"),
        "pub\n"
    );
    ok(
        run_with_input(
            alice.grid().args(["write", "/n/bob/files/pub/new.txt"]),
            b"from alice\n",
        ),
        "write pub",
    );
    assert_eq!(
        std::fs::read_to_string(p.join("pub/new.txt")).expect("written at bob"),
        "from alice\n"
    );
    assert_eq!(
        ok(alice.cat("/n/bob/files/ro/hello.txt"), "read ro"),
        "ro\n"
    );
    assert_eq!(
        ok(alice.cat("/net/peers/bob/status"), "status"),
        "connected\n"
    );

    // Outside the rw grant: EACCES (over .L only the errno arrives).
    let err = fails(
        run_with_input(
            alice.grid().args(["write", "/n/bob/files/ro/hello.txt"]),
            b"no\n",
        ),
        "write ro",
    );
    assert!(err.contains("permission denied"), "{err}");
    assert_eq!(
        std::fs::read_to_string(p.join("ro/hello.txt")).expect("ro"),
        "ro\n"
    );

    // Names outside the grants do not exist, and `..` does not climb out.
    assert_eq!(
        ok(run(alice.grid().args(["ls", "/n/bob/files"])), "ls"),
        "pub\nro\n"
    );
    let err = fails(alice.cat("/n/bob/files/priv/hello.txt"), "priv");
    assert!(
        err.contains("not found") || err.contains("No such"),
        "{err}"
    );
    let err = fails(alice.cat("/n/bob/files/pub/../priv/hello.txt"), "..");
    assert!(!err.is_empty());
    let err = fails(alice.cat("/n/bob/status"), "status");
    assert!(!err.is_empty());

    // Bob counted it all.
    let audit = ok(bob.cat("/net/peers/alice/audit"), "audit");
    assert!(!audit.is_empty(), "{audit}");

    // An unknown key is refused: carol knows bob, bob does not know carol.
    carol.ctl(&format!("peer add bob {} {}", bob.key(), bob.quic()));
    // A walk that fails after its first name loses its error text in 9P
    // (a partial Rwalk): the reason is in /net/peers/NAME/status.
    fails(carol.cat("/n/bob/files/pub/hello.txt"), "carol");
    let status = ok(carol.cat("/net/peers/bob/status"), "carol status");
    assert!(status.starts_with("unreachable"), "{status}");

    // An unreachable peer fails promptly.
    alice.ctl(&format!("peer add ghost {GHOST} quic!127.0.0.1!9"));
    let t0 = Instant::now();
    fails(run(alice.grid().args(["ls", "/n/ghost"])), "ghost");
    assert!(t0.elapsed() < Duration::from_secs(10), "{:?}", t0.elapsed());
    let status = ok(alice.cat("/net/peers/ghost/status"), "ghost status");
    assert!(status.starts_with("unreachable"), "{status}");

    // `grid peer` wraps the same ctl messages and files.
    let ls = ok(run(alice.grid().args(["peer", "ls"])), "peer ls");
    assert!(
        ls.starts_with(&format!("bob {} connected\n", bob.key())),
        "{ls}"
    );
    assert!(ls.contains("\nghost "), "{ls}");
    ok(
        run(alice
            .grid()
            .args(["peer", "add", "carol", &carol.key(), &carol.quic()])),
        "grid peer add",
    );
    assert_eq!(
        ok(run(alice.grid().args(["ls", "/n"])), "ls /n"),
        "bob\ncarol\nghost\n"
    );
    ok(
        run(alice.grid().args(["peer", "rm", "carol"])),
        "grid peer rm",
    );
    let err = fails(run(alice.grid().args(["peer", "rm", "carol"])), "rm twice");
    assert!(err.contains("no peer 'carol'"), "{err}");

    // Peers are mount sources of the namespace.
    alice.ctl("mount bob /files files/pub");
    assert_eq!(ok(alice.cat("/files/hello.txt"), "mounted"), "pub\n");
    let ns = ok(alice.cat("/ns"), "ns");
    assert!(ns.contains("mount bob /files files/pub"), "{ns}");
    alice.ctl("unmount /files");

    // A narrower request takes effect on bob at once.
    alice.ctl("request bob files/pub rw");
    bob.wait_for("/net/peers/alice/policy", "grant files/pub rw\n");
    assert_eq!(
        ok(
            run(alice.grid().args(["ls", "/n/bob/files"])),
            "ls narrowed"
        ),
        "pub\n"
    );

    // Peers are saved to grid.toml.
    let toml = std::fs::read_to_string(bob.state.path().join("grid.toml")).expect("toml");
    assert!(toml.contains("[peers.alice]"), "{toml}");
    alice.ctl("peer rm ghost");
    assert_eq!(ok(run(alice.grid().args(["ls", "/n"])), "ls /n"), "bob\n");
    eprintln!("peers_read_and_write: {:?}", t.elapsed());
}

#[test]
fn removing_a_peer_fails_its_open_files_at_once() {
    let files = bob_files();
    let p = files.path();
    let bob = start(&[("pub", &p.join("pub"))]);
    let alice = start(&[]);
    bob.ctl(&format!("peer add alice {} {}", alice.key(), alice.quic()));
    bob.ctl("offer alice files/pub r");
    alice.ctl(&format!("peer add bob {} {}", bob.key(), bob.quic()));
    alice.ctl("request bob files/pub r");
    bob.wait_for("/net/peers/alice/policy", "grant files/pub r\n");

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let client = ninep_client::Client::dial(alice.unix_addr())
            .await
            .expect("dial alice");
        let root = client.attach("me", "").await.expect("attach");
        let mut f = root
            .walk_path("n/bob/files/pub/hello.txt")
            .await
            .expect("walk");
        f.open(ninep_client::OpenFlags::READ).await.expect("open");
        assert_eq!(f.read(0, 100).await.expect("read"), b"pub\n");
        bob.ctl("peer rm alice");
        let r = tokio::time::timeout(Duration::from_secs(10), f.read(0, 100))
            .await
            .expect("the read after rm returns");
        assert!(r.is_err(), "read after peer rm: {r:?}");
    });
    let err = fails(alice.cat("/n/bob/files/pub/hello.txt"), "after rm");
    assert!(!err.is_empty());
}

#[test]
fn groups_grant_and_a_restarted_peer_comes_back() {
    let files = bob_files();
    let p = files.path();
    // Alice's saved namespace mounts bob before she knows him: pending
    // until `peer add bob`.
    let alice_state = tempfile::tempdir().expect("state");
    std::fs::write(
        alice_state.path().join("ns"),
        "mount bob /files files/pub\n",
    )
    .expect("ns");
    let alice = TestGrid::start_in(alice_state, &["--listen", QUIC]);
    let carol = start(&[]);
    // Bob on a fixed port, so alice finds it again after a restart.
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("a free port")
        .port();
    let bob_quic = format!("quic!127.0.0.1!{port}");
    let state = tempfile::tempdir().expect("state");
    std::fs::write(
        state.path().join("grid.toml"),
        format!(
            "[files]\nclub = \"{}\"\npub = \"{}\"\n\n[groups.clubhouse]\noffer = \"files/club r\"\n\n[peers.carol]\nkey = \"{}\"\naddrs = [\"{}\"]\ngroups = [\"clubhouse\"]\n\n[peers.alice]\nkey = \"{}\"\noffer = \"files/pub r\"\n",
            p.join("club").display(),
            p.join("pub").display(),
            carol.key(),
            carol.quic(),
            alice.key(),
        ),
    )
    .expect("bob's grid.toml");
    let bob = TestGrid::start_in(state, &["--listen", &bob_quic]);
    carol.ctl(&format!("peer add bob {} {bob_quic}", bob.key()));
    carol.ctl("request bob files/club r");
    alice.ctl(&format!("peer add bob {} {bob_quic}", bob.key()));
    alice.ctl("request bob files/pub r");
    bob.wait_for("/net/peers/carol/policy", "grant files/club r\n");
    bob.wait_for("/net/peers/alice/policy", "grant files/pub r\n");
    alice.wait_for("/files/hello.txt", "pub\n");

    assert_eq!(
        ok(carol.cat("/n/bob/files/club/hello.txt"), "group grant"),
        "club\n"
    );
    assert_eq!(
        ok(run(carol.grid().args(["ls", "/n/bob/files"])), "carol ls"),
        "club\n"
    );
    assert_eq!(
        ok(run(alice.grid().args(["ls", "/n/bob/files"])), "alice ls"),
        "pub\n"
    );

    // Bob restarts; alice's /n/bob works again on its own.
    let state = bob.stop_keep_state();
    let err = fails(alice.cat("/n/bob/files/pub/hello.txt"), "bob down");
    assert!(!err.is_empty());
    let _bob = TestGrid::start_in(state, &["--listen", &bob_quic]);
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let out = alice.cat("/n/bob/files/pub/hello.txt");
        if out.status.success() {
            assert_eq!(String::from_utf8_lossy(&out.stdout), "pub\n");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "alice never reached bob again: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

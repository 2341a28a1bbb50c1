//! gridd as a user meets it: first start with no configuration, restart,
//! bad configuration, diod's real 9P2000.L client tools over TCP and the
//! unix socket, and clean shutdown.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use grid_tests::{bin, have, run, TestGrid};

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path).expect("stat").permissions().mode() & 0o777
}

#[test]
fn first_start_creates_state_and_a_restart_reuses_it() {
    let grid = TestGrid::start(&[]);
    let state = grid.state.path().to_owned();
    assert_eq!(mode(&state), 0o700);
    assert_eq!(mode(&state.join("identity.key")), 0o600);
    assert_eq!(mode(&grid.socket()), 0o600, "socket must be owner-only");
    let toml = std::fs::read_to_string(state.join("grid.toml")).expect("grid.toml written");
    for key in ["name =", "listen =", "msize =", "trace =", "[files]"] {
        assert!(toml.contains(key), "default grid.toml lacks {key}:\n{toml}");
    }
    let key_before = std::fs::read(state.join("identity.key")).expect("key");
    let sock = grid.socket();
    let state = grid.stop_keep_state();
    assert!(!sock.exists(), "socket must be removed on shutdown");
    let grid = TestGrid::start_in(state, &[]);
    let key_after = std::fs::read(grid.state.path().join("identity.key")).expect("key");
    assert_eq!(key_before, key_after, "identity must survive a restart");
}

#[test]
fn bad_configuration_names_file_line_and_key() {
    let state = tempfile::tempdir().expect("tempdir");
    let cfg = state.path().join("grid.toml");
    std::fs::write(&cfg, "name = \"x\"\n\nmsize = \"lots\"\n").expect("write");
    let out = run(Command::new(bin("gridd")).arg("--state").arg(state.path()));
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("{}:3: msize:", cfg.display())),
        "{err}"
    );

    std::fs::write(
        &cfg,
        "[files]\nt = \"/nonexistent/dir\"\nu = \"relative\"\n",
    )
    .expect("write");
    let out = run(Command::new(bin("gridd")).arg("--state").arg(state.path()));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(":3: files.u: path 'relative' must be absolute"),
        "{err}"
    );

    let (status, err) = TestGrid::start_failing(&["--listen", "tcp!127.0.0.1!notaport"]);
    assert_eq!(status.code(), Some(2), "clap usage errors exit 2: {err}");
    assert!(err.contains("bad address"), "{err}");
}

#[test]
fn diod_tools_list_and_read_an_export_over_tcp_and_unix() {
    if !have("diodls") || !have("diodcat") {
        grid_tests::skip("diod's tools are not installed (./test.sh installs them)");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("hello.txt"), "hello from gridd\n").expect("write");
    std::fs::create_dir(dir.path().join("sub")).expect("mkdir");
    let export = format!("t={}", dir.path().display());
    let grid = TestGrid::start(&["--listen", "tcp!127.0.0.1!0", "--export", &export]);
    let (host, port) = grid.tcp();
    let server = format!("{host}:{port}");
    let sock = grid.socket().display().to_string();
    for server in [server.as_str(), sock.as_str()] {
        // aname is a path in the namespace, as diod's own exports are.
        let out = run(Command::new("diodls").args(["-s", server, "-a", "/files/t", "-t", "20"]));
        assert!(
            out.status.success(),
            "diodls: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            grid.log()
        );
        let listing = String::from_utf8_lossy(&out.stdout);
        assert!(
            listing.contains("hello.txt") && listing.contains("sub"),
            "{listing}"
        );

        let out = run(Command::new("diodcat").args([
            "-s",
            server,
            "-a",
            "/files/t",
            "-t",
            "20",
            "hello.txt",
        ]));
        assert!(
            out.status.success(),
            "diodcat: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(out.stdout, b"hello from gridd\n");

        // The namespace root, and a synthetic file in it.
        let out =
            run(Command::new("diodcat").args(["-s", server, "-a", "/", "-t", "20", "status"]));
        assert!(
            out.status.success(),
            "diodcat status: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let status = String::from_utf8_lossy(&out.stdout);
        assert!(status.starts_with("name "), "{status}");
        assert!(
            status
                .lines()
                .any(|l| l.starts_with("key ") && l.len() == 4 + 64),
            "{status}"
        );
    }
    // A missing file is an error, not a hang.
    let out =
        run(Command::new("diodcat").args(["-s", &server, "-a", "/files/t", "-t", "20", "nope"]));
    assert!(!out.status.success());
}

#[test]
fn sigterm_stops_cleanly_and_removes_sockets() {
    let mut grid = TestGrid::start(&[]);
    let sock = grid.socket();
    assert!(sock.exists());
    let status = grid.stop();
    assert!(
        status.success(),
        "exit status {status}; log:\n{}",
        grid.log()
    );
    assert!(!sock.exists());
    assert!(grid.log().contains("gridd: stopped"), "{}", grid.log());
}

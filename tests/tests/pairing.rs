//! Pairing by invitation: real gridd processes on loopback with QUIC
//! listeners, `grid peer invite` on one and `grid peer join` on another,
//! and every way a token can be wrong: reused, tampered, expired, naming
//! another grid's key, damaged, or sent to a grid with no open invite.

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use grid_tests::{ok, run, TestGrid};
use gridd::pair::{Token, TokenAddr};

const QUIC: &str = "quic!127.0.0.1!0";

/// Runs a command that must fail; returns its standard error.
fn fails(out: Output, what: &str) -> String {
    assert!(
        !out.status.success(),
        "{what}: succeeded, stdout {}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(out.status.code(), Some(1), "{what}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn cat(g: &TestGrid, path: &str) -> String {
    ok(run(g.grid().args(["cat", path])), path)
}

fn start(exports: &[(&str, &Path)]) -> TestGrid {
    let mut args = vec!["--listen".to_owned(), QUIC.to_owned()];
    for (name, dir) in exports {
        args.push("--export".into());
        args.push(format!("{name}={}", dir.display()));
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    TestGrid::start(&args)
}

/// `grid peer invite ARGS` on `g`: the token, its last line of output.
fn invite(g: &TestGrid, args: &[&str]) -> String {
    let out = ok(
        run(g.grid().args(["peer", "invite"]).args(args)),
        "peer invite",
    );
    let token = out.lines().last().expect("a last line").to_owned();
    assert!(token.starts_with("grid1:"), "{out}");
    token
}

fn join(g: &TestGrid, args: &[&str]) -> Output {
    run(g.grid().args(["peer", "join"]).args(args))
}

fn toml(g: &TestGrid) -> String {
    std::fs::read_to_string(g.state.path().join("grid.toml")).expect("grid.toml")
}

#[test]
fn an_invite_pairs_two_grids_once() {
    let files = tempfile::tempdir().expect("tempdir");
    let public = files.path().join("pub");
    let private = files.path().join("priv");
    for d in [&public, &private] {
        std::fs::create_dir(d).expect("mkdir");
        std::fs::write(d.join("f"), "shared\n").expect("write");
    }
    let a = start(&[("pub", &public), ("priv", &private)]);
    let b = start(&[]);
    let c = start(&[]);

    let token = invite(&a, &["--name", "bob", "--offer", "files/pub r"]);
    assert!(
        cat(&a, "/net/invites").starts_with("bob open "),
        "{}",
        cat(&a, "/net/invites")
    );
    let out = ok(join(&b, &["--name", "alice", &token]), "join");
    assert_eq!(out, "alice\n");

    // Both sides know each other, by the names chosen, and saved it.
    let ls_b = ok(run(b.grid().args(["peer", "ls"])), "ls b");
    assert!(ls_b.starts_with(&format!("alice {} ", a.key())), "{ls_b}");
    let ls_a = ok(run(a.grid().args(["peer", "ls"])), "ls a");
    assert!(ls_a.starts_with(&format!("bob {} ", b.key())), "{ls_a}");
    assert!(toml(&a).contains("[peers.bob]"), "{}", toml(&a));
    assert!(toml(&b).contains("[peers.alice]"), "{}", toml(&b));
    assert!(cat(&a, "/net/invites").starts_with("bob used "));

    // b reads what a offered, through its own gridd, and nothing else.
    assert_eq!(cat(&b, "/n/alice/files/pub/f"), "shared\n");
    let err = fails(run(b.grid().args(["cat", "/n/alice/files/priv/f"])), "priv");
    assert!(err.contains("not found"), "{err}");
    // The proposals were exchanged: both sides show the agreed grant.
    a.wait_for("/net/peers/bob/policy", "\ngrant files/pub r\n");
    b.wait_for("/net/peers/alice/policy", "\nreceived files/pub r\n");

    // b again: already a peer.
    let err = fails(join(&b, &[&token]), "rejoin");
    assert!(err.contains("already paired"), "{err}");

    // c replays the used token while another invite keeps the window open.
    let open = invite(&a, &[]);
    let err = fails(join(&c, &[&token]), "replay");
    assert!(err.contains("invite already used"), "{err}");

    // A tampered secret: refused, without saying which part was wrong.
    let mut forged = Token::decode(&open).expect("token");
    forged.secret[0] ^= 1;
    let err = fails(join(&c, &[&forged.encode()]), "secret");
    assert!(
        err.contains("grid: peer join: invite not recognised"),
        "{err}"
    );

    // A token whose key was changed to another grid's: a's address, b's
    // key. The handshake fails: a cannot prove it holds b's key.
    let mut forged = Token::decode(&open).expect("token");
    forged.key = b.key().parse().expect("key");
    let err = fails(join(&c, &[&forged.encode()]), "key");
    assert!(err.contains("is not the grid the invite names"), "{err}");

    // An address where nothing answers: a prompt, clear failure.
    let mut forged = Token::decode(&open).expect("token");
    forged.addrs = vec![TokenAddr::Ip("127.0.0.1:1".parse().expect("addr"))];
    let err = fails(join(&c, &[&forged.encode()]), "unreachable");
    assert!(
        err.contains("cannot reach the inviting grid at 127.0.0.1:1"),
        "{err}"
    );

    // Damaged and garbage tokens.
    let err = fails(join(&c, &["hello"]), "garbage");
    assert!(err.contains("not a grid invite"), "{err}");
    let err = fails(join(&c, &[&open[..open.len() - 6]]), "truncated");
    assert!(err.contains("damaged invite"), "{err}");
    let err = fails(join(&c, &["grid1:"]), "empty");
    assert!(err.contains("damaged invite"), "{err}");

    // Nothing of that changed c or the open invite: c joins with it.
    assert_eq!(cat(&c, "/net/invites"), "");
    let out = ok(join(&c, &[&open]), "c joins");
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(ok(run(a.grid().args(["peer", "ls"])), "ls").lines().count() == 2);
}

#[test]
fn expired_invites_are_refused_and_close_the_window() {
    let a = start(&[]);
    let c = start(&[]);

    let short = invite(&a, &["--expires", "1s"]);
    let long = invite(&a, &["--expires", "1h"]);
    std::thread::sleep(Duration::from_secs(2));
    // The joiner sees the expiry in the token.
    let err = fails(join(&c, &[&short]), "expired");
    assert!(err.contains("grid: peer join: invite expired"), "{err}");
    // And the inviter checks its own record, whatever the token claims.
    let mut forged = Token::decode(&short).expect("token");
    forged.expires += 3600;
    let err = fails(join(&c, &[&forged.encode()]), "expiry forged");
    assert!(err.contains("invite expired"), "{err}");
    let invites = cat(&a, "/net/invites");
    assert!(invites.contains("- expired "), "{invites}");
    assert!(invites.contains("- open "), "{invites}");

    // With no invite open, an unknown key gets nowhere, not even on
    // grid-pair/1: a token for the expired invite, its expiry pushed back,
    // is refused in the handshake once the long one is used.
    ok(join(&c, &[&long]), "join");
    let d = start(&[]);
    let err = fails(join(&d, &[&forged.encode()]), "window closed");
    assert!(err.contains("has no open invite"), "{err}");

    let err = fails(
        run(a.grid().args(["peer", "invite", "--expires", "soon"])),
        "bad duration",
    );
    assert!(err.contains("expires"), "{err}");
}

#[test]
fn a_grid_without_quic_cannot_invite() {
    let a = TestGrid::start(&[]);
    let err = fails(run(a.grid().args(["peer", "invite"])), "no quic");
    assert!(err.contains("no QUIC listener"), "{err}");
    let err = fails(
        run(a.grid().args(["peer", "ls", "--offer", "x"])),
        "flag misuse",
    );
    assert!(err.contains("go with invite or join"), "{err}");
}

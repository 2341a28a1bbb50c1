//! bind, mount, unmount and union directories, through the Node interface.

use std::collections::BTreeMap;
use std::sync::Arc;

use ninep_server::synth::dir_qid;
use ninep_server::{CreateKind, Node};

use super::ram::{Down, RamDir, RamFile};
use super::{cat, err, ls, ns, peer_tree, walk};
use crate::{Flags, NsOp};

fn create_file() -> CreateKind {
    CreateKind::File { perm: 0o644 }
}

#[tokio::test]
async fn bind_replaces() {
    let (ns, root) = ns();
    ns.bind("/a", "/b", Flags::REPLACE).await.unwrap();
    assert_eq!(ls(&ns, "/b").await, ["x", "y"]);
    assert_eq!(cat(&ns, "/b/y").await, "a/y");
    assert!(walk(&ns, "/b/z").await.is_err());
    // The mount point shows the bound directory's qid; /a is still /a.
    let a = root.get("a").unwrap();
    assert_eq!(walk(&ns, "/b").await.unwrap().qid(), a.qid());
    assert_eq!(ls(&ns, "/a").await, ["x", "y"]);
    // A file bound on a file.
    ns.bind("/status", "/a/x", Flags::REPLACE).await.unwrap();
    assert_eq!(cat(&ns, "/a/x").await, "ok");
    assert_eq!(cat(&ns, "/b/x").await, "ok", "/b is /a, mounts and all");
}

#[tokio::test]
async fn bind_before_and_after_order_the_union() {
    let (ns, _) = ns();
    ns.bind("/a", "/b", Flags::BEFORE).await.unwrap();
    assert_eq!(ls(&ns, "/b").await, ["x", "y", "z"]);
    assert_eq!(cat(&ns, "/b/y").await, "a/y", "a is searched first");

    let (ns, _) = super::ns();
    ns.bind("/a", "/b", Flags::AFTER).await.unwrap();
    assert_eq!(ls(&ns, "/b").await, ["y", "z", "x"]);
    assert_eq!(cat(&ns, "/b/y").await, "b/y", "b is searched first");
    assert_eq!(cat(&ns, "/b/x").await, "a/x");

    // -b goes in front of everything there, -a behind it.
    ns.bind("/c", "/b", Flags::BEFORE).await.unwrap();
    ns.bind("/c/sub", "/b", Flags::AFTER).await.unwrap();
    assert_eq!(ls(&ns, "/b").await, ["sub", "y", "z", "x", "deep"]);
    assert_eq!(
        ns.text(),
        "bind /b /b\nbind -a /a /b\nbind -b /c /b\nbind -a /c/sub /b\n"
    );
    // A replace makes it a union of one again.
    ns.bind("/a", "/b", Flags::REPLACE).await.unwrap();
    assert_eq!(ls(&ns, "/b").await, ["x", "y"]);
    assert_eq!(ns.text(), "bind /a /b\n");
}

#[tokio::test]
async fn union_walks_take_the_first_member_with_the_name() {
    let (ns, root) = ns();
    let extra = root.dir("extra");
    extra.file("y", "extra/y");
    extra.file("w", "extra/w");
    ns.bind("/a", "/b", Flags::AFTER).await.unwrap();
    ns.bind("/extra", "/b", Flags::BEFORE).await.unwrap();
    // extra, b, a
    assert_eq!(cat(&ns, "/b/y").await, "extra/y");
    assert_eq!(cat(&ns, "/b/z").await, "b/z");
    assert_eq!(cat(&ns, "/b/x").await, "a/x");
    assert_eq!(cat(&ns, "/b/w").await, "extra/w");
    // One of each name, in union order; duplicates are left out.
    assert_eq!(ls(&ns, "/b").await, ["w", "y", "z", "x"]);
    // A listed entry has the qid a walk finds.
    let b = walk(&ns, "/b").await.unwrap();
    let entries = b.readdir().await.unwrap();
    let y = entries.iter().find(|e| e.name == "y").unwrap();
    assert_eq!(y.attr.qid, extra.get("y").unwrap().qid());
    // Subdirectories of members are not merged: the first one wins.
    ns.bind("/c", "/b", Flags::BEFORE).await.unwrap();
    assert_eq!(ls(&ns, "/b/sub").await, ["deep"]);
}

#[tokio::test]
async fn a_member_that_is_down_is_passed_over() {
    let (ns, _) = ns();
    let down: Arc<dyn Node> = Arc::new(Down(dir_qid()));
    ns.mount(down, "dead", "/b", Flags::BEFORE, "")
        .await
        .unwrap();
    assert_eq!(cat(&ns, "/b/y").await, "b/y");
    assert_eq!(ls(&ns, "/b").await, ["y", "z"]);
    let e = err(walk(&ns, "/b/nothing").await);
    assert_eq!(e.msg, "peer unreachable", "not-found would be a guess");
    // The union still stats and opens, from the member that answers.
    let b = walk(&ns, "/b").await.unwrap();
    let attr = b.attr().await.unwrap();
    assert!(attr.is_dir());
    assert_eq!(attr.qid, b.qid());
    b.open(ninep_server::OpenMode::READ).await.unwrap();
}

#[tokio::test]
async fn create_in_a_union_needs_a_member_bound_with_c() {
    let (ns, _) = ns();
    ns.bind("/a", "/b", Flags::AFTER).await.unwrap();
    let b = walk(&ns, "/b").await.unwrap();
    let e = err(b.create("new", create_file(), None).await);
    assert_eq!(e.msg, "ns: no create permission in union");
    assert_eq!(e.errno, libc::EACCES);

    // -c on the second member: creation goes there, not to the first.
    let (ns, root2) = super::ns();
    ns.bind("/a", "/b", Flags::AFTER.create()).await.unwrap();
    let b = walk(&ns, "/b").await.unwrap();
    let (node, _) = b.create("new", create_file(), None).await.unwrap();
    assert!(!node.qid().is_dir());
    let a = root2.get("a").unwrap();
    let a = a.as_any().downcast_ref::<RamDir>().unwrap();
    assert!(a.names().contains(&"new".to_owned()));
    assert_eq!(cat(&ns, "/b/new").await, "");
    // A name any member has exists already.
    let e = err(b.create("z", create_file(), None).await);
    assert_eq!(e.msg, "file already exists");
    // A directory made in the union is plain below: creation just works.
    let (d, _) = b
        .create("d", CreateKind::Dir { perm: 0o755 }, None)
        .await
        .unwrap();
    d.create("f", create_file(), None).await.unwrap();
    assert_eq!(ls(&ns, "/a/d").await, ["f"]);

    // Plan 9: even a union of one forbids creation without -c...
    let (ns, _) = super::ns();
    ns.bind("/a", "/b", Flags::REPLACE).await.unwrap();
    let b = walk(&ns, "/b").await.unwrap();
    let e = err(b.create("q", create_file(), None).await);
    assert_eq!(e.msg, "ns: no create permission in union");
    // ...while a directory that is no mount point is left alone.
    let sub = walk(&ns, "/c/sub").await.unwrap();
    sub.create("q", create_file(), None).await.unwrap();
    assert_eq!(ls(&ns, "/c/sub").await, ["deep", "q"]);
}

#[tokio::test]
async fn remove_and_rename_act_on_the_member_that_has_the_file() {
    let (ns, root) = ns();
    ns.bind("/a", "/b", Flags::AFTER).await.unwrap();
    let a = root.get("a").unwrap();
    let a = a.as_any().downcast_ref::<RamDir>().unwrap();
    let b_dir = root.get("b").unwrap();
    let b_dir = b_dir.as_any().downcast_ref::<RamDir>().unwrap();
    let b = walk(&ns, "/b").await.unwrap();
    // x is a's: a rename within /b stays in a.
    b.rename("x", &b, "x2").await.unwrap();
    assert_eq!(a.names(), ["x2", "y"]);
    // y is b's own (it comes first).
    b.rename("y", &b, "y2").await.unwrap();
    assert_eq!(b_dir.names(), ["y2", "z"]);
    assert_eq!(ls(&ns, "/b").await, ["y2", "z", "x2", "y"]);
    // Now /b/y is a's y; removing it removes a's.
    walk(&ns, "/b/y").await.unwrap().remove().await.unwrap();
    assert_eq!(a.names(), ["x2"]);
    b.unlink("z", false).await.unwrap();
    assert_eq!(b_dir.names(), ["y2"]);
    // A rename to another directory of the same tree, through the namespace.
    let c = walk(&ns, "/c").await.unwrap();
    b.rename("x2", &c, "moved").await.unwrap();
    assert_eq!(ls(&ns, "/c").await, ["moved", "sub"]);
}

#[tokio::test]
async fn unmount_one_member_or_all() {
    let (ns, _) = ns();
    ns.bind("/a", "/b", Flags::AFTER).await.unwrap();
    ns.bind("/c", "/b", Flags::AFTER).await.unwrap();
    assert_eq!(ls(&ns, "/b").await, ["y", "z", "x", "sub"]);
    ns.unmount(Some("/a"), "/b").await.unwrap();
    assert_eq!(ls(&ns, "/b").await, ["y", "z", "sub"]);
    // The original directory is a member like the others.
    ns.unmount(Some("/b"), "/b").await.unwrap();
    assert_eq!(ls(&ns, "/b").await, ["sub"]);
    assert_eq!(ns.text(), "bind /c /b\n");
    // When the last member goes, the name shows what it covered.
    ns.unmount(Some("/c/"), "/b").await.unwrap();
    assert_eq!(ls(&ns, "/b").await, ["y", "z"]);
    assert_eq!(ns.text(), "");
    ns.bind("/a", "/b", Flags::AFTER).await.unwrap();
    ns.unmount(None, "/b").await.unwrap();
    assert_eq!(ls(&ns, "/b").await, ["y", "z"]);
}

#[tokio::test]
async fn unmount_by_peer_name_and_by_qid() {
    let (ns, _) = ns();
    let (alice, bob) = (peer_tree("alice"), peer_tree("bob"));
    ns.mount(alice, "alice", "/n/x", Flags::REPLACE, "")
        .await
        .unwrap();
    ns.mount(bob, "bob", "/n/x", Flags::AFTER, "")
        .await
        .unwrap();
    assert_eq!(ls(&ns, "/n/x/files").await, ["alice"]);
    ns.unmount(Some("alice"), "/n/x").await.unwrap();
    assert_eq!(ls(&ns, "/n/x/files").await, ["bob"]);
    // A name that leads to the bound file, though not the one bound
    // (as in Plan 9, where unmount evaluates NEW).
    ns.bind("/a", "/b", Flags::REPLACE).await.unwrap();
    ns.bind("/b", "/q", Flags::REPLACE).await.unwrap();
    ns.unmount(Some("/q"), "/b").await.unwrap();
    assert_eq!(ls(&ns, "/b").await, ["y", "z"]);
}

#[tokio::test]
async fn mount_a_tree_under_a_made_up_directory() {
    let (ns, _) = ns();
    let peer = peer_tree("alice");
    let peer_qid = peer.qid();
    ns.mount(peer, "alice", "/n/x", Flags::REPLACE, "")
        .await
        .unwrap();
    assert_eq!(ls(&ns, "/n").await, ["x"]);
    assert_eq!(ls(&ns, "/n/x").await, ["files", "sensors"]);
    assert_eq!(cat(&ns, "/n/x/files/alice").await, "alice's file");
    assert_eq!(walk(&ns, "/n/x").await.unwrap().qid(), peer_qid);
    let n = walk(&ns, "/n").await.unwrap();
    let entries = n.readdir().await.unwrap();
    assert_eq!(
        entries[0].attr.qid, peer_qid,
        "listing shows the mounted root"
    );

    // Directories on the way to a mount point are made up, and go away
    // with it.
    ns.mount(peer_tree("bob"), "bob", "/far/away/bob", Flags::REPLACE, "")
        .await
        .unwrap();
    assert_eq!(ls(&ns, "/").await, ["a", "b", "c", "n", "status", "far"]);
    assert_eq!(ls(&ns, "/far").await, ["away"]);
    let far = walk(&ns, "/far").await.unwrap();
    assert!(far.qid().is_dir());
    assert_eq!(far.qid(), walk(&ns, "/far").await.unwrap().qid(), "stable");
    let e = err(far.create("f", create_file(), None).await);
    assert_eq!(e.msg, "ns: no create permission in union");
    ns.unmount(None, "/far/away/bob").await.unwrap();
    assert!(walk(&ns, "/far").await.is_err());
    assert_eq!(ls(&ns, "/").await, ["a", "b", "c", "n", "status"]);
}

#[tokio::test]
async fn mounts_follow_a_bound_directory() {
    let (ns, _) = ns();
    ns.mount(peer_tree("alice"), "alice", "/n/alice", Flags::REPLACE, "")
        .await
        .unwrap();
    ns.bind("/n", "/m", Flags::REPLACE).await.unwrap();
    assert_eq!(cat(&ns, "/m/alice/files/alice").await, "alice's file");
    // Later mounts under /n show through /m too.
    ns.mount(peer_tree("bob"), "bob", "/n/bob", Flags::REPLACE, "")
        .await
        .unwrap();
    assert_eq!(ls(&ns, "/m").await, ["alice", "bob"]);
}

#[tokio::test]
async fn fids_keep_what_they_walked_to() {
    let (ns, _) = ns();
    ns.bind("/a", "/b", Flags::REPLACE).await.unwrap();
    let held = walk(&ns, "/b").await.unwrap();
    ns.unmount(None, "/b").await.unwrap();
    assert_eq!(
        held.readdir()
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.name)
            .collect::<Vec<_>>(),
        ["x", "y"]
    );
    assert_eq!(ls(&ns, "/b").await, ["y", "z"]);
    // The namespace root is live: a bind on / shows at once.
    let root = ns.root();
    ns.bind("/c", "/", Flags::BEFORE).await.unwrap();
    assert!(root.walk("sub").await.is_ok());
    assert_eq!(ls(&ns, "/").await, ["sub", "a", "b", "c", "n", "status"]);
}

#[tokio::test]
async fn errors_say_what_and_where() {
    let (ns, _) = ns();
    let msg = |r: ninep_server::Result<()>| r.unwrap_err().msg.into_owned();
    assert_eq!(
        msg(ns.bind("/x", "/b", Flags::REPLACE).await),
        "ns: /x: file not found"
    );
    assert_eq!(
        msg(ns.bind("/status", "/a", Flags::REPLACE).await),
        "ns: /a: inconsistent mount"
    );
    assert_eq!(
        msg(ns.bind("/status", "/n", Flags::AFTER).await),
        "ns: /status: not a directory"
    );
    assert_eq!(
        msg(ns.bind("/a", "/status/x", Flags::REPLACE).await),
        "ns: /status: not a directory"
    );
    assert_eq!(
        msg(ns.bind("a", "/b", Flags::REPLACE).await),
        "ns: a: not an absolute path"
    );
    assert_eq!(
        msg(ns.unmount(None, "/n/x").await),
        "ns: unmount: /n/x: not mounted"
    );
    ns.bind("/a", "/b", Flags::REPLACE).await.unwrap();
    assert_eq!(
        msg(ns.unmount(Some("/c"), "/b").await),
        "ns: unmount: /c: not mounted on /b"
    );
    let file: Arc<dyn Node> = RamDir::new().file("f", "");
    assert_eq!(
        msg(ns.mount(file, "alice", "/n/a", Flags::REPLACE, "").await),
        "ns: mount alice: not a directory"
    );
    let peers: BTreeMap<String, Arc<dyn Node>> = BTreeMap::new();
    let op = NsOp::parse_line("mount bob /n/bob").unwrap().unwrap();
    assert_eq!(
        msg(ns.run(&op, &peers).await),
        "ns: mount bob: unknown peer 'bob'"
    );
    let b = walk(&ns, "/b").await.unwrap();
    assert_eq!(
        b.rename("nope", &b, "q").await.unwrap_err().msg,
        "file not found"
    );
}

/// The example of issue 4: every clubhouse member's /sensors, bound after
/// one another into /n/clubhouse/sensors.
#[tokio::test]
async fn clubhouse_sensors_union() {
    let (ns, _) = ns();
    let mut peers: BTreeMap<String, Arc<dyn Node>> = BTreeMap::new();
    for name in ["alice", "bob", "carol"] {
        peers.insert(name.into(), peer_tree(name));
    }
    let mut text = String::new();
    for name in ["alice", "bob", "carol"] {
        text.push_str(&format!("mount {name} /n/{name}\n"));
    }
    for name in ["alice", "bob", "carol"] {
        text.push_str(&format!("bind -a /n/{name}/sensors /n/clubhouse/sensors\n"));
    }
    let ops = crate::parse_ns_file(&text).unwrap();
    assert!(ns.apply(&ops, &peers).await.is_empty());
    assert_eq!(ls(&ns, "/n").await, ["alice", "bob", "carol", "clubhouse"]);
    assert_eq!(
        ls(&ns, "/n/clubhouse/sensors").await,
        ["shared", "temp-alice", "temp-bob", "temp-carol"]
    );
    assert_eq!(
        cat(&ns, "/n/clubhouse/sensors/shared").await,
        "alice shared"
    );
    assert_eq!(
        cat(&ns, "/n/clubhouse/sensors/temp-carol").await,
        "carol temp"
    );
    // The first -a on a new name is a union of one: /ns says so plainly.
    let expected = text.replacen("bind -a /n/alice", "bind /n/alice", 1);
    assert_eq!(ns.text(), expected);
    // alice leaves; bob's shared reading is the one seen now.
    ns.unmount(Some("/n/alice/sensors"), "/n/clubhouse/sensors")
        .await
        .unwrap();
    assert_eq!(cat(&ns, "/n/clubhouse/sensors/shared").await, "bob shared");
    assert_eq!(
        ls(&ns, "/n/clubhouse/sensors").await,
        ["shared", "temp-bob", "temp-carol"]
    );
    // A reading written through the union lands on the member's tree.
    let f = walk(&ns, "/n/clubhouse/sensors/temp-bob").await.unwrap();
    let h = f.open(ninep_server::OpenMode::from_9p(1)).await.unwrap();
    h.handle.write(0, b"BOB").await.unwrap();
    let bob = peers["bob"].walk("sensors").await.unwrap();
    let temp = bob.walk("temp-bob").await.unwrap();
    let temp = temp.as_any().downcast_ref::<RamFile>().unwrap();
    assert_eq!(temp.text(), "BOB temp");
}

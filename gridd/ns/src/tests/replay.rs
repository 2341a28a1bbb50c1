//! The `/ns` text, its replay, pending and stale operations, and the
//! control verbs.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use ninep_server::synth::run_ctl;
use ninep_server::Node;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

use super::ram::RamDir;
use super::{cat, ls, ns, peer_tree, read_node, root_tree, walk};
use crate::path::join;
use crate::{ns_file, parse_ns_file, Flags, Namespace, NoPeers, NsCtl, NsOp, Pos};

type Peers = BTreeMap<String, Arc<dyn Node>>;

fn peers(names: &[&str]) -> Peers {
    names
        .iter()
        .map(|n| (n.to_string(), peer_tree(n) as Arc<dyn Node>))
        .collect()
}

fn ops(text: &str) -> Vec<NsOp> {
    parse_ns_file(text).unwrap()
}

#[tokio::test]
async fn text_is_one_quoted_operation_per_line() {
    let root = root_tree();
    root.dir("x y");
    root.dir("z");
    let ns = Namespace::new(root);
    let peers = peers(&["alice", "bob"]);
    let given = "bind -a '/x y' /z\n\
                 mount bob /n/alice\n\
                 mount -b alice /n/alice /files\n\
                 bind -bc /a /b\n\
                 bind -c /c /n/c\n";
    assert!(ns.apply(&ops(given), &peers).await.is_empty());
    assert_eq!(
        ns.text(),
        "bind /z /z\n\
         bind -a '/x y' /z\n\
         mount bob /n/alice\n\
         mount -b alice /n/alice /files\n\
         bind /b /b\n\
         bind -bc /a /b\n\
         bind -c /c /n/c\n"
    );
    // The spec chose alice's /files.
    assert_eq!(ls(&ns, "/n/alice").await, ["alice", "files", "sensors"]);
    // An unmount is the absence of what it removed.
    ns.unmount(Some("alice"), "/n/alice").await.unwrap();
    ns.unmount(None, "/z").await.unwrap();
    assert_eq!(
        ns.text(),
        "mount bob /n/alice\nbind /b /b\nbind -bc /a /b\nbind -c /c /n/c\n"
    );
    // The /ns file reads the text as of its open.
    let file: Arc<dyn Node> = Arc::new(ns_file(&ns));
    assert_eq!(read_node(&file).await, ns.text());
}

#[tokio::test]
async fn unavailable_sources_stay_pending_until_retried() {
    let (ns, _) = ns();
    let given = "mount alice /n/alice\n\
                 bind -a /n/alice/sensors /n/club\n\
                 bind /a /b\n\
                 unmount /nowhere\n";
    let problems = ns.apply(&ops(given), &NoPeers).await;
    let report: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
    assert_eq!(
        report,
        [
            "mount alice /n/alice: ns: mount alice: unknown peer 'alice' (pending)",
            "bind -a /n/alice/sensors /n/club: ns: /n/alice/sensors: file not found (pending)",
            "unmount /nowhere: ns: unmount: /nowhere: not mounted",
        ]
    );
    assert_eq!(
        problems.iter().map(|p| p.index).collect::<Vec<_>>(),
        [0, 1, 3]
    );
    let pending_text = "# pending: ns: mount alice: unknown peer 'alice'\n\
                        mount alice /n/alice\n\
                        # pending: ns: /n/alice/sensors: file not found\n\
                        bind /n/alice/sensors /n/club\n\
                        bind /a /b\n";
    assert_eq!(ns.text(), pending_text);
    assert_eq!(ns.pending().len(), 2);
    // A pending mount is an empty directory meanwhile.
    assert!(ls(&ns, "/n/alice").await.is_empty());
    // Replaying the text keeps them pending: nothing is lost.
    let again = Namespace::new(root_tree());
    let problems = again.apply(&ops(&ns.text()), &NoPeers).await;
    assert!(problems.iter().all(|p| p.pending));
    assert_eq!(again.text(), pending_text);

    // alice turns up: both take effect, in order.
    let retry = ns.retry_pending(&peers(&["alice"])).await;
    assert!(retry.is_empty(), "{retry:?}");
    assert!(ns.pending().is_empty());
    assert_eq!(
        ns.text(),
        "mount alice /n/alice\nbind /n/alice/sensors /n/club\nbind /a /b\n"
    );
    assert_eq!(cat(&ns, "/n/club/temp-alice").await, "alice temp");
}

#[tokio::test]
async fn binds_through_undone_binds_are_marked_stale() {
    let (ns, _) = ns();
    ns.bind("/a", "/b", Flags::REPLACE).await.unwrap();
    ns.bind("/b", "/q", Flags::REPLACE).await.unwrap();
    ns.bind("/q", "/r", Flags::REPLACE).await.unwrap();
    assert!(!ns.text().contains('#'));
    ns.unmount(None, "/b").await.unwrap();
    // /q still shows what /b showed then (Plan 9 too)...
    assert_eq!(ls(&ns, "/q").await, ["x", "y"]);
    // ...but replaying `bind /b /q` would not, and the text says so.
    assert_eq!(
        ns.text(),
        "# stale: /b was reached through a bind or mount undone since\n\
         bind /b /q\n\
         # stale: /q was reached through a stale bind\n\
         bind /q /r\n"
    );
    // Unions are not stale when a member other than the one used goes.
    let (ns, _) = super::ns();
    let peers = peers(&["alice", "bob"]);
    let given = "mount alice /n/alice\n\
                 mount bob /n/bob\n\
                 bind -a /n/alice/sensors /n/club\n\
                 bind -a /n/bob/sensors /n/club\n\
                 bind /n/club/temp-bob /n/bobs-temp\n";
    assert!(ns.apply(&ops(given), &peers).await.is_empty());
    ns.unmount(Some("/n/alice/sensors"), "/n/club")
        .await
        .unwrap();
    assert!(!ns.text().contains('#'), "{}", ns.text());
    ns.unmount(None, "/n/bob").await.unwrap();
    assert_eq!(
        ns.text(),
        "mount alice /n/alice\n\
         # stale: /n/bob/sensors was reached through a bind or mount undone since\n\
         bind /n/bob/sensors /n/club\n\
         # stale: /n/club/temp-bob was reached through a bind or mount undone since\n\
         bind /n/club/temp-bob /n/bobs-temp\n"
    );
}

#[tokio::test]
async fn ctl_verbs_change_the_namespace_and_save_it() {
    let (ns, _) = ns();
    let saved = Arc::new(Mutex::new(String::new()));
    let sink = saved.clone();
    let ctl = NsCtl::new(&ns, Arc::new(peers(&["alice"]))).on_change(move |ns| {
        *sink.lock().unwrap() = ns.text();
        Ok(())
    });
    run_ctl(
        &ctl,
        "ctl",
        b"bind -a /a /b\nmount -c alice /n/alice '/files'\n",
    )
    .await
    .unwrap();
    assert_eq!(
        *saved.lock().unwrap(),
        "bind /b /b\nbind -a /a /b\nmount -c alice /n/alice /files\n"
    );
    assert_eq!(ls(&ns, "/n/alice").await, ["alice"]);
    run_ctl(&ctl, "ctl", b"unmount /n/alice").await.unwrap();
    assert_eq!(*saved.lock().unwrap(), "bind /b /b\nbind -a /a /b\n");
    let err = |line: &'static str| {
        let ctl = &ctl;
        async move { run_ctl(ctl, "ctl", line.as_bytes()).await.unwrap_err().msg }
    };
    assert_eq!(err("bind /a").await, "ctl: usage: bind [-abc] NEW OLD");
    assert_eq!(err("bind -x /a /b").await, "ctl: bind: unknown flag -x");
    assert_eq!(err("bind /x /b").await, "ctl: ns: /x: file not found");
    assert_eq!(
        err("mount bob /n/bob").await,
        "ctl: ns: mount bob: unknown peer 'bob'"
    );
    assert_eq!(
        err("unmount /n/bob").await,
        "ctl: ns: unmount: /n/bob: not mounted"
    );
    assert_eq!(
        err("unmount a b c").await,
        "ctl: usage: unmount [NEW] OLD",
        "cmdbuf checks the counts it can"
    );
    // A failed save is reported; the change stays.
    let ctl = NsCtl::new(&ns, Arc::new(NoPeers)).on_change(|_| Err("disk full".into()));
    let e = run_ctl(&ctl, "ctl", b"bind /c /n/c").await.unwrap_err();
    assert_eq!(e.msg, "ctl: ns: changed for now, but not saved: disk full");
    assert_eq!(ls(&ns, "/n/c").await, ["sub"]);
    assert!(NsCtl::handles("unmount") && !NsCtl::handles("export"));
    assert_eq!(
        ninep_server::synth::CtlHandler::read(&ctl),
        "bind [-abc] NEW OLD\nmount [-abc] PEER OLD [SPEC]\nunmount [NEW] OLD\n"
    );
}

// ---- replay reproduces the namespace: random operation sequences ----

const PATHS: &[&str] = &[
    "/",
    "/a",
    "/b",
    "/c",
    "/c/sub",
    "/n",
    "/n/p",
    "/n/p/sensors",
    "/n/q",
    "/m",
    "/a/x",
    "/status",
    "/n/club/s",
];
const PEERS: &[&str] = &["p", "q", "ghost"];

fn flags() -> impl Strategy<Value = Flags> {
    (0..3u8, any::<bool>()).prop_map(|(pos, create)| Flags {
        pos: [Pos::Replace, Pos::Before, Pos::After][pos as usize],
        create,
    })
}

fn op() -> impl Strategy<Value = NsOp> {
    let path = || prop::sample::select(PATHS).prop_map(str::to_owned);
    let peer = || prop::sample::select(PEERS).prop_map(str::to_owned);
    let spec = prop::sample::select(&["", "/sensors"][..]).prop_map(str::to_owned);
    prop_oneof![
        4 => (flags(), path(), path()).prop_map(|(flags, new, old)| NsOp::Bind { flags, new, old }),
        2 => (flags(), peer(), path(), spec)
            .prop_map(|(flags, peer, old, spec)| NsOp::Mount { flags, peer, old, spec }),
        2 => (prop::option::of(prop_oneof![path(), peer()]), path())
            .prop_map(|(new, old)| NsOp::Unmount { new, old }),
    ]
}

/// Everything a client can see, to a depth: each name, what it lists,
/// and the qids of both.
async fn dump(ns: &Namespace) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack: Vec<(Arc<dyn Node>, String, usize)> = vec![(ns.root(), "/".into(), 0)];
    while let Some((node, path, depth)) = stack.pop() {
        out.push(format!("{path} {:x}", node.qid().path));
        if !node.qid().is_dir() || depth == 3 {
            continue;
        }
        let entries = match node.readdir().await {
            Ok(entries) => entries,
            Err(e) => {
                out.push(format!("{path}: {}", e.msg));
                continue;
            }
        };
        for e in entries {
            let child = join(&path, &e.name);
            out.push(format!("{child} listed {:x}", e.attr.qid.path));
            match node.walk(&e.name).await {
                Ok(n) => stack.push((n, child, depth + 1)),
                Err(err) => out.push(format!("{child}: {}", err.msg)),
            }
        }
    }
    out
}

#[test]
fn replaying_the_text_reproduces_the_namespace() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let root = root_tree();
    let mut peers = peers(&["p", "q"]);
    // q's export has a sensors directory too, and a file where p has one.
    let q = RamDir::new();
    q.dir("sensors").file("q-only", "q");
    q.file("files", "a file here");
    peers.insert("q".into(), q);
    let checked = AtomicUsize::new(0);
    let stale = AtomicUsize::new(0);
    let mut runner = TestRunner::new(Config {
        cases: 1000,
        failure_persistence: None,
        ..Config::default()
    });
    let strategy = prop::collection::vec(op(), 1..20);
    let result = runner.run(&strategy, |ops| {
        rt.block_on(async {
            let ns = Namespace::new(root.clone());
            ns.apply(&ops, &peers).await;
            let text = ns.text();
            let replayed = parse_ns_file(&text).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let again = Namespace::new(root.clone());
            let problems = again.apply(&replayed, &peers).await;
            if text.contains("# stale") {
                stale.fetch_add(1, Ordering::Relaxed);
                return Ok(());
            }
            prop_assert!(
                problems.iter().all(|p| p.pending),
                "replay failed: {problems:?}\n{text}"
            );
            prop_assert_eq!(&again.text(), &text);
            prop_assert_eq!(dump(&again).await, dump(&ns).await, "{}", text);
            checked.fetch_add(1, Ordering::Relaxed);
            Ok(())
        })
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    let (checked, stale) = (checked.into_inner(), stale.into_inner());
    assert!(
        checked >= 500,
        "only {checked} sequences compared ({stale} stale)"
    );
}

#[tokio::test]
async fn the_namespace_root_is_a_node_for_serving() {
    let (ns, _) = ns();
    let root: Arc<dyn Node> = ns.root();
    assert_eq!(ls(&ns, "/").await, ["a", "b", "c", "n", "status"]);
    assert!(root.remove().await.is_err());
    ns.bind("/c", "/", Flags::REPLACE).await.unwrap();
    assert_eq!(ls(&ns, "/").await, ["sub"]);
    assert!(walk(&ns, "/sub/deep").await.is_ok());
    assert_eq!(ns.text(), "bind /c /\n");
}

//! Tests of the namespace as a whole: unions, the `/ns` text and its
//! replay, and the namespace served over 9P.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod ram;
mod replay;
mod union;
mod wire;

use std::sync::Arc;

use ninep_server::{Node, OpenMode};

use crate::Namespace;
use ram::RamDir;

/// A root tree: `/a/{x,y}`, `/b/{y,z}`, `/c/sub/deep`, `/n/`, `/status`.
fn root_tree() -> Arc<RamDir> {
    let root = RamDir::new();
    let a = root.dir("a");
    a.file("x", "a/x");
    a.file("y", "a/y");
    let b = root.dir("b");
    b.file("y", "b/y");
    b.file("z", "b/z");
    root.dir("c").dir("sub").file("deep", "c/sub/deep");
    root.dir("n");
    root.file("status", "ok");
    root
}

/// A peer's tree: `/sensors/{temp-NAME,NAME}` and `/files/NAME`.
fn peer_tree(name: &str) -> Arc<RamDir> {
    let root = RamDir::new();
    let sensors = root.dir("sensors");
    sensors.file(&format!("temp-{name}"), &format!("{name} temp"));
    sensors.file("shared", &format!("{name} shared"));
    root.dir("files").file(name, &format!("{name}'s file"));
    root
}

fn ns() -> (Namespace, Arc<RamDir>) {
    let root = root_tree();
    (Namespace::new(root.clone()), root)
}

/// Walks `path` in the namespace as a client would, one name at a time.
async fn walk(ns: &Namespace, path: &str) -> ninep_server::Result<Arc<dyn Node>> {
    let mut node: Arc<dyn Node> = ns.root();
    for name in path.split('/').filter(|s| !s.is_empty()) {
        node = node.walk(name).await?;
    }
    Ok(node)
}

/// The names `path` lists, in order.
async fn ls(ns: &Namespace, path: &str) -> Vec<String> {
    let node = walk(ns, path).await.expect(path);
    node.readdir()
        .await
        .expect(path)
        .into_iter()
        .map(|e| e.name)
        .collect()
}

/// The text of the file at `path`.
async fn cat(ns: &Namespace, path: &str) -> String {
    let node = walk(ns, path).await.expect(path);
    read_node(&node).await
}

async fn read_node(node: &Arc<dyn Node>) -> String {
    let h = node.open(OpenMode::READ).await.expect("open").handle;
    String::from_utf8(h.read(0, 1 << 16).await.expect("read")).expect("utf-8")
}

/// The error of a result whose value cannot be printed.
fn err<T>(r: ninep_server::Result<T>) -> ninep_server::Error {
    match r {
        Ok(_) => panic!("expected an error"),
        Err(e) => e,
    }
}

//! The paths of live nodes, so a rename made through the export moves the
//! nodes (and fids) beneath it along.
//!
//! A node is a path, re-resolved on every operation. When a client renames
//! `a` to `b`, the fids it holds for `a` and `a/x` (a Linux client keeps one
//! per cached dentry and walks on from them) would otherwise go on naming
//! the old place and fail. So every node registers its path here, and
//! [`Registry::renamed`] rewrites `a` and everything under `a/` to `b`, as
//! QEMU's 9p server does. Renames by other processes on the host are not
//! seen; their nodes fail with "file not found" (a documented non-goal).
//!
//! Paths are only changed under the registry's lock, and a node reads its
//! own path under its own small lock, so an operation sees either the old
//! path or the new one, never a torn one.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};

use crate::node::ExportNode;

/// Live nodes by path.
#[derive(Debug, Default)]
pub(crate) struct Registry {
    map: Mutex<BTreeMap<Arc<str>, Vec<Weak<ExportNode>>>>,
}

impl Registry {
    /// Records `node` under its current path.
    pub(crate) fn add(&self, node: &Arc<ExportNode>) {
        let mut map = lock(&self.map);
        map.entry(node.path())
            .or_default()
            .push(Arc::downgrade(node));
    }

    /// Forgets `node`, which is being dropped (dead entries of the same
    /// path go too).
    pub(crate) fn remove(&self, node: &ExportNode) {
        let mut map = lock(&self.map);
        let path = node.path();
        if let Some(list) = map.get_mut(&path) {
            let me: *const ExportNode = node;
            list.retain(|w| w.as_ptr() != me && w.strong_count() > 0);
            if list.is_empty() {
                map.remove(&path);
            }
        }
    }

    /// `from` was renamed to `to`: every live node at `from` or beneath it
    /// now has the corresponding path beneath `to`.
    pub(crate) fn renamed(&self, from: &str, to: &str) {
        if from == to || from.is_empty() {
            return;
        }
        let mut map = lock(&self.map);
        // `from` itself, then `from/...`, which sort between "from/" and
        // "from0" ('0' follows '/').
        let below_start = format!("{from}/");
        let below_end = format!("{from}0");
        let mut keys: Vec<Arc<str>> = map
            .get_key_value(from)
            .map(|(k, _)| k.clone())
            .into_iter()
            .collect();
        keys.extend(
            map.range::<str, _>((
                std::ops::Bound::Included(below_start.as_str()),
                std::ops::Bound::Excluded(below_end.as_str()),
            ))
            .map(|(k, _)| k.clone()),
        );
        // Upgraded nodes are dropped only after the lock is released: the
        // last drop of a node re-enters `remove`.
        let mut alive = Vec::new();
        for key in keys {
            let Some(list) = map.remove(&key) else {
                continue;
            };
            let moved: Arc<str> = format!("{to}{}", &key[from.len()..]).into();
            let mut live = Vec::with_capacity(list.len());
            for weak in list {
                if let Some(node) = weak.upgrade() {
                    node.set_path(moved.clone());
                    alive.push(node);
                    live.push(weak);
                }
            }
            if !live.is_empty() {
                map.entry(moved).or_default().extend(live);
            }
        }
        drop(map);
        drop(alive);
    }

    /// How many paths have live nodes (for tests).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        lock(&self.map).len()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use ninep_server::{CreateKind, Node};

    use crate::node::{export_root, ExportNode};
    use crate::ExportOptions;

    fn path_of(node: &Arc<dyn Node>) -> Arc<str> {
        node.as_any()
            .downcast_ref::<ExportNode>()
            .expect("an export node")
            .path()
    }

    #[tokio::test]
    async fn renames_move_nodes_beneath_and_drops_forget_them() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = export_root(dir.path(), ExportOptions::default()).expect("export");
        let registry = |root: &Arc<ExportNode>| root.shared().registry.len();
        let root_dyn: Arc<dyn Node> = root.clone();
        let perm = CreateKind::Dir { perm: 0o755 };
        let (a, _) = root_dyn
            .create("a", perm.clone(), None)
            .await
            .expect("mkdir a");
        let (ab, _) = a.create("b", perm.clone(), None).await.expect("mkdir a/b");
        let (abc, _) = ab
            .create("c", perm.clone(), None)
            .await
            .expect("mkdir a/b/c");
        let (a2, _) = root_dyn.create("a2", perm, None).await.expect("mkdir a2");
        // "", "a", "a/b", "a/b/c", "a2"
        assert_eq!(registry(&root), 5);

        root_dyn.rename("a", &root_dyn, "z").await.expect("rename");
        assert_eq!(&*path_of(&a), "z");
        assert_eq!(&*path_of(&ab), "z/b");
        assert_eq!(&*path_of(&abc), "z/b/c");
        assert_eq!(&*path_of(&a2), "a2", "a sibling with the same prefix stays");
        abc.attr().await.expect("moved node still resolves");

        drop((a, ab, abc, a2));
        assert_eq!(registry(&root), 1, "only the root is left");
    }
}

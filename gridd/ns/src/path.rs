//! Absolute paths within a namespace, cleaned lexically.

use ninep_server::{Error, Result};

/// The longest path accepted, in bytes: operations are owner-only, but a
/// bound still keeps a typo from costing much.
const MAX_PATH: usize = 4096;

/// `path` cleaned as Plan 9's cleanname does: `.` and empty elements
/// dropped, `..` removes the element before it (never above `/`). It must
/// be absolute. The result is `/` or `/a/b`.
pub(crate) fn clean(path: &str) -> Result<String> {
    if !path.starts_with('/') {
        return Err(Error::invalid_arg(format!(
            "ns: {}: not an absolute path",
            cmdbuf::quote(path)
        )));
    }
    if path.len() > MAX_PATH {
        return Err(Error::invalid_arg("ns: path too long"));
    }
    if path.contains('\0') {
        return Err(Error::invalid_arg("ns: bad character in file name"));
    }
    let mut elems: Vec<&str> = Vec::new();
    for e in path.split('/') {
        match e {
            "" | "." => {}
            ".." => {
                elems.pop();
            }
            e => elems.push(e),
        }
    }
    Ok(format!("/{}", elems.join("/")))
}

/// The elements of a cleaned path (none for `/`).
pub(crate) fn elems(path: &str) -> impl Iterator<Item = &str> {
    path.split('/').filter(|e| !e.is_empty())
}

/// `dir/name` for a cleaned `dir`.
pub(crate) fn join(dir: &str, name: &str) -> String {
    if dir == "/" {
        format!("/{name}")
    } else {
        format!("{dir}/{name}")
    }
}

/// The prefix every path strictly below `dir` starts with.
pub(crate) fn below(dir: &str) -> String {
    if dir == "/" {
        "/".to_owned()
    } else {
        format!("{dir}/")
    }
}

/// A qid path for a directory that exists only because something is
/// mounted below it: derived from its name (FNV-1a), so it is the same
/// every time and in every namespace, with the two top bits set so it
/// cannot meet a counter-made synthetic qid or an inode number.
pub(crate) fn virtual_qid_path(path: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in path.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h | (3 << 62)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn cleans_like_cleanname() {
        assert_eq!(clean("/").unwrap(), "/");
        assert_eq!(clean("//a/./b//").unwrap(), "/a/b");
        assert_eq!(clean("/a/../../b").unwrap(), "/b");
        assert_eq!(clean("/a/b/..").unwrap(), "/a");
        assert_eq!(
            clean("a/b").unwrap_err().msg,
            "ns: a/b: not an absolute path"
        );
        assert_eq!(clean("").unwrap_err().msg, "ns: '': not an absolute path");
    }

    #[test]
    fn joins_and_prefixes() {
        assert_eq!(join("/", "n"), "/n");
        assert_eq!(join("/n", "x"), "/n/x");
        assert_eq!(below("/"), "/");
        assert_eq!(below("/n"), "/n/");
        assert_eq!(elems("/a/b").collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(elems("/").count(), 0);
        assert_ne!(virtual_qid_path("/n"), virtual_qid_path("/m"));
        assert_eq!(virtual_qid_path("/n") >> 62, 3);
    }
}

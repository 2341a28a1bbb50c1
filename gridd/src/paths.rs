//! Where gridd keeps its state, and the socket the `grid` command dials.

use std::path::PathBuf;

/// The state directory when `--state` is not given: `/var/lib/grid` for
/// root, else `$XDG_DATA_HOME/grid`, else `~/.local/share/grid`.
pub fn default_state_dir() -> PathBuf {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        return PathBuf::from("/var/lib/grid");
    }
    if let Some(xdg) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(xdg).join("grid");
    }
    match std::env::var_os("HOME").filter(|v| !v.is_empty()) {
        Some(home) => PathBuf::from(home).join(".local/share/grid"),
        None => PathBuf::from(".grid"),
    }
}

/// The unix socket inside a state directory.
pub fn socket_in(state: &std::path::Path) -> PathBuf {
    state.join("gridd.sock")
}

/// The address the `grid` command dials by default: `$GRID_ADDR`, else the
/// socket in the default state directory.
pub fn default_addr() -> String {
    match std::env::var("GRID_ADDR") {
        Ok(a) if !a.is_empty() => a,
        _ => format!("unix!{}", socket_in(&default_state_dir()).display()),
    }
}

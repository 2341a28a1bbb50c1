//! The tree gridd serves (gridfs(4)).
//!
//! ```text
//! /status          name, key, listen addresses, uptime, version: `key value` lines
//! /ctl             grid-wide control messages (CTL_TABLE)
//! /files/NAME/...  each exported host directory
//! /cpu/...         jobs (grid-cpu), as the local owner sees them; a peer
//!                  gets its own /cpu instead (peers.rs: PeerRoot)
//! /ns              the namespace's bind and mount operations, namespace(6) form
//! /n/PEER/...      each peer's tree, as it lets this grid see it (peers.rs)
//! /net/peers/NAME  each peer's status, addr, key, rtt, policy, audit
//! /net/pair        pairing requests: invite, join (pair.rs)
//! /net/invites     the invites handed out (pair.rs)
//! ```
//!
//! The root is a [`grid_ns::Namespace`] over these files, so `bind`,
//! `mount` and `unmount` written to `/ctl` change what is served; they are
//! saved to `STATE/ns` and replayed at the next start.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use async_trait::async_trait;
use cmdbuf::Cmd;
use ninep::Addr;
use ninep_export::ExportOptions;
use ninep_server::synth::{CtlFile, CtlHandler, Dir, TextFile};
use ninep_server::{Error, Node, Result};

use grid_ns::{Namespace, NsCtl};

use crate::config::{self, Export, PeerConfig};
use crate::peers::{NDir, PeerResolver, Peers};

/// The verbs of `/ctl`. gridfs(4) documents each; a test checks it does.
pub static CTL_TABLE: &[Cmd] = &[
    Cmd {
        verb: "export",
        min_args: 2,
        max_args: Some(3),
        usage: "NAME PATH [ro|rw]",
    },
    Cmd {
        verb: "unexport",
        min_args: 1,
        max_args: Some(1),
        usage: "NAME",
    },
    Cmd {
        verb: "peer",
        min_args: 2,
        max_args: None,
        usage: "add NAME KEY [ADDR...] | rm NAME",
    },
    Cmd {
        verb: "offer",
        min_args: 1,
        max_args: None,
        usage: "NAME POLICY",
    },
    Cmd {
        verb: "request",
        min_args: 1,
        max_args: None,
        usage: "NAME POLICY",
    },
    grid_ns::ctl::BIND,
    grid_ns::ctl::MOUNT,
    grid_ns::ctl::UNMOUNT,
];

/// The state the namespace shows and changes.
pub struct Grid {
    /// Local name.
    pub name: String,
    /// Public key, hex.
    pub key: String,
    /// When gridd started.
    pub started: Instant,
    /// Addresses being served.
    pub listen: Mutex<Vec<Addr>>,
    /// The `overlay` line of `/status`: the Yggdrasil address once joined,
    /// or why not yet (`gridd::overlay`); `None` prints no line.
    pub overlay: Mutex<Option<String>>,
    /// grid.toml, where run-time export changes are saved.
    pub config_path: PathBuf,
    files: Arc<Dir>,
    exports: Mutex<BTreeMap<String, Export>>,
    /// The jobs of `/cpu`; `None` when the service could not start.
    pub cpu: Option<grid_cpu::Cpu>,
    /// Where namespace changes are saved (`STATE/ns`); `None` keeps them in memory.
    ns_file: Mutex<Option<PathBuf>>,
    /// Other grids: `/n`, `/net/peers`, and what each may see here.
    pub peers: Arc<Peers>,
    /// Pairing invites handed out (`/net/pair`, `/net/invites`; pair.rs).
    pub invites: Arc<crate::pair::Invites>,
    /// The namespace served, once made, for retrying pending mounts.
    served: Mutex<Option<Namespace>>,
}

impl Grid {
    /// Builds the namespace for a grid with these exports. An export whose
    /// directory cannot be served is reported and left out; the rest run.
    pub fn new(
        name: String,
        key: String,
        config_path: PathBuf,
        exports: &BTreeMap<String, Export>,
    ) -> (Arc<Grid>, Vec<String>) {
        let mut problems = Vec::new();
        // Confined jobs never see gridd's state directory (its key, its socket).
        let state = config_path
            .parent()
            .filter(|d| d.join("identity.key").exists());
        let hide = state.map(|d| vec![d.to_path_buf()]).unwrap_or_default();
        // Peers' jobs see their caller's namespace at /mnt/term, mounted
        // through the owner's socket.
        let socket = state.map(crate::paths::socket_in);
        let term = match socket.map(|s| crate::term::GridTerm::new(&s)) {
            Some(Ok(t)) => Some(Arc::new(t) as Arc<dyn grid_cpu::term::TermMounter>),
            Some(Err(e)) => {
                problems.push(format!("/mnt/term to peers' jobs: {e}"));
                None
            }
            None => None,
        };
        let cpu = grid_cpu::Cpu::new(grid_cpu::CpuConfig {
            hide,
            term,
            ..Default::default()
        })
        .map_err(|e| problems.push(format!("cpu: {e}")))
        .ok();
        let peers = Peers::new(BTreeMap::new());
        let grid = Arc::new(Grid {
            name,
            key,
            started: Instant::now(),
            listen: Mutex::new(Vec::new()),
            overlay: Mutex::new(None),
            config_path,
            files: Arc::new(Dir::new(0o555)),
            exports: Mutex::new(BTreeMap::new()),
            cpu,
            ns_file: Mutex::new(None),
            invites: Arc::new(crate::pair::Invites::new(peers.known_keys())),
            peers,
            served: Mutex::new(None),
        });
        // Each peer gets its own /cpu of the same jobs (peers.rs).
        if let Some(cpu) = &grid.cpu {
            grid.peers.set_cpu(cpu.clone());
        }
        let weak = Arc::downgrade(&grid);
        grid.peers.on_heard(move || {
            if let Some(grid) = weak.upgrade() {
                grid.retry_pending();
            }
        });
        for (name, export) in exports {
            if let Err(e) = grid.add_export(name, export) {
                problems.push(format!("files.{name}: {e}"));
            }
        }
        (grid, problems)
    }

    /// Saves namespace changes to `path` from now on (gridd uses `STATE/ns`).
    pub fn set_ns_file(&self, path: PathBuf) {
        *self.ns_file.lock().unwrap_or_else(|p| p.into_inner()) = Some(path);
    }

    /// The root of the namespace.
    pub fn root(self: &Arc<Self>) -> Arc<dyn Node> {
        self.namespace().root()
    }

    /// The namespace: the files below, with bind and mount on top.
    pub fn namespace(self: &Arc<Self>) -> Namespace {
        let status = {
            let grid = self.clone();
            TextFile::new(move || grid.status_text())
        };
        let files = Arc::new(
            Dir::new(0o555)
                .with("status", Arc::new(status))
                .with("files", self.files.clone())
                .with("n", Arc::new(NDir::new(self.peers.clone())))
                .with(
                    "net",
                    crate::pair::with_files(crate::peers::net_dir(&self.peers), self),
                ),
        );
        if let Some(cpu) = &self.cpu {
            files.insert("cpu", cpu.tree(grid_cpu::Reader::owner()));
        }
        let ns = Namespace::new(files.clone());
        // /ns and /ctl hold the namespace weakly; the server holds the root.
        files.insert("ns", Arc::new(grid_ns::ns_file(&ns)));
        let save_to = self
            .ns_file
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let ns_ctl = NsCtl::new(&ns, self.resolver()).on_change(move |ns| match &save_to {
            Some(path) => save_ns(path, ns).map_err(|e| format!("{}: {e}", path.display())),
            None => Ok(()),
        });
        let ctl = GridCtl {
            grid: self.clone(),
            ns: ns_ctl,
        };
        files.insert("ctl", Arc::new(CtlFile::new("ctl", Arc::new(ctl))));
        ns
    }

    /// Mount sources: the peers.
    pub fn resolver(&self) -> Arc<PeerResolver> {
        Arc::new(PeerResolver(self.peers.clone()))
    }

    /// Remembers the namespace being served, so a new peer can complete
    /// the mounts that were waiting for it.
    pub fn set_served(&self, ns: &Namespace) {
        *self.served.lock().unwrap_or_else(|p| p.into_inner()) = Some(ns.clone());
    }

    /// Retries the pending mounts of the served namespace, in the
    /// background (a peer added may now resolve).
    pub fn retry_pending(&self) {
        let ns = self
            .served
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let resolver = self.resolver();
        if let Some(ns) = ns {
            tokio::spawn(async move {
                for p in ns.retry_pending(resolver.as_ref()).await {
                    if !p.pending {
                        eprintln!("gridd: ns: {}: {}", p.op, p.error);
                    }
                }
            });
        }
    }

    /// The text of `/status`.
    pub fn status_text(&self) -> String {
        let mut s = format!("name {}\nkey {}\n", self.name, self.key);
        for a in self.listen.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            s.push_str(&format!("listen {a}\n"));
        }
        if let Some(o) = &*self.overlay.lock().unwrap_or_else(|p| p.into_inner()) {
            s.push_str(&format!("overlay {o}\n"));
        }
        s.push_str(&format!(
            "uptime {}\nversion {}\n",
            self.started.elapsed().as_secs(),
            env!("CARGO_PKG_VERSION")
        ));
        s
    }

    fn add_export(&self, name: &str, export: &Export) -> Result<()> {
        config::check_name(name).map_err(Error::invalid_arg)?;
        let options = ExportOptions {
            read_only: export.read_only,
        };
        let node = ninep_export::export(&export.path, options).map_err(|e| {
            let e = Error::from(e);
            Error::new(e.errno, format!("{}: {}", export.path.display(), e.msg))
        })?;
        self.files.insert(name, node);
        self.lock_exports().insert(name.to_owned(), export.clone());
        Ok(())
    }

    fn lock_exports(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Export>> {
        self.exports.lock().unwrap_or_else(|p| p.into_inner())
    }
}

struct GridCtl {
    grid: Arc<Grid>,
    ns: NsCtl,
}

#[async_trait]
impl CtlHandler for GridCtl {
    fn table(&self) -> &'static [Cmd] {
        CTL_TABLE
    }

    async fn ctl(&self, cmd: &Cmd, f: &[String]) -> Result<()> {
        let grid = &self.grid;
        match cmd.verb {
            verb if NsCtl::handles(verb) => self.ns.run(f).await,
            "export" => {
                // PATH may carry its own ":ro"/":rw"; a third field says the
                // same thing, and the two must not disagree.
                let mut export =
                    Export::parse(&f[2]).map_err(|m| Error::invalid_arg(format!("export: {m}")))?;
                match f.get(3).map(String::as_str) {
                    None => {}
                    Some(mode @ ("ro" | "rw")) => {
                        let read_only = mode == "ro";
                        if f[2].ends_with(":ro") && !read_only || f[2].ends_with(":rw") && read_only
                        {
                            return Err(Error::invalid_arg(format!(
                                "export: '{}' and '{mode}' disagree",
                                f[2]
                            )));
                        }
                        export.read_only = read_only;
                    }
                    Some(other) => {
                        return Err(Error::invalid_arg(format!(
                            "export: mode must be ro or rw, not '{other}'"
                        )))
                    }
                }
                if grid.files.get(&f[1]).is_some() {
                    return Err(Error::new(
                        libc::EEXIST,
                        format!("export: '{}' is already exported; unexport it first", f[1]),
                    ));
                }
                grid.add_export(&f[1], &export)?;
                save(grid, &f[1], Some(&export))
            }
            "unexport" => {
                if grid.files.take(&f[1]).is_none() {
                    return Err(Error::new(
                        libc::ENOENT,
                        format!("unexport: '{}' is not exported", f[1]),
                    ));
                }
                grid.lock_exports().remove(&f[1]);
                save(grid, &f[1], None)
            }
            "peer" => crate::peers_ctl::peer(grid, f),
            "offer" | "request" => crate::peers_ctl::proposal(grid, f),
            other => Err(Error::invalid_arg(format!("unhandled verb '{other}'"))),
        }
    }
}

/// Replays a saved namespace file onto `ns`. Returns what did not take
/// effect, one line each. A file that does not parse is moved aside (to
/// `ns.bad`) so the next change does not overwrite what the user wrote.
pub async fn replay_ns(
    ns: &Namespace,
    resolver: &dyn grid_ns::Resolver,
    path: &Path,
) -> Vec<String> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
        Err(e) => return vec![format!("{}: {e}", path.display())],
    };
    match grid_ns::parse_ns_file(&text) {
        Ok(ops) => ns
            .apply(&ops, resolver)
            .await
            .into_iter()
            .map(|p| format!("{}: {p}", path.display()))
            .collect(),
        Err(e) => {
            let aside = path.with_extension("bad");
            let moved = std::fs::rename(path, &aside);
            let note = match moved {
                Ok(()) => format!("moved to {}", aside.display()),
                Err(m) => format!("could not move it aside: {m}"),
            };
            vec![format!("{}: {e}; not replayed, {note}", path.display())]
        }
    }
}

/// Writes the namespace text atomically.
fn save_ns(path: &Path, ns: &Namespace) -> std::io::Result<()> {
    config::write_atomic(path, ns.text().as_bytes())
}

/// Writes a peer change back to grid.toml so it survives a restart.
pub(crate) fn save_peer(grid: &Grid, name: &str, peer: Option<&PeerConfig>) -> Result<()> {
    config::set_peer(&grid.config_path, name, peer).map_err(|e| {
        Error::io(format!(
            "changed for now, but not saved to {}: {e}",
            grid.config_path.display()
        ))
    })
}

/// Writes an export change back to grid.toml so it survives a restart.
fn save(grid: &Grid, name: &str, export: Option<&Export>) -> Result<()> {
    config::set_export(&grid.config_path, name, export).map_err(|e| {
        Error::io(format!(
            "changed for now, but not saved to {}: {e}",
            grid.config_path.display()
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ninep_server::synth::run_ctl;

    fn grid() -> (Arc<Grid>, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = dir.path().join("grid.toml");
        std::fs::write(&cfg, config::default_text("t", dir.path())).expect("config");
        let (grid, problems) = Grid::new("t".into(), "k".into(), cfg, &BTreeMap::new());
        assert!(problems.is_empty());
        (grid, dir)
    }

    async fn ctl(grid: &Arc<Grid>, line: &str) -> Result<()> {
        let ns = grid.namespace();
        let ctl = GridCtl {
            grid: grid.clone(),
            ns: NsCtl::new(&ns, grid.resolver()),
        };
        run_ctl(&ctl, "ctl", line.as_bytes()).await
    }

    #[tokio::test]
    async fn export_modes_from_suffix_or_field() {
        let (grid, dir) = grid();
        let p = dir.path().display().to_string();
        ctl(&grid, &format!("export a {p}:ro"))
            .await
            .expect("suffix");
        ctl(&grid, &format!("export b {p} ro"))
            .await
            .expect("field");
        ctl(&grid, &format!("export c {p}")).await.expect("default");
        let e = ctl(&grid, &format!("export d {p}:ro rw"))
            .await
            .expect_err("disagree");
        assert!(e.msg.contains("disagree"), "{e}");
        let saved = config::load(&grid.config_path).expect("saved config");
        assert!(saved.files["a"].read_only);
        assert!(saved.files["b"].read_only);
        assert!(!saved.files["c"].read_only);
        assert!(!saved.files.contains_key("d"));
        let e = ctl(&grid, "exprot x /y").await.expect_err("typo");
        assert_eq!(e.msg, "ctl: unknown verb 'exprot' (did you mean 'export'?)");
        let e = ctl(&grid, "unexport zz").await.expect_err("missing");
        assert_eq!(e.msg, "ctl: unexport: 'zz' is not exported");
    }

    #[tokio::test]
    async fn binds_through_ctl_are_saved_and_replayed() {
        let (grid, dir) = grid();
        let saved = dir.path().join("ns");
        grid.set_ns_file(saved.clone());
        let ns = grid.namespace();
        let ctl = GridCtl {
            grid: grid.clone(),
            ns: NsCtl::new(&ns, grid.resolver()).on_change({
                let saved = saved.clone();
                move |ns| save_ns(&saved, ns).map_err(|e| e.to_string())
            }),
        };
        run_ctl(&ctl, "ctl", b"bind /status /files/status\n")
            .await
            .expect("bind");
        ns.resolve("/files/status").await.expect("bound");
        let text = std::fs::read_to_string(&saved).expect("saved");
        assert!(text.contains("bind /status /files/status"), "{text}");
        let e = run_ctl(&ctl, "ctl", b"bind /nope /x")
            .await
            .expect_err("missing");
        assert!(e.msg.starts_with("ctl: ns: "), "{e}");

        // A fresh namespace replays the file.
        let again = grid.namespace();
        assert!(again.resolve("/files/status").await.is_err());
        assert!(replay_ns(&again, &grid_ns::NoPeers, &saved)
            .await
            .is_empty());
        again.resolve("/files/status").await.expect("replayed");

        // A file that does not parse is moved aside, not lost.
        std::fs::write(&saved, "bind -x /a\n").expect("write");
        let problems = replay_ns(&grid.namespace(), &grid_ns::NoPeers, &saved).await;
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(dir.path().join("ns.bad").exists());
    }
}

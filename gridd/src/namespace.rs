//! The tree gridd serves (gridfs(4)).
//!
//! ```text
//! /status          name, key, listen addresses, uptime, version: `key value` lines
//! /ctl             grid-wide control messages (CTL_TABLE)
//! /files/NAME/...  each exported host directory
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use async_trait::async_trait;
use cmdbuf::Cmd;
use ninep::Addr;
use ninep_export::ExportOptions;
use ninep_server::synth::{CtlFile, CtlHandler, Dir, TextFile};
use ninep_server::{Error, Node, Result};

use crate::config::{self, Export};

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
    /// grid.toml, where run-time export changes are saved.
    pub config_path: PathBuf,
    files: Arc<Dir>,
    exports: Mutex<BTreeMap<String, Export>>,
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
        let grid = Arc::new(Grid {
            name,
            key,
            started: Instant::now(),
            listen: Mutex::new(Vec::new()),
            config_path,
            files: Arc::new(Dir::new(0o555)),
            exports: Mutex::new(BTreeMap::new()),
        });
        let mut problems = Vec::new();
        for (name, export) in exports {
            if let Err(e) = grid.add_export(name, export) {
                problems.push(format!("files.{name}: {e}"));
            }
        }
        (grid, problems)
    }

    /// The root of the namespace.
    pub fn root(self: &Arc<Self>) -> Arc<dyn Node> {
        let status = {
            let grid = self.clone();
            TextFile::new(move || grid.status_text())
        };
        let ctl = CtlFile::new("ctl", Arc::new(GridCtl { grid: self.clone() }));
        Arc::new(
            Dir::new(0o555)
                .with("status", Arc::new(status))
                .with("ctl", Arc::new(ctl))
                .with("files", self.files.clone()),
        )
    }

    /// The text of `/status`.
    pub fn status_text(&self) -> String {
        let mut s = format!("name {}\nkey {}\n", self.name, self.key);
        for a in self.listen.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            s.push_str(&format!("listen {a}\n"));
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
}

#[async_trait]
impl CtlHandler for GridCtl {
    fn table(&self) -> &'static [Cmd] {
        CTL_TABLE
    }

    async fn ctl(&self, cmd: &Cmd, f: &[String]) -> Result<()> {
        let grid = &self.grid;
        match cmd.verb {
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
            other => Err(Error::invalid_arg(format!("unhandled verb '{other}'"))),
        }
    }
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
        run_ctl(&GridCtl { grid: grid.clone() }, "ctl", line.as_bytes()).await
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
}

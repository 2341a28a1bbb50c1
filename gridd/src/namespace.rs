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
                let read_only = match f.get(3).map(String::as_str) {
                    None | Some("rw") => false,
                    Some("ro") => true,
                    Some(other) => {
                        return Err(Error::invalid_arg(format!(
                            "export: mode must be ro or rw, not '{other}'"
                        )))
                    }
                };
                if grid.files.get(&f[1]).is_some() {
                    return Err(Error::new(
                        libc::EEXIST,
                        format!("export: '{}' is already exported; unexport it first", f[1]),
                    ));
                }
                let export = Export::parse(&f[2])
                    .map(|e| Export { read_only, ..e })
                    .map_err(|m| Error::invalid_arg(format!("export: {m}")))?;
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

//! The `/cpu` tree: run jobs by writing to a ctl file (gridfs(4)).
//!
//! ```text
//! /cpu/info      cores, load, memory, arch, os, running jobs, sandbox, the reader's share
//! /cpu/clone     open: makes job N; the fid becomes /cpu/N/ctl; read: N
//! /cpu/jobs      one line per job the reader may see
//! /cpu/N/ctl     exec, dir, env, limit, hold, start, kill, signal, stdin close, rm
//! /cpu/N/stdin   written to the job's standard input
//! /cpu/N/stdout  the job's standard output, from offset 0, blocking
//! /cpu/N/stderr  the same for standard error
//! /cpu/N/status  one line: state, pgid, result, cpu, rss, start, end, reason
//! /cpu/N/wait    the status line, once the job has ended
//! ```
//!
//! A [`Cpu`] owns the jobs of one gridd. [`Cpu::tree`] builds the tree
//! one reader sees, with the [`Share`] that reader is granted: the local
//! owner gets [`Share::unlimited`]; the federation gives each peer what its
//! policy says. Jobs run sandboxed ([`sandbox`]): their own process group
//! and scratch directory, cgroups and rlimits for the limits, new
//! namespaces where the kernel allows, an unprivileged uid when gridd is
//! root, a root of their own with the system's files only when the share
//! says so ([`RootView::System`], peers' jobs), and every process of a
//! job killed when it ends, is killed or is removed.
//!
//! # Layout
//!
//! - [`Cpu`], [`CpuConfig`], [`Reader`] (here): the service and its set-up.
//! - [`share`]: [`Share`], [`Confine`], [`Limits`], and their text forms.
//! - [`job`]: one job: set-up, start, supervision, kill, the status line.
//! - [`ctl`]: the verbs of `N/ctl` ([`ctl::CTL_TABLE`]).
//! - [`tree`]: the 9P nodes of `/cpu` and `/cpu/N`.
//! - [`stream`]: `stdout` and `stderr`: kept, bounded, readable by many.
//! - [`sandbox`]: namespaces, rlimits, relay and init (run in gridd's
//!   memory, posix_spawn-style); the only code that runs before exec.
//! - [`cgroup`]: v1 and v2 control groups.
//! - [`term`]: `/mnt/term` for peers' jobs: the caller's namespace.
//! - [`info`]: `/cpu/info` and the time format of `status`.
//!
//! # Non-goals
//!
//! Remote jobs, `/mnt/term` and placement (`--on any`) belong to the
//! federation, which calls [`Cpu::live_tree`] with a peer's [`Reader`]
//! (its share from its grant in force) and [`Cpu::kill_jobs_of`] when a
//! peer's last connection ends.

#![warn(missing_docs, unreachable_pub)]
#![deny(clippy::unwrap_used, clippy::expect_used)]

pub mod cgroup;
pub mod ctl;
pub mod info;
pub mod job;
pub mod sandbox;
pub mod share;
pub mod stream;
pub mod term;
pub mod tree;

use std::collections::BTreeMap;
use std::io;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use ninep_server::Node;
use tokio::sync::oneshot;

pub use job::Job;
pub use share::{Confine, Limits, RootView, Share};

/// How gridd sets up `/cpu`.
#[derive(Debug, Clone, Default)]
pub struct CpuConfig {
    /// Uid and gid jobs run as when gridd is root (default 65534, nobody).
    pub run_as: Option<(u32, u32)>,
    /// Where the directory of scratch directories goes (default: the
    /// system's temporary directory).
    pub scratch: Option<PathBuf>,
    /// Directories a confined job must not see (gridd's state directory);
    /// each is covered with an empty tmpfs in the job's mount namespace.
    pub hide: Vec<PathBuf>,
    /// Mounts a peer's namespace for its jobs' `/mnt/term` ([`term`]);
    /// `None`: peers' jobs have no `/mnt/term`.
    pub term: Option<Arc<dyn term::TermMounter>>,
}

/// Who is reading `/cpu`, and what they may use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reader {
    /// A name for the reader: `owner`, or a peer's name. Letters, digits,
    /// `-`, `_` and `.`; other characters are replaced.
    pub name: String,
    /// What the reader may use.
    pub share: Share,
    /// Whether the reader sees every job (the owner) or only its own.
    pub sees_all: bool,
}

impl Reader {
    /// The local owner: every job, no limits, confinement preferred.
    pub fn owner() -> Reader {
        Reader {
            name: "owner".to_owned(),
            share: Share::unlimited(),
            sees_all: true,
        }
    }
}

/// The jobs of one gridd.
#[derive(Clone)]
pub struct Cpu {
    shared: Arc<Shared>,
}

impl Cpu {
    /// Probes what the kernel allows (namespaces, cgroups) and starts the
    /// thread that spawns jobs. Must be called inside a tokio runtime.
    pub fn new(config: CpuConfig) -> io::Result<Cpu> {
        // SAFETY: geteuid cannot fail.
        let root = unsafe { libc::geteuid() } == 0;
        let run_as = root.then(|| config.run_as.unwrap_or((65534, 65534)));
        let confinable = sandbox::probe(run_as);
        if let Err(e) = &confinable {
            eprintln!("gridd: cpu: warning: jobs cannot have their own namespaces here ({e}); jobs whose share prefers confinement run without, and those that require it are refused");
        }
        let tag = format!("{}.{:08x}", std::process::id(), random());
        let cgroups = cgroup::Cgroups::probe(&tag);
        cgroup::sweep_stale(config.scratch.as_deref().unwrap_or(&std::env::temp_dir()));
        let scratch_parent = config.scratch.clone().unwrap_or_else(std::env::temp_dir);
        let scratch_root = scratch_parent.join(format!("grid-cpu.{tag}"));
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o711)
            .create(&scratch_root)?;
        std::fs::set_permissions(&scratch_root, std::fs::Permissions::from_mode(0o711))?;
        // Stays empty on the host: jobs' own roots are mounted on it, each
        // in its job's mount namespace.
        std::fs::DirBuilder::new()
            .mode(0o755)
            .create(scratch_root.join(ROOT_STAGE))?;
        // A job running as another user gets the standard PATH: gridd's
        // may name directories that user cannot search (/root/...).
        let std_path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
        let path_var = match run_as {
            Some(_) => std_path.to_owned(),
            None => std::env::var("PATH").unwrap_or_else(|_| std_path.to_owned()),
        };
        Ok(Cpu {
            shared: Arc::new(Shared {
                jobs: Mutex::new(BTreeMap::new()),
                next: AtomicU32::new(1),
                cgroups,
                confinable,
                run_as,
                scratch_root,
                hide: config.hide,
                term: config.term.and_then(|m| {
                    term::Terms::new(m, &scratch_parent, &tag)
                        .map_err(|e| {
                            eprintln!("gridd: cpu: warning: peers' jobs get no /mnt/term: {e}")
                        })
                        .ok()
                }),
                path_var,
                spawner: Spawner::start()?,
            }),
        })
    }

    /// The `/cpu` directory as `reader` sees it.
    pub fn tree(&self, reader: Reader) -> Arc<dyn Node> {
        self.live_tree(move || Some(reader.clone()))
    }

    /// The `/cpu` directory for a reader whose share may change (a peer's
    /// grant): `reader` is asked afresh on every clone, listing and read
    /// of `info` or `jobs`, so a changed share applies to new jobs at
    /// once. `None` means the reader has no share now: clone and listings
    /// fail, and `info` says `share withdrawn`. Jobs keep the share they
    /// were made with. The reader's name should not change.
    pub fn live_tree(
        &self,
        reader: impl Fn() -> Option<Reader> + Send + Sync + 'static,
    ) -> Arc<dyn Node> {
        tree::cpu_dir(self.shared.clone(), Arc::new(reader))
    }

    /// Kills and removes every job `reader` made (a peer's session ended).
    pub async fn kill_jobs_of(&self, reader: &str) {
        let jobs: Vec<_> = self
            .shared
            .lock()
            .values()
            .filter(|e| e.job.owner == reader)
            .map(|e| e.job.clone())
            .collect();
        for j in jobs {
            j.remove().await;
        }
    }

    /// Kills every job and waits (bounded) for them to end; then removes
    /// gridd's cgroups and scratch directories. For shutdown.
    pub async fn shutdown(&self) {
        let jobs: Vec<_> = self.shared.lock().values().map(|e| e.job.clone()).collect();
        for j in &jobs {
            j.kill(job::Reason::Shutdown);
        }
        for j in &jobs {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(5), j.wait()).await;
        }
        self.shared.cgroups.remove_all();
        let _ = std::fs::remove_dir_all(&self.shared.scratch_root);
        if let Some(t) = &self.shared.term {
            t.remove_root();
        }
    }

    /// What the sandbox can do here, as `/cpu/info` says it.
    pub fn sandbox_text(&self) -> String {
        self.shared.sandbox_text()
    }
}

/// One job and its directory node.
pub(crate) struct Entry {
    pub(crate) job: Arc<Job>,
    pub(crate) dir: Arc<dyn Node>,
}

/// The directory of `scratch_root` jobs' own roots are built on.
const ROOT_STAGE: &str = ".root";

/// What every node of `/cpu` shares.
pub(crate) struct Shared {
    jobs: Mutex<BTreeMap<u32, Entry>>,
    next: AtomicU32,
    pub(crate) cgroups: cgroup::Cgroups,
    confinable: Result<(), String>,
    pub(crate) run_as: Option<(u32, u32)>,
    scratch_root: PathBuf,
    pub(crate) hide: Vec<PathBuf>,
    pub(crate) term: Option<term::Terms>,
    pub(crate) path_var: String,
    pub(crate) spawner: Spawner,
}

impl Shared {
    pub(crate) fn lock(&self) -> MutexGuard<'_, BTreeMap<u32, Entry>> {
        self.jobs.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Makes job N for `reader` (the clone file).
    pub(crate) fn new_job(
        self: &Arc<Self>,
        reader: &Reader,
    ) -> ninep_server::Result<Arc<dyn Node>> {
        let mut jobs = self.lock();
        if let Some(max) = reader.share.jobs {
            let have = jobs.values().filter(|e| e.job.owner == reader.name).count();
            if have >= max as usize {
                return Err(ninep_server::Error::new(
                    libc::EAGAIN,
                    format!("cpu: your share allows {max} jobs at once; remove finished ones (echo rm > /cpu/N/ctl)"),
                ));
            }
        }
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let job = Job::new(n, reader.name.clone(), reader.share, self.clone())?;
        let (dir, ctl) = tree::job_dir(job.clone());
        jobs.insert(n, Entry { job, dir });
        Ok(ctl)
    }

    pub(crate) fn forget(&self, n: u32) {
        self.lock().remove(&n);
    }

    /// Whether a job under `share` runs in new namespaces.
    pub(crate) fn confine_for(&self, share: &Share) -> Result<bool, String> {
        let confine = self.confine_as_shared(share)?;
        if !confine && share.root == RootView::System {
            return Err(
                "your share shows your jobs the system's files only, which needs new namespaces, and jobs here run without them"
                    .to_owned(),
            );
        }
        Ok(confine)
    }

    /// Where a job's own root is built (see [`sandbox::SystemRoot`]),
    /// made again if something cleaned it away (the job then fails
    /// naming the step, should that not do).
    pub(crate) fn root_stage(&self) -> PathBuf {
        let stage = self.scratch_root.join(ROOT_STAGE);
        let _ = std::fs::DirBuilder::new().mode(0o755).create(&stage);
        stage
    }

    fn confine_as_shared(&self, share: &Share) -> Result<bool, String> {
        match (share.confine, &self.confinable) {
            (Confine::Off, _) => Ok(false),
            (_, Ok(())) => Ok(true),
            (Confine::Preferred, Err(_)) => Ok(false),
            (Confine::Required, Err(e)) => Err(format!(
                "your share requires confinement, but this kernel refuses new namespaces ({e})"
            )),
        }
    }

    /// A fresh scratch directory for job `n`, owned by the job's uid.
    pub(crate) fn make_scratch(&self, n: u32) -> io::Result<PathBuf> {
        let dir = self.scratch_root.join(n.to_string());
        std::fs::DirBuilder::new().mode(0o700).create(&dir)?;
        if let Some((uid, gid)) = self.run_as {
            std::os::unix::fs::chown(&dir, Some(uid), Some(gid))?;
        }
        Ok(dir)
    }

    pub(crate) fn sandbox_text(&self) -> String {
        match &self.confinable {
            Ok(()) => "user mount pid net ipc".to_owned(),
            Err(_) => "none".to_owned(),
        }
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.scratch_root);
    }
}

type SpawnReply = oneshot::Sender<io::Result<sandbox::Started>>;

/// The thread every job is spawned from. Jobs' relays die when their
/// parent *thread* dies (PR_SET_PDEATHSIG), so they must not be spawned
/// from the runtime's blocking pool, whose threads come and go; this one
/// lives as long as the [`Cpu`].
pub(crate) struct Spawner {
    tx: Mutex<std::sync::mpsc::Sender<(sandbox::Spec, SpawnReply)>>,
}

impl Spawner {
    fn start() -> io::Result<Spawner> {
        let handle = tokio::runtime::Handle::try_current().map_err(io::Error::other)?;
        // A job's relay and init share gridd's memory (sandbox::launch)
        // and, under a root gridd, run as the job's uid: gridd's memory
        // must not be dumpable, or the job could ptrace its way into it.
        // (A setuid would do this too, unless fs.suid_dumpable says not.)
        // SAFETY: geteuid(2) and prctl(2) take and return integers.
        unsafe {
            if libc::geteuid() == 0 {
                libc::prctl(libc::PR_SET_DUMPABLE, 0);
            }
        }
        let (tx, rx) = std::sync::mpsc::channel::<(sandbox::Spec, SpawnReply)>();
        std::thread::Builder::new()
            .name("grid-cpu-spawn".into())
            .spawn(move || {
                let _rt = handle.enter();
                for (spec, reply) in rx {
                    let _ = reply.send(sandbox::spawn(spec));
                }
            })?;
        Ok(Spawner { tx: Mutex::new(tx) })
    }

    pub(crate) async fn spawn(&self, spec: sandbox::Spec) -> io::Result<sandbox::Started> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .send((spec, tx))
            .map_err(|_| io::Error::other("the spawner thread has stopped"))?;
        rx.await
            .map_err(|_| io::Error::other("the spawner thread has stopped"))?
    }
}

fn random() -> u32 {
    let mut b = [0u8; 4];
    let _ = getrandom::getrandom(&mut b);
    u32::from_ne_bytes(b)
}

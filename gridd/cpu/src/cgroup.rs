//! Control groups: a job's memory, process count, CPU bandwidth and CPU
//! accounting, and a way to find and kill every one of its processes.
//!
//! gridd makes its groups below the groups it runs in, so it needs no
//! more than write access to its own (a delegated systemd unit, a
//! container's root, or root). With cgroup v1 each controller is its own
//! hierarchy (`/sys/fs/cgroup/memory/…`, `…/pids/…`, `…/cpuacct/…`,
//! `…/cpu/…`); with v2 there is one, whose controllers gridd enables for
//! its subtree. Whatever cannot be made is left out and the job runs
//! without it (the sandbox then falls back to rlimits); [`Cgroups::text`]
//! says what is in use.
//!
//! Layout of gridd's part of a hierarchy: `grid-cpu.TAG/job-N` for each
//! job (TAG is gridd's pid and a random number), and on the cpu controller
//! `grid-cpu.TAG/READER/job-N`, whose
//! `READER` group carries the reader's `cores` share for all its jobs.

use std::fs;
use std::io::{self, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

const ROOT: &str = "/sys/fs/cgroup";

/// The controllers gridd can use here, and where its groups go.
#[derive(Debug, Default)]
pub struct Cgroups {
    v2: bool,
    memory: Option<PathBuf>,
    pids: Option<PathBuf>,
    cpuacct: Option<PathBuf>,
    cpu: Option<PathBuf>,
}

impl Cgroups {
    /// Finds the hierarchies and makes `grid-cpu.TAG` in each; `None`
    /// fields are controllers that cannot be used.
    pub fn probe(tag: &str) -> Cgroups {
        let own = fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
        let name = format!("grid-cpu.{tag}");
        let unified = Path::new(ROOT).join("cgroup.controllers");
        if unified.exists() {
            return probe_v2(&own, &name).unwrap_or_default();
        }
        let mut cg = Cgroups::default();
        for line in own.lines() {
            let mut parts = line.splitn(3, ':');
            let (Some(_), Some(ctrls), Some(path)) = (parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            let parent = Path::new(ROOT)
                .join(ctrls)
                .join(path.trim_start_matches('/'));
            sweep_stale(&parent);
            let dir = parent.join(&name);
            for ctrl in ctrls.split(',') {
                let slot = match ctrl {
                    "memory" => &mut cg.memory,
                    "pids" => &mut cg.pids,
                    "cpuacct" => &mut cg.cpuacct,
                    "cpu" => &mut cg.cpu,
                    _ => continue,
                };
                if make_dir(&dir).is_ok() {
                    *slot = Some(dir.clone());
                }
            }
        }
        cg
    }

    /// `memory pids cpu cpuacct` (the controllers in use), or `none`.
    pub fn text(&self) -> String {
        let mut v: Vec<&str> = Vec::new();
        for (name, p) in [
            ("memory", &self.memory),
            ("pids", &self.pids),
            ("cpu", &self.cpu),
            ("cpuacct", &self.cpuacct),
        ] {
            if p.is_some() {
                v.push(name);
            }
        }
        match (v.is_empty(), self.v2) {
            (true, _) => "none".into(),
            (false, true) => format!("v2 {}", v.join(" ")),
            (false, false) => format!("v1 {}", v.join(" ")),
        }
    }

    /// Whether a memory limit can be a cgroup limit.
    pub fn has_memory(&self) -> bool {
        self.memory.is_some()
    }

    /// Whether a process limit can be a cgroup limit.
    pub fn has_pids(&self) -> bool {
        self.pids.is_some()
    }

    /// Makes job `n`'s groups with these limits. `reader` names the
    /// group that holds the reader's `cores` (thousandths of a core).
    pub fn make_job(
        &self,
        n: u32,
        reader: &str,
        cores: Option<u32>,
        mem: Option<u64>,
        procs: Option<u32>,
    ) -> io::Result<JobCgroup> {
        let leaf = format!("job-{n}");
        let mut job = JobCgroup {
            v2: self.v2,
            ..JobCgroup::default()
        };
        let result = (|| {
            if self.v2 {
                let Some(base) = &self.memory else {
                    return Ok(());
                };
                let dir = match cores {
                    Some(c) => {
                        let r = base.join(reader);
                        make_dir(&r)?;
                        let _ = write(&r.join("cgroup.subtree_control"), "+memory +pids +cpu");
                        write(
                            &r.join("cpu.max"),
                            &format!("{} 100000", u64::from(c) * 100),
                        )?;
                        r.join(&leaf)
                    }
                    None => base.join(&leaf),
                };
                make_dir(&dir)?;
                job.dirs.push(dir.clone());
                if let Some(m) = mem {
                    write(&dir.join("memory.max"), &m.to_string())?;
                    let _ = write(&dir.join("memory.swap.max"), "0");
                }
                if let Some(p) = procs {
                    write(&dir.join("pids.max"), &p.to_string())?;
                }
                job.unified = Some(dir);
                return Ok(());
            }
            if let Some(base) = &self.memory {
                let dir = base.join(&leaf);
                make_dir(&dir)?;
                job.dirs.push(dir.clone());
                if let Some(m) = mem {
                    write(&dir.join("memory.limit_in_bytes"), &m.to_string())?;
                    // Without swap accounting this file is absent.
                    let _ = write(&dir.join("memory.memsw.limit_in_bytes"), &m.to_string());
                }
                job.memory = Some(dir);
            }
            if let Some(base) = &self.pids {
                let dir = base.join(&leaf);
                make_dir(&dir)?;
                job.dirs.push(dir.clone());
                if let Some(p) = procs {
                    write(&dir.join("pids.max"), &p.to_string())?;
                }
                job.pids = Some(dir);
            }
            if let Some(base) = &self.cpuacct {
                let dir = base.join(&leaf);
                make_dir(&dir)?;
                job.dirs.push(dir.clone());
                job.cpuacct = Some(dir);
            }
            if let (Some(base), Some(c)) = (&self.cpu, cores) {
                let r = base.join(reader);
                make_dir(&r)?;
                write(&r.join("cpu.cfs_period_us"), "100000")?;
                write(
                    &r.join("cpu.cfs_quota_us"),
                    &(u64::from(c) * 100).to_string(),
                )?;
                let dir = r.join(&leaf);
                make_dir(&dir)?;
                job.dirs.push(dir);
            }
            Ok(())
        })();
        match result {
            Ok(()) => Ok(job),
            Err(e) => {
                job.remove_now();
                Err(e)
            }
        }
    }

    /// Removes gridd's groups (at shutdown; jobs are gone by then).
    pub fn remove_all(&self) {
        for base in [&self.memory, &self.pids, &self.cpuacct, &self.cpu]
            .into_iter()
            .flatten()
        {
            if let Ok(entries) = fs::read_dir(base) {
                for e in entries.flatten() {
                    if e.path().is_dir() {
                        let _ = fs::remove_dir(e.path());
                    }
                }
            }
            let _ = fs::remove_dir(base);
        }
    }
}

/// Removes what a gridd that died without cleaning up left in `parent`:
/// `grid-cpu.PID.*` entries whose PID is gone (emptied groups only; a
/// group that still has processes stays).
pub fn sweep_stale(parent: &Path) {
    let Ok(entries) = fs::read_dir(parent) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix("grid-cpu.")) else {
            continue;
        };
        let Some(pid) = rest.split('.').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if pid == std::process::id() || Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        let dir = e.path();
        if dir.join("cgroup.procs").exists() {
            // Groups: children first (readers' groups hold jobs' groups).
            if let Ok(children) = fs::read_dir(&dir) {
                for c in children.flatten().filter(|c| c.path().is_dir()) {
                    if let Ok(grand) = fs::read_dir(c.path()) {
                        for g in grand.flatten().filter(|g| g.path().is_dir()) {
                            let _ = fs::remove_dir(g.path());
                        }
                    }
                    let _ = fs::remove_dir(c.path());
                }
            }
            let _ = fs::remove_dir(&dir);
        } else {
            let _ = fs::remove_dir_all(&dir);
        }
    }
}

fn probe_v2(own: &str, name: &str) -> Option<Cgroups> {
    let path = own.lines().find_map(|l| l.strip_prefix("0::"))?;
    let parent = Path::new(ROOT).join(path.trim_start_matches('/'));
    sweep_stale(&parent);
    let enable = "+memory +pids +cpu";
    if write(&parent.join("cgroup.subtree_control"), enable).is_err() {
        // "No internal processes": move gridd into a leaf of its own, then
        // its group may hand controllers down.
        let leaf = parent.join("gridd");
        make_dir(&leaf).ok()?;
        let procs = fs::read_to_string(parent.join("cgroup.procs")).ok()?;
        for pid in procs.lines() {
            let _ = write(&leaf.join("cgroup.procs"), pid);
        }
        write(&parent.join("cgroup.subtree_control"), enable).ok()?;
    }
    let base = parent.join(name);
    make_dir(&base).ok()?;
    let _ = write(&base.join("cgroup.subtree_control"), enable);
    Some(Cgroups {
        v2: true,
        memory: Some(base.clone()),
        pids: Some(base.clone()),
        cpuacct: Some(base.clone()),
        cpu: Some(base),
    })
}

/// One job's groups.
#[derive(Debug, Default)]
pub struct JobCgroup {
    v2: bool,
    dirs: Vec<PathBuf>,
    unified: Option<PathBuf>,
    memory: Option<PathBuf>,
    pids: Option<PathBuf>,
    cpuacct: Option<PathBuf>,
}

/// Open membership files of a job's groups ([`JobCgroup::procs_files`]).
#[derive(Debug, Default)]
pub struct Joins {
    /// For the relay (and so the init, and the command).
    pub relay: Vec<OwnedFd>,
    /// For the command alone: the groups with the memory controller.
    pub command: Vec<OwnedFd>,
}

/// What the groups measured.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    /// CPU time of every process of the job.
    pub cpu: Option<Duration>,
    /// Peak memory charged to the job, bytes.
    pub peak: Option<u64>,
    /// Processes the kernel killed for the memory limit.
    pub oom_kills: u64,
}

impl JobCgroup {
    /// Each group's membership file, opened for the job's processes to
    /// write `0` into (which moves the writer), so they are in their
    /// groups before the command runs anything.
    ///
    /// The relay and the init run in gridd's memory ([`crate::sandbox`]),
    /// so they must never be the memory controller's OOM victim: the
    /// kernel kills every process sharing a victim's memory, gridd
    /// included. They join every group but the memory one (v1), or none
    /// (v2, where one group has every controller); the command joins the
    /// memory group (v1) or the job's group (v2) itself, before exec.
    ///
    /// With v1 this is `tasks`, not `cgroup.procs`: the child is single-
    /// threaded, so moving its one thread moves the process, and the
    /// kernel moves the calling thread alone without write-locking the
    /// global threadgroup semaphore, whose RCU grace period otherwise
    /// costs every job several milliseconds. v2 has no such file outside
    /// threaded groups, so it keeps `cgroup.procs`.
    pub fn procs_files(&self) -> io::Result<Joins> {
        let file = if self.v2 { "cgroup.procs" } else { "tasks" };
        let open = |d: &PathBuf| -> io::Result<OwnedFd> {
            Ok(fs::OpenOptions::new()
                .write(true)
                .open(d.join(file))?
                .into())
        };
        let mut joins = Joins::default();
        for d in &self.dirs {
            let memory = self.v2 || self.memory.as_ref() == Some(d);
            let fd = open(d)?;
            if memory {
                joins.command.push(fd);
            } else {
                joins.relay.push(fd);
            }
        }
        Ok(joins)
    }

    /// CPU time, peak memory and OOM kills so far.
    pub fn usage(&self) -> Usage {
        let mut u = Usage::default();
        if let Some(d) = &self.unified {
            u.cpu = key(&d.join("cpu.stat"), "usage_usec").map(Duration::from_micros);
            u.peak = number(&d.join("memory.peak"));
            u.oom_kills = key(&d.join("memory.events"), "oom_kill").unwrap_or(0);
            return u;
        }
        if let Some(d) = &self.cpuacct {
            u.cpu = number(&d.join("cpuacct.usage")).map(Duration::from_nanos);
        }
        if let Some(d) = &self.memory {
            u.peak = number(&d.join("memory.max_usage_in_bytes"));
            u.oom_kills = key(&d.join("memory.oom_control"), "oom_kill").unwrap_or(0);
        }
        u
    }

    /// The pids of the job's processes that the groups can see.
    pub fn pids(&self) -> Vec<i32> {
        let dir = self
            .unified
            .as_ref()
            .or(self.pids.as_ref())
            .or(self.memory.as_ref())
            .or(self.cpuacct.as_ref());
        let Some(dir) = dir else { return Vec::new() };
        fs::read_to_string(dir.join("cgroup.procs"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    }

    /// SIGKILLs every process in the groups until none is left (bounded).
    pub async fn kill_all(&self) {
        if let Some(d) = &self.unified {
            let _ = write(&d.join("cgroup.kill"), "1");
        }
        for _ in 0..500 {
            let pids = self.pids();
            if pids.is_empty() {
                return;
            }
            for pid in pids {
                // SAFETY: kill(2) with a pid read from our own job's group;
                // a pid that was reused meanwhile can only be another
                // process that joined this group, which is the job's too.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// Removes the groups, waiting briefly for exiting processes to leave.
    pub async fn remove(&self) {
        for _ in 0..500 {
            self.remove_now();
            if self.dirs.iter().all(|d| !d.exists()) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    fn remove_now(&self) {
        for d in self.dirs.iter().rev() {
            let _ = fs::remove_dir(d);
        }
    }
}

fn make_dir(p: &Path) -> io::Result<()> {
    match fs::create_dir(p) {
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        r => r,
    }
}

fn write(p: &Path, s: &str) -> io::Result<()> {
    fs::OpenOptions::new()
        .write(true)
        .open(p)?
        .write_all(s.as_bytes())
}

fn number(p: &Path) -> Option<u64> {
    fs::read_to_string(p).ok()?.trim().parse().ok()
}

/// The value of `key N` in a flat keyed file.
fn key(p: &Path, k: &str) -> Option<u64> {
    fs::read_to_string(p).ok()?.lines().find_map(|l| {
        let (a, b) = l.split_once(' ')?;
        (a == k).then(|| b.trim().parse().ok()).flatten()
    })
}

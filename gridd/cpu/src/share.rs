//! Shares and limits: what a reader may use, and what one job asks for.
//!
//! A [`Share`] is granted to a reader of `/cpu` (the local owner gets
//! [`Share::unlimited`]; a peer gets what its policy says). A job's
//! [`Limits`] come from `limit` ctl lines; each is checked against the
//! share when it is written, and whatever a job does not ask for is
//! bounded by the share anyway ([`Limits::effective`]).
//!
//! Text forms, the same in `/cpu/info`, ctl lines and errors:
//! sizes are bytes with an optional `K`, `M`, `G` or `T` (powers of 1024),
//! durations are seconds with an optional `ms`, `s`, `m`, `h` or `d`,
//! core counts may have up to three decimals (`0.5`), and `unlimited`
//! stands for no limit.

use std::fmt;
use std::time::Duration;

/// Whether jobs must, may or must not run in new namespaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Confine {
    /// Namespaces or nothing: where the kernel refuses them, the job is
    /// refused too.
    Required,
    /// Namespaces where the kernel allows them; elsewhere the job runs
    /// with rlimits, cgroups and its own process group, and gridd logs a
    /// warning once.
    #[default]
    Preferred,
    /// No namespaces (rlimits, cgroups and process groups still apply).
    Off,
}

impl Confine {
    /// The word used in `/cpu/info` and configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            Confine::Required => "required",
            Confine::Preferred => "preferred",
            Confine::Off => "off",
        }
    }

    /// Parses `required`, `preferred` or `off`.
    pub fn parse(s: &str) -> Option<Confine> {
        match s {
            "required" => Some(Confine::Required),
            "preferred" => Some(Confine::Preferred),
            "off" => Some(Confine::Off),
            _ => None,
        }
    }
}

/// What of this machine's filesystem a reader's jobs see.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RootView {
    /// The host's whole tree, as gridd sees it (less gridd's state
    /// directory when confined): the local owner's jobs.
    #[default]
    Host,
    /// A root of the job's own: the system's programs and libraries
    /// read-only, a private `/tmp`, basic `/dev`, its own `/proc`, its
    /// scratch directory and `/mnt/term`. Needs confinement. Peers' jobs.
    System,
}

/// What one reader of `/cpu` may use. `None` is unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Share {
    /// CPU bandwidth for all of the reader's jobs together, in
    /// thousandths of a core (cgroup cpu quota).
    pub cores: Option<u32>,
    /// Jobs the reader may have at once (any state, until removed).
    pub jobs: Option<u32>,
    /// Memory per job, bytes.
    pub mem: Option<u64>,
    /// Wall-clock time per job; CPU time per job is bounded by
    /// `time × cores`.
    pub time: Option<Duration>,
    /// Processes per job.
    pub procs: Option<u32>,
    /// Whether the reader's jobs must be confined.
    pub confine: Confine,
    /// What of the filesystem the reader's jobs see.
    pub root: RootView,
}

impl Share {
    /// No limit at all, confinement preferred: the local owner's share.
    pub fn unlimited() -> Share {
        Share::default()
    }

    /// The largest CPU time a job may ask for: `time × cores` when both
    /// are limited.
    pub fn cpu(&self) -> Option<Duration> {
        match (self.time, self.cores) {
            (Some(t), Some(c)) => Some(t.mul_f64(f64::from(c) / 1000.0)),
            _ => None,
        }
    }

    /// `cores=… jobs=… mem=… time=… procs=… confine=…`, as `/cpu/info`
    /// shows it.
    pub fn text(&self) -> String {
        format!(
            "cores={} jobs={} mem={} time={} procs={} confine={}",
            opt(self.cores.map(Cores)),
            opt(self.jobs),
            opt(self.mem.map(Size)),
            opt(self.time.map(Dur)),
            opt(self.procs),
            self.confine.as_str()
        )
    }
}

/// What one job asked for with `limit`. `None` is "as much as the share".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Limits {
    /// CPU time (RLIMIT_CPU per process, and the job's cgroup total).
    pub cpu: Option<Duration>,
    /// Memory (cgroup memory limit, or RLIMIT_AS without one).
    pub mem: Option<u64>,
    /// Wall-clock time from start to kill.
    pub time: Option<Duration>,
    /// Processes (pids cgroup, or RLIMIT_NPROC inside a user namespace).
    pub procs: Option<u32>,
}

/// A `limit` argument that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitError {
    /// Not `key=value`, or an unknown key.
    #[error("unknown limit '{0}' (use cpu=, mem=, time= or procs=)")]
    Unknown(String),
    /// The value does not parse.
    #[error("bad value '{value}' for {key} (use {hint})")]
    BadValue {
        /// The key.
        key: &'static str,
        /// The value as written.
        value: String,
        /// An example of a good value.
        hint: &'static str,
    },
    /// More than the reader's share.
    #[error("{key}={value} exceeds your share {key}={share}")]
    OverShare {
        /// The key.
        key: &'static str,
        /// What was asked, as written back.
        value: String,
        /// What the share allows.
        share: String,
    },
}

impl Limits {
    /// Applies one `key=value` argument of a `limit` line, checked
    /// against `share`.
    pub fn set(&mut self, arg: &str, share: &Share) -> Result<(), LimitError> {
        let Some((key, value)) = arg.split_once('=') else {
            return Err(LimitError::Unknown(short(arg)));
        };
        let bad = |key, hint| LimitError::BadValue {
            key,
            value: short(value),
            hint,
        };
        let unlimited = value == "unlimited";
        match key {
            "cpu" => {
                let v = if unlimited {
                    None
                } else {
                    Some(parse_duration(value).ok_or_else(|| bad("cpu", "e.g. 90s, 10m"))?)
                };
                check("cpu", v.map(Dur), share.cpu().map(Dur))?;
                self.cpu = v;
            }
            "time" => {
                let v = if unlimited {
                    None
                } else {
                    Some(parse_duration(value).ok_or_else(|| bad("time", "e.g. 30s, 1h"))?)
                };
                check("time", v.map(Dur), share.time.map(Dur))?;
                self.time = v;
            }
            "mem" => {
                let v = if unlimited {
                    None
                } else {
                    Some(parse_size(value).ok_or_else(|| bad("mem", "e.g. 64M, 2G"))?)
                };
                check("mem", v.map(Size), share.mem.map(Size))?;
                self.mem = v;
            }
            "procs" => {
                let v = if unlimited {
                    None
                } else {
                    Some(
                        value
                            .parse::<u32>()
                            .ok()
                            .filter(|n| *n > 0)
                            .ok_or_else(|| bad("procs", "a count, e.g. 64"))?,
                    )
                };
                check("procs", v, share.procs)?;
                self.procs = v;
            }
            _ => return Err(LimitError::Unknown(short(arg))),
        }
        Ok(())
    }

    /// These limits with every unset one filled in from `share`.
    pub fn effective(&self, share: &Share) -> Limits {
        Limits {
            cpu: self.cpu.or(share.cpu()),
            mem: self.mem.or(share.mem),
            time: self.time.or(share.time),
            procs: self.procs.or(share.procs),
        }
    }
}

/// Refuses `want` when it is unlimited or above a limited `share`.
fn check<T: PartialOrd + fmt::Display>(
    key: &'static str,
    want: Option<T>,
    share: Option<T>,
) -> Result<(), LimitError> {
    match (want, share) {
        (_, None) => Ok(()),
        (Some(w), Some(s)) if w <= s => Ok(()),
        (w, Some(s)) => Err(LimitError::OverShare {
            key,
            value: opt(w),
            share: s.to_string(),
        }),
    }
}

/// Parses `512`, `64K`, `512M`, `2G`, `1T` (powers of 1024; a trailing
/// `B` or `iB` is allowed).
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s
        .strip_suffix("iB")
        .or_else(|| s.strip_suffix('B'))
        .unwrap_or(s);
    let (num, shift) = match s.as_bytes().last()? {
        b'K' | b'k' => (&s[..s.len() - 1], 10),
        b'M' | b'm' => (&s[..s.len() - 1], 20),
        b'G' | b'g' => (&s[..s.len() - 1], 30),
        b'T' | b't' => (&s[..s.len() - 1], 40),
        _ => (s, 0),
    };
    let n: u64 = num.parse().ok()?;
    n.checked_mul(1u64 << shift).filter(|n| *n > 0)
}

/// Parses `90`, `90s`, `1500ms`, `10m`, `2h`, `1d`.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().ok()?;
    let d = match unit {
        "ms" => Duration::from_millis(n),
        "" | "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n.checked_mul(60)?),
        "h" => Duration::from_secs(n.checked_mul(3600)?),
        "d" => Duration::from_secs(n.checked_mul(86400)?),
        _ => return None,
    };
    (!d.is_zero()).then_some(d)
}

/// Parses `2`, `0.5`, `1.25` into thousandths of a core.
pub fn parse_cores(s: &str) -> Option<u32> {
    let (whole, frac) = s.split_once('.').unwrap_or((s, ""));
    if frac.len() > 3 || !frac.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let whole: u32 = whole.parse().ok()?;
    let frac: u32 = format!("{frac:0<3}").parse().ok()?;
    whole
        .checked_mul(1000)?
        .checked_add(frac)
        .filter(|n| *n > 0)
}

/// A size, printed in the largest unit that divides it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Size(pub u64);

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (unit, shift) in [("T", 40), ("G", 30), ("M", 20), ("K", 10)] {
            if self.0 >= 1 << shift && self.0.is_multiple_of(1 << shift) {
                return write!(f, "{}{unit}", self.0 >> shift);
            }
        }
        write!(f, "{}", self.0)
    }
}

/// A duration, printed in the largest unit that divides it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Dur(pub Duration);

impl fmt::Display for Dur {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_millis();
        if !ms.is_multiple_of(1000) {
            return write!(f, "{ms}ms");
        }
        let s = ms / 1000;
        for (unit, n) in [("d", 86400), ("h", 3600), ("m", 60)] {
            if s >= n && s.is_multiple_of(n) {
                return write!(f, "{}{unit}", s / n);
            }
        }
        write!(f, "{s}s")
    }
}

/// Thousandths of a core, printed as a decimal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Cores(pub u32);

impl fmt::Display for Cores {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (w, m) = (self.0 / 1000, self.0 % 1000);
        if m == 0 {
            write!(f, "{w}")
        } else {
            let frac = format!("{m:03}");
            write!(f, "{w}.{}", frac.trim_end_matches('0'))
        }
    }
}

fn opt<T: fmt::Display>(v: Option<T>) -> String {
    v.map_or_else(|| "unlimited".to_owned(), |v| v.to_string())
}

/// Input quoted back in an error, cut so a hostile line cannot make a
/// huge error.
pub(crate) fn short(s: &str) -> String {
    match s.char_indices().nth(64) {
        Some((cut, _)) => format!("{}...", &s[..cut]),
        None => s.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn sizes_durations_cores_parse_and_print() {
        assert_eq!(parse_size("512M"), Some(512 << 20));
        assert_eq!(parse_size("2G"), Some(2 << 30));
        assert_eq!(parse_size("64KiB"), Some(64 << 10));
        assert_eq!(parse_size("100"), Some(100));
        assert_eq!(parse_size("0"), None);
        assert_eq!(parse_size("lots"), None);
        assert_eq!(parse_size("99999999999T"), None);
        assert_eq!(Size(512 << 20).to_string(), "512M");
        assert_eq!(Size(1536).to_string(), "1536");
        assert_eq!(parse_duration("90"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("1500ms"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2h"), Some(Duration::from_secs(7200)));
        assert_eq!(parse_duration("1x"), None);
        assert_eq!(parse_duration("s"), None);
        assert_eq!(Dur(Duration::from_secs(3600)).to_string(), "1h");
        assert_eq!(Dur(Duration::from_millis(1500)).to_string(), "1500ms");
        assert_eq!(Dur(Duration::from_secs(90)).to_string(), "90s");
        assert_eq!(parse_cores("0.5"), Some(500));
        assert_eq!(parse_cores("2"), Some(2000));
        assert_eq!(parse_cores("1.2345"), None);
        assert_eq!(Cores(500).to_string(), "0.5");
        assert_eq!(Cores(2000).to_string(), "2");
        assert_eq!(Cores(1250).to_string(), "1.25");
    }

    #[test]
    fn limits_are_checked_against_the_share() {
        let share = Share {
            mem: Some(512 << 20),
            time: Some(Duration::from_secs(60)),
            cores: Some(500),
            procs: Some(32),
            ..Share::default()
        };
        let mut l = Limits::default();
        l.set("mem=64M", &share).unwrap();
        assert_eq!(l.mem, Some(64 << 20));
        let e = l.set("mem=2G", &share).unwrap_err();
        assert_eq!(e.to_string(), "mem=2G exceeds your share mem=512M");
        let e = l.set("cpu=1m", &share).unwrap_err();
        assert_eq!(e.to_string(), "cpu=1m exceeds your share cpu=30s");
        let e = l.set("procs=unlimited", &share).unwrap_err();
        assert_eq!(e.to_string(), "procs=unlimited exceeds your share procs=32");
        let e = l.set("disk=1G", &share).unwrap_err();
        assert_eq!(
            e.to_string(),
            "unknown limit 'disk=1G' (use cpu=, mem=, time= or procs=)"
        );
        let e = l.set("mem=lots", &share).unwrap_err();
        assert_eq!(e.to_string(), "bad value 'lots' for mem (use e.g. 64M, 2G)");
        let eff = l.effective(&share);
        assert_eq!(eff.mem, Some(64 << 20));
        assert_eq!(eff.time, Some(Duration::from_secs(60)));
        assert_eq!(eff.cpu, Some(Duration::from_secs(30)));
        assert_eq!(eff.procs, Some(32));
        let mut free = Limits::default();
        free.set("mem=1T", &Share::unlimited()).unwrap();
        assert_eq!(
            share.text(),
            "cores=0.5 jobs=unlimited mem=512M time=1m procs=32 confine=preferred"
        );
    }
}

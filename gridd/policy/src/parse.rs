//! The grid-policy(7) grammar: text to [`Policy`] and back.
//!
//! ```text
//! policy  = grant *( (";" | newline) grant )     ; empty grants are skipped
//! grant   = PATH ("r" | "rw")
//!         | "cpu" *( ("cores=" N) | ("jobs=" N) | ("mem=" SIZE) | ("time=" DURATION) )
//!         | "store" [ "quota=" SIZE ]
//!         | "letters"
//! SIZE    = N [ "K" | "M" | "G" | "T" ]         ; powers of 1024, any case
//! DURATION= N ( "s" | "m" | "h" | "d" )
//! ```
//!
//! `#` begins a comment that runs to the end of the line. Words are
//! separated by blanks. `Display` writes the canonical form: subtrees in
//! order, then `cpu`, `store`, `letters`, separated by `; ` (by newlines
//! with `{:#}`), sizes and durations in their largest exact unit.

use std::fmt;
use std::num::{NonZeroU32, NonZeroU64};
use std::str::FromStr;

use crate::policy::{Cpu, GrantPath, Mode, PathError, Policy, Store};

/// A policy text that does not parse: the grant, as written, and what is
/// wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("policy: bad grant '{grant}': {problem}")]
pub struct ParseError {
    /// The grant as written, without its comment and surrounding blanks.
    pub grant: String,
    /// What is wrong with it.
    pub problem: Problem,
}

/// What is wrong with one grant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Problem {
    /// A subtree grant whose mode is neither `r` nor `rw`.
    #[error("mode must be r or rw")]
    Mode,
    /// A subtree grant without a mode.
    #[error("missing mode: write PATH r or PATH rw")]
    MissingMode,
    /// A subtree grant with words after the mode.
    #[error("too many words: write PATH r or PATH rw")]
    ExtraWords,
    /// The path is not a valid grant path.
    #[error("{0}")]
    Path(#[from] PathError),
    /// A word of `cpu` or `store` that is not `key=value`.
    #[error("'{word}' is not a limit: {keyword} takes {usage}")]
    NotLimit {
        /// `cpu` or `store`.
        keyword: &'static str,
        /// The word.
        word: String,
        /// The limits it takes.
        usage: &'static str,
    },
    /// A limit that `cpu` or `store` does not have.
    #[error("unknown {keyword} limit '{key}': {keyword} takes {usage}")]
    UnknownLimit {
        /// `cpu` or `store`.
        keyword: &'static str,
        /// The key.
        key: String,
        /// The limits it takes.
        usage: &'static str,
    },
    /// A limit whose value does not parse.
    #[error("{key}={value}: want {want}")]
    BadValue {
        /// The key.
        key: &'static str,
        /// The value as written.
        value: String,
        /// What the value should look like.
        want: &'static str,
    },
    /// The same limit twice in one grant.
    #[error("{0} given twice")]
    RepeatedLimit(&'static str),
    /// The same grant twice in one policy.
    #[error("{0} granted twice")]
    Repeated(String),
    /// `letters` with words after it.
    #[error("letters takes no arguments")]
    LettersArgs,
}

const CPU_USAGE: &str = "cores=N jobs=N mem=SIZE time=DURATION";
const STORE_USAGE: &str = "quota=SIZE";
const COUNT: &str = "a whole number from 1";
const SIZE: &str = "a size such as 512M or 2G";
const DURATION: &str = "a duration such as 90s, 10m or 1h";

impl FromStr for Policy {
    type Err = ParseError;

    fn from_str(text: &str) -> Result<Policy, ParseError> {
        parse(text)
    }
}

/// Parses a policy (grid-policy(7)).
pub fn parse(text: &str) -> Result<Policy, ParseError> {
    let mut policy = Policy::none();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("");
        for grant in line.split(';').map(str::trim).filter(|g| !g.is_empty()) {
            parse_grant(&mut policy, grant).map_err(|problem| ParseError {
                grant: grant.to_owned(),
                problem,
            })?;
        }
    }
    Ok(policy.finish())
}

fn parse_grant(policy: &mut Policy, grant: &str) -> Result<(), Problem> {
    let mut words = grant.split_whitespace();
    let first = words.next().unwrap_or("");
    let rest: Vec<&str> = words.collect();
    match first {
        "cpu" => {
            if policy.cpu().is_some() {
                return Err(Problem::Repeated("cpu".into()));
            }
            policy.set_cpu(parse_cpu(&rest)?);
        }
        "store" => {
            if policy.store().is_some() {
                return Err(Problem::Repeated("store".into()));
            }
            policy.set_store(parse_store(&rest)?);
        }
        "letters" => {
            if !rest.is_empty() {
                return Err(Problem::LettersArgs);
            }
            if policy.letters() {
                return Err(Problem::Repeated("letters".into()));
            }
            policy.set_letters();
        }
        path => {
            let path = GrantPath::new(path)?;
            let mode = match rest.as_slice() {
                [] => return Err(Problem::MissingMode),
                ["r"] => Mode::Read,
                ["rw"] => Mode::ReadWrite,
                [_] => return Err(Problem::Mode),
                _ => return Err(Problem::ExtraWords),
            };
            if policy.has_path(&path) {
                return Err(Problem::Repeated(path.to_string()));
            }
            policy.push_path(path, mode);
        }
    }
    Ok(())
}

fn parse_cpu(words: &[&str]) -> Result<Cpu, Problem> {
    let mut cpu = Cpu::default();
    for word in words {
        let (key, value) = split_limit("cpu", CPU_USAGE, word)?;
        match key {
            "cores" => set_once(&mut cpu.cores, "cores", parse_count("cores", value)?)?,
            "jobs" => set_once(&mut cpu.jobs, "jobs", parse_count("jobs", value)?)?,
            "mem" => set_once(&mut cpu.mem, "mem", parse_size("mem", value)?)?,
            "time" => set_once(&mut cpu.time, "time", parse_duration("time", value)?)?,
            _ => {
                return Err(Problem::UnknownLimit {
                    keyword: "cpu",
                    key: key.to_owned(),
                    usage: CPU_USAGE,
                })
            }
        }
    }
    Ok(cpu)
}

fn parse_store(words: &[&str]) -> Result<Store, Problem> {
    let mut store = Store::default();
    for word in words {
        let (key, value) = split_limit("store", STORE_USAGE, word)?;
        match key {
            "quota" => set_once(&mut store.quota, "quota", parse_size("quota", value)?)?,
            _ => {
                return Err(Problem::UnknownLimit {
                    keyword: "store",
                    key: key.to_owned(),
                    usage: STORE_USAGE,
                })
            }
        }
    }
    Ok(store)
}

fn split_limit<'a>(
    keyword: &'static str,
    usage: &'static str,
    word: &'a str,
) -> Result<(&'a str, &'a str), Problem> {
    word.split_once('=').ok_or_else(|| Problem::NotLimit {
        keyword,
        word: word.to_owned(),
        usage,
    })
}

fn set_once<T>(slot: &mut Option<T>, key: &'static str, value: T) -> Result<(), Problem> {
    if slot.is_some() {
        return Err(Problem::RepeatedLimit(key));
    }
    *slot = Some(value);
    Ok(())
}

fn bad(key: &'static str, value: &str, want: &'static str) -> Problem {
    Problem::BadValue {
        key,
        value: value.to_owned(),
        want,
    }
}

/// Digits only: no sign, no blanks, no `_`.
fn digits(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn parse_count(key: &'static str, value: &str) -> Result<NonZeroU32, Problem> {
    digits(value)
        .and_then(|n| u32::try_from(n).ok())
        .and_then(NonZeroU32::new)
        .ok_or_else(|| bad(key, value, COUNT))
}

const SIZE_UNITS: [(char, u64); 4] = [
    ('T', 1 << 40),
    ('G', 1 << 30),
    ('M', 1 << 20),
    ('K', 1 << 10),
];
const DURATION_UNITS: [(char, u64); 4] = [('d', 86_400), ('h', 3_600), ('m', 60), ('s', 1)];

/// `512M`, `2G`, `4096`: bytes, with an optional power-of-1024 suffix.
pub(crate) fn parse_size(key: &'static str, value: &str) -> Result<NonZeroU64, Problem> {
    let upper = value.to_ascii_uppercase();
    let (num, scale) = match upper.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let scale = SIZE_UNITS
                .iter()
                .find(|(u, _)| *u == c)
                .map(|(_, s)| *s)
                .ok_or_else(|| bad(key, value, SIZE))?;
            (&upper[..i], scale)
        }
        _ => (upper.as_str(), 1),
    };
    digits(num)
        .and_then(|n| n.checked_mul(scale))
        .and_then(NonZeroU64::new)
        .ok_or_else(|| bad(key, value, SIZE))
}

/// `90s`, `10m`, `1h`, `2d`: seconds; the unit is required.
pub(crate) fn parse_duration(key: &'static str, value: &str) -> Result<NonZeroU64, Problem> {
    let Some((i, unit)) = value.char_indices().last() else {
        return Err(bad(key, value, DURATION));
    };
    let scale = DURATION_UNITS
        .iter()
        .find(|(u, _)| *u == unit)
        .map(|(_, s)| *s)
        .ok_or_else(|| bad(key, value, DURATION))?;
    digits(&value[..i])
        .and_then(|n| n.checked_mul(scale))
        .and_then(NonZeroU64::new)
        .ok_or_else(|| bad(key, value, DURATION))
}

/// A size in its largest exact unit: `512M`, `2G`, `1000`.
pub(crate) fn size_text(bytes: u64) -> String {
    unit_text(bytes, &SIZE_UNITS, "")
}

/// A duration in its largest exact unit: `90s`, `10m`, `1h`.
pub(crate) fn duration_text(secs: u64) -> String {
    unit_text(secs, &DURATION_UNITS, "s")
}

fn unit_text(n: u64, units: &[(char, u64)], bare: &str) -> String {
    for (unit, scale) in units {
        if n.is_multiple_of(*scale) && n >= *scale {
            return format!("{}{unit}", n / scale);
        }
    }
    format!("{n}{bare}")
}

impl fmt::Display for Cpu {
    /// `cpu` and its limits in the order cores, jobs, mem, time.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("cpu")?;
        if let Some(n) = self.cores {
            write!(f, " cores={n}")?;
        }
        if let Some(n) = self.jobs {
            write!(f, " jobs={n}")?;
        }
        if let Some(n) = self.mem {
            write!(f, " mem={}", size_text(n.get()))?;
        }
        if let Some(n) = self.time {
            write!(f, " time={}", duration_text(n.get()))?;
        }
        Ok(())
    }
}

impl fmt::Display for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("store")?;
        if let Some(n) = self.quota {
            write!(f, " quota={}", size_text(n.get()))?;
        }
        Ok(())
    }
}

impl fmt::Display for Policy {
    /// The canonical form, one line with grants separated by `; `, or with
    /// `{:#}` one grant per line (each line ending in a newline). The
    /// policy that grants nothing is the empty string.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut grants: Vec<String> = self
            .paths()
            .map(|(p, m)| format!("{p} {}", m.as_str()))
            .collect();
        grants.extend(self.cpu().map(Cpu::to_string));
        grants.extend(self.store().map(Store::to_string));
        if self.letters() {
            grants.push("letters".into());
        }
        if f.alternate() {
            grants.iter().try_for_each(|g| writeln!(f, "{g}"))
        } else {
            f.write_str(&grants.join("; "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn err(text: &str) -> String {
        match parse(text) {
            Ok(p) => panic!("{text:?} parsed as {p:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn parses_every_grant() {
        let text = "# what alice gets\n\
                    files/pub r; sensors/weather r   # read only\n\
                    files/drop rw\n\
                    \n\
                    cpu cores=2 jobs=4 mem=512M time=10m;;\n\
                    store quota=2G\n\
                    letters\n";
        let p = parse(text).expect("parses");
        assert_eq!(
            p.to_string(),
            "files/drop rw; files/pub r; sensors/weather r; \
             cpu cores=2 jobs=4 mem=512M time=10m; store quota=2G; letters"
        );
        let cpu = p.cpu().expect("cpu");
        assert_eq!(cpu.mem.map(NonZeroU64::get), Some(512 << 20));
        assert_eq!(cpu.time_limit(), Some(std::time::Duration::from_secs(600)));
        assert_eq!(
            p.store().and_then(|s| s.quota).map(NonZeroU64::get),
            Some(2 << 30)
        );
        assert!(p.letters());
        assert_eq!(format!("{p:#}").lines().count(), 6);
        assert_eq!(parse(&format!("{p:#}")), Ok(p));
    }

    #[test]
    fn empty_texts_grant_nothing() {
        for text in ["", "  ", "# nothing\n", ";;\n;", "\n\n"] {
            assert_eq!(parse(text), Ok(Policy::none()), "{text:?}");
        }
        assert_eq!(Policy::none().to_string(), "");
        assert_eq!(parse("cpu").expect("cpu").to_string(), "cpu");
        assert_eq!(parse("store").expect("store").to_string(), "store");
    }

    #[test]
    fn units_are_canonical() {
        let p = parse("cpu mem=1024k time=3600s; store quota=1536m").expect("parses");
        assert_eq!(p.to_string(), "cpu mem=1M time=1h; store quota=1536M");
        let p = parse("cpu mem=1000 time=90s").expect("parses");
        assert_eq!(p.to_string(), "cpu mem=1000 time=90s");
        let p = parse("cpu time=2d").expect("parses");
        assert_eq!(p.to_string(), "cpu time=2d");
    }

    #[test]
    fn errors_quote_the_grant() {
        let table = [
            ("files/pub x", "policy: bad grant 'files/pub x': mode must be r or rw"),
            ("files/pub", "policy: bad grant 'files/pub': missing mode: write PATH r or PATH rw"),
            ("files/pub r w", "policy: bad grant 'files/pub r w': too many words: write PATH r or PATH rw"),
            ("/files r", "policy: bad grant '/files r': path must be relative, as files/pub"),
            ("files/../ctl r", "policy: bad grant 'files/../ctl r': path may not contain '..'"),
            ("files//pub r", "policy: bad grant 'files//pub r': path has an empty element"),
            ("files/ r", "policy: bad grant 'files/ r': path has an empty element"),
            ("a;b r", "policy: bad grant 'a': missing mode: write PATH r or PATH rw"),
            ("cpu rw", "policy: bad grant 'cpu rw': 'rw' is not a limit: cpu takes cores=N jobs=N mem=SIZE time=DURATION"),
            ("cpu cpus=2", "policy: bad grant 'cpu cpus=2': unknown cpu limit 'cpus': cpu takes cores=N jobs=N mem=SIZE time=DURATION"),
            ("cpu cores=0", "policy: bad grant 'cpu cores=0': cores=0: want a whole number from 1"),
            ("cpu cores=-1", "policy: bad grant 'cpu cores=-1': cores=-1: want a whole number from 1"),
            ("cpu jobs=99999999999", "policy: bad grant 'cpu jobs=99999999999': jobs=99999999999: want a whole number from 1"),
            ("cpu mem=2X", "policy: bad grant 'cpu mem=2X': mem=2X: want a size such as 512M or 2G"),
            ("cpu mem=G", "policy: bad grant 'cpu mem=G': mem=G: want a size such as 512M or 2G"),
            ("cpu mem=99999999999T", "policy: bad grant 'cpu mem=99999999999T': mem=99999999999T: want a size such as 512M or 2G"),
            ("cpu time=90", "policy: bad grant 'cpu time=90': time=90: want a duration such as 90s, 10m or 1h"),
            ("cpu time=", "policy: bad grant 'cpu time=': time=: want a duration such as 90s, 10m or 1h"),
            ("cpu time=1h time=2h", "policy: bad grant 'cpu time=1h time=2h': time given twice"),
            ("cpu; cpu jobs=1", "policy: bad grant 'cpu jobs=1': cpu granted twice"),
            ("store r", "policy: bad grant 'store r': 'r' is not a limit: store takes quota=SIZE"),
            ("store size=1G", "policy: bad grant 'store size=1G': unknown store limit 'size': store takes quota=SIZE"),
            ("letters please", "policy: bad grant 'letters please': letters takes no arguments"),
            ("letters\nletters", "policy: bad grant 'letters': letters granted twice"),
            ("files r\nfiles rw", "policy: bad grant 'files rw': files granted twice"),
        ];
        for (text, want) in table {
            assert_eq!(err(text), want, "{text:?}");
        }
    }

    fn element() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("files".to_owned()),
            Just("pub".to_owned()),
            Just("cpu".to_owned()),
            Just("store".to_owned()),
            "[a-z][a-z0-9._-]{0,5}",
            "[é✓a-z]{1,3}",
        ]
    }

    fn grant_path() -> impl Strategy<Value = GrantPath> {
        prop::collection::vec(element(), 1..4)
            .prop_filter_map("not a path", |els| GrantPath::new(&els.join("/")).ok())
    }

    fn mode() -> impl Strategy<Value = Mode> {
        prop_oneof![Just(Mode::Read), Just(Mode::ReadWrite)]
    }

    fn nz32() -> impl Strategy<Value = Option<NonZeroU32>> {
        prop::option::of(any::<u32>().prop_filter_map("zero", NonZeroU32::new))
    }

    fn nz64() -> impl Strategy<Value = Option<NonZeroU64>> {
        prop::option::of(
            prop_oneof![
                any::<u64>(),
                (1u64..5000).prop_map(|n| n << 20),
                (1u64..100).prop_map(|n| n * 3600),
            ]
            .prop_filter_map("zero", NonZeroU64::new),
        )
    }

    pub(crate) fn policy() -> impl Strategy<Value = Policy> {
        let cpu = (nz32(), nz32(), nz64(), nz64()).prop_map(|(cores, jobs, mem, time)| Cpu {
            cores,
            jobs,
            mem,
            time,
        });
        let store = nz64().prop_map(|quota| Store { quota });
        (
            prop::collection::vec((grant_path(), mode()), 0..5),
            prop::option::of(cpu),
            prop::option::of(store),
            any::<bool>(),
        )
            .prop_map(|(paths, cpu, store, letters)| {
                let mut p = Policy::none().with_letters(letters);
                for (path, mode) in paths {
                    p = p.with_path(path, mode);
                }
                if let Some(cpu) = cpu {
                    p = p.with_cpu(cpu);
                }
                if let Some(store) = store {
                    p = p.with_store(store);
                }
                p
            })
    }

    proptest! {
        #[test]
        fn display_parses_back(p in policy()) {
            prop_assert_eq!(parse(&p.to_string()), Ok(p.clone()));
            prop_assert_eq!(parse(&format!("{p:#}")), Ok(p));
        }

        #[test]
        fn intersection_is_within_both(a in policy(), b in policy(), path in grant_path()) {
            let i = a.intersect(&b);
            prop_assert_eq!(&i, &b.intersect(&a));
            prop_assert_eq!(&a.intersect(&a), &a);
            prop_assert_eq!(&a.union(&b), &b.union(&a));
            prop_assert_eq!(&a.union(&a), &a);
            // Inside a grant, access is the lesser of the two sides.
            let (x, y) = (a.access(path.as_str()), b.access(path.as_str()));
            let inside = |acc| acc >= crate::Access::Read;
            if inside(x) && inside(y) {
                prop_assert_eq!(i.access(path.as_str()), x.min(y));
            } else {
                prop_assert!(!inside(i.access(path.as_str())));
            }
            prop_assert!(i.access(path.as_str()) <= a.union(&b).access(path.as_str()));
            prop_assert_eq!(parse(&i.to_string()), Ok(i));
        }

        #[test]
        fn parser_never_panics(text in "[a-z/.;#=0-9 \n\t]{0,40}") {
            let _ = parse(&text);
        }
    }
}

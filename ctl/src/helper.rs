//! `mount.grid`: the helper mount(8) runs for file systems of type
//! `grid`, from `mount -t grid SPEC DIR` or an fstab line such as
//!
//! ```text
//! unix!/var/lib/grid/gridd.sock /n/grid grid defaults,_netdev 0 0
//! ```
//!
//! mount(8) calls `mount.grid SPEC DIR [-sfnv] [-N NS] [-o OPTIONS] [-t
//! TYPE]`. SPEC is gridd's dial string. The helper mounts in the
//! background (as `grid mount -b -a SPEC DIR`) and exits 0 once the mount
//! is live, or prints an error and exits 1.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use crate::mount::{self, MountOptions, MountSpec};

/// What mount(8) asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HelperArgs {
    /// The dial string (fstab's first field).
    pub spec: String,
    /// The mount point.
    pub dir: PathBuf,
    /// `-o`, all of them joined with commas.
    pub options: String,
    /// `-f`: do everything but mount.
    pub fake: bool,
    /// `-v`: say what is being done.
    pub verbose: bool,
}

/// The name mount(8) runs the helper by.
pub const PROGRAM: &str = "mount.grid";

const USAGE: &str = "usage: mount.grid SPEC DIR [-sfnv] [-o OPTIONS]";

/// Parses mount(8)'s helper arguments (without the program name). `-s`
/// (sloppy) and `-n` (no mtab) change nothing here; `-t` is ignored; `-N`
/// (another mount namespace) is refused.
pub fn parse(args: &[OsString]) -> Result<HelperArgs, String> {
    let mut positional = Vec::new();
    let mut options: Vec<String> = Vec::new();
    let mut fake = false;
    let mut verbose = false;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let arg = arg
            .to_str()
            .ok_or_else(|| format!("argument {arg:?} is not UTF-8"))?;
        let Some(flags) = arg.strip_prefix('-').filter(|f| !f.is_empty()) else {
            positional.push(arg.to_owned());
            continue;
        };
        for (i, c) in flags.char_indices() {
            match c {
                's' | 'n' => {}
                'f' => fake = true,
                'v' => verbose = true,
                'o' | 't' | 'N' => {
                    let attached = &flags[i + c.len_utf8()..];
                    let value = if attached.is_empty() {
                        it.next()
                            .and_then(|v| v.to_str())
                            .ok_or_else(|| format!("-{c} needs a value"))?
                    } else {
                        attached
                    };
                    match c {
                        'o' => options.push(value.to_owned()),
                        'N' => return Err("-N (another mount namespace) is not supported".into()),
                        _ => {}
                    }
                    break;
                }
                'h' => return Err(USAGE.into()),
                c => return Err(format!("unknown flag -{c}")),
            }
        }
    }
    let [spec, dir] = <[String; 2]>::try_from(positional).map_err(|_| USAGE.to_owned())?;
    Ok(HelperArgs {
        spec,
        dir: PathBuf::from(dir),
        options: options.join(","),
        fake,
        verbose,
    })
}

/// Runs `mount.grid` with these arguments (the first is the program name).
pub fn main(args: impl IntoIterator<Item = OsString>) -> ExitCode {
    let args: Vec<OsString> = args.into_iter().skip(1).collect();
    let fail = |msg: &str| {
        eprintln!("mount.grid: {msg}");
        ExitCode::from(1)
    };
    let a = match parse(&args) {
        Ok(a) => a,
        Err(e) => return fail(&e),
    };
    let options = match MountOptions::parse(&a.options) {
        Ok(o) => o,
        Err(e) => return fail(&e),
    };
    if a.verbose && std::env::var_os(mount::CHILD_ENV).is_none() {
        eprintln!(
            "mount.grid: mounting {} on {} (options '{}')",
            a.spec,
            a.dir.display(),
            a.options
        );
    }
    if a.fake {
        return ExitCode::SUCCESS;
    }
    let spec = MountSpec {
        addr: a.spec,
        mountpoint: a.dir,
        options,
        background: true,
    };
    mount::run(&spec, "mount.grid")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn args(s: &[&str]) -> Vec<OsString> {
        s.iter().map(OsString::from).collect()
    }

    #[test]
    fn mount8_conventions() {
        let a = parse(&args(&["unix!/s", "/n/grid", "-o", "rw,_netdev"])).unwrap();
        assert_eq!(a.spec, "unix!/s");
        assert_eq!(a.dir, PathBuf::from("/n/grid"));
        assert_eq!(a.options, "rw,_netdev");
        assert!(!a.fake && !a.verbose);

        let a = parse(&args(&["-sfnv", "-oro", "tcp!h!564", "/mnt", "-t", "grid"])).unwrap();
        assert!(a.fake && a.verbose);
        assert_eq!(a.options, "ro");
        assert_eq!(a.spec, "tcp!h!564");

        let a = parse(&args(&["s", "d", "-o", "ro", "-o", "nosuid"])).unwrap();
        assert_eq!(a.options, "ro,nosuid");
    }

    #[test]
    fn bad_helper_arguments() {
        assert_eq!(parse(&args(&["only-one"])).unwrap_err(), USAGE);
        assert_eq!(parse(&args(&["a", "b", "c"])).unwrap_err(), USAGE);
        assert!(parse(&args(&["a", "b", "-o"])).is_err());
        assert!(parse(&args(&["a", "b", "-x"])).is_err());
        assert!(parse(&args(&["a", "b", "-N", "/proc/1/ns/mnt"])).is_err());
    }
}

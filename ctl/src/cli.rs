//! `grid`'s flags and subcommands, `grid help`, and exit codes: 0 when
//! everything worked, 1 when an operation failed, 2 for a usage error.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};
use ninep::Dialect;

use crate::commands::{self, Report};
use crate::mount::{self, MountOptions, MountSpec};
use crate::ns::{Failure, Ns};
use crate::run::{self, RunSpec};

/// Read, write and mount a grid's namespace.
///
/// ADDR is a dial string: unix!PATH, tcp!HOST!PORT, HOST:PORT or /PATH.
/// Without -a, grid dials $GRID_ADDR, else the socket of the user's own
/// gridd. PATHs are names in the namespace: /status, /files/t/notes.
#[derive(Parser, Debug)]
#[command(name = "grid", version, disable_help_subcommand = true)]
pub struct Cli {
    /// The gridd to talk to [default: $GRID_ADDR, else unix!STATE/gridd.sock]
    #[arg(short = 'a', long = "addr", value_name = "ADDR", global = true)]
    pub addr: Option<String>,
    /// What to do.
    #[command(subcommand)]
    pub cmd: Cmd,
}

/// The subcommands.
#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// List each directory's entries, one per line, sorted; name each file
    #[command(override_usage = "grid [-a ADDR] ls [-l] PATH...")]
    Ls {
        /// Long listing: mode, owner, group, length, mtime, name
        #[arg(short = 'l')]
        long: bool,
        /// Namespace paths
        #[arg(value_name = "PATH", required = true)]
        paths: Vec<String>,
    },
    /// Copy files to standard output
    #[command(override_usage = "grid [-a ADDR] cat PATH...")]
    Cat {
        /// Namespace paths
        #[arg(value_name = "PATH", required = true)]
        paths: Vec<String>,
    },
    /// Copy standard input to a file (created, or truncated, as by >); a ctl file gets whole lines
    #[command(override_usage = "grid [-a ADDR] write PATH")]
    Write {
        /// Namespace path
        #[arg(value_name = "PATH")]
        path: String,
    },
    /// Print a file's metadata as `key value` lines
    #[command(override_usage = "grid [-a ADDR] stat PATH")]
    Stat {
        /// Namespace path
        #[arg(value_name = "PATH")]
        path: String,
    },
    /// Make a directory
    #[command(override_usage = "grid [-a ADDR] mkdir PATH")]
    Mkdir {
        /// Namespace path
        #[arg(value_name = "PATH")]
        path: String,
    },
    /// Remove a file or an empty directory
    #[command(override_usage = "grid [-a ADDR] rm PATH")]
    Rm {
        /// Namespace path
        #[arg(value_name = "PATH")]
        path: String,
    },
    /// Print /status: name, key, addresses, uptime, version
    #[command(override_usage = "grid [-a ADDR] status")]
    Status,
    /// List the grids seen on the local network (/net/lan): name, key, the peer each is, addresses
    #[command(override_usage = "grid [-a ADDR] lan")]
    Lan,
    /// Add a peer grid (by key, with quic!HOST!PORT addresses), remove one, list them, or pair by invitation
    #[command(
        override_usage = "grid [-a ADDR] peer add NAME KEY [ADDR...] | rm NAME | ls | invite [--name NAME] [--offer POLICY] [--expires DURATION] | join [--name NAME] [--offer POLICY] TOKEN"
    )]
    Peer {
        /// add, rm, ls, invite or join
        #[arg(value_name = "add|rm|ls|invite|join")]
        op: String,
        /// NAME KEY [ADDR...] for add, NAME for rm, TOKEN for join
        #[arg(value_name = "ARG")]
        args: Vec<String>,
        /// invite: what this grid will call the joiner; join: what to call the inviter
        #[arg(long = "name", value_name = "NAME")]
        name: Option<String>,
        /// invite, join: what this grid grants the other (grid-policy(7), `;`-separated)
        #[arg(long = "offer", value_name = "POLICY")]
        offer: Option<String>,
        /// invite: how long the token lasts (90s, 10m, 1h, 2d; default 1h)
        #[arg(long = "expires", value_name = "DURATION")]
        expires: Option<String>,
    },
    /// Run a command as a job of /cpu, streaming its input and output; exit with its code
    #[command(
        override_usage = "grid [-a ADDR] run [--on PEER|any] [-v] [--limit KEY=VALUE,...] -- CMD [ARG...]"
    )]
    Run {
        /// Run on peer PEER (its /n/PEER/cpu), or on the grid with the most free granted cores
        #[arg(long = "on", value_name = "PEER|any", value_parser = run::Target::parse)]
        on: Option<run::Target>,
        /// Say on standard error which grid runs the job
        #[arg(short = 'v', long = "verbose")]
        verbose: bool,
        /// Limits: cpu=TIME, mem=SIZE, time=TIME, procs=N (comma-separated, or the flag repeated)
        #[arg(long = "limit", value_name = "KEY=VALUE,...", value_delimiter = ',')]
        limit: Vec<String>,
        /// The command and its arguments
        #[arg(
            value_name = "CMD",
            required = true,
            trailing_var_arg = true,
            allow_hyphen_values = true
        )]
        argv: Vec<String>,
    },
    /// Mount the namespace on a directory with FUSE (in the foreground unless -b)
    #[command(override_usage = "grid mount [-a ADDR] [-o OPTIONS] [-b] MOUNTPOINT")]
    Mount {
        /// Mount options, comma-separated (ro, allow_other, nosuid, ...)
        #[arg(short = 'o', value_name = "OPTIONS")]
        options: Option<String>,
        /// Return once the mount works, leaving a process to serve it
        #[arg(short = 'b', long = "daemon")]
        daemon: bool,
        /// Where to mount
        #[arg(value_name = "MOUNTPOINT")]
        mountpoint: PathBuf,
    },
    /// Unmount a grid mount
    #[command(override_usage = "grid umount MOUNTPOINT")]
    Umount {
        /// The mount point
        #[arg(value_name = "MOUNTPOINT")]
        mountpoint: PathBuf,
    },
    /// Print the usage of every command
    #[command(override_usage = "grid help")]
    Help,
}

/// Runs `grid` with these arguments (the first is the program name).
pub fn main(args: impl IntoIterator<Item = OsString>) -> ExitCode {
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            // --help and --version print on stdout and succeed; the rest are
            // usage errors.
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    let addr = cli.addr.unwrap_or_else(gridd::paths::default_addr);
    match cli.cmd {
        Cmd::Help => {
            print!("{}", usage());
            ExitCode::SUCCESS
        }
        Cmd::Mount {
            options,
            daemon,
            mountpoint,
        } => {
            let options = match MountOptions::parse(options.as_deref().unwrap_or("")) {
                Ok(o) => o,
                Err(e) => {
                    eprintln!("grid: {e}");
                    return ExitCode::from(2);
                }
            };
            let spec = MountSpec {
                addr,
                mountpoint,
                options,
                background: daemon,
            };
            mount::run(&spec, "grid")
        }
        Cmd::Run {
            on,
            verbose,
            limit,
            argv,
        } => run_job(
            &addr,
            RunSpec {
                on: on.unwrap_or(run::Target::Here),
                limits: limit,
                argv,
                verbose,
            },
        ),
        Cmd::Umount { mountpoint } => match mount::unmount(&mountpoint, false) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("grid: {e}");
                ExitCode::from(1)
            }
        },
        cmd => one_shot(&addr, cmd),
    }
}

/// Dials, runs one of the 9P subcommands, and maps its report to an exit
/// code.
fn one_shot(addr: &str, cmd: Cmd) -> ExitCode {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build();
    let runtime = match runtime {
        Ok(r) => r,
        Err(e) => {
            eprintln!("grid: cannot start: {e}");
            return ExitCode::from(1);
        }
    };
    let umask = current_umask();
    let report = runtime.block_on(async {
        let ns = match Ns::connect(addr, Dialect::U).await {
            Ok(ns) => ns,
            Err(f) => {
                let mut r = Report::default();
                r.add(f);
                return r;
            }
        };
        match cmd {
            Cmd::Ls { long, paths } => commands::ls(&ns, long, &paths).await,
            Cmd::Cat { paths } => commands::cat(&ns, &paths).await,
            Cmd::Write { path } => commands::write(&ns, &path, umask).await,
            Cmd::Stat { path } => commands::stat(&ns, &path).await,
            Cmd::Mkdir { path } => commands::mkdir(&ns, &path, umask).await,
            Cmd::Rm { path } => commands::rm(&ns, &path).await,
            Cmd::Status => commands::status(&ns).await,
            Cmd::Lan => crate::peer::lan(&ns).await,
            Cmd::Peer {
                op,
                args,
                name,
                offer,
                expires,
            } => match peer_op(
                &op,
                args,
                PairFlags {
                    name,
                    offer,
                    expires,
                },
            ) {
                Ok(op) => crate::peer::peer(&ns, &op).await,
                Err(f) => {
                    let mut r = Report::default();
                    r.add(f);
                    r
                }
            },
            Cmd::Mount { .. } | Cmd::Umount { .. } | Cmd::Help | Cmd::Run { .. } => {
                Report::default()
            }
        }
    });
    // The stdin reader of `write` may still sit in read(2); do not wait.
    runtime.shutdown_background();
    if report.failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// The flags of `grid peer invite` and `grid peer join`.
#[derive(Debug, Default)]
struct PairFlags {
    name: Option<String>,
    offer: Option<String>,
    expires: Option<String>,
}

/// The [`PeerOp`](crate::peer::PeerOp) that `grid peer OP ARGS` names.
fn peer_op(
    op: &str,
    mut args: Vec<String>,
    flags: PairFlags,
) -> Result<crate::peer::PeerOp, Failure> {
    use crate::peer::PeerOp;
    let usage = |m: &str| Failure::at("peer", m);
    let pairing = matches!(op, "invite" | "join");
    if !pairing && (flags.name.is_some() || flags.offer.is_some() || flags.expires.is_some()) {
        return Err(usage(
            "--name, --offer and --expires go with invite or join",
        ));
    }
    match (op, args.len()) {
        ("invite", 0) => Ok(PeerOp::Invite {
            name: flags.name,
            offer: flags.offer,
            expires: flags.expires,
        }),
        ("invite", _) => Err(usage(
            "usage: grid peer invite [--name NAME] [--offer POLICY] [--expires DURATION]",
        )),
        ("join", 1) if flags.expires.is_none() => Ok(PeerOp::Join {
            name: flags.name,
            offer: flags.offer,
            token: args.remove(0),
        }),
        ("join", _) => Err(usage(
            "usage: grid peer join [--name NAME] [--offer POLICY] TOKEN",
        )),
        ("add", n) if n >= 2 => {
            let addrs = args.split_off(2);
            let key = args.pop().unwrap_or_default();
            let name = args.pop().unwrap_or_default();
            Ok(PeerOp::Add { name, key, addrs })
        }
        ("add", _) => Err(usage("usage: grid peer add NAME KEY [ADDR...]")),
        ("rm", 1) => Ok(PeerOp::Rm {
            name: args.remove(0),
        }),
        ("rm", _) => Err(usage("usage: grid peer rm NAME")),
        ("ls", 0) => Ok(PeerOp::Ls),
        ("ls", _) => Err(usage("usage: grid peer ls")),
        (other, _) => Err(usage(&format!(
            "expected add, rm, ls, invite or join, not '{other}'"
        ))),
    }
}

/// `grid run`: exits with the job's code (see [`crate::run`]); 1 when
/// the job could not be made or followed.
fn run_job(addr: &str, spec: RunSpec) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("grid: cannot start: {e}");
            return ExitCode::from(1);
        }
    };
    let code = runtime.block_on(async {
        let ns = match Ns::connect(addr, Dialect::U).await {
            Ok(ns) => ns,
            Err(f) => {
                eprintln!("grid: {f}");
                return 1;
            }
        };
        match run::run(&ns, &spec).await {
            Ok(code) => code,
            Err(f) => {
                eprintln!("grid: {f}");
                1
            }
        }
    });
    // The stdin reader may still sit in read(2); do not wait.
    runtime.shutdown_background();
    ExitCode::from(code)
}

/// `grid help`: one usage line per subcommand, then the address rules.
pub fn usage() -> String {
    let cmd = Cli::command();
    let mut out = String::new();
    for sub in cmd.get_subcommands() {
        let line = sub.clone().render_usage().to_string();
        let line = line.strip_prefix("Usage: ").unwrap_or(&line);
        out.push_str(&format!("{line}\n    {}\n", about(sub)));
    }
    out.push_str(
        "\nADDR (-a, before or after the command) is unix!PATH, tcp!HOST!PORT, HOST:PORT or /PATH;\n\
         the default is $GRID_ADDR, else the socket of your own gridd.\n",
    );
    out
}

fn about(cmd: &clap::Command) -> String {
    cmd.get_about().map(|a| a.to_string()).unwrap_or_default()
}

/// The process umask (for create and mkdir modes).
fn current_umask() -> u32 {
    // SAFETY: umask(2) cannot fail; the mask is put back at once, before
    // any other thread exists that could create files.
    unsafe {
        let mask = libc::umask(0o022);
        libc::umask(mask);
        mask as u32
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("grid").chain(args.iter().copied()))
    }

    #[test]
    fn addr_goes_before_or_after_the_command() {
        let a = parse(&["-a", "unix!/s", "ls", "/"]).unwrap();
        assert_eq!(a.addr.as_deref(), Some("unix!/s"));
        let b = parse(&["mount", "-a", "tcp!h!1", "/n/grid"]).unwrap();
        assert_eq!(b.addr.as_deref(), Some("tcp!h!1"));
        assert!(matches!(b.cmd, Cmd::Mount { daemon: false, .. }));
        let c = parse(&["mount", "-b", "-o", "ro", "/n/grid"]).unwrap();
        assert!(matches!(c.cmd, Cmd::Mount { daemon: true, .. }));
    }

    #[test]
    fn usage_errors() {
        for bad in [
            &["frob"][..],
            &["cat"],
            &["ls"],
            &["write"],
            &["write", "a", "b"],
        ] {
            let e = parse(bad).unwrap_err();
            assert!(e.use_stderr(), "{bad:?}");
        }
    }

    #[test]
    fn peer_invite_and_join_take_their_flags() {
        use crate::peer::PeerOp;
        let op = |args: &[&str]| match parse(args).unwrap().cmd {
            Cmd::Peer {
                op,
                args,
                name,
                offer,
                expires,
            } => peer_op(
                &op,
                args,
                PairFlags {
                    name,
                    offer,
                    expires,
                },
            ),
            other => Err(Failure::at("test", format!("not peer: {other:?}"))),
        };
        let invite = op(&["peer", "invite", "--name", "bob", "--offer", "files/pub r"]);
        assert_eq!(
            invite.unwrap(),
            PeerOp::Invite {
                name: Some("bob".into()),
                offer: Some("files/pub r".into()),
                expires: None,
            }
        );
        let join = op(&["peer", "join", "grid1:abc", "--name", "alice"]);
        assert_eq!(
            join.unwrap(),
            PeerOp::Join {
                name: Some("alice".into()),
                offer: None,
                token: "grid1:abc".into(),
            }
        );
        assert!(op(&["peer", "join"]).is_err());
        assert!(op(&["peer", "join", "a", "b"]).is_err());
        assert!(op(&["peer", "join", "--expires", "1h", "grid1:x"]).is_err());
        assert!(op(&["peer", "invite", "extra"]).is_err());
        assert!(op(&["peer", "rm", "bob", "--name", "x"]).is_err());
    }

    #[test]
    fn help_lists_every_command() {
        let text = usage();
        for cmd in [
            "] ls [-l] PATH...",
            "] cat PATH...",
            "] write PATH",
            "] stat PATH",
            "] mkdir PATH",
            "] rm PATH",
            "] status",
            "] lan",
            "] run [--on PEER|any] [-v] [--limit KEY=VALUE,...] -- CMD [ARG...]",
            "grid mount [-a ADDR]",
            "grid umount MOUNTPOINT",
            "grid help",
        ] {
            assert!(text.contains(cmd), "{cmd} missing from:\n{text}");
        }
    }
}

//! gridd(8): flags, then the daemon.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use gridd::config::Export;
use gridd::daemon::{self, Options};
use ninep::Addr;

/// The grid agent: serves this machine's namespace over 9P.
#[derive(Parser, Debug)]
#[command(name = "gridd", version, about, long_about = None)]
struct Flags {
    /// State directory [default: /var/lib/grid for root, else $XDG_DATA_HOME/grid]
    #[arg(long, value_name = "DIR")]
    state: Option<PathBuf>,
    /// Configuration file [default: STATE/grid.toml]
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Also serve on this dial string (tcp!HOST!PORT, unix!PATH, quic!HOST!PORT for peers); repeatable; replaces grid.toml's listen
    #[arg(long, value_name = "ADDR", value_parser = parse_addr)]
    listen: Vec<Addr>,
    /// Serve a directory as /files/NAME (PATH:ro for read-only); repeatable
    #[arg(long, value_name = "NAME=PATH[:ro]", value_parser = parse_export)]
    export: Vec<(String, Export)>,
    /// Largest 9P message size offered
    #[arg(long, value_name = "BYTES", value_parser = parse_msize)]
    msize: Option<u32>,
    /// Print every 9P message on stderr
    #[arg(short = 'D', long = "trace")]
    trace: bool,
    /// Print a yggdrasil config whose node key is this grid's key (for /etc/yggdrasil/yggdrasil.conf), and exit
    #[arg(long = "yggdrasil-config")]
    yggdrasil_config: bool,
}

fn parse_addr(s: &str) -> Result<Addr, String> {
    Addr::parse(s).map_err(|e| e.to_string())
}

fn parse_msize(s: &str) -> Result<u32, String> {
    let n: u32 = s
        .parse()
        .map_err(|_| format!("'{s}' is not a number of bytes"))?;
    let max = gridd::config::MAX_MSIZE;
    if !(gridd::config::MIN_MSIZE..=max).contains(&n) {
        return Err(format!(
            "must be from {} to {max}",
            gridd::config::MIN_MSIZE
        ));
    }
    Ok(n)
}

fn parse_export(s: &str) -> Result<(String, Export), String> {
    let (name, spec) = s
        .split_once('=')
        .ok_or("expected NAME=PATH or NAME=PATH:ro")?;
    gridd::config::check_name(name)?;
    Ok((name.to_owned(), Export::parse(spec)?))
}

fn main() -> ExitCode {
    let flags = Flags::parse();
    if flags.yggdrasil_config {
        let state = flags.state.unwrap_or_else(gridd::paths::default_state_dir);
        return match gridd::overlay::yggdrasil_config_in(&state) {
            Ok(text) => {
                print!("{text}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("gridd: {e:#}");
                ExitCode::from(1)
            }
        };
    }
    gridd::alloc::tune_for_large_buffers();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(std::thread::available_parallelism().map_or(2, |n| n.get().min(4)))
        .enable_all()
        .build();
    let runtime = match runtime {
        Ok(r) => r,
        Err(e) => {
            eprintln!("gridd: cannot start: {e}");
            return ExitCode::from(1);
        }
    };
    let opts = Options {
        state: flags.state,
        config: flags.config,
        listen: flags.listen,
        exports: flags.export,
        trace: flags.trace,
        msize: flags.msize,
    };
    match runtime.block_on(daemon::run(opts)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gridd: {e:#}");
            ExitCode::from(1)
        }
    }
}

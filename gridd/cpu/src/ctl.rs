//! The control messages of `/cpu/N/ctl` (gridfs(4) documents each; a test
//! checks that it does).

use std::sync::Arc;

use async_trait::async_trait;
use cmdbuf::Cmd;
use ninep_server::synth::CtlHandler;
use ninep_server::{Error, Result};

use crate::job::{parse_signal, Job, Reason};
use crate::share::short;

/// The verbs of `/cpu/N/ctl`.
pub static CTL_TABLE: &[Cmd] = &[
    Cmd {
        verb: "exec",
        min_args: 1,
        max_args: None,
        usage: "CMD [ARG...]",
    },
    Cmd {
        verb: "dir",
        min_args: 1,
        max_args: Some(1),
        usage: "PATH",
    },
    Cmd {
        verb: "env",
        min_args: 1,
        max_args: Some(1),
        usage: "NAME=VALUE",
    },
    Cmd {
        verb: "limit",
        min_args: 1,
        max_args: None,
        usage: "KEY=VALUE...",
    },
    Cmd {
        verb: "hold",
        min_args: 0,
        max_args: Some(0),
        usage: "",
    },
    Cmd {
        verb: "start",
        min_args: 0,
        max_args: Some(0),
        usage: "",
    },
    Cmd {
        verb: "kill",
        min_args: 0,
        max_args: Some(0),
        usage: "",
    },
    Cmd {
        verb: "signal",
        min_args: 1,
        max_args: Some(1),
        usage: "NAME",
    },
    Cmd {
        verb: "stdin",
        min_args: 1,
        max_args: Some(1),
        usage: "close",
    },
    Cmd {
        verb: "rm",
        min_args: 0,
        max_args: Some(0),
        usage: "",
    },
];

/// The handler behind one job's ctl file.
pub(crate) struct JobCtl {
    pub(crate) job: Arc<Job>,
}

#[async_trait]
impl CtlHandler for JobCtl {
    fn table(&self) -> &'static [Cmd] {
        CTL_TABLE
    }

    async fn ctl(&self, cmd: &Cmd, f: &[String]) -> Result<()> {
        let job = &self.job;
        match cmd.verb {
            "exec" => job.exec(&f[1..]).await,
            "dir" => job.set_dir(&f[1]),
            "env" => job.set_env(&f[1]),
            "limit" => job.set_limits(&f[1..]),
            "hold" => job.hold(),
            "start" => job.start("start").await,
            "kill" => {
                job.kill(Reason::Kill);
                Ok(())
            }
            "signal" => {
                let sig = parse_signal(&f[1]).ok_or_else(|| {
                    Error::invalid_arg(format!("signal: unknown signal '{}'", short(&f[1])))
                })?;
                job.signal(sig)
            }
            "stdin" if f[1] == "close" => {
                job.close_stdin().await;
                Ok(())
            }
            "stdin" => Err(Error::invalid_arg("usage: stdin close")),
            "rm" => {
                job.remove().await;
                Ok(())
            }
            other => Err(Error::invalid_arg(format!("unhandled verb '{other}'"))),
        }
    }

    /// Reading ctl gives the job's number.
    fn read(&self) -> String {
        format!("{}\n", self.job.n)
    }
}

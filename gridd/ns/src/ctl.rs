//! The control verbs `bind`, `mount` and `unmount`, and the `/ns` file.
//!
//! gridd serves one `/ctl`; it lists [`BIND`], [`MOUNT`] and [`UNMOUNT`]
//! in its own verb table and hands those verbs to an [`NsCtl`] (or serves
//! [`CTL_TABLE`] on a file of its own).

use std::sync::{Arc, Weak};

use async_trait::async_trait;
use cmdbuf::Cmd;
use ninep_server::synth::{CtlHandler, TextFile};
use ninep_server::{Error, Result};

use crate::ns::{Inner, Namespace};
use crate::op::NsOp;
use crate::Resolver;

/// `bind [-abc] NEW OLD`.
pub const BIND: Cmd = Cmd {
    verb: "bind",
    min_args: 2,
    max_args: None,
    usage: "[-abc] NEW OLD",
};

/// `mount [-abc] PEER OLD [SPEC]`.
pub const MOUNT: Cmd = Cmd {
    verb: "mount",
    min_args: 2,
    max_args: None,
    usage: "[-abc] PEER OLD [SPEC]",
};

/// `unmount [NEW] OLD`.
pub const UNMOUNT: Cmd = Cmd {
    verb: "unmount",
    min_args: 1,
    max_args: Some(2),
    usage: "[NEW] OLD",
};

/// The namespace verbs. Flags make argument counts vary, so the table
/// admits any count and [`NsOp::from_fields`] checks the exact usage.
pub static CTL_TABLE: &[Cmd] = &[BIND, MOUNT, UNMOUNT];

type ChangeFn = dyn Fn(&Namespace) -> std::result::Result<(), String> + Send + Sync;

/// Carries out namespace control messages on a [`Namespace`].
///
/// It holds the namespace weakly: it usually lives in a file of that same
/// namespace, and a strong reference would make a cycle.
pub struct NsCtl {
    ns: Weak<Inner>,
    resolver: Arc<dyn Resolver>,
    on_change: Option<Box<ChangeFn>>,
}

impl NsCtl {
    /// A handler for `ns` whose mounts find their trees with `resolver`.
    pub fn new(ns: &Namespace, resolver: Arc<dyn Resolver>) -> Self {
        NsCtl {
            ns: ns.downgrade(),
            resolver,
            on_change: None,
        }
    }

    /// Calls `save` after each operation that changed the namespace (gridd
    /// writes [`Namespace::text`] to its state directory). Its error is
    /// reported to the writer; the change stays made.
    pub fn on_change(
        mut self,
        save: impl Fn(&Namespace) -> std::result::Result<(), String> + Send + Sync + 'static,
    ) -> Self {
        self.on_change = Some(Box::new(save));
        self
    }

    /// Whether `verb` is one of ours.
    pub fn handles(verb: &str) -> bool {
        CTL_TABLE.iter().any(|c| c.verb == verb)
    }

    /// Carries out one message already split into fields.
    pub async fn run(&self, fields: &[String]) -> Result<()> {
        let op = NsOp::from_fields(fields).map_err(Error::invalid_arg)?;
        let ns =
            Namespace::upgrade(&self.ns).ok_or_else(|| Error::io("ns: the namespace is gone"))?;
        ns.run(&op, &*self.resolver).await?;
        if let Some(save) = &self.on_change {
            save(&ns).map_err(|e| Error::io(format!("ns: changed for now, but not saved: {e}")))?;
        }
        Ok(())
    }
}

#[async_trait]
impl CtlHandler for NsCtl {
    fn table(&self) -> &'static [Cmd] {
        CTL_TABLE
    }

    async fn ctl(&self, _cmd: &Cmd, fields: &[String]) -> Result<()> {
        self.run(fields).await
    }
}

/// The `/ns` file: read-only, its text [`Namespace::text`] as of each
/// open. Holds the namespace weakly, as [`NsCtl`] does.
pub fn ns_file(ns: &Namespace) -> TextFile {
    let ns = ns.downgrade();
    TextFile::new(move || {
        Namespace::upgrade(&ns)
            .map(|ns| ns.text())
            .unwrap_or_default()
    })
}

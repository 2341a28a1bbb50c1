//! Replaying a namespace file: operations one at a time, pending
//! operations, and retrying them.

use ninep_server::{Error, Result};

use crate::ns::{mount_error, Failure, Fallible, Namespace};
use crate::op::{Flags, NsOp};
use crate::path::clean;
use crate::table::{Member, Source};
use crate::{Problem, Resolver};

impl Namespace {
    /// The operations waiting for their source, in order.
    pub fn pending(&self) -> Vec<NsOp> {
        self.pending_members()
            .into_iter()
            .map(|(old, m)| m.original_op(&old))
            .collect()
    }

    /// The pending members with the paths they are unioned at, oldest
    /// first.
    fn pending_members(&self) -> Vec<(String, Member)> {
        let table = self.inner.read();
        let mut all: Vec<(String, Member)> = table
            .mounts
            .iter()
            .flat_map(|(old, ms)| {
                ms.iter()
                    .filter(|m| m.pending.is_some())
                    .map(move |m| (old.clone(), m.clone()))
            })
            .collect();
        all.sort_by_key(|(_, m)| m.seq);
        all
    }

    /// Carries out one operation; a mount's source comes from `resolver`.
    /// Errors are returned, nothing is kept pending: this is for a person
    /// at a control file, who can try again.
    pub async fn run(&self, op: &NsOp, resolver: &dyn Resolver) -> Result<()> {
        let _op = self.inner.ops.lock().await;
        self.run_locked(op, resolver).await.map_err(Failure::error)
    }

    /// Replays `ops` (a parsed namespace file) in order. Nothing stops the
    /// replay: an operation whose source is unavailable (the resolver
    /// fails, or a bind's `new` does not exist) keeps its place as pending
    /// (see [`Namespace::retry_pending`]); any other failure is dropped.
    /// Both are reported.
    pub async fn apply(&self, ops: &[NsOp], resolver: &dyn Resolver) -> Vec<Problem> {
        let mut problems = Vec::new();
        for (index, op) in ops.iter().enumerate() {
            let _op = self.inner.ops.lock().await;
            let (error, pending) = match self.run_locked(op, resolver).await {
                Ok(()) => continue,
                Err(Failure::Other(e)) => (e, false),
                Err(Failure::Source(e, deps)) => match self.keep_pending(op, &e, deps).await {
                    Ok(()) => (e, true),
                    Err(other) => (other, false),
                },
            };
            problems.push(Problem {
                index,
                op: op.clone(),
                error,
                pending,
            });
        }
        problems
    }

    /// Tries the pending operations' sources again, oldest first; those
    /// found take effect where they stand in their unions. Reports those
    /// still pending. Federation calls this when a peer becomes reachable.
    pub async fn retry_pending(&self, resolver: &dyn Resolver) -> Vec<Problem> {
        let _op = self.inner.ops.lock().await;
        let waiting = self.pending_members();
        let mut problems = Vec::new();
        for (index, (old, m)) in waiting.into_iter().enumerate() {
            let found = match &m.source {
                Source::Bind(path) => self.walk_source(path).await.map_err(Failure::error),
                Source::Mount { peer, spec } => resolver
                    .resolve(peer, spec)
                    .await
                    .map(|n| (n, Vec::new()))
                    .map_err(|e| mount_error(peer, e)),
            };
            let found = match found {
                Ok((node, deps)) => {
                    let flags = Flags {
                        pos: m.pos,
                        create: m.create,
                    };
                    let is_dir = node.qid().is_dir();
                    match self.target(&old).await {
                        Ok(t) => t
                            .check(&old, &m.source, flags, is_dir)
                            .map(|()| (node, deps)),
                        Err(e) => Err(e),
                    }
                }
                Err(e) => Err(e),
            };
            let mut table = self.inner.write();
            let slot = table
                .mounts
                .get_mut(&old)
                .and_then(|ms| ms.iter_mut().find(|x| x.seq == m.seq));
            let Some(slot) = slot else {
                continue; // unmounted meanwhile
            };
            match found {
                Ok((node, deps)) => {
                    slot.node = Some(node);
                    slot.deps.extend(deps);
                    slot.pending = None;
                }
                Err(error) => {
                    slot.pending = Some(error.msg.to_string());
                    problems.push(Problem {
                        index,
                        op: m.original_op(&old),
                        error,
                        pending: true,
                    });
                }
            }
        }
        problems
    }

    async fn run_locked(&self, op: &NsOp, resolver: &dyn Resolver) -> Fallible<()> {
        match op {
            NsOp::Bind { flags, new, old } => self.bind_locked(new, old, *flags).await,
            NsOp::Mount {
                flags,
                peer,
                old,
                spec,
            } => {
                clean(old)?;
                let source = resolver
                    .resolve(peer, spec)
                    .await
                    .map_err(|e| Failure::Source(mount_error(peer, e), Vec::new()))?;
                Ok(self
                    .mount_locked(Some(source), peer, old, *flags, spec, None)
                    .await?)
            }
            NsOp::Unmount { new, old } => Ok(self.unmount_locked(new.as_deref(), old).await?),
        }
    }

    /// Records `op`, whose source was unavailable, as pending.
    async fn keep_pending(&self, op: &NsOp, why: &Error, deps: Vec<u64>) -> Result<()> {
        let reason = Some(why.msg.to_string());
        match op {
            NsOp::Bind { flags, new, old } => {
                let source = Source::Bind(clean(new)?);
                self.add(old, None, deps, *flags, source, reason).await
            }
            NsOp::Mount {
                flags,
                peer,
                old,
                spec,
            } => {
                self.mount_locked(None, peer, old, *flags, spec, reason)
                    .await
            }
            NsOp::Unmount { .. } => Ok(()),
        }
    }
}

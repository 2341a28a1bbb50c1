//! The grant a peer has now, shared by every node and handle of its view.

use std::sync::{Arc, PoisonError, RwLock};

use crate::policy::Policy;

/// The effective grant for one peer, replaceable or withdrawn at any time.
///
/// Clones share one grant. A [`PolicyView`](crate::PolicyView) reads it on
/// every operation of every node and open handle, so a change takes effect
/// on live sessions at the next request: nothing is cached across requests.
/// A read takes a read lock just long enough to clone an `Arc`.
#[derive(Clone, Default)]
pub struct LiveGrant {
    current: Arc<RwLock<Option<Arc<Policy>>>>,
}

impl LiveGrant {
    /// A grant of `policy`.
    pub fn new(policy: Policy) -> LiveGrant {
        LiveGrant {
            current: Arc::new(RwLock::new(Some(Arc::new(policy)))),
        }
    }

    /// A grant that is withdrawn until [`LiveGrant::set`] is called.
    pub fn withdrawn() -> LiveGrant {
        LiveGrant::default()
    }

    /// Replaces the grant (or grants again after a withdrawal).
    pub fn set(&self, policy: Policy) {
        *self.write() = Some(Arc::new(policy));
    }

    /// Withdraws the grant: every operation of the peer now fails with
    /// `policy: grant withdrawn`, even at the root.
    pub fn withdraw(&self) {
        *self.write() = None;
    }

    /// The grant in force, or `None` if it is withdrawn.
    pub fn current(&self) -> Option<Arc<Policy>> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Option<Arc<Policy>>> {
        // The slot holds a plain value that is always whole; a panic
        // elsewhere while holding the lock cannot have left it half-written.
        self.current.write().unwrap_or_else(PoisonError::into_inner)
    }
}

impl std::fmt::Debug for LiveGrant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.current() {
            Some(p) => write!(f, "LiveGrant({p})"),
            None => f.write_str("LiveGrant(withdrawn)"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_share_one_grant() {
        let a = LiveGrant::new("files r".parse().expect("policy"));
        let b = a.clone();
        b.set("files rw".parse().expect("policy"));
        assert_eq!(
            a.current().map(|p| p.to_string()).as_deref(),
            Some("files rw")
        );
        a.withdraw();
        assert!(b.current().is_none());
        assert_eq!(format!("{b:?}"), "LiveGrant(withdrawn)");
        assert!(LiveGrant::withdrawn().current().is_none());
    }
}

//! Plain background loops — housekeeping, outbox retention, the
//! session-change follower, the e-mail sweep, metrics upkeep, the
//! `ops.metrics` summary — as services under the actor tree's root, so a
//! panic in one restarts it (within its budget) instead of ending it for
//! good. Each loop is idempotent per round; a restarted one simply starts
//! its rounds again.

use actors::store::BoxFuture;
use actors::tree::{Service, ServiceContext};

/// Makes a fresh run of a loop.
type Work = Box<dyn Fn() -> BoxFuture<'static, ()> + Send + Sync>;

/// A loop that runs until stopped (its ending by itself counts as a failure).
pub struct Periodic {
    name: &'static str,
    work: Work,
}

impl Periodic {
    /// The loop `work()` under `name`.
    pub fn new(
        name: &'static str,
        work: impl Fn() -> BoxFuture<'static, ()> + Send + Sync + 'static,
    ) -> Self {
        Self {
            name,
            work: Box::new(work),
        }
    }
}

impl Service for Periodic {
    fn name(&self) -> &str {
        self.name
    }

    fn run(&self, context: ServiceContext) -> BoxFuture<'_, ()> {
        let work = (self.work)();
        Box::pin(async move {
            let mut stopping = context.stopping();
            tokio::select! {
                _ = stopping.changed() => {}
                () = work => {}
            }
        })
    }
}

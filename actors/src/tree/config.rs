//! Settings of the actor tree and the fixed limits behind them.

use std::time::Duration;

/// Most commands one loan actor decides and commits in one transaction: bounds the
/// transaction's size and the time other loans' callers wait behind one busy loan.
pub const MAX_BATCH_COMMANDS: usize = 64;

/// Payments a live loan keeps as records; older ones are folded
/// ([`crate::core::Loan::fold_payments`]) once twice as many are kept, so an
/// actor's memory and a decision's cost do not grow with the loan's history.
pub const KEPT_PAYMENTS: usize = 16;

/// How often a turn reloads and retries after another writer committed first; past
/// this the loan is contended and the callers get [`super::TreeError::Contended`].
pub const MAX_CONFLICT_RETRIES: u32 = 3;

/// Pause before retry `n` after a version conflict (`n` × this), so two writers
/// racing on one loan do not collide in lock-step.
pub const CONFLICT_BACKOFF: Duration = Duration::from_millis(5);

/// Most live actors listed one by one in a [`super::TreeSnapshot`]; the count is always exact.
pub const MAX_SNAPSHOT_ACTORS: usize = 1_000;

/// How often in a row the root re-spawns a failed loan supervisor before giving up.
pub const MAX_SUPERVISOR_RESTARTS: u32 = 10;

/// Settings of the loan actor tree. The adapter builds it from the environment
/// (e.g. `LOAN_ACTOR_IDLE_SECS`); [`TreeConfig::default`] gives the production defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeConfig {
    /// A loan actor with no command routed to it for this long is passivated
    /// (stopped after finishing its queue). Default 600 s.
    pub idle_timeout: Duration,
    /// How often the loan supervisor looks for idle actors and expired restart
    /// windows. Default 30 s; an actor lives at most `idle_timeout + sweep_interval` idle.
    pub sweep_interval: Duration,
    /// Longest a caller waits for a loan actor's answer; then [`super::TreeError::Timeout`].
    /// Default 5 s.
    pub call_timeout: Duration,
    /// Longest one store load or commit may take inside an actor; a slower one is
    /// treated as a store failure and the actor forgets its state. Default 10 s.
    pub store_timeout: Duration,
    /// Restarts allowed per loan within `restart_window`; one more failure makes the
    /// loan answer [`super::TreeError::Unavailable`] until the window has passed. Default 3.
    pub max_restarts: u32,
    /// The window of the restart budget. Default 60 s.
    pub restart_window: Duration,
    /// Most loan actors alive at once; a command for another loan is refused with
    /// [`super::TreeError::Overloaded`] meanwhile. Default 100,000.
    pub max_live_actors: usize,
    /// Most commands waiting for one loan actor (mailboxes are unbounded, so the
    /// bound is kept here); past it [`super::TreeError::Overloaded`]. Default 1,000.
    pub max_queued_per_loan: usize,
    /// Longest a graceful stop waits for the actors to finish their queues. Default 30 s.
    pub shutdown_timeout: Duration,
}

impl Default for TreeConfig {
    fn default() -> Self {
        TreeConfig {
            idle_timeout: Duration::from_secs(600),
            sweep_interval: Duration::from_secs(30),
            call_timeout: Duration::from_secs(5),
            store_timeout: Duration::from_secs(10),
            max_restarts: 3,
            restart_window: Duration::from_secs(60),
            max_live_actors: 100_000,
            max_queued_per_loan: 1_000,
            shutdown_timeout: Duration::from_secs(30),
        }
    }
}

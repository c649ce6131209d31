//! What callers send to the tree and what they get back.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};

use crate::core::{Loan, LoanCommand, LoanError, LoanId, UserId};
use crate::store::{EventRecord, ReplyRecord};

/// One command for one loan, with the time it is decided at (the actor reads no clock).
#[derive(Debug, Clone)]
pub struct LoanRequest {
    /// What to do.
    pub command: LoanCommand,
    /// The business date the command is judged on.
    pub today: NaiveDate,
    /// The instant recorded on the events (`occurred_at`) and in their v7 ids.
    pub now: DateTime<Utc>,
    /// Who asks; `None` for the system (jobs, inbound payments).
    pub actor_id: Option<UserId>,
    /// How to write the caller's answer into the commit, if it wants it kept.
    pub reply: Option<ReplyPlan>,
}

/// Renders a command's answer from what it committed; `None` keeps nothing.
pub type RenderReply = Arc<dyn Fn(&Applied) -> Option<(u16, Vec<u8>)> + Send + Sync>;

/// A caller's wish to have its answer kept atomically with the command's
/// commit: the answer is rendered from the decided outcome (the loan at its
/// new version) and written as a [`ReplyRecord`] in the same transaction.
#[derive(Clone)]
pub struct ReplyPlan {
    /// The record to write, without its status and body.
    pub record: ReplyRecord,
    /// Renders the status and body.
    pub render: RenderReply,
}

impl std::fmt::Debug for ReplyPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplyPlan")
            .field("key", &self.record.key)
            .finish_non_exhaustive()
    }
}

/// A command that was accepted and is committed.
#[derive(Debug, Clone)]
pub struct Applied {
    /// The events this command caused, as committed (empty: a repeat that changed nothing).
    pub events: Vec<EventRecord>,
    /// The loan as committed at `version` (after every command of the batch).
    pub loan: Arc<Loan>,
    /// The loan's stored version after the commit.
    pub version: u64,
    /// True when the answer asked for by [`LoanRequest::reply`] was written
    /// with the commit.
    pub reply_kept: bool,
}

/// The loan's answer: accepted and committed, or refused by the domain (nothing written).
pub type CommandOutcome = Result<Applied, LoanError>;

/// One live loan actor, as operators see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveActor {
    /// The loan.
    pub loan_id: LoanId,
    /// Commands routed to it and not yet answered.
    pub queued: usize,
    /// Time since a command was last routed to it.
    pub idle_for: Duration,
    /// Failures of this loan's actor within the current restart window.
    pub restarts_in_window: usize,
}

/// A loan refused because its actor exhausted its restart budget.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockedLoan {
    /// The loan.
    pub loan_id: LoanId,
    /// Time until it is tried again.
    pub retry_after: Duration,
}

/// Monotonic counters of the tree's life, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TreeCounts {
    /// Loan actors started (first use, after passivation, or restarts).
    pub spawned: u64,
    /// Loan actors stopped for being idle.
    pub passivated: u64,
    /// Loan actors re-spawned after a failure.
    pub restarted: u64,
    /// Loan actors that failed (panic or handler error).
    pub failed: u64,
    /// Failures past the restart budget (the loan was blocked).
    pub budget_exhausted: u64,
    /// Store commits that succeeded.
    pub commits: u64,
    /// Commands in those commits (`commands_committed / commits` = mean batch size).
    pub commands_committed: u64,
    /// Largest batch committed so far.
    pub max_batch: u64,
    /// Version conflicts met (each is followed by a reload).
    pub version_conflicts: u64,
    /// Store failures other than conflicts (loads and commits).
    pub store_errors: u64,
    /// Calls that timed out on the caller's side.
    pub timeouts: u64,
    /// Queued commands dropped undecided because their caller had already given up.
    pub abandoned: u64,
    /// Loads of a loan's whole history for a command that needed folded payments.
    pub history_loads: u64,
}

/// What `GET /admin/actors` shows: the supervision state at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeSnapshot {
    /// Number of live (routable) loan actors.
    pub live_count: usize,
    /// Up to [`super::config::MAX_SNAPSHOT_ACTORS`] of them, longest idle first.
    pub live: Vec<LiveActor>,
    /// Actors stopping (passivated, finishing their queue).
    pub stopping: usize,
    /// Loans answering `Unavailable` for now.
    pub blocked: Vec<BlockedLoan>,
    /// The counters.
    pub counts: TreeCounts,
}

/// The counters, shared by the handle, the supervisor and the loan actors.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) spawned: AtomicU64,
    pub(crate) passivated: AtomicU64,
    pub(crate) restarted: AtomicU64,
    pub(crate) failed: AtomicU64,
    pub(crate) budget_exhausted: AtomicU64,
    pub(crate) commits: AtomicU64,
    pub(crate) commands_committed: AtomicU64,
    pub(crate) max_batch: AtomicU64,
    pub(crate) version_conflicts: AtomicU64,
    pub(crate) store_errors: AtomicU64,
    pub(crate) timeouts: AtomicU64,
    pub(crate) abandoned: AtomicU64,
    pub(crate) history_loads: AtomicU64,
}

/// Adds one to a counter.
pub(crate) fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

impl Counters {
    /// Records a successful commit of `commands` commands.
    pub(crate) fn committed(&self, commands: u64) {
        bump(&self.commits);
        self.commands_committed
            .fetch_add(commands, Ordering::Relaxed);
        self.max_batch.fetch_max(commands, Ordering::Relaxed);
    }

    /// A plain copy.
    pub(crate) fn read(&self) -> TreeCounts {
        let get = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        TreeCounts {
            spawned: get(&self.spawned),
            passivated: get(&self.passivated),
            restarted: get(&self.restarted),
            failed: get(&self.failed),
            budget_exhausted: get(&self.budget_exhausted),
            commits: get(&self.commits),
            commands_committed: get(&self.commands_committed),
            max_batch: get(&self.max_batch),
            version_conflicts: get(&self.version_conflicts),
            store_errors: get(&self.store_errors),
            timeouts: get(&self.timeouts),
            abandoned: get(&self.abandoned),
            history_loads: get(&self.history_loads),
        }
    }
}

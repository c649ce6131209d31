//! The operators' summary published on `ops.metrics` (plain NATS, not
//! stored in a stream): the same figures as `/metrics`, for whoever watches
//! the bus. A part that could not be read is `null`.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Subject of the summary (a namespace, if set, goes in front).
pub const OPS_METRICS_SUBJECT: &str = "ops.metrics";

/// One summary, every `OPS_METRICS_INTERVAL_SECS`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct OpsSummary {
    /// When it was taken.
    pub at: DateTime<Utc>,
    /// The loan actors' counters since the instance started.
    pub loan_actors: LoanActorCounts,
    /// Outbox rows not yet published.
    pub outbox_pending: Option<i64>,
    /// Events the bus acknowledged (including rows purged since).
    pub events_published: Option<i64>,
    /// Inbound payments dead-lettered.
    pub inbound_dead_letters: Option<i64>,
    /// Notification e-mails by delivery status.
    pub emails: Option<BTreeMap<String, i64>>,
}

/// The loan actors' counters of one instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct LoanActorCounts {
    /// Loan actors live now (`null` if the tree did not answer in time).
    pub live: Option<u64>,
    /// Actors spawned.
    pub spawned: u64,
    /// Actors passivated after being idle.
    pub passivated: u64,
    /// Actors restarted after a failure.
    pub restarted: u64,
    /// Actor failures.
    pub failed: u64,
    /// Loans blocked after exhausting their restart budget.
    pub budget_exhausted: u64,
    /// Commands committed.
    pub commands_committed: u64,
    /// Commits refused by the version check.
    pub version_conflicts: u64,
}

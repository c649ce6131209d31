//! Every metric name the service exports, with its help text. README's "What
//! the metrics mean" lists the same names: keep the two in step.
//!
//! To add a metric (bus, e-mail, jobs…): a constant here, a line in
//! [`describe`], a recording method on [`super::Metrics`], a README line.

use ::metrics::{Unit, describe_counter, describe_gauge, describe_histogram};

/// Counter: HTTP requests answered, by `route` template, `method` and `status`.
pub const HTTP_REQUESTS: &str = "http_requests_total";
/// Histogram: HTTP request latency in seconds, by `route` and `method`.
pub const HTTP_REQUEST_DURATION: &str = "http_request_duration_seconds";

/// Gauge: loan actors alive and routable now.
pub const LOAN_ACTORS_LIVE: &str = "loan_actors_live";
/// Gauge: loan actors passivated and finishing their queue.
pub const LOAN_ACTORS_STOPPING: &str = "loan_actors_stopping";
/// Counter: loan actors started (first use, after passivation, restarts).
pub const LOAN_ACTORS_SPAWNED: &str = "loan_actors_spawned_total";
/// Counter: loan actors stopped for being idle.
pub const LOAN_ACTORS_PASSIVATED: &str = "loan_actors_passivated_total";
/// Counter: loan actors re-spawned by their supervisor after a failure.
pub const LOAN_ACTORS_RESTARTED: &str = "loan_actors_restarted_total";
/// Counter: loan actors that failed (panicked or returned a handler error).
pub const LOAN_ACTORS_FAILED: &str = "loan_actors_failed_total";
/// Counter: failures past the restart budget (the loan is blocked for a while).
pub const LOAN_ACTOR_BUDGET_EXHAUSTED: &str = "loan_actor_restart_budget_exhausted_total";
/// Gauge: loans currently blocked after exhausting their restart budget.
pub const LOANS_BLOCKED: &str = "loans_blocked";
/// Gauge: commands queued in loan actors' mailboxes, summed over live actors.
pub const LOAN_ACTOR_MAILBOX_DEPTH: &str = "loan_actor_mailbox_depth";
/// Gauge: the deepest single loan actor mailbox.
pub const LOAN_ACTOR_MAILBOX_DEPTH_MAX: &str = "loan_actor_mailbox_depth_max";
/// Counter: store commits made by loan actors (one per batch).
pub const LOAN_ACTOR_COMMITS: &str = "loan_actor_commits_total";
/// Counter: commands committed (divided by commits = mean batch size).
pub const LOAN_COMMANDS_COMMITTED: &str = "loan_commands_committed_total";
/// Gauge: the largest batch committed so far.
pub const LOAN_ACTOR_MAX_BATCH: &str = "loan_actor_max_batch";
/// Counter: optimistic version conflicts met (each followed by a reload).
pub const LOAN_ACTOR_VERSION_CONFLICTS: &str = "loan_actor_version_conflicts_total";
/// Counter: store failures in loan actors other than conflicts.
pub const LOAN_ACTOR_STORE_ERRORS: &str = "loan_actor_store_errors_total";
/// Counter: calls to a loan actor that timed out on the caller's side.
pub const LOAN_ACTOR_CALL_TIMEOUTS: &str = "loan_actor_call_timeouts_total";
/// Counter: queued commands dropped because their caller had given up.
pub const LOAN_COMMANDS_ABANDONED: &str = "loan_commands_abandoned_total";
/// Counter: loads of a loan's whole payment history for a command that needed
/// payments the actor had folded (a reversal, a back-dated payment, …).
pub const LOAN_HISTORY_LOADS: &str = "loan_history_loads_total";
/// Histogram: time from sending a command to a loan actor until its answer, by
/// `command` and `outcome` (`committed`, `rejected`, `failed`).
pub const LOAN_COMMAND_DURATION: &str = "loan_command_duration_seconds";
/// Histogram: a command forwarded to its loan's owning instance, from sending
/// to its answer, by `kind` (`http`, `inbound`, `assess`) and `outcome`
/// (`answered`, `no_owner`, `timeout`, `failed`).
pub const FORWARDED_COMMAND_DURATION: &str = "cluster_forwarded_command_duration_seconds";
/// Gauge: partitions this instance holds (several instances).
pub const CLUSTER_PARTITIONS_OWNED: &str = "cluster_partitions_owned";
/// Counter: partition leases taken, released (handed over) and lost, by `change`.
pub const CLUSTER_LEASE_CHANGES: &str = "cluster_lease_changes_total";
/// Gauge: instances this one sees alive (several instances).
pub const CLUSTER_INSTANCES_LIVE: &str = "cluster_instances_live";

/// Counter: re-spawns after a failure of a child of the root, by `actor`
/// (`loans` for the loan supervisor, else the service's name).
pub const SUPERVISED_RESTARTS: &str = "supervised_actor_restarts_total";
/// Gauge: 1 while the supervised child runs, by `actor`.
pub const SUPERVISED_UP: &str = "supervised_actor_up";
/// Gauge: 1 when the supervised child failed past its restart budget and stays down, by `actor`.
pub const SUPERVISED_FAILED: &str = "supervised_actor_failed";
/// Gauge: work waiting for the supervised child, by `actor` (outbox rows,
/// bus messages, job catch-ups, queued loan commands); absent when unknown.
pub const SUPERVISED_BACKLOG: &str = "supervised_actor_backlog";

/// Gauge: outbox rows not yet published to the bus.
pub const OUTBOX_PENDING: &str = "outbox_pending";
/// Gauge: age in seconds of the oldest unpublished outbox row (0 when none).
pub const OUTBOX_OLDEST_PENDING_AGE: &str = "outbox_oldest_pending_age_seconds";

/// Gauge: database connections, by `pool` and `state` (`in_use`, `idle`).
pub const DB_POOL_CONNECTIONS: &str = "db_pool_connections";

/// Counter: job runs ended, by `job` and `outcome` (`ok`, `partial` when some
/// loans failed, `failed` when the run stopped).
pub const JOB_RUNS: &str = "job_runs_total";
/// Histogram: job run duration in seconds, by `job`.
pub const JOB_RUN_DURATION: &str = "job_run_duration_seconds";
/// Counter: loans (overdue) or installments (reminders) handled by job runs, by `job`.
pub const JOB_ITEMS_PROCESSED: &str = "job_items_processed_total";

/// Gauge: 1 when the last scrape could not read a source (`source` label).
pub const SCRAPE_ERRORS: &str = "metrics_scrape_error";

/// Counter: outbox rows published to the bus (acknowledged), read from the
/// outbox: rows stamped published plus rows purged since.
pub const EVENTS_PUBLISHED: &str = "events_published_total";
/// Counter: published outbox rows deleted past `OUTBOX_RETENTION_DAYS` (all instances).
pub const OUTBOX_PURGED: &str = "outbox_purged_rows_total";

/// Counter: deliveries settled by a consumer, by `consumer` and `outcome` (`ack`, `retry`, `reject`).
pub const EVENTS_CONSUMED: &str = "events_consumed_total";

/// Counter: inbound payment messages that could never apply (recorded and dead-lettered).
pub const INBOUND_DEAD_LETTERS: &str = "inbound_dead_letters_total";

/// Gauge: notification e-mails by delivery `status` (`pending`, `sent`, `failed`, `skipped`).
pub const NOTIFICATION_EMAILS: &str = "notification_emails";
/// Counter: failed attempts to record an e-mail's outcome (each is retried while the claim holds).
pub const EMAIL_OUTCOME_RECORD_FAILURES: &str = "email_outcome_record_failures_total";

/// Registers help texts and units with the recorder in scope.
pub(super) fn describe() {
    describe_counter!(
        HTTP_REQUESTS,
        "HTTP requests answered, by route template, method and status."
    );
    describe_histogram!(
        HTTP_REQUEST_DURATION,
        Unit::Seconds,
        "HTTP request latency."
    );
    describe_gauge!(LOAN_ACTORS_LIVE, "Loan actors alive and routable.");
    describe_gauge!(
        LOAN_ACTORS_STOPPING,
        "Loan actors passivated, finishing their queue."
    );
    describe_counter!(LOAN_ACTORS_SPAWNED, "Loan actors started.");
    describe_counter!(
        LOAN_ACTORS_PASSIVATED,
        "Loan actors stopped for being idle."
    );
    describe_counter!(
        LOAN_ACTORS_RESTARTED,
        "Loan actors re-spawned after a failure."
    );
    describe_counter!(LOAN_ACTORS_FAILED, "Loan actors that panicked or failed.");
    describe_counter!(
        LOAN_ACTOR_BUDGET_EXHAUSTED,
        "Failures past the restart budget."
    );
    describe_gauge!(
        LOANS_BLOCKED,
        "Loans blocked after exhausting their restart budget."
    );
    describe_gauge!(
        LOAN_ACTOR_MAILBOX_DEPTH,
        "Commands queued in loan actor mailboxes."
    );
    describe_gauge!(LOAN_ACTOR_MAILBOX_DEPTH_MAX, "Deepest loan actor mailbox.");
    describe_counter!(LOAN_ACTOR_COMMITS, "Store commits made by loan actors.");
    describe_counter!(
        LOAN_COMMANDS_COMMITTED,
        "Commands committed by loan actors."
    );
    describe_gauge!(
        LOAN_ACTOR_MAX_BATCH,
        "Largest batch of commands committed at once."
    );
    describe_counter!(
        LOAN_ACTOR_VERSION_CONFLICTS,
        "Optimistic version conflicts."
    );
    describe_counter!(LOAN_ACTOR_STORE_ERRORS, "Store failures in loan actors.");
    describe_counter!(LOAN_ACTOR_CALL_TIMEOUTS, "Loan actor calls that timed out.");
    describe_counter!(
        LOAN_COMMANDS_ABANDONED,
        "Queued commands dropped, caller gone."
    );
    describe_histogram!(
        LOAN_COMMAND_DURATION,
        Unit::Seconds,
        "Loan command round trip through its actor."
    );
    describe_histogram!(
        FORWARDED_COMMAND_DURATION,
        Unit::Seconds,
        "Command forwarded to its loan's owning instance, send to answer."
    );
    describe_gauge!(
        CLUSTER_PARTITIONS_OWNED,
        "Loan partitions this instance holds."
    );
    describe_counter!(
        CLUSTER_LEASE_CHANGES,
        "Partition leases taken, released and lost, by change."
    );
    describe_gauge!(
        CLUSTER_INSTANCES_LIVE,
        "Instances seen alive in the cluster."
    );
    describe_counter!(
        SUPERVISED_RESTARTS,
        "Re-spawns of a child of the root supervisor, by actor."
    );
    describe_gauge!(SUPERVISED_UP, "1 while the supervised child runs.");
    describe_gauge!(
        SUPERVISED_FAILED,
        "1 when the supervised child is down past its restart budget."
    );
    describe_gauge!(SUPERVISED_BACKLOG, "Work waiting for the supervised child.");
    describe_gauge!(OUTBOX_PENDING, "Outbox rows not yet published.");
    describe_gauge!(
        OUTBOX_OLDEST_PENDING_AGE,
        Unit::Seconds,
        "Age of the oldest unpublished outbox row."
    );
    describe_gauge!(
        DB_POOL_CONNECTIONS,
        "Database connections by pool and state."
    );
    describe_counter!(
        EVENTS_PUBLISHED,
        "Outbox rows published to the bus and acknowledged."
    );
    describe_counter!(
        OUTBOX_PURGED,
        "Published outbox rows deleted past their retention."
    );
    describe_counter!(
        EVENTS_CONSUMED,
        "Deliveries settled, by consumer and outcome."
    );
    describe_counter!(
        INBOUND_DEAD_LETTERS,
        "Inbound payments that could never apply."
    );
    describe_gauge!(
        NOTIFICATION_EMAILS,
        "Notification e-mails by delivery status."
    );
    describe_counter!(
        EMAIL_OUTCOME_RECORD_FAILURES,
        "Failed attempts to record an e-mail's outcome."
    );
    describe_counter!(JOB_RUNS, "Job runs ended, by job and outcome.");
    describe_histogram!(JOB_RUN_DURATION, Unit::Seconds, "Job run duration.");
    describe_counter!(
        JOB_ITEMS_PROCESSED,
        "Loans or installments handled by job runs."
    );
    describe_gauge!(
        SCRAPE_ERRORS,
        "1 when the last scrape could not read this source."
    );
}

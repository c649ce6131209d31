//! Prometheus metrics, one recorder per [`crate::app::Application`].
//!
//! Nothing here touches the process-global recorder: tests run many apps in
//! one process, and each must see only its own numbers. Events are recorded
//! into this app's recorder with [`Metrics::record`]; values that already live
//! elsewhere (actor counters, outbox, pools) are read at scrape time by
//! [`crate::ops::scrape::refresh`]. `GET /metrics` renders the result.

pub mod names;

use std::sync::Arc;
use std::time::Duration;

use ::metrics::{counter, histogram};
use actors::core::LoanCommand;
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};

/// How often histograms are drained when no one scrapes (the exporter has no
/// listener of its own to do it).
pub const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// Histogram buckets for latencies, in seconds: 1 ms to 10 s.
const LATENCY_BUCKETS_SECONDS: [f64; 13] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Histogram buckets for job runs, in seconds: 10 ms to 1 hour (a `Full`
/// matcher outranks the `_seconds` suffix one).
const JOB_DURATION_BUCKETS_SECONDS: [f64; 10] =
    [0.01, 0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0];

/// This application's metrics: a recorder and the handle that renders it.
#[derive(Debug, Clone)]
pub struct Metrics {
    recorder: Arc<PrometheusRecorder>,
    handle: PrometheusHandle,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh recorder with every metric described and latency buckets set.
    pub fn new() -> Self {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &LATENCY_BUCKETS_SECONDS)
            .expect("latency buckets are a non-empty constant")
            .set_buckets_for_metric(
                Matcher::Full(names::JOB_RUN_DURATION.into()),
                &JOB_DURATION_BUCKETS_SECONDS,
            )
            .expect("job buckets are a non-empty constant")
            .build_recorder();
        let metrics = Self {
            handle: recorder.handle(),
            recorder: Arc::new(recorder),
        };
        metrics.record(names::describe);
        metrics
    }

    /// Runs `record` with this app's recorder as the current one, so the
    /// `metrics` macros inside it land here. `record` must not block or await.
    pub fn record<T>(&self, record: impl FnOnce() -> T) -> T {
        ::metrics::with_local_recorder(self.recorder.as_ref(), record)
    }

    /// One answered HTTP request. `route` must be a template, never a raw path.
    pub fn http_request(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        self.record(|| {
            let method = method.to_owned();
            let route = route.to_owned();
            counter!(names::HTTP_REQUESTS, "method" => method.clone(), "route" => route.clone(), "status" => status.to_string())
                .increment(1);
            histogram!(names::HTTP_REQUEST_DURATION, "method" => method, "route" => route)
                .record(elapsed.as_secs_f64());
        });
    }

    /// One round trip of a command through a loan actor. `outcome` is
    /// `committed`, `rejected` or `failed`.
    pub fn loan_command(&self, command: &'static str, outcome: &'static str, elapsed: Duration) {
        self.record(|| {
            histogram!(names::LOAN_COMMAND_DURATION, "command" => command, "outcome" => outcome)
                .record(elapsed.as_secs_f64());
        });
    }

    /// One command forwarded to its loan's owner (`kind`: `http`, `inbound`,
    /// `assess`; `outcome`: `answered`, `no_owner`, `timeout`, `failed`).
    pub fn forwarded(&self, kind: &'static str, outcome: &'static str, elapsed: Duration) {
        self.record(|| {
            histogram!(names::FORWARDED_COMMAND_DURATION, "kind" => kind, "outcome" => outcome)
                .record(elapsed.as_secs_f64());
        });
    }

    /// One delivery settled by `consumer` (`ack`, `retry` or `reject`).
    pub fn event_consumed(&self, consumer: &str, outcome: &'static str) {
        let consumer = consumer.to_owned();
        self.record(|| {
            counter!(names::EVENTS_CONSUMED, "consumer" => consumer, "outcome" => outcome)
                .increment(1)
        });
    }

    /// One failed attempt to record an e-mail's outcome (it is retried).
    pub fn email_outcome_record_failure(&self) {
        self.record(|| counter!(names::EMAIL_OUTCOME_RECORD_FAILURES).increment(1));
    }

    /// One job run that ended. `outcome` is `ok`, `partial` or `failed`.
    pub fn job_run(
        &self,
        job: &'static str,
        outcome: &'static str,
        elapsed: Duration,
        processed: u64,
    ) {
        self.record(|| {
            counter!(names::JOB_RUNS, "job" => job, "outcome" => outcome).increment(1);
            histogram!(names::JOB_RUN_DURATION, "job" => job).record(elapsed.as_secs_f64());
            counter!(names::JOB_ITEMS_PROCESSED, "job" => job).increment(processed);
        });
    }

    /// The Prometheus text exposition of everything recorded so far.
    pub fn render(&self) -> String {
        self.handle.render()
    }

    /// Drains histogram buckets; call every [`UPKEEP_INTERVAL`].
    pub fn run_upkeep(&self) {
        self.handle.run_upkeep();
    }
}

/// The `command` label of a loan command (bounded: one per variant).
pub fn command_label(command: &LoanCommand) -> &'static str {
    match command {
        LoanCommand::Approve { .. } => "approve",
        LoanCommand::Reject { .. } => "reject",
        LoanCommand::Cancel => "cancel",
        LoanCommand::ApplyPayment { .. } => "payment",
        LoanCommand::ReversePayment { .. } => "reverse_payment",
        LoanCommand::AssessLateFees { .. } => "assess_late_fees",
        LoanCommand::WriteOff => "write_off",
        LoanCommand::Delete => "delete",
    }
}

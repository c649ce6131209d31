//! The job run events, version 1: `loan_id` and `user_id` are `null`.

use chrono::{DateTime, NaiveDate, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::envelope::{Envelope, Payload, to_the_millisecond};

/// A scheduled job's run starting and ending, tagged by `type`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", content = "data")]
pub enum JobEvent {
    /// A run was claimed (its `finished_at` is `null`).
    #[serde(rename = "job.started")]
    Started(JobRun),
    /// A run finished.
    #[serde(rename = "job.finished")]
    Finished(JobRun),
}

impl Payload for JobEvent {
    const TYPES: &'static [&'static str] = &["job.started", "job.finished"];

    fn event_type(&self) -> &'static str {
        match self {
            Self::Started(_) => "job.started",
            Self::Finished(_) => "job.finished",
        }
    }
}

impl JobEvent {
    /// The envelope of this event, with a fresh event id, at the run's
    /// latest time (its end, else its start).
    pub fn envelope(self) -> Envelope<Self> {
        let (Self::Started(run) | Self::Finished(run)) = &self;
        let occurred_at = run.finished_at.unwrap_or(run.started_at);
        Envelope {
            event_id: Uuid::now_v7(),
            payload: self,
            loan_id: None,
            user_id: None,
            occurred_at: to_the_millisecond(occurred_at),
            actor_id: None,
        }
    }
}

/// `data` of both job events: the run as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct JobRun {
    /// `payment-reminders` or `overdue`.
    pub job: String,
    /// The business date it ran for.
    pub as_of: NaiveDate,
    /// The instance that ran it.
    pub owner: String,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// When it finished (`null` while running).
    pub finished_at: Option<DateTime<Utc>>,
    /// Loans or installments handled.
    pub processed: u64,
    /// Loans or installments that failed.
    pub errors: u64,
}

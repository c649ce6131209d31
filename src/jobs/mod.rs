//! Scheduled jobs (SPEC §6): `payment-reminders` and `overdue`.
//!
//! [`JobRunner`] runs one job for one business date, at most once per date
//! across every instance (see [`lock`] and [`runs`]); [`scheduler`] is the
//! service (under the actor tree's root) that fires runs from cron
//! expressions and catches up missed days.
//! `POST /admin/jobs/{name}/run` calls the same runner.

mod context;
pub mod lock;
pub mod overdue;
mod reminders;
mod runner;
pub mod runs;
pub mod scheduler;

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, NaiveDate, Utc};
use thiserror::Error;

pub use runner::{JobRunner, RunOutcome, catch_up_dates};

use crate::store::StoreError;

/// The jobs there are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobName {
    /// Installments due in 3 days and tomorrow → a notification and an e-mail each.
    PaymentReminders,
    /// Late fees, `OVERDUE` / back to `APPROVED`, and overdue notices.
    Overdue,
}

impl JobName {
    /// Every job, in the order catch-up runs them.
    pub const ALL: [JobName; 2] = [JobName::Overdue, JobName::PaymentReminders];

    /// The name in the API, the metrics and `job_runs.job`.
    pub fn as_str(self) -> &'static str {
        match self {
            JobName::PaymentReminders => "payment-reminders",
            JobName::Overdue => "overdue",
        }
    }
}

impl fmt::Display for JobName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is not one of [`JobName::ALL`].
#[derive(Debug, Error)]
#[error("no job is called {0:?}")]
pub struct UnknownJob(pub String);

impl FromStr for JobName {
    type Err = UnknownJob;

    fn from_str(name: &str) -> Result<Self, UnknownJob> {
        JobName::ALL
            .into_iter()
            .find(|job| job.as_str() == name)
            .ok_or_else(|| UnknownJob(name.to_owned()))
    }
}

/// One run of a job for one date, as recorded in `job_runs`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunRecord {
    /// The job.
    pub job: JobName,
    /// The business date it ran for.
    pub as_of: NaiveDate,
    /// The instance that ran it.
    pub owner: String,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// When it finished; `None` while running.
    pub finished_at: Option<DateTime<Utc>>,
    /// Loans (overdue) or installments (reminders) handled.
    pub processed: u64,
    /// Loans or installments that failed (the next run tries them again).
    pub errors: u64,
}

/// Why a run could not be done. Failures of single loans are not errors of
/// the run: they are counted in [`RunRecord::errors`].
#[derive(Debug, Error)]
pub enum JobError {
    /// Jobs judge the past and today, never the future.
    #[error("as_of {as_of} is after today ({today})")]
    FutureDate {
        /// The date asked for.
        as_of: NaiveDate,
        /// Today in the business time zone.
        today: NaiveDate,
    },
    /// Another instance took the run over after this one's lease lapsed.
    #[error("the run of {job} for {as_of} was taken over by another instance")]
    LostLease {
        /// The job.
        job: JobName,
        /// The date.
        as_of: NaiveDate,
    },
    /// The process is stopping; the run stays unfinished and is resumed by the next start.
    #[error("stopping: the run of {job} for {as_of} was interrupted")]
    Interrupted {
        /// The job.
        job: JobName,
        /// The date.
        as_of: NaiveDate,
    },
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

//! [`JobRunner`]: runs one job for one date, exclusively and at most once.
//!
//! Within an instance, runs of one job take turns (a mutex per job); across
//! instances the [`RunLock`] and the `job_runs` row decide (see `lock.rs`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use actors::mailer::Mailer;
use actors::tree::LoanTree;
use chrono::{Duration, NaiveDate};
use tokio::sync::Mutex;

use super::context::{JobContext, Progress, RUN_LEASE};
use super::lock::RunLock;
use super::runs::{self, Claim, Claimant};
use super::{JobError, JobName, RunRecord, overdue, reminders};
use crate::clock::Clock;
use crate::metrics::Metrics;
use crate::settings::jobs::CronSchedule;
use crate::store::Db;

/// Most days a catch-up goes back: older missed days are left to an operator
/// (`POST /admin/jobs/{name}/run` with `as_of`).
pub const MAX_CATCH_UP_DAYS: i64 = 31;

/// What asking for a run gave.
#[derive(Debug)]
pub enum RunOutcome {
    /// This call ran it.
    Ran(RunRecord),
    /// It had already run for that date; nothing was done.
    AlreadyDone(RunRecord),
    /// Another instance is running it now.
    InProgress(RunRecord),
}

impl RunOutcome {
    /// The run record, whichever case.
    pub fn record(&self) -> &RunRecord {
        match self {
            RunOutcome::Ran(record)
            | RunOutcome::AlreadyDone(record)
            | RunOutcome::InProgress(record) => record,
        }
    }
}

/// What the jobs work with; cheap to clone.
#[derive(Clone)]
pub struct JobRunner {
    inner: Arc<JobContext>,
}

impl JobRunner {
    /// A runner over the service's database, actors, mailer and clock.
    pub fn new(
        db: Db,
        tree: LoanTree,
        mailer: Arc<dyn Mailer>,
        clock: Clock,
        metrics: Metrics,
        (parallelism, cluster): (u32, Option<crate::cluster::ClusterNode>),
    ) -> Self {
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "localhost".to_owned());
        let instance = uuid::Uuid::new_v4().simple().to_string();
        Self {
            inner: Arc::new(JobContext {
                db,
                tree,
                mailer,
                clock,
                metrics,
                parallelism: usize::try_from(parallelism).unwrap_or(1).max(1),
                owner: format!("{host}/{}/{}", std::process::id(), &instance[..8]),
                turns: [Mutex::new(()), Mutex::new(())],
                stopping: AtomicBool::new(false),
                cluster,
            }),
        }
    }

    /// Assesses, on this instance (the owner), loans other instances' runs
    /// forward ([`super::overdue::ASSESS_KIND`]).
    pub fn assessments(&self) -> super::overdue::ForwardedAssessments {
        super::overdue::ForwardedAssessments(Arc::clone(&self.inner))
    }

    /// The clock jobs read "today" from.
    pub fn clock(&self) -> &Clock {
        &self.inner.clock
    }

    /// Makes running and future runs stop after their current page (shutdown).
    pub fn interrupt(&self) {
        self.inner.stopping.store(true, Ordering::SeqCst);
    }

    /// Runs `job` for `as_of` (today when `None`) unless it ran for that date
    /// already or runs elsewhere now.
    pub async fn run(
        &self,
        job: JobName,
        as_of: Option<NaiveDate>,
    ) -> Result<RunOutcome, JobError> {
        let today = self.inner.clock.today();
        let as_of = as_of.unwrap_or(today);
        if as_of > today {
            return Err(JobError::FutureDate { as_of, today });
        }
        let turn = JobName::ALL
            .iter()
            .position(|each| *each == job)
            .expect("every job is in ALL");
        let _turn = self.inner.turns[turn].lock().await;
        let Some(lock) = RunLock::try_acquire(&self.inner.db, job, as_of).await? else {
            return in_progress(&self.inner.db, job, as_of, &self.inner.owner).await;
        };
        let now = self.inner.clock.now();
        let claimant = Claimant {
            owner: &self.inner.owner,
            now,
            lease_until: now + RUN_LEASE,
            takeover: lock.excludes_others(),
        };
        let outcome = match runs::claim(&self.inner.db, job, as_of, claimant).await? {
            Claim::Finished(record) => Ok(RunOutcome::AlreadyDone(record)),
            Claim::Busy(record) => Ok(RunOutcome::InProgress(record)),
            Claim::Started(record) => self.work(record).await.map(RunOutcome::Ran),
        };
        lock.release().await;
        outcome
    }

    /// Does the claimed run and records its end.
    async fn work(&self, record: RunRecord) -> Result<RunRecord, JobError> {
        let (job, as_of) = (record.job, record.as_of);
        tracing::info!(%job, %as_of, "job run started");
        let started = Instant::now();
        let mut progress = Progress {
            runner: self.inner.as_ref(),
            record,
        };
        let worked = match job {
            JobName::Overdue => overdue::run(&mut progress).await,
            JobName::PaymentReminders => reminders::run(&mut progress).await,
        };
        let mut record = progress.record;
        if let Err(error) = worked {
            // Let the next start (or another instance) resume it at once.
            let _ = runs::renew(
                &self.inner.db,
                &record,
                self.inner.clock.now() - Duration::seconds(1),
            )
            .await;
            self.inner
                .metrics
                .job_run(job.as_str(), "failed", started.elapsed(), record.processed);
            return Err(error);
        }
        record.finished_at = Some(self.inner.clock.now());
        if !runs::finish(&self.inner.db, &record).await? {
            return Err(JobError::LostLease { job, as_of });
        }
        let outcome = if record.errors == 0 { "ok" } else { "partial" };
        self.inner
            .metrics
            .job_run(job.as_str(), outcome, started.elapsed(), record.processed);
        tracing::info!(%job, %as_of, processed = record.processed, errors = record.errors, elapsed_ms = started.elapsed().as_millis(), "job run finished");
        Ok(record)
    }

    /// Runs `job` for every due date it missed, oldest first: from the day
    /// after its last finished run (at most [`MAX_CATCH_UP_DAYS`] back) to the
    /// date of the schedule's latest occurrence up to now. Returns the runs done.
    pub async fn catch_up(&self, job: JobName, schedule: &CronSchedule) -> Result<usize, JobError> {
        let clock = &self.inner.clock;
        let now = clock.now().with_timezone(&clock.timezone());
        let Ok(latest) = schedule.cron().find_previous_occurrence(&now, true) else {
            return Ok(0);
        };
        let last_finished = runs::last_finished(&self.inner.db, job).await?;
        let mut ran = 0;
        for as_of in catch_up_dates(last_finished, latest.date_naive()) {
            if let RunOutcome::Ran(_) = self.run(job, Some(as_of)).await? {
                ran += 1;
            }
        }
        Ok(ran)
    }
}

/// The dates a catch-up runs, oldest first: the days after `last_finished` up
/// to `latest`, at most [`MAX_CATCH_UP_DAYS`]; just `latest` with no history.
pub fn catch_up_dates(last_finished: Option<NaiveDate>, latest: NaiveDate) -> Vec<NaiveDate> {
    let earliest_allowed = latest - Duration::days(MAX_CATCH_UP_DAYS - 1);
    let first = match last_finished {
        None => latest,
        Some(last) => (last + Duration::days(1)).max(earliest_allowed),
    };
    first.iter_days().take_while(|day| *day <= latest).collect()
}

/// The record of a run another instance holds the lock of.
async fn in_progress(
    db: &Db,
    job: JobName,
    as_of: NaiveDate,
    owner: &str,
) -> Result<RunOutcome, JobError> {
    Ok(match runs::get(db, job, as_of).await? {
        Some(record) if record.finished_at.is_some() => RunOutcome::AlreadyDone(record),
        Some(record) => RunOutcome::InProgress(record),
        // It holds the lock but has not written its row yet.
        None => RunOutcome::InProgress(RunRecord {
            job,
            as_of,
            owner: format!("another instance than {owner}"),
            started_at: chrono::Utc::now(),
            finished_at: None,
            processed: 0,
            errors: 0,
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(text: &str) -> NaiveDate {
        text.parse().unwrap()
    }

    #[test]
    fn catch_up_runs_the_missed_days_oldest_first() {
        assert_eq!(
            catch_up_dates(Some(date("2026-03-01")), date("2026-03-04")),
            [date("2026-03-02"), date("2026-03-03"), date("2026-03-04")]
        );
        assert!(catch_up_dates(Some(date("2026-03-04")), date("2026-03-04")).is_empty());
        assert_eq!(
            catch_up_dates(None, date("2026-03-04")),
            [date("2026-03-04")]
        );
    }

    #[test]
    fn catch_up_goes_back_at_most_the_limit() {
        let dates = catch_up_dates(Some(date("2025-01-01")), date("2026-03-04"));
        assert_eq!(dates.len(), usize::try_from(MAX_CATCH_UP_DAYS).unwrap());
        assert_eq!(dates.last(), Some(&date("2026-03-04")));
    }
}

//! What a job body works with: the shared parts of the runner and the run in
//! progress. The runner builds them; the job bodies (`overdue`, `reminders`)
//! read them, so neither needs the other.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use actors::mailer::Mailer;
use actors::tree::LoanTree;
use chrono::Duration;
use tokio::sync::Mutex;

use super::runs;
use super::{JobError, RunRecord};
use crate::clock::Clock;
use crate::metrics::Metrics;
use crate::store::Db;

/// How long a run's claim holds without renewal; renewed after every page,
/// so a live run never lapses and a dead one is taken over after this.
pub(super) const RUN_LEASE: Duration = Duration::minutes(10);

/// The shared parts every job body reads.
pub(super) struct JobContext {
    pub(super) db: Db,
    pub(super) tree: LoanTree,
    pub(super) mailer: Arc<dyn Mailer>,
    pub(super) clock: Clock,
    pub(super) metrics: Metrics,
    /// Loans or reminders worked on at once.
    pub(super) parallelism: usize,
    /// This instance, as recorded in `job_runs.owner`.
    pub(super) owner: String,
    /// One per job in [`JobName::ALL`] order: runs of a job in this instance take turns.
    pub(super) turns: [Mutex<()>; 2],
    /// Set by [`JobRunner::interrupt`]: runs stop after their current page.
    pub(super) stopping: AtomicBool,
    /// In a cluster: a loan owned elsewhere is assessed by its owner.
    pub(super) cluster: Option<crate::cluster::ClusterNode>,
}

/// A run in progress: what it works with and its counts so far.
pub(super) struct Progress<'a> {
    /// The runner's shared parts.
    pub(super) runner: &'a JobContext,
    /// The run, counts updated as pages finish.
    pub(super) record: RunRecord,
}

impl Progress<'_> {
    /// Counts a finished page, logs progress, renews the lease; stops the run
    /// if it is no longer ours or the process is stopping.
    pub(super) async fn page_done(&mut self, processed: u64, errors: u64) -> Result<(), JobError> {
        let (job, as_of) = (self.record.job, self.record.as_of);
        self.record.processed += processed;
        self.record.errors += errors;
        tracing::info!(%job, %as_of, processed = self.record.processed, errors = self.record.errors, "job run progress");
        let lease_until = self.runner.clock.now() + RUN_LEASE;
        if !runs::renew(&self.runner.db, &self.record, lease_until).await? {
            return Err(JobError::LostLease { job, as_of });
        }
        if self.runner.stopping.load(Ordering::SeqCst) {
            return Err(JobError::Interrupted { job, as_of });
        }
        Ok(())
    }
}

//! The job scheduler, a service supervised by the actor tree's root.
//!
//! ```text
//! RootSupervisor             re-spawns a failed scheduler within its budget
//! └── scheduler              owns the in-memory tokio-cron-scheduler;
//!                            cron fire / start-up → catch-up task per job
//! ```
//!
//! A cron fire only sends `Due(job)`; the run loop starts
//! [`JobRunner::catch_up`] in a task (one at a time per job, a fire during a
//! run queues one more), so the loop stays responsive. Exclusivity and "once
//! per date" are the runner's, not the cron library's (its stores do no
//! locking). After a panic the cron timer of the failed run is shut down,
//! its catch-up tasks finish on their own (the runner's per-job lock makes
//! the next run's catch-up wait for them) and the fresh run catches up at
//! once, so no date is lost and none runs twice.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use actors::store::BoxFuture;
use actors::tree::{Service, ServiceContext};
use chrono_tz::Tz;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_cron_scheduler::{Job, JobScheduler, JobSchedulerError};

use super::{JobName, JobRunner};
use crate::settings::jobs::{CronSchedule, JobSettings};

/// The scheduler's name under the supervision tree.
pub const SCHEDULER_SERVICE: &str = "scheduler";
/// Longest wait at shutdown for a run to reach the end of its current page.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// What the scheduler's loop is told.
#[derive(Debug)]
enum SchedulerMsg {
    /// The job's cron expression fired, or the scheduler started: run its due dates.
    Due(JobName),
    /// The job's catch-up task ended.
    Done(JobName),
}

/// The scheduler as a supervised service; its backlog is the catch-ups
/// running or queued.
pub struct SchedulerService {
    runner: JobRunner,
    /// The enabled jobs and when they run.
    schedules: Vec<(JobName, CronSchedule)>,
    /// The zone the cron expressions are read in.
    timezone: Tz,
    /// Catch-ups running or queued, as the current run last counted them.
    backlog: Arc<AtomicU64>,
}

impl SchedulerService {
    /// The scheduler for the enabled jobs of `settings`; missed days are
    /// caught up as soon as it runs.
    pub fn new(runner: JobRunner, settings: &JobSettings) -> Self {
        let schedules = [
            (JobName::Overdue, &settings.overdue_cron),
            (JobName::PaymentReminders, &settings.reminder_cron),
        ]
        .into_iter()
        .filter_map(|(job, schedule)| schedule.clone().map(|schedule| (job, schedule)))
        .collect();
        Self {
            runner,
            schedules,
            timezone: settings.business_timezone,
            backlog: Arc::default(),
        }
    }
}

impl Service for SchedulerService {
    fn name(&self) -> &str {
        SCHEDULER_SERVICE
    }

    fn run(&self, context: ServiceContext) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let (sender, mut messages) = mpsc::unbounded_channel();
            let _cron = if self.schedules.is_empty() {
                None
            } else {
                match start_cron(&sender, &self.schedules, self.timezone).await {
                    Ok(cron) => Some(cron),
                    // A panic, so the root restarts it within its budget.
                    Err(error) => panic!("starting the cron timer failed: {error}"),
                }
            };
            // Catch up whatever was missed while no instance ran.
            for (job, _) in &self.schedules {
                let _ = sender.send(SchedulerMsg::Due(*job));
            }
            let mut running: HashMap<JobName, JoinHandle<()>> = HashMap::new();
            let mut again: HashSet<JobName> = HashSet::new();
            let mut stopping = context.stopping();
            loop {
                let message = tokio::select! {
                    biased;
                    _ = stopping.changed() => break,
                    message = messages.recv() => message,
                };
                let Some(message) = message else { break };
                context.fault_point();
                match message {
                    SchedulerMsg::Due(job) if running.contains_key(&job) => {
                        again.insert(job);
                    }
                    SchedulerMsg::Due(job) => {
                        if let Some(task) = self.catch_up(job, &sender) {
                            running.insert(job, task);
                        }
                    }
                    SchedulerMsg::Done(job) => {
                        running.remove(&job);
                        if again.remove(&job) {
                            let _ = sender.send(SchedulerMsg::Due(job));
                        }
                    }
                }
                let queued = running.len() + again.len();
                self.backlog.store(queued as u64, Ordering::Relaxed);
            }
            for (job, task) in running.drain() {
                if tokio::time::timeout(STOP_TIMEOUT, task).await.is_err() {
                    tracing::warn!(%job, "a job run did not stop in time; the next start resumes it");
                }
            }
            self.backlog.store(0, Ordering::Relaxed);
        })
    }

    fn backlog(&self) -> BoxFuture<'_, Option<u64>> {
        Box::pin(async move { Some(self.backlog.load(Ordering::Relaxed)) })
    }
}

impl SchedulerService {
    /// Starts `job`'s catch-up in a task that reports `Done` when it ends.
    fn catch_up(
        &self,
        job: JobName,
        sender: &mpsc::UnboundedSender<SchedulerMsg>,
    ) -> Option<JoinHandle<()>> {
        let (_, schedule) = self.schedules.iter().find(|(each, _)| *each == job)?;
        let (runner, schedule, sender) = (self.runner.clone(), schedule.clone(), sender.clone());
        Some(tokio::spawn(async move {
            match runner.catch_up(job, &schedule).await {
                Ok(runs) => tracing::debug!(%job, runs, "scheduled catch-up done"),
                Err(error) => {
                    tracing::error!(%job, %error, "scheduled job run failed; the next fire retries")
                }
            }
            // A failed scheduler's loop is gone; its successor catches up.
            let _ = sender.send(SchedulerMsg::Done(job));
        }))
    }
}

/// The cron timer of one run; shut down when the run ends, however it ends.
struct CronTimer(Option<JobScheduler>);

impl Drop for CronTimer {
    fn drop(&mut self) {
        if let Some(mut cron) = self.0.take() {
            tokio::spawn(async move {
                if let Err(error) = cron.shutdown().await {
                    tracing::warn!(%error, "stopping the cron timer failed");
                }
            });
        }
    }
}

/// Starts the cron timer: each enabled job's expression sends `Due(job)`.
async fn start_cron(
    sender: &mpsc::UnboundedSender<SchedulerMsg>,
    schedules: &[(JobName, CronSchedule)],
    timezone: Tz,
) -> Result<CronTimer, JobSchedulerError> {
    let cron = JobScheduler::new().await?;
    let timer = CronTimer(Some(cron.clone()));
    for (job, schedule) in schedules {
        let (job, sender) = (*job, sender.clone());
        let fire = Job::new_async_tz(schedule.expression(), timezone, move |_id, _lock| {
            let sender = sender.clone();
            Box::pin(async move {
                // A stopped scheduler ignores fires; its replacement catches up.
                let _ = sender.send(SchedulerMsg::Due(job));
            })
        })?;
        cron.add(fire).await?;
        tracing::info!(%job, cron = schedule.expression(), %timezone, "job scheduled");
    }
    cron.start().await?;
    Ok(timer)
}

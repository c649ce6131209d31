//! The scheduler actor and its supervisor.
//!
//! ```text
//! JobsSupervisor             re-spawns a failed scheduler (bounded)
//! └── Scheduler              owns the in-memory tokio-cron-scheduler;
//!                            cron fire / start-up → catch-up task per job
//! ```
//!
//! A cron fire only sends `Due(job)`; the actor runs [`JobRunner::catch_up`]
//! in a task (one at a time per job, a fire during a run queues one more), so
//! its mailbox stays responsive. Exclusivity and "once per date" are the
//! runner's, not the cron library's (its stores do no locking).

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use chrono_tz::Tz;
use ractor::{Actor, ActorProcessingErr, ActorRef, SpawnErr, SupervisionEvent};
use tokio::task::JoinHandle;
use tokio_cron_scheduler::{Job, JobScheduler};

use super::{JobName, JobRunner};
use crate::settings::jobs::{CronSchedule, JobSettings};

/// Scheduler re-spawns allowed before the jobs are left off (logged as an error).
const MAX_SCHEDULER_RESTARTS: u32 = 5;
/// Longest wait at shutdown for a run to reach the end of its current page.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// What the scheduler actor is told.
#[derive(Debug)]
pub enum SchedulerMsg {
    /// The job's cron expression fired, or the scheduler started: run its due dates.
    Due(JobName),
    /// The job's catch-up task ended.
    Done(JobName),
}

/// What a scheduler is spawned from (kept by the supervisor for re-spawns).
#[derive(Clone)]
struct SchedulerArgs {
    /// Runs the jobs.
    runner: JobRunner,
    /// The enabled jobs and when they run.
    schedules: Vec<(JobName, CronSchedule)>,
    /// The zone the cron expressions are read in.
    timezone: Tz,
}

/// The scheduler's state.
struct SchedulerState {
    /// Its spawn arguments.
    args: SchedulerArgs,
    /// The cron timer (`None` when no job is enabled).
    cron: Option<JobScheduler>,
    /// Catch-up tasks in flight, one per job at most.
    running: HashMap<JobName, JoinHandle<()>>,
    /// Jobs that fired again while running: run once more when done.
    again: HashSet<JobName>,
}

/// The scheduler actor (behaviour only).
struct Scheduler;

impl Actor for Scheduler {
    type Msg = SchedulerMsg;
    type State = SchedulerState;
    type Arguments = SchedulerArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<SchedulerMsg>,
        args: SchedulerArgs,
    ) -> Result<SchedulerState, ActorProcessingErr> {
        let cron = if args.schedules.is_empty() {
            None
        } else {
            Some(start_cron(&myself, &args).await?)
        };
        // Catch up whatever was missed while no instance ran.
        for (job, _) in &args.schedules {
            myself.cast(SchedulerMsg::Due(*job))?;
        }
        Ok(SchedulerState {
            args,
            cron,
            running: HashMap::new(),
            again: HashSet::new(),
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<SchedulerMsg>,
        message: SchedulerMsg,
        state: &mut SchedulerState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            SchedulerMsg::Due(job) if state.running.contains_key(&job) => {
                state.again.insert(job);
            }
            SchedulerMsg::Due(job) => {
                let Some((_, schedule)) =
                    state.args.schedules.iter().find(|(each, _)| *each == job)
                else {
                    return Ok(());
                };
                let (runner, schedule) = (state.args.runner.clone(), schedule.clone());
                let task = tokio::spawn(async move {
                    match runner.catch_up(job, &schedule).await {
                        Ok(runs) => tracing::debug!(%job, runs, "scheduled catch-up done"),
                        Err(error) => {
                            tracing::error!(%job, %error, "scheduled job run failed; the next fire retries")
                        }
                    }
                    let _ = myself.cast(SchedulerMsg::Done(job));
                });
                state.running.insert(job, task);
            }
            SchedulerMsg::Done(job) => {
                state.running.remove(&job);
                if state.again.remove(&job) {
                    myself.cast(SchedulerMsg::Due(job))?;
                }
            }
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<SchedulerMsg>,
        state: &mut SchedulerState,
    ) -> Result<(), ActorProcessingErr> {
        if let Some(mut cron) = state.cron.take()
            && let Err(error) = cron.shutdown().await
        {
            tracing::warn!(%error, "stopping the cron timer failed");
        }
        for (job, task) in state.running.drain() {
            if tokio::time::timeout(STOP_TIMEOUT, task).await.is_err() {
                tracing::warn!(%job, "a job run did not stop in time; the next start resumes it");
            }
        }
        Ok(())
    }
}

/// Starts the cron timer: each enabled job's expression casts `Due(job)`.
async fn start_cron(
    myself: &ActorRef<SchedulerMsg>,
    args: &SchedulerArgs,
) -> Result<JobScheduler, ActorProcessingErr> {
    let cron = JobScheduler::new().await?;
    for (job, schedule) in &args.schedules {
        let (job, me) = (*job, myself.clone());
        let fire = Job::new_async_tz(schedule.expression(), args.timezone, move |_id, _lock| {
            let me = me.clone();
            Box::pin(async move {
                // A stopped scheduler ignores fires; its replacement catches up.
                let _ = me.cast(SchedulerMsg::Due(job));
            })
        })?;
        cron.add(fire).await?;
        tracing::info!(%job, cron = schedule.expression(), timezone = %args.timezone, "job scheduled");
    }
    cron.start().await?;
    Ok(cron)
}

/// The supervisor's state.
struct SupervisorState {
    /// What the scheduler is (re-)spawned from.
    args: SchedulerArgs,
    /// The live scheduler.
    scheduler: ActorRef<SchedulerMsg>,
    /// Re-spawns so far.
    restarts: u32,
}

/// Supervises the scheduler (behaviour only).
struct JobsSupervisor;

impl Actor for JobsSupervisor {
    type Msg = ();
    type State = SupervisorState;
    type Arguments = SchedulerArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<()>,
        args: SchedulerArgs,
    ) -> Result<SupervisorState, ActorProcessingErr> {
        let (scheduler, _) =
            Actor::spawn_linked(None, Scheduler, args.clone(), myself.get_cell()).await?;
        Ok(SupervisorState {
            args,
            scheduler,
            restarts: 0,
        })
    }

    /// Overridden: ractor's default would stop the supervisor with its child.
    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<()>,
        event: SupervisionEvent,
        state: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        let SupervisionEvent::ActorFailed(cell, error) = event else {
            return Ok(());
        };
        if cell.get_id() != state.scheduler.get_id() {
            return Ok(());
        }
        if state.restarts >= MAX_SCHEDULER_RESTARTS {
            tracing::error!(%error, "the job scheduler keeps failing; scheduled jobs are off until restart");
            return Ok(());
        }
        state.restarts += 1;
        tracing::error!(%error, restarts = state.restarts, "the job scheduler failed; re-spawning it");
        let (scheduler, _) =
            Actor::spawn_linked(None, Scheduler, state.args.clone(), myself.get_cell()).await?;
        state.scheduler = scheduler;
        Ok(())
    }
}

/// The running scheduler, as the application holds it.
pub struct JobScheduling {
    supervisor: ActorRef<()>,
    runner: JobRunner,
}

impl JobScheduling {
    /// Starts the supervisor and the scheduler for the enabled jobs; missed
    /// days are caught up right away.
    pub async fn start(runner: JobRunner, settings: &JobSettings) -> Result<Self, SpawnErr> {
        let schedules = [
            (JobName::Overdue, &settings.overdue_cron),
            (JobName::PaymentReminders, &settings.reminder_cron),
        ]
        .into_iter()
        .filter_map(|(job, schedule)| schedule.clone().map(|schedule| (job, schedule)))
        .collect();
        let args = SchedulerArgs {
            runner: runner.clone(),
            schedules,
            timezone: settings.business_timezone,
        };
        let (supervisor, _) = Actor::spawn(None, JobsSupervisor, args).await?;
        Ok(Self { supervisor, runner })
    }

    /// Stops the timers; runs in progress stop after their current page
    /// (their runs stay unfinished and are resumed by the next start).
    pub async fn stop(self) {
        self.runner.interrupt();
        let _ = self
            .supervisor
            .stop_children_and_wait(None, Some(STOP_TIMEOUT))
            .await;
        let _ = self
            .supervisor
            .stop_and_wait(None, Some(STOP_TIMEOUT))
            .await;
    }
}

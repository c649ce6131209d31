//! The actor that runs one service's work, and the books the root keeps on
//! every service (shared with the [`super::LoanTree`] handle, which reads
//! them without asking any actor).

use std::sync::{Arc, Mutex, MutexGuard};

use ractor::{Actor, ActorCell, ActorId, ActorProcessingErr, ActorRef, SpawnErr};
use tokio::sync::watch;
use tokio::time::Instant;

use super::budget::{AfterFailure, RestartHistory};
use super::service::{
    FaultSwitch, RestartBudget, Service, ServiceContext, ServiceSnapshot, ServiceState,
};

/// The service actor's one message: run the work (sent to itself on start).
#[derive(Debug)]
pub(crate) enum ServiceMsg {
    /// Await the service's run.
    Run,
}

/// Runs one service (behaviour only).
pub(crate) struct ServiceActor;

impl Actor for ServiceActor {
    type Msg = ServiceMsg;
    type State = (Arc<dyn Service>, ServiceContext);
    type Arguments = (Arc<dyn Service>, ServiceContext);

    async fn pre_start(
        &self,
        _myself: ActorRef<ServiceMsg>,
        args: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(args)
    }

    async fn post_start(
        &self,
        myself: ActorRef<ServiceMsg>,
        _state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        myself.cast(ServiceMsg::Run)?;
        Ok(())
    }

    /// The run is awaited here, so ractor catches a panic in it and reports
    /// the actor failed to the root.
    async fn handle(
        &self,
        myself: ActorRef<ServiceMsg>,
        ServiceMsg::Run: ServiceMsg,
        (service, context): &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        if !context.stop_requested() {
            service.run(context.clone()).await;
        }
        if context.stop_requested() {
            myself.stop(None);
            Ok(())
        } else {
            Err(format!(
                "service {} ended without being asked to stop",
                service.name()
            )
            .into())
        }
    }
}

/// One registered service and what the root knows of it.
pub(crate) struct ServiceEntry {
    pub(crate) service: Arc<dyn Service>,
    pub(crate) budget: RestartBudget,
    pub(crate) state: ServiceState,
    pub(crate) restarts: u64,
    pub(crate) history: RestartHistory,
    pub(crate) last_failure: Option<String>,
    pub(crate) fault: Arc<FaultSwitch>,
    pub(crate) stop: watch::Sender<bool>,
    /// Its current actor (`None` between a failure and the re-spawn).
    pub(crate) actor: Option<ActorCell>,
}

impl ServiceEntry {
    pub(crate) fn new(service: Arc<dyn Service>, budget: RestartBudget) -> Self {
        Self {
            service,
            budget,
            state: ServiceState::Running,
            restarts: 0,
            history: RestartHistory::default(),
            last_failure: None,
            fault: Arc::default(),
            stop: watch::channel(false).0,
            actor: None,
        }
    }

    fn name(&self) -> &str {
        self.service.name()
    }

    fn snapshot(&mut self, now: Instant) -> ServiceSnapshot {
        ServiceSnapshot {
            name: self.name().to_owned(),
            state: self.state,
            restarts: self.restarts,
            failures_in_window: self.history.in_window(now, self.budget.window),
            budget: self.budget,
            last_failure: self.last_failure.clone(),
            backlog: None,
        }
    }
}

/// What to do after a service's actor failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ServiceAfterFailure {
    /// Re-spawn it after this pause.
    RestartAfter(std::time::Duration),
    /// Leave it down (past its budget, or it was stopping anyway).
    StayDown,
}

/// Every service and the loan supervisor's restarts, behind one lock.
#[derive(Default)]
pub(crate) struct ServiceBook {
    pub(crate) entries: Vec<ServiceEntry>,
    pub(crate) loan_supervisor_restarts: u32,
    /// Set when the tree stops: nothing new is registered or re-spawned.
    pub(crate) closed: bool,
}

/// The book as the root and the handle share it.
pub(crate) type SharedBook = Arc<Mutex<ServiceBook>>;

pub(crate) fn lock(book: &SharedBook) -> MutexGuard<'_, ServiceBook> {
    // Every update leaves the book consistent; a poisoned lock is still usable.
    book.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl ServiceBook {
    pub(crate) fn by_name(&mut self, name: &str) -> Option<&mut ServiceEntry> {
        self.entries.iter_mut().find(|entry| entry.name() == name)
    }

    pub(crate) fn by_actor(&mut self, id: ActorId) -> Option<&mut ServiceEntry> {
        self.entries
            .iter_mut()
            .find(|entry| entry.actor.as_ref().is_some_and(|cell| cell.get_id() == id))
    }

    /// Snapshots without backlogs, in registration order.
    pub(crate) fn snapshots(&mut self, now: Instant) -> Vec<ServiceSnapshot> {
        self.entries
            .iter_mut()
            .map(|entry| entry.snapshot(now))
            .collect()
    }
}

impl ServiceEntry {
    /// Books a failure of the current actor at `now` and decides what follows.
    pub(crate) fn on_failure(&mut self, now: Instant, error: String) -> ServiceAfterFailure {
        self.actor = None;
        self.last_failure = Some(error);
        if matches!(self.state, ServiceState::Stopping | ServiceState::Stopped) {
            self.state = ServiceState::Stopped;
            return ServiceAfterFailure::StayDown;
        }
        match self
            .history
            .record(now, self.budget.max_restarts, self.budget.window)
        {
            AfterFailure::Restart => {
                self.state = ServiceState::Restarting;
                let failures = self.history.in_window(now, self.budget.window);
                ServiceAfterFailure::RestartAfter(self.budget.pause(failures))
            }
            AfterFailure::Block => {
                self.state = ServiceState::Failed;
                ServiceAfterFailure::StayDown
            }
        }
    }
}

/// Spawns a fresh actor for `entry`'s service, linked to `root`.
pub(crate) async fn spawn_service(
    service: Arc<dyn Service>,
    stop: watch::Receiver<bool>,
    fault: Arc<FaultSwitch>,
    root: ActorCell,
) -> Result<ActorCell, SpawnErr> {
    let context = ServiceContext::new(stop, fault);
    let (actor, _join) = Actor::spawn_linked(None, ServiceActor, (service, context), root).await?;
    Ok(actor.get_cell())
}

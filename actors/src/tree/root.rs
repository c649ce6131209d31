//! The root supervisor: owns the long-lived children of the tree — the loan
//! supervisor and the services registered with [`super::LoanTree::supervise`]
//! (consumers, relay, scheduler) — and re-spawns one that fails.
//!
//! The loan supervisor is re-spawned at once, at most
//! [`MAX_SUPERVISOR_RESTARTS`] times. A service is re-spawned after a pause
//! that doubles with each failure in its budget's window; the failure past
//! its budget leaves it down (`Failed`), visible in the snapshot.

use std::sync::{Arc, RwLock};

use ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef, SpawnErr, SupervisionEvent};
use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::store::LoanStore;

use super::config::{MAX_SUPERVISOR_RESTARTS, TreeConfig};
use super::ownership::OwnershipSlot;
use super::service::{RestartBudget, Service, ServiceError, ServiceState};
use super::service_actor::{ServiceAfterFailure, ServiceEntry, SharedBook, lock, spawn_service};
use super::supervisor::{LoanSupervisor, SupervisorArgs, SupervisorMsg};
use super::types::Counters;

/// Where the handle finds the current loan supervisor (replaced when it is re-spawned).
pub(crate) type SupervisorSlot = Arc<RwLock<Option<ActorRef<SupervisorMsg>>>>;

/// The root's messages: services join, and failed ones come back.
pub(crate) enum RootMsg {
    /// Register and start a service.
    Supervise {
        /// The service.
        service: Arc<dyn Service>,
        /// How often it may fail.
        budget: RestartBudget,
        /// Answered once its actor is spawned.
        reply: oneshot::Sender<Result<(), ServiceError>>,
    },
    /// Re-spawn the named service after its pause (sent by a timer).
    Respawn(String),
}

impl std::fmt::Debug for RootMsg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Supervise { service, .. } => write!(f, "Supervise({})", service.name()),
            Self::Respawn(name) => write!(f, "Respawn({name})"),
        }
    }
}

/// What the root starts from.
pub(crate) struct RootArgs {
    /// The tree's settings.
    pub(crate) config: TreeConfig,
    /// The loans' store.
    pub(crate) store: Arc<dyn LoanStore>,
    /// The tree's counters.
    pub(crate) counters: Arc<Counters>,
    /// Published current loan supervisor.
    pub(crate) slot: SupervisorSlot,
    /// The services' books.
    pub(crate) book: SharedBook,
    /// Which loans this instance owns.
    pub(crate) ownership: OwnershipSlot,
}

/// The root's children.
pub(crate) struct RootChildren {
    /// Routes, passivates and restarts loan actors.
    pub(crate) loans: ActorRef<SupervisorMsg>,
}

/// The root's state.
pub(crate) struct RootState {
    /// What children are spawned from.
    pub(crate) args: RootArgs,
    /// The live children.
    pub(crate) children: RootChildren,
    /// Loan supervisor re-spawns so far (at most [`MAX_SUPERVISOR_RESTARTS`]).
    pub(crate) restarts: u32,
}

/// The root supervisor (behaviour only).
pub(crate) struct RootSupervisor;

async fn spawn_loan_supervisor(
    args: &RootArgs,
    root: ActorCell,
) -> Result<ActorRef<SupervisorMsg>, SpawnErr> {
    let supervisor_args = SupervisorArgs {
        config: args.config.clone(),
        store: Arc::clone(&args.store),
        counters: Arc::clone(&args.counters),
        ownership: args.ownership.clone(),
    };
    let (loans, _join) = Actor::spawn_linked(None, LoanSupervisor, supervisor_args, root).await?;
    *args
        .slot
        .write()
        .unwrap_or_else(|poison| poison.into_inner()) = Some(loans.clone());
    Ok(loans)
}

async fn spawn_children(args: &RootArgs, root: ActorCell) -> Result<RootChildren, SpawnErr> {
    Ok(RootChildren {
        loans: spawn_loan_supervisor(args, root).await?,
    })
}

impl RootState {
    /// Registers `service` and spawns its actor.
    async fn supervise(
        &mut self,
        root: ActorCell,
        service: Arc<dyn Service>,
        budget: RestartBudget,
    ) -> Result<(), ServiceError> {
        let name = service.name().to_owned();
        let (stop, fault) = {
            let mut book = lock(&self.args.book);
            if book.closed {
                return Err(ServiceError::ShuttingDown);
            }
            if book.by_name(&name).is_some() {
                return Err(ServiceError::NameTaken(name));
            }
            let entry = ServiceEntry::new(Arc::clone(&service), budget);
            let handles = (entry.stop.subscribe(), Arc::clone(&entry.fault));
            book.entries.push(entry);
            handles
        };
        match spawn_service(service, stop, fault, root).await {
            Ok(cell) => {
                if let Some(entry) = lock(&self.args.book).by_name(&name) {
                    entry.actor = Some(cell);
                }
                tracing::info!(service = %name, "service started");
                Ok(())
            }
            Err(error) => {
                lock(&self.args.book)
                    .entries
                    .retain(|entry| entry.service.name() != name);
                Err(ServiceError::Spawn {
                    name,
                    cause: error.to_string(),
                })
            }
        }
    }

    /// Spawns a fresh actor for a service waiting to be restarted.
    async fn respawn(&mut self, root: ActorCell, name: &str) -> Result<(), ActorProcessingErr> {
        let (service, stop, fault) = {
            let mut book = lock(&self.args.book);
            let closed = book.closed;
            let Some(entry) = book.by_name(name) else {
                return Ok(());
            };
            if entry.state != ServiceState::Restarting || closed {
                return Ok(());
            }
            (
                Arc::clone(&entry.service),
                entry.stop.subscribe(),
                Arc::clone(&entry.fault),
            )
        };
        let cell = spawn_service(service, stop, fault, root).await?;
        let mut book = lock(&self.args.book);
        if let Some(entry) = book.by_name(name) {
            entry.actor = Some(cell);
            entry.state = ServiceState::Running;
            entry.restarts += 1;
            tracing::warn!(service = %name, restarts = entry.restarts, "service re-spawned");
        }
        Ok(())
    }

    /// Books a service actor's failure; schedules its re-spawn within budget.
    fn service_failed(&mut self, root: &ActorRef<RootMsg>, cell: &ActorCell, error: String) {
        let mut book = lock(&self.args.book);
        let Some(entry) = book.by_actor(cell.get_id()) else {
            return;
        };
        let name = entry.service.name().to_owned();
        match entry.on_failure(Instant::now(), error.clone()) {
            ServiceAfterFailure::RestartAfter(pause) => {
                tracing::error!(service = %name, %error, pause_ms = pause.as_millis() as u64, "service failed; restarting it");
                // The timer task is detached: a stopped root just drops the message.
                drop(root.send_after(pause, move || RootMsg::Respawn(name)));
            }
            ServiceAfterFailure::StayDown if entry.state == ServiceState::Failed => {
                tracing::error!(service = %name, %error, "service failed past its restart budget; it stays down");
            }
            ServiceAfterFailure::StayDown => {
                tracing::warn!(service = %name, %error, "service failed while stopping");
            }
        }
    }

    fn service_terminated(&mut self, cell: &ActorCell) {
        let mut book = lock(&self.args.book);
        if let Some(entry) = book.by_actor(cell.get_id()) {
            entry.actor = None;
            entry.state = ServiceState::Stopped;
        }
    }
}

impl Actor for RootSupervisor {
    type Msg = RootMsg;
    type State = RootState;
    type Arguments = RootArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<RootMsg>,
        args: RootArgs,
    ) -> Result<RootState, ActorProcessingErr> {
        let children = spawn_children(&args, myself.get_cell()).await?;
        Ok(RootState {
            args,
            children,
            restarts: 0,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<RootMsg>,
        message: RootMsg,
        state: &mut RootState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            RootMsg::Supervise {
                service,
                budget,
                reply,
            } => {
                let result = state.supervise(myself.get_cell(), service, budget).await;
                let _ = reply.send(result);
            }
            RootMsg::Respawn(name) => {
                if let Err(error) = state.respawn(myself.get_cell(), &name).await {
                    // Could not even spawn: count it as one more failure.
                    tracing::error!(service = %name, %error, "re-spawning a service failed");
                    let mut book = lock(&state.args.book);
                    if let Some(entry) = book.by_name(&name) {
                        entry.state = ServiceState::Failed;
                        entry.last_failure = Some(error.to_string());
                    }
                }
            }
        }
        Ok(())
    }

    /// Overridden: ractor's default stops the root when any child exits.
    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<RootMsg>,
        event: SupervisionEvent,
        state: &mut RootState,
    ) -> Result<(), ActorProcessingErr> {
        let (cell, error) = match event {
            SupervisionEvent::ActorFailed(cell, error) => (cell, error),
            SupervisionEvent::ActorTerminated(cell, _, _) => {
                state.service_terminated(&cell);
                return Ok(());
            }
            _ => return Ok(()),
        };
        if cell.get_id() != state.children.loans.get_id() {
            state.service_failed(&myself, &cell, error.to_string());
            return Ok(());
        }
        tracing::error!(%error, "loan supervisor failed");
        if state.restarts >= MAX_SUPERVISOR_RESTARTS {
            *state
                .args
                .slot
                .write()
                .unwrap_or_else(|poison| poison.into_inner()) = None;
            myself.stop(Some("loan supervisor keeps failing".to_owned()));
            return Ok(());
        }
        state.restarts += 1;
        lock(&state.args.book).loan_supervisor_restarts = state.restarts;
        // Its loan actors were linked to it; stop them so no orphan keeps a loan.
        cell.stop_children(Some("supervisor failed".to_owned()));
        state.children.loans = spawn_loan_supervisor(&state.args, myself.get_cell()).await?;
        Ok(())
    }
}

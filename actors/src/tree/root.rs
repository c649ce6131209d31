//! The root supervisor: owns the long-lived children of the tree (today the loan
//! supervisor; later the notification, audit and scheduler actors) and re-spawns
//! one that fails.
//!
//! To add a child: a field in [`RootChildren`], a spawn in [`spawn_children`], and
//! a branch in [`RootSupervisor::handle_supervisor_evt`] that re-spawns it.

use std::sync::{Arc, RwLock};

use ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef, SpawnErr, SupervisionEvent};

use crate::store::LoanStore;

use super::config::{MAX_SUPERVISOR_RESTARTS, TreeConfig};
use super::supervisor::{LoanSupervisor, SupervisorArgs, SupervisorMsg};
use super::types::Counters;

/// Where the handle finds the current loan supervisor (replaced when it is re-spawned).
pub(crate) type SupervisorSlot = Arc<RwLock<Option<ActorRef<SupervisorMsg>>>>;

/// The root has no messages of its own yet: it only supervises.
#[derive(Debug)]
pub(crate) enum RootMsg {}

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
        _myself: ActorRef<RootMsg>,
        message: RootMsg,
        _state: &mut RootState,
    ) -> Result<(), ActorProcessingErr> {
        match message {}
    }

    /// Overridden: ractor's default stops the root when any child exits.
    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<RootMsg>,
        event: SupervisionEvent,
        state: &mut RootState,
    ) -> Result<(), ActorProcessingErr> {
        let SupervisionEvent::ActorFailed(cell, error) = event else {
            return Ok(());
        };
        if cell.get_id() != state.children.loans.get_id() {
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
        // Its loan actors were linked to it; stop them so no orphan keeps a loan.
        cell.stop_children(Some("supervisor failed".to_owned()));
        state.children.loans = spawn_loan_supervisor(&state.args, myself.get_cell()).await?;
        Ok(())
    }
}

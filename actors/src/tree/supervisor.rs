//! The loan supervisor: routes each call to its loan's actor, spawning it on first
//! use, passivates idle actors, and restarts failed ones within a restart budget.
//!
//! Every call goes through here, so routing, passivation and restarts never race:
//! once an actor is told to passivate it gets no new command (a later command
//! spawns a fresh actor, which loads from the store; the store's version check
//! orders the two should they overlap).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

use chrono::{DateTime, Utc};
use ractor::concurrency::JoinHandle;
use ractor::{Actor, ActorId, ActorProcessingErr, ActorRef, SupervisionEvent};
use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::core::{Loan, LoanId, UserId};
use crate::store::LoanStore;

use super::budget::RestartHistory;
use super::config::TreeConfig;
use super::loan_actor::{Inspect, LoanMsg, Look, NewLoan, Queued, Reply, Seen};
use super::ownership::OwnershipSlot;
use super::snapshot::snapshot_of;
use super::types::{CommandOutcome, Counters, LoanRequest, TreeSnapshot, bump};

/// Messages of the loan supervisor.
#[derive(Debug)]
pub(crate) enum SupervisorMsg {
    /// Route a command to its loan's actor.
    Execute {
        /// The loan.
        loan_id: LoanId,
        /// The command.
        request: LoanRequest,
        /// The caller.
        reply: Reply<CommandOutcome>,
    },
    /// Route the creation of a loan to the (new) actor of its id.
    Create {
        /// The loan, fresh from `Loan::apply_for`.
        loan: Loan,
        /// When it was applied for.
        now: DateTime<Utc>,
        /// Who applied.
        actor_id: Option<UserId>,
        /// The caller.
        reply: Reply<CommandOutcome>,
    },
    /// Route a read to its loan's actor.
    Inspect {
        /// The loan.
        loan_id: LoanId,
        /// What to compute from it.
        look: Look,
        /// When set, the answer if the loan has no live actor: none is spawned.
        if_not_live: Option<Seen>,
        /// The caller.
        reply: Reply<Seen>,
    },
    /// A loan actor's loan is gone (deleted): unlist that actor and passivate it.
    Gone {
        /// The loan.
        loan_id: LoanId,
        /// The actor that committed the deletion (a newer one is left alone).
        actor_id: ActorId,
    },
    /// Passivate idle actors and forget expired restart windows (sent by a timer).
    Sweep,
    /// Describe the tree.
    Snapshot(oneshot::Sender<TreeSnapshot>),
    /// Passivate the actors of loans this instance no longer owns; answer
    /// once none of them is running.
    PassivateUnowned(oneshot::Sender<()>),
    /// Passivate every actor, answer when all have stopped, refuse new calls.
    Shutdown(oneshot::Sender<()>),
    /// Test hook: make the loan's actor panic.
    #[cfg(any(test, feature = "test-hooks"))]
    InjectPanic {
        /// The loan.
        loan_id: LoanId,
        /// Dropped by the panic: the caller sees the failure.
        reply: Reply<()>,
    },
}

/// A routable loan actor.
pub(crate) struct LiveEntry {
    /// Its mailbox.
    pub(crate) actor: ActorRef<LoanMsg>,
    /// Commands routed to it and not yet answered.
    pub(crate) depth: Arc<AtomicUsize>,
    /// When a call was last routed to it: idleness is measured from here.
    pub(crate) last_routed: Instant,
}

/// What the loan supervisor starts from.
pub(crate) struct SupervisorArgs {
    /// The tree's settings.
    pub(crate) config: TreeConfig,
    /// Handed to every loan actor.
    pub(crate) store: Arc<dyn LoanStore>,
    /// The tree's counters.
    pub(crate) counters: Arc<Counters>,
    /// Which loans this instance owns.
    pub(crate) ownership: OwnershipSlot,
}

/// The loan supervisor's state.
pub(crate) struct SupervisorState {
    /// The tree's settings.
    pub(crate) config: TreeConfig,
    /// Handed to every loan actor.
    pub(crate) store: Arc<dyn LoanStore>,
    /// The tree's counters.
    pub(crate) counters: Arc<Counters>,
    /// Which loans this instance owns: no actor is spawned for another.
    pub(crate) ownership: OwnershipSlot,
    /// Routable actors by loan (at most `config.max_live_actors`).
    pub(crate) live: HashMap<LoanId, LiveEntry>,
    /// Every child not yet terminated, routable or stopping, by actor id.
    pub(crate) children: HashMap<ActorId, LoanId>,
    /// Recent failures per loan; entries are dropped once their window has passed.
    pub(crate) restarts: HashMap<LoanId, RestartHistory>,
    /// Who waits for the actors of unowned loans to stop.
    pub(crate) handoff_waiters: Vec<oneshot::Sender<()>>,
    /// Set by `Shutdown`: who waits for the last child to stop.
    pub(crate) shutdown_waiters: Option<Vec<oneshot::Sender<()>>>,
    /// The sweep timer, stopped with the supervisor.
    pub(crate) sweep_timer: Option<JoinHandle<()>>,
}

/// The loan supervisor (behaviour only).
pub(crate) struct LoanSupervisor;

impl Actor for LoanSupervisor {
    type Msg = SupervisorMsg;
    type State = SupervisorState;
    type Arguments = SupervisorArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<SupervisorMsg>,
        args: SupervisorArgs,
    ) -> Result<SupervisorState, ActorProcessingErr> {
        Ok(SupervisorState {
            config: args.config,
            store: args.store,
            counters: args.counters,
            ownership: args.ownership,
            handoff_waiters: Vec::new(),
            live: HashMap::new(),
            children: HashMap::new(),
            restarts: HashMap::new(),
            shutdown_waiters: None,
            sweep_timer: None,
        })
    }

    async fn post_start(
        &self,
        myself: ActorRef<SupervisorMsg>,
        state: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        let period = state.config.sweep_interval;
        state.sweep_timer = Some(myself.send_interval(period, || SupervisorMsg::Sweep));
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<SupervisorMsg>,
        state: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        if let Some(timer) = state.sweep_timer.take() {
            timer.abort();
        }
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<SupervisorMsg>,
        message: SupervisorMsg,
        state: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            SupervisorMsg::Execute {
                loan_id,
                request,
                reply,
            } => {
                let to_actor = |reply, depth| {
                    LoanMsg::Command(Queued {
                        request,
                        reply,
                        _depth: depth,
                    })
                };
                state.deliver(&myself, loan_id, reply, to_actor).await;
            }
            SupervisorMsg::Create {
                loan,
                now,
                actor_id,
                reply,
            } => {
                let loan_id = loan.loan_id();
                let to_actor = |reply, depth| {
                    LoanMsg::Create(NewLoan {
                        loan,
                        now,
                        actor_id,
                        reply,
                        _depth: depth,
                    })
                };
                state.deliver(&myself, loan_id, reply, to_actor).await;
            }
            SupervisorMsg::Inspect {
                loan_id,
                look,
                if_not_live,
                reply,
            } => {
                if let Some(absent) = if_not_live
                    && !(state.live.contains_key(&loan_id) && state.ownership.owns(loan_id))
                {
                    let _ = reply.send(Ok(absent));
                    return Ok(());
                }
                let to_actor = |reply, depth| {
                    LoanMsg::Inspect(Inspect {
                        look,
                        reply,
                        _depth: depth,
                    })
                };
                state.deliver(&myself, loan_id, reply, to_actor).await;
            }
            SupervisorMsg::Gone { loan_id, actor_id } => state.unlist(loan_id, actor_id),
            SupervisorMsg::Sweep => state.sweep(),
            SupervisorMsg::Snapshot(reply) => {
                let _ = reply.send(snapshot_of(state, Instant::now()));
            }
            SupervisorMsg::Shutdown(reply) => state.begin_shutdown(reply),
            SupervisorMsg::PassivateUnowned(reply) => state.passivate_unowned(reply),
            #[cfg(any(test, feature = "test-hooks"))]
            SupervisorMsg::InjectPanic { loan_id, reply } => {
                let to_actor = |reply, _depth| LoanMsg::Panic(reply);
                state.deliver(&myself, loan_id, reply, to_actor).await;
            }
        }
        Ok(())
    }

    /// Overridden: ractor's default stops the supervisor when any child exits.
    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<SupervisorMsg>,
        event: SupervisionEvent,
        state: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        match event {
            SupervisionEvent::ActorTerminated(cell, _, _) => {
                state.forget_child(cell.get_id());
            }
            SupervisionEvent::ActorFailed(cell, error) => {
                bump(&state.counters.failed);
                if let Some(loan_id) = state.forget_child(cell.get_id()) {
                    state.on_failure(&myself, loan_id, &error.to_string()).await;
                }
            }
            SupervisionEvent::ActorStarted(_) | SupervisionEvent::ProcessGroupChanged(_) => {}
        }
        state.finish_shutdown_if_done();
        state.finish_handoff_if_done();
        Ok(())
    }
}

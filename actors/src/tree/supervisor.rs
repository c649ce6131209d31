//! The loan supervisor: routes each call to its loan's actor, spawning it on first
//! use, passivates idle actors, and restarts failed ones within a restart budget.
//!
//! Every call goes through here, so routing, passivation and restarts never race:
//! once an actor is told to passivate it gets no new command (a later command
//! spawns a fresh actor, which loads from the store; the store's version check
//! orders the two should they overlap).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use chrono::{DateTime, Utc};
use ractor::concurrency::JoinHandle;
use ractor::{Actor, ActorId, ActorProcessingErr, ActorRef, ActorStatus, SupervisionEvent};
use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::core::{Loan, LoanId, UserId};
use crate::store::LoanStore;

use super::budget::{AfterFailure, RestartHistory};
use super::config::TreeConfig;
use super::error::TreeError;
use super::loan_actor::{DepthGuard, LoanActor, LoanActorArgs, LoanMsg, NewLoan, Queued, Reply};
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
    /// Passivate idle actors and forget expired restart windows (sent by a timer).
    Sweep,
    /// Describe the tree.
    Snapshot(oneshot::Sender<TreeSnapshot>),
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
}

/// The loan supervisor's state.
pub(crate) struct SupervisorState {
    /// The tree's settings.
    pub(crate) config: TreeConfig,
    /// Handed to every loan actor.
    pub(crate) store: Arc<dyn LoanStore>,
    /// The tree's counters.
    pub(crate) counters: Arc<Counters>,
    /// Routable actors by loan (at most `config.max_live_actors`).
    pub(crate) live: HashMap<LoanId, LiveEntry>,
    /// Every child not yet terminated, routable or stopping, by actor id.
    pub(crate) children: HashMap<ActorId, LoanId>,
    /// Recent failures per loan; entries are dropped once their window has passed.
    pub(crate) restarts: HashMap<LoanId, RestartHistory>,
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
            } => match state.route(&myself, loan_id).await {
                Ok((actor, depth)) => {
                    let queued = Queued {
                        request,
                        reply,
                        _depth: depth,
                    };
                    // A failed send drops the reply: the caller sees `ActorFailed`.
                    let _ = actor.cast(LoanMsg::Command(queued));
                }
                Err(error) => {
                    let _ = reply.send(Err(error));
                }
            },
            SupervisorMsg::Create {
                loan,
                now,
                actor_id,
                reply,
            } => match state.route(&myself, loan.loan_id()).await {
                Ok((actor, depth)) => {
                    let new_loan = NewLoan {
                        loan,
                        now,
                        actor_id,
                        reply,
                        _depth: depth,
                    };
                    let _ = actor.cast(LoanMsg::Create(new_loan));
                }
                Err(error) => {
                    let _ = reply.send(Err(error));
                }
            },
            SupervisorMsg::Sweep => state.sweep(),
            SupervisorMsg::Snapshot(reply) => {
                let _ = reply.send(snapshot_of(state, Instant::now()));
            }
            SupervisorMsg::Shutdown(reply) => state.begin_shutdown(reply),
            #[cfg(any(test, feature = "test-hooks"))]
            SupervisorMsg::InjectPanic { loan_id, reply } => {
                match state.route(&myself, loan_id).await {
                    Ok((actor, _depth)) => {
                        let _ = actor.cast(LoanMsg::Panic(reply));
                    }
                    Err(error) => {
                        let _ = reply.send(Err(error));
                    }
                }
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
        Ok(())
    }
}

impl SupervisorState {
    /// The actor for `loan_id`, spawned if needed, with its queue depth counted one up.
    async fn route(
        &mut self,
        myself: &ActorRef<SupervisorMsg>,
        loan_id: LoanId,
    ) -> Result<(ActorRef<LoanMsg>, DepthGuard), TreeError> {
        if self.shutdown_waiters.is_some() {
            return Err(TreeError::ShuttingDown);
        }
        let now = Instant::now();
        self.reap_if_dead(myself, loan_id).await;
        if let Some(retry_after) = self.blocked_for(loan_id, now) {
            return Err(TreeError::Unavailable {
                loan_id,
                retry_after,
            });
        }
        if !self.live.contains_key(&loan_id) {
            self.spawn(myself, loan_id).await?;
        }
        let entry = self.live.get_mut(&loan_id).expect("spawned above");
        if entry.depth.load(Ordering::Relaxed) >= self.config.max_queued_per_loan {
            return Err(TreeError::Overloaded(
                "too many commands queued for this loan",
            ));
        }
        entry.last_routed = now;
        Ok((
            entry.actor.clone(),
            DepthGuard::new(Arc::clone(&entry.depth)),
        ))
    }

    fn blocked_for(&mut self, loan_id: LoanId, now: Instant) -> Option<std::time::Duration> {
        self.restarts.get_mut(&loan_id)?.blocked_for(now)
    }

    /// A routable actor that died is a failure whose supervision event may still be
    /// on its way (another thread): handle it now, so a command is never sent into
    /// a dead mailbox. Routable actors only stop by failing (passivation unlists them first).
    async fn reap_if_dead(&mut self, myself: &ActorRef<SupervisorMsg>, loan_id: LoanId) {
        let Some(entry) = self.live.get(&loan_id) else {
            return;
        };
        if entry.actor.get_status() < ActorStatus::Stopping {
            return;
        }
        let actor_id = entry.actor.get_id();
        // The late event then finds no routable child and changes nothing but the counter.
        self.children.remove(&actor_id);
        self.live.remove(&loan_id);
        self.on_failure(myself, loan_id, "actor found dead").await;
    }

    async fn spawn(
        &mut self,
        myself: &ActorRef<SupervisorMsg>,
        loan_id: LoanId,
    ) -> Result<(), TreeError> {
        if self.live.len() >= self.config.max_live_actors {
            return Err(TreeError::Overloaded("too many live loan actors"));
        }
        let args = LoanActorArgs {
            loan_id,
            store: Arc::clone(&self.store),
            counters: Arc::clone(&self.counters),
            store_timeout: self.config.store_timeout,
        };
        let (actor, _join) = Actor::spawn_linked(None, LoanActor, args, myself.get_cell())
            .await
            .map_err(|error| TreeError::Spawn(error.to_string()))?;
        bump(&self.counters.spawned);
        self.children.insert(actor.get_id(), loan_id);
        let entry = LiveEntry {
            actor,
            depth: Arc::new(AtomicUsize::new(0)),
            last_routed: Instant::now(),
        };
        self.live.insert(loan_id, entry);
        Ok(())
    }

    /// Drops a stopped child from the books; returns its loan if it was routable.
    fn forget_child(&mut self, actor_id: ActorId) -> Option<LoanId> {
        let loan_id = self.children.remove(&actor_id)?;
        let routable = self
            .live
            .get(&loan_id)
            .is_some_and(|entry| entry.actor.get_id() == actor_id);
        if routable {
            self.live.remove(&loan_id);
            Some(loan_id)
        } else {
            None
        }
    }

    /// A routable actor failed: restart it from the store within the budget, else block the loan.
    async fn on_failure(&mut self, myself: &ActorRef<SupervisorMsg>, loan_id: LoanId, why: &str) {
        if self.shutdown_waiters.is_some() {
            return;
        }
        let history = self.restarts.entry(loan_id).or_default();
        let decision = history.record(
            Instant::now(),
            self.config.max_restarts,
            self.config.restart_window,
        );
        match decision {
            AfterFailure::Restart => {
                tracing::warn!(%loan_id, error = why, "loan actor failed; restarting from the store");
                match self.spawn(myself, loan_id).await {
                    Ok(()) => bump(&self.counters.restarted),
                    Err(error) => tracing::error!(%loan_id, %error, "loan actor restart failed"),
                }
            }
            AfterFailure::Block => {
                bump(&self.counters.budget_exhausted);
                tracing::error!(
                    %loan_id,
                    error = why,
                    window = ?self.config.restart_window,
                    "loan actor exceeded its restart budget; loan unavailable until the window passes"
                );
            }
        }
    }

    /// Passivates actors idle for `idle_timeout` and forgets spent restart windows.
    fn sweep(&mut self) {
        let now = Instant::now();
        let idle_timeout = self.config.idle_timeout;
        let idle: Vec<LoanId> = self
            .live
            .iter()
            .filter(|(_, entry)| now.duration_since(entry.last_routed) >= idle_timeout)
            .map(|(loan_id, _)| *loan_id)
            .collect();
        for loan_id in idle {
            if let Some(entry) = self.live.remove(&loan_id) {
                // Queued commands before this message are still handled; nothing comes after.
                let _ = entry.actor.cast(LoanMsg::Passivate);
                bump(&self.counters.passivated);
                tracing::debug!(%loan_id, "loan actor passivated");
            }
        }
        let window = self.config.restart_window;
        self.restarts
            .retain(|_, history| !history.is_spent(now, window));
    }

    fn begin_shutdown(&mut self, reply: oneshot::Sender<()>) {
        self.shutdown_waiters
            .get_or_insert_with(Vec::new)
            .push(reply);
        for (_, entry) in self.live.drain() {
            let _ = entry.actor.cast(LoanMsg::Passivate);
        }
        self.finish_shutdown_if_done();
    }

    fn finish_shutdown_if_done(&mut self) {
        if !self.children.is_empty() {
            return;
        }
        if let Some(waiters) = self.shutdown_waiters.as_mut() {
            for waiter in waiters.drain(..) {
                let _ = waiter.send(());
            }
        }
    }
}

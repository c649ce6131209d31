//! The loan supervisor's books: the registry of live actors, routing, spawning,
//! restarts within the budget, passivation and shutdown. Runs only inside the
//! supervisor's handler, so it needs no locks.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use ractor::{Actor, ActorId, ActorRef, ActorStatus};
use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::core::LoanId;

use super::budget::AfterFailure;
use super::error::TreeError;
use super::loan_actor::{DepthGuard, LoanActor, LoanActorArgs, LoanMsg, Reply};
use super::supervisor::{LiveEntry, SupervisorMsg, SupervisorState};
use super::types::bump;

impl SupervisorState {
    /// Routes a message built from the caller's reply port to the loan's actor, or
    /// answers the caller with why not. A failed send drops the reply port: the
    /// caller then sees `ActorFailed`.
    pub(crate) async fn deliver<T>(
        &mut self,
        myself: &ActorRef<SupervisorMsg>,
        loan_id: LoanId,
        reply: Reply<T>,
        to_actor: impl FnOnce(Reply<T>, DepthGuard) -> LoanMsg,
    ) {
        match self.route(myself, loan_id).await {
            Ok((actor, depth)) => {
                let _ = actor.cast(to_actor(reply, depth));
            }
            Err(error) => {
                let _ = reply.send(Err(error));
            }
        }
    }

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
        if !self.ownership.owns(loan_id) {
            return Err(TreeError::NotOwner(loan_id));
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

    fn blocked_for(&mut self, loan_id: LoanId, now: Instant) -> Option<Duration> {
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
            supervisor: myself.clone(),
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
    pub(crate) fn forget_child(&mut self, actor_id: ActorId) -> Option<LoanId> {
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
    pub(crate) async fn on_failure(
        &mut self,
        myself: &ActorRef<SupervisorMsg>,
        loan_id: LoanId,
        why: &str,
    ) {
        if self.shutdown_waiters.is_some() || !self.ownership.owns(loan_id) {
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

    /// Unlists `actor_id` (if it is still `loan_id`'s routable actor) and lets it
    /// finish its queue and stop: its loan is gone.
    pub(crate) fn unlist(&mut self, loan_id: LoanId, actor_id: ActorId) {
        let is_current = self
            .live
            .get(&loan_id)
            .is_some_and(|entry| entry.actor.get_id() == actor_id);
        if let Some(entry) = is_current.then(|| self.live.remove(&loan_id)).flatten() {
            let _ = entry.actor.cast(LoanMsg::Passivate);
            tracing::debug!(%loan_id, "loan actor stopped: its loan was deleted or does not exist");
        }
    }

    /// Passivates actors idle for `idle_timeout` and forgets spent restart windows.
    pub(crate) fn sweep(&mut self) {
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

    /// Passivates the actors of loans no longer owned (each finishes its queue
    /// first); `reply` is answered once none of them runs.
    pub(crate) fn passivate_unowned(&mut self, reply: oneshot::Sender<()>) {
        let unowned: Vec<LoanId> = self
            .live
            .keys()
            .filter(|loan_id| !self.ownership.owns(**loan_id))
            .copied()
            .collect();
        for loan_id in unowned {
            if let Some(entry) = self.live.remove(&loan_id) {
                let _ = entry.actor.cast(LoanMsg::Passivate);
                bump(&self.counters.passivated);
            }
        }
        self.handoff_waiters.push(reply);
        self.finish_handoff_if_done();
    }

    /// Answers the handoff waiters once no child runs an unowned loan.
    pub(crate) fn finish_handoff_if_done(&mut self) {
        if self.handoff_waiters.is_empty()
            || self
                .children
                .values()
                .any(|loan_id| !self.ownership.owns(*loan_id))
        {
            return;
        }
        for waiter in self.handoff_waiters.drain(..) {
            let _ = waiter.send(());
        }
    }

    pub(crate) fn begin_shutdown(&mut self, reply: oneshot::Sender<()>) {
        self.shutdown_waiters
            .get_or_insert_with(Vec::new)
            .push(reply);
        for (_, entry) in self.live.drain() {
            let _ = entry.actor.cast(LoanMsg::Passivate);
        }
        self.finish_shutdown_if_done();
    }

    pub(crate) fn finish_shutdown_if_done(&mut self) {
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

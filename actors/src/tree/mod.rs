//! The supervised per-loan actor tree: every write to a loan goes through that
//! loan's actor, so writes to one loan are serialized while loans proceed in parallel.
//!
//! ```text
//! RootSupervisor
//! ├── LoanSupervisor        routes calls, registry of live actors, passivation, restart budget
//! │   ├── LoanActor(loan a) load → decide (batch) → commit → apply → reply
//! │   └── LoanActor(loan b) …
//! └── ServiceActor(name)    one per registered [`Service`] (consumers, relay,
//!                           scheduler): runs its work, re-spawned within its budget
//! ```
//!
//! Callers use the cheap-to-clone [`LoanTree`] handle. Business rejections come
//! back as `Ok(Err(LoanError))`; [`TreeError`] is infrastructure only.

mod budget;
pub mod config;
mod error;
mod loan_actor;
pub mod ownership;
mod plan;
mod registry;
mod root;
pub mod service;
mod service_actor;
mod snapshot;
mod supervisor;
mod turn;
mod types;

use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::Duration;

use chrono::{DateTime, Utc};
use ractor::{Actor, ActorRef};
use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::core::{Loan, LoanId, UserId};
use crate::store::LoanStore;

pub use config::TreeConfig;
pub use error::TreeError;
use ownership::OwnershipSlot;
pub use ownership::{LoanOwnership, OwnsAll};
pub use types::{
    Applied, BlockedLoan, CommandOutcome, LiveActor, LoanRequest, RenderReply, ReplyPlan,
    TreeCounts, TreeSnapshot,
};

use loan_actor::Look;
use root::{RootArgs, RootMsg, RootSupervisor, SupervisorSlot};
pub use service::{
    RestartBudget, Service, ServiceContext, ServiceError, ServiceSnapshot, ServiceState,
    SupervisionSnapshot,
};
use service_actor::{ServiceBook, SharedBook, lock};
use supervisor::SupervisorMsg;
use types::{Counters, bump};

/// Handle to a running tree; clones share it. Dropping every clone does not stop
/// the tree: call [`LoanTree::stop`].
#[derive(Clone)]
pub struct LoanTree {
    inner: Arc<Inner>,
}

struct Inner {
    config: TreeConfig,
    root: ActorRef<RootMsg>,
    slot: SupervisorSlot,
    counters: Arc<Counters>,
    /// Weak: the root owns the book, and the services in it may hold this
    /// tree (an application's state does), so a strong reference here would
    /// be a cycle that keeps a dropped application, and its pools, alive.
    book: Weak<Mutex<ServiceBook>>,
    /// Which loans this instance owns.
    ownership: OwnershipSlot,
    /// The loans' store: a loan owned elsewhere is created without an actor.
    store: Arc<dyn LoanStore>,
}

impl LoanTree {
    /// Starts the root supervisor and its children.
    pub async fn start(
        config: TreeConfig,
        store: Arc<dyn LoanStore>,
    ) -> Result<LoanTree, TreeError> {
        let counters = Arc::new(Counters::default());
        let slot: SupervisorSlot = Arc::new(RwLock::new(None));
        let book = SharedBook::default();
        let ownership = OwnershipSlot::default();
        let args = RootArgs {
            config: config.clone(),
            store: Arc::clone(&store),
            ownership: ownership.clone(),
            counters: Arc::clone(&counters),
            slot: Arc::clone(&slot),
            book: Arc::clone(&book),
        };
        let (root, _join) = Actor::spawn(None, RootSupervisor, args)
            .await
            .map_err(|error| TreeError::Spawn(error.to_string()))?;
        Ok(LoanTree {
            inner: Arc::new(Inner {
                config,
                root,
                slot,
                counters,
                book: Arc::downgrade(&book),
                ownership,
                store,
            }),
        })
    }

    /// Runs one command through the loan's actor.
    ///
    /// On `Ok(Ok(applied))` the command is committed. On `Ok(Err(rejection))` nothing
    /// was written. On `Err(TreeError::Timeout)` or `Err(TreeError::ActorFailed)` the
    /// outcome is unknown: the command may still be committed later — completely,
    /// never in part — unless the actor sees the caller gone before deciding it (then
    /// it is dropped). The caller should answer 503 and let the client retry with the
    /// same ids (a repeated `PaymentId` or reference is a no-op) or read the loan.
    /// Other errors mean nothing was written.
    pub async fn execute(
        &self,
        loan_id: LoanId,
        request: LoanRequest,
    ) -> Result<CommandOutcome, TreeError> {
        self.ask(loan_id, |reply| SupervisorMsg::Execute {
            loan_id,
            request,
            reply,
        })
        .await
    }

    /// Computes `look` from the loan as its actor holds it — loaded once, then
    /// read from memory, in order with the loan's writes (every command
    /// acknowledged before is seen). `Err(TreeError::NotFound)` if there is no
    /// such loan; the other errors are those of [`LoanTree::execute`], with
    /// nothing written.
    pub async fn inspect<R: Send + 'static>(
        &self,
        loan_id: LoanId,
        look: impl FnOnce(&Loan) -> R + Send + 'static,
    ) -> Result<R, TreeError> {
        let look = Look(Box::new(move |loan| Box::new(look(loan))));
        let answer = self
            .ask(loan_id, |reply| SupervisorMsg::Inspect {
                loan_id,
                look,
                if_not_live: None,
                reply,
            })
            .await?;
        Ok(*answer
            .downcast::<R>()
            .expect("an inspection answers the type its look returns"))
    }

    /// Like [`LoanTree::inspect`] if the loan's actor is live; `Ok(None)`
    /// without spawning one (and so without loading the loan) otherwise, for
    /// reads that have another source.
    pub async fn inspect_if_live<R: Send + 'static>(
        &self,
        loan_id: LoanId,
        look: impl FnOnce(&Loan) -> R + Send + 'static,
    ) -> Result<Option<R>, TreeError> {
        let look = Look(Box::new(move |loan| Box::new(Some(look(loan)))));
        let answer = self
            .ask(loan_id, |reply| SupervisorMsg::Inspect {
                loan_id,
                look,
                if_not_live: Some(Box::new(None::<R>)),
                reply,
            })
            .await?;
        Ok(*answer
            .downcast::<Option<R>>()
            .expect("an inspection answers the type its look returns"))
    }

    /// Stores a new loan (fresh from [`Loan::apply_for`], version 1) and starts its
    /// actor. `Err(TreeError::AlreadyExists)` if the id is taken; a loan that is not
    /// `PENDING` is refused with `Ok(Err(LoanError::InvalidTransition))`.
    ///
    /// A loan another instance owns is stored without an actor: creating it
    /// reads nothing, so only the store's "no such row yet" check is needed,
    /// and its owner loads it on its first command.
    pub async fn create(
        &self,
        loan: Loan,
        now: DateTime<Utc>,
        actor_id: Option<UserId>,
    ) -> Result<CommandOutcome, TreeError> {
        let loan_id = loan.loan_id();
        if !self.inner.ownership.owns(loan_id) {
            return self.create_unowned(loan, now, actor_id).await;
        }
        self.ask(loan_id, |reply| SupervisorMsg::Create {
            loan,
            now,
            actor_id,
            reply,
        })
        .await
    }

    async fn create_unowned(
        &self,
        loan: Loan,
        now: DateTime<Utc>,
        actor_id: Option<UserId>,
    ) -> Result<CommandOutcome, TreeError> {
        let loan_id = loan.loan_id();
        let (commit, record) = match turn::creation(&loan, now, actor_id) {
            Ok(creation) => creation,
            Err(rejection) => return Ok(Err(rejection)),
        };
        let limit = self.inner.config.store_timeout;
        let committed = tokio::time::timeout(limit, self.inner.store.commit(commit))
            .await
            .map_err(|_| TreeError::Store(format!("store call took longer than {limit:?}")))?;
        match committed {
            Ok(version) => {
                self.inner.counters.committed(1);
                Ok(Ok(Applied {
                    events: vec![record],
                    loan: Arc::new(loan),
                    version,
                    reply_kept: false,
                }))
            }
            Err(error) => Err(turn::creation_failure(loan_id, &error)),
        }
    }

    /// Sets which loans this instance owns (every loan until called). Loans
    /// it stops owning keep their actors until [`LoanTree::passivate_unowned`].
    pub fn set_ownership(&self, ownership: Arc<dyn LoanOwnership>) {
        self.inner.ownership.set(ownership);
    }

    /// True when this instance owns `loan_id` (runs, or may run, its actor).
    pub fn owns(&self, loan_id: LoanId) -> bool {
        self.inner.ownership.owns(loan_id)
    }

    /// Passivates the actors of loans this instance no longer owns, each after
    /// the commands already queued, and returns once none of them runs: after
    /// this, another instance may take those loans. Bounded by the shutdown timeout.
    pub async fn passivate_unowned(&self) -> Result<(), TreeError> {
        let supervisor = self.supervisor()?;
        let (reply, answer) = oneshot::channel();
        supervisor
            .cast(SupervisorMsg::PassivateUnowned(reply))
            .map_err(|_| TreeError::ShuttingDown)?;
        let limit = self.inner.config.shutdown_timeout;
        tokio::time::timeout(limit, answer)
            .await
            .map_err(|_| TreeError::DrainTimeout(limit))?
            .map_err(|_| TreeError::ShuttingDown)
    }

    /// The supervision state: live actors, queue depths, blocked loans, counters.
    pub async fn snapshot(&self) -> Result<TreeSnapshot, TreeError> {
        let supervisor = self.supervisor()?;
        let (reply, answer) = oneshot::channel();
        supervisor
            .cast(SupervisorMsg::Snapshot(reply))
            .map_err(|_| TreeError::ShuttingDown)?;
        tokio::time::timeout(self.inner.config.call_timeout, answer)
            .await
            .map_err(|_| TreeError::Overloaded("the loan supervisor did not answer in time"))?
            .map_err(|_| TreeError::ShuttingDown)
    }

    /// The counters alone, without asking any actor (for metrics scrapes).
    pub fn counts(&self) -> TreeCounts {
        self.inner.counters.read()
    }

    /// The settings the tree runs with.
    pub fn config(&self) -> &TreeConfig {
        &self.inner.config
    }

    /// Graceful stop: refuses new calls, lets every loan actor finish the commands
    /// already queued (they are committed and answered), then stops the
    /// services still running, the last registered first (each as
    /// [`LoanTree::stop_service`]), then the tree. Each wait is at most
    /// `shutdown_timeout`; past it the remaining loan actors are stopped and
    /// their queued callers get `ActorFailed`.
    pub async fn stop(self) -> Result<(), TreeError> {
        let limit = self.inner.config.shutdown_timeout;
        let drained = match self.supervisor() {
            Ok(supervisor) => {
                let (reply, done) = oneshot::channel();
                let _ = supervisor.cast(SupervisorMsg::Shutdown(reply));
                tokio::time::timeout(limit, done).await.is_ok()
            }
            Err(_) => true,
        };
        let names: Vec<String> = match self.book() {
            Some(book) => {
                let mut book = lock(&book);
                book.closed = true;
                book.entries
                    .iter()
                    .rev()
                    .map(|entry| entry.service.name().to_owned())
                    .collect()
            }
            None => Vec::new(),
        };
        for name in names {
            let _ = self.stop_service(&name).await;
        }
        let root = &self.inner.root;
        let _ = root.stop_children_and_wait(None, Some(limit)).await;
        let _ = root.stop_and_wait(None, Some(limit)).await;
        if drained {
            Ok(())
        } else {
            Err(TreeError::DrainTimeout(limit))
        }
    }

    /// Test hook: makes the loan's actor panic inside its handler. Answers
    /// `Err(ActorFailed)` (the panic drops the reply); the supervisor restarts the
    /// actor within the budget.
    #[cfg(any(test, feature = "test-hooks"))]
    pub async fn inject_panic(&self, loan_id: LoanId) -> Result<(), TreeError> {
        self.ask(loan_id, |reply| SupervisorMsg::InjectPanic {
            loan_id,
            reply,
        })
        .await
    }

    /// Registers `service` under the root and starts it; it is re-spawned
    /// after a failure within `budget`.
    pub async fn supervise(
        &self,
        service: Arc<dyn Service>,
        budget: RestartBudget,
    ) -> Result<(), ServiceError> {
        let (reply, answer) = oneshot::channel();
        self.inner
            .root
            .cast(RootMsg::Supervise {
                service,
                budget,
                reply,
            })
            .map_err(|_| ServiceError::ShuttingDown)?;
        answer.await.map_err(|_| ServiceError::ShuttingDown)?
    }

    /// Asks the named service to stop and waits (at most `shutdown_timeout`)
    /// for its run to finish what it holds; past that its actor is killed.
    /// It is not restarted. Stopping a service that is down just marks it stopped.
    pub async fn stop_service(&self, name: &str) -> Result<(), ServiceError> {
        let actor = {
            let book = self.book().ok_or(ServiceError::ShuttingDown)?;
            let mut book = lock(&book);
            let entry = book
                .by_name(name)
                .ok_or_else(|| ServiceError::Unknown(name.to_owned()))?;
            entry.state = match entry.state {
                ServiceState::Failed | ServiceState::Stopped => entry.state,
                ServiceState::Running | ServiceState::Stopping => ServiceState::Stopping,
                ServiceState::Restarting => ServiceState::Stopped,
            };
            let _ = entry.stop.send(true);
            entry.actor.clone()
        };
        if let Some(actor) = actor {
            let limit = self.inner.config.shutdown_timeout;
            if actor.wait(Some(limit)).await.is_err() {
                tracing::warn!(service = %name, "service did not stop in time; killing it");
                actor.kill();
                let _ = actor.wait(Some(limit)).await;
            }
        }
        Ok(())
    }

    /// The root's supervised children: the loan supervisor's restarts and
    /// every service with its state, restarts and backlog (each probe bounded
    /// by the call timeout; `None` when it did not answer in time).
    pub async fn supervision(&self) -> SupervisionSnapshot {
        let Some(book) = self.book() else {
            return SupervisionSnapshot {
                loan_supervisor_restarts: 0,
                services: Vec::new(),
            };
        };
        let (loan_supervisor_restarts, mut services, probes) = {
            let mut book = lock(&book);
            let services = book.snapshots(Instant::now());
            let probes: Vec<Arc<dyn Service>> = book
                .entries
                .iter()
                .map(|entry| Arc::clone(&entry.service))
                .collect();
            (book.loan_supervisor_restarts, services, probes)
        };
        let limit = self.inner.config.call_timeout;
        let backlogs = futures_join_all(probes.iter().map(|service| async move {
            tokio::time::timeout(limit, service.backlog())
                .await
                .ok()
                .flatten()
        }))
        .await;
        for (snapshot, backlog) in services.iter_mut().zip(backlogs) {
            snapshot.backlog = backlog;
        }
        SupervisionSnapshot {
            loan_supervisor_restarts,
            services,
        }
    }

    /// Names of the services down past their restart budget (no probes; cheap).
    pub fn failed_services(&self) -> Vec<String> {
        let Some(book) = self.book() else {
            return Vec::new();
        };
        lock(&book)
            .entries
            .iter()
            .filter(|entry| entry.state == ServiceState::Failed)
            .map(|entry| entry.service.name().to_owned())
            .collect()
    }

    /// Test hook: the named service's next [`ServiceContext::fault_point`] panics.
    #[cfg(any(test, feature = "test-hooks"))]
    pub fn inject_service_panic(&self, name: &str) -> Result<(), ServiceError> {
        let book = self.book().ok_or(ServiceError::ShuttingDown)?;
        let mut book = lock(&book);
        let entry = book
            .by_name(name)
            .ok_or_else(|| ServiceError::Unknown(name.to_owned()))?;
        entry.fault.arm();
        Ok(())
    }

    /// The services' book, while the root that owns it runs.
    fn book(&self) -> Option<SharedBook> {
        self.inner.book.upgrade()
    }

    fn supervisor(&self) -> Result<ActorRef<SupervisorMsg>, TreeError> {
        let slot = self
            .inner
            .slot
            .read()
            .unwrap_or_else(|poison| poison.into_inner());
        slot.clone().ok_or(TreeError::ShuttingDown)
    }

    /// Sends a message carrying a reply port and waits for the answer until the call timeout.
    async fn ask<T>(
        &self,
        loan_id: LoanId,
        message: impl FnOnce(oneshot::Sender<Result<T, TreeError>>) -> SupervisorMsg,
    ) -> Result<T, TreeError> {
        let after: Duration = self.inner.config.call_timeout;
        let deadline = Instant::now() + after;
        let supervisor = self.supervisor()?;
        let (reply, answer) = oneshot::channel();
        supervisor
            .cast(message(reply))
            .map_err(|_| TreeError::ShuttingDown)?;
        match tokio::time::timeout_at(deadline, answer).await {
            Ok(Ok(result)) => result,
            // The reply port was dropped undelivered: the actor died holding it.
            Ok(Err(_)) => Err(TreeError::ActorFailed(loan_id)),
            Err(_) => {
                bump(&self.inner.counters.timeouts);
                Err(TreeError::Timeout { loan_id, after })
            }
        }
    }
}

/// Awaits every future, concurrently, answers in order (no `futures` crate in the core).
async fn futures_join_all<F: Future>(futures: impl Iterator<Item = F>) -> Vec<F::Output> {
    let mut set = Vec::new();
    for future in futures {
        set.push(Box::pin(future));
    }
    let mut outputs: Vec<Option<F::Output>> = set.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (future, output) in set.iter_mut().zip(outputs.iter_mut()) {
            if output.is_none() {
                match future.as_mut().poll(cx) {
                    std::task::Poll::Ready(value) => *output = Some(value),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    outputs
        .into_iter()
        .map(|output| output.expect("every future finished"))
        .collect()
}

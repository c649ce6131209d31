//! The loan actor: one per live loan; every write to the loan goes through it.
//!
//! **Batching.** ractor hands messages over one at a time, so the actor keeps its
//! own queue: a `Command` is only pushed onto `pending`, and if no flush is
//! scheduled the actor sends itself one `Flush`. That `Flush` lands behind every
//! command already in the mailbox, so when it is handled, all commands that
//! arrived meanwhile are in `pending` and are decided and committed together
//! (up to [`MAX_BATCH_COMMANDS`]; the rest get another `Flush`). Under no load a
//! batch is one command and costs one extra message.

use std::any::Any;
use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use ractor::{Actor, ActorId, ActorProcessingErr, ActorRef};
use tokio::sync::oneshot;

use crate::core::{Loan, LoanId, UserId};
use crate::store::{LoanStore, StoredLoan};

use super::config::MAX_BATCH_COMMANDS;
use super::error::TreeError;
use super::supervisor::SupervisorMsg;
use super::turn;
use super::types::{CommandOutcome, Counters, LoanRequest};

/// Where a caller's answer goes.
pub(crate) type Reply<T> = oneshot::Sender<Result<T, TreeError>>;

/// Counts a command as queued for its loan until it is answered or dropped.
#[derive(Debug)]
pub(crate) struct DepthGuard(Arc<AtomicUsize>);

impl DepthGuard {
    /// Counts one more queued command on `depth`.
    pub(crate) fn new(depth: Arc<AtomicUsize>) -> DepthGuard {
        depth.fetch_add(1, Ordering::Relaxed);
        DepthGuard(depth)
    }
}

impl Drop for DepthGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A command waiting for its turn.
#[derive(Debug)]
pub(crate) struct Queued {
    /// The command and its time.
    pub(crate) request: LoanRequest,
    /// The caller.
    pub(crate) reply: Reply<CommandOutcome>,
    /// Keeps the loan's queue depth counted until this is answered.
    pub(crate) _depth: DepthGuard,
}

/// A new loan to store.
#[derive(Debug)]
pub(crate) struct NewLoan {
    /// The loan, fresh from `Loan::apply_for`.
    pub(crate) loan: Loan,
    /// When it was applied for (the `Applied` event's `occurred_at`).
    pub(crate) now: DateTime<Utc>,
    /// Who applied.
    pub(crate) actor_id: Option<UserId>,
    /// The caller.
    pub(crate) reply: Reply<CommandOutcome>,
    /// Keeps the loan's queue depth counted until this is answered.
    pub(crate) _depth: DepthGuard,
}

/// An inspection's answer, type-erased for the mailbox.
pub(crate) type Seen = Box<dyn Any + Send>;

/// What an inspection computes from the loan.
pub(crate) struct Look(pub(crate) Box<dyn FnOnce(&Loan) -> Seen + Send>);

impl std::fmt::Debug for Look {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Look")
    }
}

/// A read of the loan as the actor holds it.
#[derive(Debug)]
pub(crate) struct Inspect {
    /// What to compute from the loan.
    pub(crate) look: Look,
    /// The caller.
    pub(crate) reply: Reply<Seen>,
    /// Keeps the loan's queue depth counted until this is answered.
    pub(crate) _depth: DepthGuard,
}

/// Messages of a loan actor.
#[derive(Debug)]
pub(crate) enum LoanMsg {
    /// A command: queued until the next `Flush`.
    Command(Queued),
    /// Decide and commit what is queued (sent by the actor to itself).
    Flush,
    /// Store a new loan (after finishing what is queued).
    Create(NewLoan),
    /// Compute something from the loan as last committed (loaded if needed).
    Inspect(Inspect),
    /// Finish what is queued, then stop (idle or shutting down).
    Passivate,
    /// Test hook: panic inside the handler; the reply is dropped by the panic.
    #[cfg(any(test, feature = "test-hooks"))]
    Panic(Reply<()>),
}

/// What a loan actor starts from.
pub(crate) struct LoanActorArgs {
    /// The loan.
    pub(crate) loan_id: LoanId,
    /// Where it is loaded from and committed to.
    pub(crate) store: Arc<dyn LoanStore>,
    /// The tree's counters.
    pub(crate) counters: Arc<Counters>,
    /// Limit on each store call.
    pub(crate) store_timeout: Duration,
    /// The loan supervisor, told when the loan is gone (deleted).
    pub(crate) supervisor: ActorRef<SupervisorMsg>,
}

/// A loan actor's state.
pub(crate) struct LoanActorState {
    /// The loan this actor serializes.
    pub(crate) loan_id: LoanId,
    /// Where it is loaded from and committed to.
    pub(crate) store: Arc<dyn LoanStore>,
    /// The tree's counters.
    pub(crate) counters: Arc<Counters>,
    /// Limit on each store call.
    pub(crate) store_timeout: Duration,
    /// The loan as last committed; `None` until loaded, and again after any store
    /// failure, so a possibly stale state is never decided on.
    pub(crate) loaded: Option<StoredLoan>,
    /// Commands received and not yet decided, oldest first.
    pub(crate) pending: VecDeque<Queued>,
    /// A `Flush` is in the mailbox.
    pub(crate) flush_scheduled: bool,
    /// The loan supervisor, told when the loan is gone (deleted).
    pub(crate) supervisor: ActorRef<SupervisorMsg>,
    /// This actor's id, so the supervisor unlists this very actor.
    pub(crate) actor_id: ActorId,
    /// Set once the loan's deletion committed and the supervisor was told.
    pub(crate) gone: bool,
}

/// The loan actor (behaviour only; the state is [`LoanActorState`]).
pub(crate) struct LoanActor;

impl Actor for LoanActor {
    type Msg = LoanMsg;
    type State = LoanActorState;
    type Arguments = LoanActorArgs;

    /// Starts empty: the loan is loaded on the first turn, so spawning never waits
    /// on the store (the supervisor spawns for all loans).
    async fn pre_start(
        &self,
        myself: ActorRef<LoanMsg>,
        args: LoanActorArgs,
    ) -> Result<LoanActorState, ActorProcessingErr> {
        Ok(LoanActorState {
            loan_id: args.loan_id,
            store: args.store,
            counters: args.counters,
            store_timeout: args.store_timeout,
            loaded: None,
            pending: VecDeque::new(),
            flush_scheduled: false,
            supervisor: args.supervisor,
            actor_id: myself.get_id(),
            gone: false,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<LoanMsg>,
        message: LoanMsg,
        state: &mut LoanActorState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            LoanMsg::Command(queued) => {
                state.pending.push_back(queued);
                schedule_flush(&myself, state).await;
            }
            LoanMsg::Flush => {
                state.flush_scheduled = false;
                flush_once(state).await;
                if !state.pending.is_empty() {
                    schedule_flush(&myself, state).await;
                }
            }
            LoanMsg::Create(new_loan) => {
                flush_all(state).await;
                turn::create(state, new_loan).await;
            }
            LoanMsg::Inspect(inspect) => turn::inspect(state, inspect).await,
            LoanMsg::Passivate => {
                flush_all(state).await;
                myself.stop(Some("passivated".to_owned()));
            }
            #[cfg(any(test, feature = "test-hooks"))]
            LoanMsg::Panic(_reply) => panic!("injected panic in loan actor {}", state.loan_id),
        }
        Ok(())
    }

    /// A stop by any other path still answers every queued command.
    async fn post_stop(
        &self,
        _myself: ActorRef<LoanMsg>,
        state: &mut LoanActorState,
    ) -> Result<(), ActorProcessingErr> {
        flush_all(state).await;
        Ok(())
    }
}

/// Makes sure a `Flush` will come; if the mailbox is closed, flushes right here.
async fn schedule_flush(myself: &ActorRef<LoanMsg>, state: &mut LoanActorState) {
    if state.flush_scheduled {
        return;
    }
    if myself.cast(LoanMsg::Flush).is_ok() {
        state.flush_scheduled = true;
    } else {
        flush_all(state).await;
    }
}

/// Decides and commits up to [`MAX_BATCH_COMMANDS`] queued commands in one turn.
async fn flush_once(state: &mut LoanActorState) {
    let size = state.pending.len().min(MAX_BATCH_COMMANDS);
    let batch: Vec<Queued> = state.pending.drain(..size).collect();
    turn::run_batch(state, batch).await;
}

/// Flushes until nothing is queued.
async fn flush_all(state: &mut LoanActorState) {
    while !state.pending.is_empty() {
        flush_once(state).await;
    }
}

//! One actor turn: load if needed → decide (pure) → commit → apply in memory → reply.
//!
//! The in-memory state changes only after the store confirmed the commit, and the
//! commit is atomic, so a caller that gave up (timeout) sees either the whole
//! command applied or nothing, never half.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::core::{Loan, LoanError, LoanEvent, LoanId, LoanStatus, UserId};
use crate::store::{
    EventRecord, InstallmentWrites, LoanCommit, LoanStoreError, ReplyRecord, StoredLoan,
};

use super::config::{CONFLICT_BACKOFF, KEPT_PAYMENTS, MAX_CONFLICT_RETRIES};
use super::error::TreeError;
use super::loan_actor::{Inspect, LoanActorState, NewLoan, Queued};
use super::plan::{commit_for, event_id, plan_batch};
use super::supervisor::SupervisorMsg;
use super::types::{Applied, LoanRequest, bump};

/// How a batch attempt ended.
enum BatchEnd {
    /// Every command got its answer.
    Answered,
    /// The store refused the batch as a duplicate: retry the commands one by one so
    /// only the offending one fails.
    RetrySingly(Vec<Queued>),
}

/// Decides and commits `batch` in one transaction and answers every command.
pub(crate) async fn run_batch(state: &mut LoanActorState, batch: Vec<Queued>) {
    let batch = drop_abandoned(state, batch);
    if batch.is_empty() {
        return;
    }
    if let BatchEnd::RetrySingly(commands) = try_batch(state, batch).await {
        for queued in commands {
            // A batch of one never asks to be split again.
            let _ = try_batch(state, vec![queued]).await;
        }
    }
}

/// True when a command was refused for want of folded payments and the loan
/// has some: the batch is decided again on the whole history.
fn needs_history(loan: &Loan, outcomes: &[Result<Vec<EventRecord>, LoanError>]) -> bool {
    !loan.folded().is_empty()
        && outcomes
            .iter()
            .any(|outcome| matches!(outcome, Err(LoanError::HistoryNeeded)))
}

/// Commands whose caller already gave up are not decided at all: they are never
/// committed, which keeps late writes after a timeout rare.
fn drop_abandoned(state: &LoanActorState, batch: Vec<Queued>) -> Vec<Queued> {
    let before = batch.len();
    let live: Vec<Queued> = batch
        .into_iter()
        .filter(|queued| !queued.reply.is_closed())
        .collect();
    for _ in live.len()..before {
        bump(&state.counters.abandoned);
    }
    live
}

async fn try_batch(state: &mut LoanActorState, batch: Vec<Queued>) -> BatchEnd {
    let mut conflicts = 0;
    let mut whole_history = false;
    loop {
        if let Err(error) = ensure_loaded(state, !whole_history).await {
            answer_all(batch, &error);
            return BatchEnd::Answered;
        }
        let stored = state.loaded.as_ref().expect("loaded just above");
        let version = stored.version;
        let requests: Vec<_> = batch.iter().map(|queued| &queued.request).collect();
        let plan = plan_batch(&stored.loan, &requests, event_id);
        if needs_history(&stored.loan, &plan.outcomes) {
            // Decide again on the whole history, as the store has it.
            bump(&state.counters.history_loads);
            state.loaded = None;
            whole_history = true;
            continue;
        }
        let Some(mut commit) = commit_for(state.loan_id, (&stored.loan, version), &plan) else {
            answer(batch, plan.outcomes, Arc::new(plan.after), version, &[]);
            return BatchEnd::Answered;
        };
        let expected_new_version = commit.new_version();
        let loan = Arc::new(plan.after.clone());
        let kept = keep_replies(
            &requests,
            &plan.outcomes,
            (&loan, expected_new_version),
            &mut commit.replies,
        );
        match commit_in_time(state, commit).await {
            Ok(new_version) => {
                assert_eq!(new_version, expected_new_version, "store skipped a version");
                state.counters.committed(plan.effective);
                if loan.is_deleted() {
                    announce_gone(state);
                }
                let mut after = plan.after;
                after.fold_payments(KEPT_PAYMENTS);
                state.loaded = Some(StoredLoan {
                    loan: after,
                    version: new_version,
                });
                answer(batch, plan.outcomes, loan, new_version, &kept);
                return BatchEnd::Answered;
            }
            Err(LoanStoreError::VersionConflict { .. }) if conflicts < MAX_CONFLICT_RETRIES => {
                conflicts += 1;
                tokio::time::sleep(CONFLICT_BACKOFF * conflicts).await;
            }
            Err(LoanStoreError::Duplicate { .. } | LoanStoreError::ReplyTaken { .. })
                if batch.len() > 1 =>
            {
                return BatchEnd::RetrySingly(batch);
            }
            Err(error) => {
                answer_all(batch, &TreeError::from_store(state.loan_id, &error));
                return BatchEnd::Answered;
            }
        }
    }
}

/// The loan's deletion committed, or there is no such loan: the supervisor
/// unlists this actor and passivates it, so the next command spawns a fresh
/// actor (which finds no loan: 404, unless it was created meanwhile). Until
/// then the kept state (deleted) refuses every command the same way.
fn announce_gone(state: &mut LoanActorState) {
    if state.gone {
        return;
    }
    state.gone = true;
    let _ = state.supervisor.cast(SupervisorMsg::Gone {
        loan_id: state.loan_id,
        actor_id: state.actor_id,
    });
}

/// Stores a new loan: a commit that expects no row.
pub(crate) async fn create(state: &mut LoanActorState, new_loan: NewLoan) {
    let NewLoan {
        loan,
        now,
        actor_id,
        reply,
        ..
    } = new_loan;
    assert_eq!(loan.loan_id(), state.loan_id, "routed to the wrong actor");
    let (commit, record) = match creation(&loan, now, actor_id) {
        Ok(creation) => creation,
        Err(rejection) => {
            let _ = reply.send(Ok(Err(rejection)));
            return;
        }
    };
    let answer = match commit_in_time(state, commit).await {
        Ok(version) => {
            state.counters.committed(1);
            state.loaded = Some(StoredLoan {
                loan: loan.clone(),
                version,
            });
            Ok(Ok(Applied {
                events: vec![record],
                loan: Arc::new(loan),
                version,
                reply_kept: false,
            }))
        }
        Err(error) => Err(creation_failure(state.loan_id, &error)),
    };
    let _ = reply.send(answer);
}

/// The commit that stores a new loan (one that expects no row) and its
/// `Applied` event; only a fresh `PENDING` loan without payments is created.
pub(crate) fn creation(
    loan: &Loan,
    now: DateTime<Utc>,
    actor_id: Option<UserId>,
) -> Result<(LoanCommit, EventRecord), LoanError> {
    if loan.status() != LoanStatus::Pending || loan.payment_count() > 0 {
        return Err(LoanError::InvalidTransition {
            action: "create",
            status: loan.status(),
        });
    }
    let record = EventRecord {
        event_id: event_id(now),
        occurred_at: now,
        actor_id,
        event: LoanEvent::Applied {
            terms: loan.terms().clone(),
            applied_on: loan.applied_on(),
        },
    };
    let commit = LoanCommit {
        loan_id: loan.loan_id(),
        expected_version: None,
        commands: 1,
        snapshot: loan.snapshot(),
        installments: InstallmentWrites::All,
        events: vec![record.clone()],
        replies: Vec::new(),
    };
    Ok((commit, record))
}

/// What a failed creation commit means for the caller.
pub(crate) fn creation_failure(loan_id: LoanId, error: &LoanStoreError) -> TreeError {
    match error {
        LoanStoreError::VersionConflict { .. } | LoanStoreError::Duplicate { .. } => {
            TreeError::AlreadyExists(loan_id)
        }
        error => TreeError::from_store(loan_id, error),
    }
}

/// Answers an inspection from the loan in memory (loading it first if needed):
/// a read that costs no query once the actor is live.
pub(crate) async fn inspect(state: &mut LoanActorState, inspect: Inspect) {
    let answer = match ensure_loaded(state, true).await {
        Ok(()) => {
            let stored = state.loaded.as_ref().expect("loaded just above");
            Ok((inspect.look.0)(&stored.loan))
        }
        Err(error) => Err(error),
    };
    let _ = inspect.reply.send(answer);
}

/// Loads the loan unless it is in memory, folding its older payments unless
/// `fold` is false (a command needs them). Absence is not cached: another
/// instance may create the loan at any time.
async fn ensure_loaded(state: &mut LoanActorState, fold: bool) -> Result<(), TreeError> {
    if state.loaded.is_some() {
        return Ok(());
    }
    let loaded = in_time(state.store_timeout, state.store.load(state.loan_id)).await;
    match loaded {
        Ok(Some(mut stored)) => {
            if fold {
                stored.loan.fold_payments(KEPT_PAYMENTS);
            }
            state.loaded = Some(stored);
            Ok(())
        }
        Ok(None) => {
            // Nothing to keep live: unlisted at once, so ids that name no
            // loan never fill the tree (the next call starts a fresh actor).
            announce_gone(state);
            Err(TreeError::NotFound(state.loan_id))
        }
        Err(error) => {
            bump(&state.counters.store_errors);
            Err(TreeError::from_store(state.loan_id, &error))
        }
    }
}

/// Commits within the store timeout. On any failure the in-memory state is dropped:
/// after a conflict it is stale, after anything else it may be (a timed-out commit
/// may still have landed), so the next turn reloads it.
async fn commit_in_time(
    state: &mut LoanActorState,
    commit: LoanCommit,
) -> Result<u64, LoanStoreError> {
    let result = in_time(state.store_timeout, state.store.commit(commit)).await;
    if let Err(error) = &result {
        state.loaded = None;
        match error {
            LoanStoreError::VersionConflict { .. } => bump(&state.counters.version_conflicts),
            _ => bump(&state.counters.store_errors),
        }
        tracing::debug!(loan_id = %state.loan_id, %error, "loan commit failed");
    }
    result
}

/// Runs a store call with a time limit; running out is a backend failure.
async fn in_time<T>(
    limit: Duration,
    call: impl Future<Output = Result<T, LoanStoreError>>,
) -> Result<T, LoanStoreError> {
    tokio::time::timeout(limit, call).await.unwrap_or_else(|_| {
        Err(LoanStoreError::Backend(
            format!("store call took longer than {limit:?}").into(),
        ))
    })
}

/// Renders the answers that the batch's callers asked to keep (accepted
/// commands only: a rejection commits nothing) into `replies`; says for
/// each command whether its answer is kept.
fn keep_replies(
    requests: &[&LoanRequest],
    outcomes: &[Result<Vec<EventRecord>, LoanError>],
    (loan, version): (&Arc<Loan>, u64),
    replies: &mut Vec<ReplyRecord>,
) -> Vec<bool> {
    // A repeat of a command already in the batch under the same key (the
    // same request sent again at once: decided as changing nothing) shares
    // the first one's record, so a statement never writes one key twice.
    // Another command under a taken key still writes its own and fails.
    let mut keys = std::collections::HashSet::new();
    requests
        .iter()
        .zip(outcomes)
        .map(|(request, outcome)| {
            let (Some(plan), Ok(events)) = (&request.reply, outcome) else {
                return false;
            };
            let key = (plan.record.user_id, plan.record.key.clone());
            if events.is_empty() && keys.contains(&key) {
                return true;
            }
            keys.insert(key);
            let applied = Applied {
                events: events.clone(),
                loan: Arc::clone(loan),
                version,
                reply_kept: true,
            };
            let Some((status, body)) = (plan.render)(&applied) else {
                return false;
            };
            replies.push(ReplyRecord {
                status,
                body,
                ..plan.record.clone()
            });
            true
        })
        .collect()
}

/// Answers each command of the batch; `kept` says whose answer was kept with
/// the commit (missing: none).
fn answer(
    batch: Vec<Queued>,
    outcomes: Vec<Result<Vec<EventRecord>, LoanError>>,
    loan: Arc<Loan>,
    version: u64,
    kept: &[bool],
) {
    assert_eq!(batch.len(), outcomes.len(), "one outcome per command");
    for (index, (queued, outcome)) in batch.into_iter().zip(outcomes).enumerate() {
        let outcome = outcome.map(|events| Applied {
            events,
            loan: Arc::clone(&loan),
            version,
            reply_kept: kept.get(index).copied().unwrap_or(false),
        });
        // The caller may have given up meanwhile; the result stands regardless.
        let _ = queued.reply.send(Ok(outcome));
    }
}

fn answer_all(batch: Vec<Queued>, error: &TreeError) {
    for queued in batch {
        let _ = queued.reply.send(Err(error.clone()));
    }
}

//! `TreeError`: why the tree could not give a loan's answer (infrastructure, never business).

use std::time::Duration;

use thiserror::Error;

use crate::core::LoanId;
use crate::store::LoanStoreError;

/// Why a call into the tree failed. Business rejections are not here: they travel
/// as `Ok(Err(LoanError))` in a [`super::CommandOutcome`].
///
/// Every variant except `NotFound`, `AlreadyExists`, `ReplyTaken` and `Corrupt` means "try again later"
/// (the edge answers 503) and says nothing about whether the command was applied
/// when it is `Timeout` or `ActorFailed`: see [`super::LoanTree::execute`].
#[derive(Debug, Clone, Error)]
pub enum TreeError {
    /// No loan with this id exists in the store.
    #[error("loan {0} not found")]
    NotFound(LoanId),
    /// `create` was asked for a loan id that already exists.
    #[error("loan {0} already exists")]
    AlreadyExists(LoanId),
    /// The actor did not answer within the call timeout. The command may still be
    /// committed later, completely or not at all.
    #[error("loan {loan_id} did not answer within {after:?}")]
    Timeout {
        /// The loan.
        loan_id: LoanId,
        /// The timeout that passed.
        after: Duration,
    },
    /// The loan's actor failed too often; it answers nothing until the window passes.
    #[error("loan {loan_id} is unavailable for {retry_after:?} after repeated failures")]
    Unavailable {
        /// The loan.
        loan_id: LoanId,
        /// When to try again.
        retry_after: Duration,
    },
    /// The actor died (panic) while holding the request; it has been restarted from
    /// the store. Like a timeout, the command may or may not have been committed.
    #[error("the actor of loan {0} failed while handling the request")]
    ActorFailed(LoanId),
    /// Too many live actors or too many commands queued for this loan.
    #[error("overloaded: {0}")]
    Overloaded(&'static str),
    /// Other writers kept committing first; the command was not applied.
    #[error("loan {0} is contended; nothing was applied")]
    Contended(LoanId),
    /// The store failed; nothing was applied and the actor reloads before its next turn.
    #[error("store failed: {0}")]
    Store(String),
    /// The command's answer was to be kept under a request key that another
    /// request answered first; nothing was applied. The caller answers with
    /// what that key holds.
    #[error("the request key of a command on loan {0} was answered by another request")]
    ReplyTaken(LoanId),
    /// The stored loan cannot be loaded (a broken invariant); an operator must look.
    #[error("stored loan {0} is corrupt")]
    Corrupt(LoanId),
    /// A graceful stop gave up waiting for the actors to finish their queues; the
    /// remaining ones were stopped and their queued callers got `ActorFailed`.
    #[error("the actors did not finish their queues within {0:?}")]
    DrainTimeout(Duration),
    /// Another instance owns the loan (or none does, while it moves): the
    /// caller forwards the call to the owner, or answers 503.
    #[error("loan {0} is owned by another instance")]
    NotOwner(LoanId),
    /// The tree is stopping or stopped.
    #[error("the actor tree is shutting down")]
    ShuttingDown,
    /// An actor could not be started.
    #[error("could not start an actor: {0}")]
    Spawn(String),
}

impl TreeError {
    /// Maps a store error met while loading or committing `loan_id`.
    pub(crate) fn from_store(loan_id: LoanId, error: &LoanStoreError) -> TreeError {
        match error {
            LoanStoreError::Corrupt { .. } => TreeError::Corrupt(loan_id),
            LoanStoreError::VersionConflict { .. } => TreeError::Contended(loan_id),
            LoanStoreError::ReplyTaken { .. } => TreeError::ReplyTaken(loan_id),
            other => TreeError::Store(other.to_string()),
        }
    }

    /// True when the caller may simply retry later (the edge's 503).
    pub fn is_transient(&self) -> bool {
        !matches!(
            self,
            TreeError::NotFound(_)
                | TreeError::AlreadyExists(_)
                | TreeError::Corrupt(_)
                | TreeError::ReplyTaken(_)
        )
    }
}

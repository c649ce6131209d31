//! The seam between the loan actors and storage: what an actor loads and
//! what it commits. Adapters (SQLite, PostgreSQL) live in the `loan-tracker`
//! crate; this crate never sees SQL.

use std::future::Future;
use std::pin::Pin;

use chrono::{DateTime, Utc};
use thiserror::Error;
use uuid::Uuid;

use crate::core::{Installment, Loan, LoanEvent, LoanId, LoanSnapshot, UserId};

/// A boxed, sendable future: keeps [`LoanStore`] object-safe.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Why a load or a commit failed.
#[derive(Debug, Error)]
pub enum LoanStoreError {
    /// Another writer committed first: the stored version is not the expected one.
    /// The actor reloads and retries a bounded number of times.
    #[error("loan {loan_id} changed concurrently (expected version {expected:?})")]
    VersionConflict {
        /// The loan.
        loan_id: LoanId,
        /// The version the committer started from (`None`: it expected no row).
        expected: Option<u64>,
    },
    /// A uniqueness rule rejected the write (e.g. a payment reference seen before).
    #[error("duplicate {what}")]
    Duplicate {
        /// Which rule (constraint name or a description).
        what: String,
    },
    /// Stored data breaks an invariant of the loan and cannot be loaded.
    #[error("stored loan {loan_id} is corrupt: {reason}")]
    Corrupt {
        /// The loan.
        loan_id: LoanId,
        /// What is wrong.
        reason: String,
    },
    /// A reply of the commit names a request key that already has an answer
    /// (another request with the same key committed first); nothing was written.
    #[error("request key {key} already has an answer")]
    ReplyTaken {
        /// The key.
        key: String,
    },
    /// The database failed or could not be reached.
    #[error("storage failed: {0}")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// A loan as stored: the aggregate and its optimistic-concurrency version.
#[derive(Debug, Clone)]
pub struct StoredLoan {
    /// The aggregate, restored and invariant-checked.
    pub loan: Loan,
    /// Number of commands applied to it so far (1 after the application).
    pub version: u64,
}

/// One event with what the outbox and the audit trail need beside it.
#[derive(Debug, Clone)]
pub struct EventRecord {
    /// Unique id: the outbox key, the `Nats-Msg-Id` and the consumers' idempotency key.
    pub event_id: Uuid,
    /// When the change was decided.
    pub occurred_at: DateTime<Utc>,
    /// Who caused it; `None` for the system (jobs, inbound payments).
    pub actor_id: Option<UserId>,
    /// The domain event.
    pub event: LoanEvent,
}

/// Which installment rows a commit writes: a new schedule is written whole,
/// a payment or a fee only the installments it changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InstallmentWrites {
    /// Every installment of the snapshot (the schedule appeared or was replaced).
    All,
    /// Only these positions (`seq`), ascending; empty when none changed.
    Changed(Vec<u16>),
}

impl InstallmentWrites {
    /// What turning `before` into `after` changed.
    pub fn between(before: &[Installment], after: &[Installment]) -> Self {
        if before.len() != after.len() {
            return Self::All;
        }
        Self::Changed(
            before
                .iter()
                .zip(after)
                .filter(|(old, new)| old != new)
                .map(|(_, new)| new.seq)
                .collect(),
        )
    }

    /// True when the installment at `seq` is to be written.
    pub fn includes(&self, seq: u16) -> bool {
        match self {
            Self::All => true,
            Self::Changed(seqs) => seqs.binary_search(&seq).is_ok(),
        }
    }
}

/// The answer a caller asked to be kept with the commit that produced it, so
/// that a repeat of its request is answered from the store (the edge's
/// `Idempotency-Key`). The commit writes it atomically with the loan; if the
/// key already has an answer the commit fails with [`LoanStoreError::ReplyTaken`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplyRecord {
    /// Whose key it is.
    pub user_id: Uuid,
    /// The key.
    pub key: String,
    /// Method and path of the request.
    pub route: String,
    /// SHA-256 of the request body, hex.
    pub body_hash: String,
    /// When the key was first used (ids derived from the key carry this time).
    pub claimed_at: DateTime<Utc>,
    /// The answer's status.
    pub status: u16,
    /// The answer's body.
    pub body: Vec<u8>,
}

/// Everything one actor turn writes, in one transaction.
#[derive(Debug, Clone)]
pub struct LoanCommit {
    /// The loan.
    pub loan_id: LoanId,
    /// Version the actor started from; `None` creates the loan (it must not exist).
    pub expected_version: Option<u64>,
    /// Number of commands decided in this turn; the version grows by this much.
    pub commands: u64,
    /// The loan after applying `events`.
    pub snapshot: LoanSnapshot,
    /// The installments of `snapshot` this commit changed.
    pub installments: InstallmentWrites,
    /// The events, in order; each becomes an outbox row.
    pub events: Vec<EventRecord>,
    /// Answers to keep with the commit (see [`ReplyRecord`]).
    pub replies: Vec<ReplyRecord>,
}

impl LoanCommit {
    /// The version the loan has once this commit lands.
    pub fn new_version(&self) -> u64 {
        self.expected_version.unwrap_or(0) + self.commands
    }
}

/// Storage of loans as the actors see it.
pub trait LoanStore: Send + Sync + 'static {
    /// Loads a loan, `None` if there is no such loan.
    fn load(&self, loan_id: LoanId) -> BoxFuture<'_, Result<Option<StoredLoan>, LoanStoreError>>;

    /// Writes the commit atomically: the loan row with a version check
    /// (`where version = expected`), the installments it changed, the
    /// payments it created or changed, and one outbox row per event; never
    /// more rows or statements because the loan is long or has history. Returns the new version. Nothing is written on error.
    fn commit(&self, commit: LoanCommit) -> BoxFuture<'_, Result<u64, LoanStoreError>>;
}

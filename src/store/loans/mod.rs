//! The SQL loan store: [`SqlLoanStore`] implements the actors' [`LoanStore`]
//! seam on either backend, and [`queries`] serves the HTTP edge's reads.
//!
//! A loan is three tables (`loans`, `installments`, `payments`, migration
//! 0003). Only [`LoanStore::commit`] writes them — the turns of many actors
//! share one transaction ([`group`]), each guarded by `loans.version` (a `loan.deleted` commit removes the
//! rows of a loan that never moved money). A loan is always read in one
//! database snapshot, so a read racing a commit never sees half of it.

mod due;
mod group;
mod queries;
mod rows;
mod write;

pub use due::{DueInstallment, installments_due_on, overdue_candidates};
pub use queries::{
    LoanFilter, LoanSummary, PaymentFilter, StoredPayment, get_loan_summary, get_payment,
    list_loans, list_payments, loan_access, loan_owner, loan_paid_by_reference,
};

use actors::core::{FoldedPayments, Loan, LoanId, UserId};
use actors::store::{BoxFuture, LoanCommit, LoanStore, LoanStoreError, StoredLoan};
use chrono::{DateTime, NaiveDate, Utc};
use sqlx::AssertSqlSafe;
use uuid::Uuid;

use self::group::GroupCommitter;
use self::rows::{
    INSTALLMENT_COLUMNS, InstallmentRow, LOAN_COLUMNS, LoanRow, PAYMENT_COLUMNS, PaymentRow,
};
use super::{Db, StoreError};

/// The loan store of either backend; cheap to clone (it holds the pools).
#[derive(Debug, Clone)]
pub struct SqlLoanStore {
    db: Db,
    committer: GroupCommitter,
}

impl SqlLoanStore {
    /// A store over `db` (already migrated); starts its group committer, so
    /// it must be called within a tokio runtime.
    pub fn new(db: Db) -> Self {
        Self {
            committer: GroupCommitter::start(db.clone()),
            db,
        }
    }

    /// The database, for the read queries.
    pub fn db(&self) -> &Db {
        &self.db
    }
}

impl LoanStore for SqlLoanStore {
    fn load(&self, loan_id: LoanId) -> BoxFuture<'_, Result<Option<StoredLoan>, LoanStoreError>> {
        Box::pin(async move {
            let view = get_loan(&self.db, loan_id)
                .await
                .map_err(|error| seam_error(error, loan_id))?;
            Ok(view.map(|view| StoredLoan {
                loan: view.loan,
                version: view.version,
            }))
        })
    }

    fn commit(&self, commit: LoanCommit) -> BoxFuture<'_, Result<u64, LoanStoreError>> {
        Box::pin(self.committer.commit(commit))
    }
}

/// The one conversion from the adapter's error to the seam's.
fn seam_error(error: StoreError, loan_id: LoanId) -> LoanStoreError {
    match error {
        StoreError::Duplicate { constraint } => LoanStoreError::Duplicate { what: constraint },
        StoreError::Corrupt(reason) => LoanStoreError::Corrupt { loan_id, reason },
        other => LoanStoreError::Backend(Box::new(other)),
    }
}

/// A loan as the edge shows it: the aggregate plus what only the store keeps.
#[derive(Debug, Clone)]
pub struct LoanView {
    /// The aggregate, restored and invariant-checked; `loan.figures(as_of)` gives the amounts.
    pub loan: Loan,
    /// Number of commands applied (the optimistic-concurrency version).
    pub version: u64,
    /// When the loan was applied for.
    pub created_at: DateTime<Utc>,
    /// When the loan last changed.
    pub updated_at: DateTime<Utc>,
}

impl LoanView {
    /// The borrower: who besides staff may see the loan.
    pub fn owner(&self) -> UserId {
        self.loan.user_id()
    }
}

/// The rows of one loan, read in one database snapshot.
type LoanParts = (LoanRow, Vec<InstallmentRow>, Vec<PaymentRow>);

/// Reads the loan row, its installments (in `seq` order) and, when
/// `$with_payments`, its payments (in arrival order).
macro_rules! read_loan_parts {
    ($conn:expr, $id:expr, $with_payments:expr) => {
        async {
            let loan: Option<LoanRow> = sqlx::query_as(AssertSqlSafe(format!(
                "select {LOAN_COLUMNS} from loans where id = $1"
            )))
            .bind($id)
            .fetch_optional(&mut *$conn)
            .await?;
            let Some(loan) = loan else {
                return Ok::<Option<LoanParts>, sqlx::Error>(None);
            };
            let installments: Vec<InstallmentRow> = sqlx::query_as(AssertSqlSafe(format!(
                "select {INSTALLMENT_COLUMNS} from installments where loan_id = $1 order by seq"
            )))
            .bind($id)
            .fetch_all(&mut *$conn)
            .await?;
            let payments: Vec<PaymentRow> = if $with_payments {
                sqlx::query_as(AssertSqlSafe(format!(
                    "select {PAYMENT_COLUMNS} from payments p \
                     join loans l on l.id = p.loan_id where p.loan_id = $1 order by p.arrival_seq"
                )))
                .bind($id)
                .fetch_all(&mut *$conn)
                .await?
            } else {
                Vec::new()
            };
            Ok(Some((loan, installments, payments)))
        }
        .await
    };
}

/// Reads one loan's rows inside a read-only transaction: PostgreSQL at
/// `repeatable read`, SQLite in a WAL read transaction, so a concurrent
/// commit is seen entirely or not at all.
async fn read_parts(
    db: &Db,
    id: Uuid,
    with_payments: bool,
) -> Result<Option<LoanParts>, StoreError> {
    let parts = match db {
        Db::Sqlite(sqlite) => {
            let mut tx = sqlite.reader.begin().await?;
            let parts = read_loan_parts!(tx, id, with_payments)?;
            tx.commit().await?;
            parts
        }
        Db::Postgres(pool) => {
            let mut tx = crate::store::tx::begin_postgres(
                pool,
                Some("begin isolation level repeatable read read only"),
            )
            .await?;
            let parts = read_loan_parts!(tx, id, with_payments)?;
            tx.commit().await?;
            parts
        }
    };
    Ok(parts)
}

/// One loan with everything the edge shows; `None` if there is no such loan.
/// Stored data that breaks a loan invariant is [`StoreError::Corrupt`].
pub async fn get_loan(db: &Db, loan_id: LoanId) -> Result<Option<LoanView>, StoreError> {
    let Some((row, installments, payments)) = read_parts(db, loan_id.as_uuid(), true).await? else {
        return Ok(None);
    };
    let version = u64::try_from(row.version)
        .map_err(|_| StoreError::Corrupt(format!("loans.version of {loan_id} negative")))?;
    let (created_at, updated_at) = (row.created_at, row.updated_at);
    let snapshot = row.into_snapshot(installments, payments)?;
    let loan = Loan::restore(snapshot)
        .map_err(|error| StoreError::Corrupt(format!("loan {loan_id}: {error}")))?;
    Ok(Some(LoanView {
        loan,
        version,
        created_at,
        updated_at,
    }))
}

/// One loan without its payments, for showing its schedule or payoff when
/// its actor is not live: the loan row and its installments, whose paid parts
/// already hold every live payment's allocation. Payments are never dated
/// after `today`, so the schedule as of `today` and the payoff quote on any
/// date are exact; deciding needs [`get_loan`].
pub async fn get_loan_for_showing(
    db: &Db,
    loan_id: LoanId,
    today: NaiveDate,
) -> Result<Option<Loan>, StoreError> {
    let Some((row, installments, _)) = read_parts(db, loan_id.as_uuid(), false).await? else {
        return Ok(None);
    };
    let mut snapshot = row.into_snapshot(installments, Vec::new())?;
    let covered = snapshot.total_paid_minor() + snapshot.interest_waived_minor();
    snapshot.folded = FoldedPayments::unlisted(today, covered);
    Loan::restore(snapshot)
        .map(Some)
        .map_err(|error| StoreError::Corrupt(format!("loan {loan_id}: {error}")))
}

//! Reads for the HTTP edge: loan and payment lists with keyset pagination,
//! one payment, a loan's owner.

use actors::core::{
    Currency, LoanId, LoanStatus, LoanTerms, Money, PaymentId, PaymentRecord, UserId,
};
use chrono::{DateTime, NaiveDate, Utc};
use sqlx::AssertSqlSafe;
use uuid::Uuid;

use super::rows::{LOAN_COLUMNS, LoanRow, PAYMENT_COLUMNS, PaymentRow, currency_of, money};
use crate::store::page::{Page, PageRequest, into_page};
use crate::store::with_read_pool;
use crate::store::{Db, StoreError};

/// Filters of `GET /loans` (all optional, combined with "and").
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoanFilter {
    /// Only this borrower's loans.
    pub user_id: Option<UserId>,
    /// Only loans in this status.
    pub status: Option<LoanStatus>,
    /// The date `status` is judged on for repaying loans (`APPROVED` vs
    /// `OVERDUE`, as `Loan::status_on` judges it: `loans.overdue_after`);
    /// `None`: the status as last committed.
    pub as_of: Option<NaiveDate>,
}

/// Filters of the payment lists (all optional, combined with "and").
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PaymentFilter {
    /// Only payments on this loan.
    pub loan_id: Option<LoanId>,
    /// Only payments on this borrower's loans.
    pub user_id: Option<UserId>,
}

/// A loan as its row holds it: the terms and the figures denormalized at the
/// last commit, enough to show the loan (`GET /loans/{id}`, lists) exactly
/// as the core computes it from the whole history, without reading that history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoanSummary {
    /// The loan.
    pub loan_id: LoanId,
    /// The borrower.
    pub user_id: UserId,
    /// Status at the last commit.
    pub status: LoanStatus,
    /// The terms applied for (the purpose included).
    pub terms: LoanTerms,
    /// Date of the application.
    pub applied_on: NaiveDate,
    /// Date of disbursement, once approved.
    pub disbursed_on: Option<NaiveDate>,
    /// Why it was rejected, once rejected.
    pub rejection_reason: Option<String>,
    /// Number of commands applied.
    pub version: u64,
    /// Sum of live payments.
    pub total_paid: Money,
    /// Principal not yet paid.
    pub principal_outstanding: Money,
    /// Interest neither paid nor waived.
    pub interest_outstanding: Money,
    /// Late fees not yet paid.
    pub fees_outstanding: Money,
    /// Sum of the three outstanding amounts.
    pub total_outstanding: Money,
    /// Due date of the oldest installment with anything unpaid.
    pub next_due_date: Option<NaiveDate>,
    /// When the loan was applied for.
    pub created_at: DateTime<Utc>,
    /// When the loan last changed.
    pub updated_at: DateTime<Utc>,
    /// Due date of the oldest installment whose principal or interest no
    /// live payment covers (`LoanSnapshot::overdue_after`).
    pub overdue_after: Option<NaiveDate>,
}

impl LoanSummary {
    /// The status on `today`, by the core's rule (`Loan::status_on`): a
    /// repaying loan is `OVERDUE` while a due date with principal or
    /// interest uncovered lies before `today`.
    pub fn status_on(&self, today: NaiveDate) -> LoanStatus {
        if !self.status.is_repaying() {
            return self.status;
        }
        if self.days_past_due(today) > 0 {
            LoanStatus::Overdue
        } else {
            LoanStatus::Approved
        }
    }

    /// Days since that due date on `today` (`Loan::days_past_due`); 0 when
    /// nothing is past due or the loan is not repaying.
    pub fn days_past_due(&self, today: NaiveDate) -> u32 {
        match self.overdue_after {
            Some(due) if self.status.is_repaying() && due < today => {
                u32::try_from((today - due).num_days()).unwrap_or(u32::MAX)
            }
            _ => 0,
        }
    }
}

impl TryFrom<LoanRow> for LoanSummary {
    type Error = StoreError;

    fn try_from(row: LoanRow) -> Result<Self, StoreError> {
        let currency = currency_of(&row)?;
        let amount = |minor, what| money(minor, currency, what, row.id);
        let outstanding = [
            row.principal_outstanding_minor,
            row.interest_outstanding_minor,
            row.fees_outstanding_minor,
        ];
        let total_minor = outstanding
            .iter()
            .try_fold(0_i64, |sum, part| sum.checked_add(*part))
            .ok_or_else(|| StoreError::Corrupt(format!("outstanding of {} overflows", row.id)))?;
        Ok(LoanSummary {
            loan_id: LoanId::new(row.id),
            user_id: UserId::new(row.user_id),
            status: row.status.parse().map_err(|error| {
                StoreError::Corrupt(format!("loans.status of {}: {error}", row.id))
            })?,
            terms: row.terms()?,
            total_paid: amount(row.total_paid_minor, "loans.total_paid_minor")?,
            principal_outstanding: amount(outstanding[0], "loans.principal_outstanding_minor")?,
            interest_outstanding: amount(outstanding[1], "loans.interest_outstanding_minor")?,
            fees_outstanding: amount(outstanding[2], "loans.fees_outstanding_minor")?,
            total_outstanding: amount(total_minor, "loans outstanding")?,
            version: u64::try_from(row.version).map_err(|_| {
                StoreError::Corrupt(format!("loans.version of {} negative", row.id))
            })?,
            applied_on: row.applied_on,
            disbursed_on: row.disbursed_on,
            rejection_reason: row.rejection_reason,
            next_due_date: row.next_due_date,
            created_at: row.created_at,
            updated_at: row.updated_at,
            overdue_after: row.overdue_after,
        })
    }
}

/// One loan's row; `None` if there is no such loan. One indexed read, however
/// long the loan or its history.
pub async fn get_loan_summary(db: &Db, loan_id: LoanId) -> Result<Option<LoanSummary>, StoreError> {
    let sql = format!("select {LOAN_COLUMNS} from loans where id = $1");
    let row: Option<LoanRow> = with_read_pool!(db, |pool| sqlx::query_as(AssertSqlSafe(sql))
        .bind(loan_id.as_uuid())
        .fetch_optional(pool)
        .await)?;
    row.map(LoanSummary::try_from).transpose()
}

/// A payment with the loan it belongs to and that loan's borrower.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPayment {
    /// The loan paid.
    pub loan_id: LoanId,
    /// The loan's borrower (who besides staff may see the payment).
    pub user_id: UserId,
    /// The payment with its allocation and reversal date.
    pub record: PaymentRecord,
    /// When the payment was recorded.
    pub created_at: DateTime<Utc>,
}

impl TryFrom<PaymentRow> for StoredPayment {
    type Error = StoreError;

    fn try_from(row: PaymentRow) -> Result<Self, StoreError> {
        let currency = Currency::parse(row.currency_code()).map_err(|error| {
            StoreError::Corrupt(format!("payments.currency of {}: {error}", row.id))
        })?;
        let (loan_id, user_id, created_at) = (row.loan_id, row.user_id, row.created_at);
        Ok(StoredPayment {
            loan_id: LoanId::new(loan_id),
            user_id: UserId::new(user_id),
            record: row.into_record(currency)?,
            created_at,
        })
    }
}

/// Loans matching `filter`, newest first, one page at a time. Absent filters
/// bind NULL (`$n is null or …`), so one SQL text serves every combination.
/// With `as_of`, a repaying loan's status is the one the loan itself shows
/// that day, so `?status=OVERDUE` agrees with the items' `status`.
pub async fn list_loans(
    db: &Db,
    filter: LoanFilter,
    page: PageRequest,
) -> Result<Page<LoanSummary>, StoreError> {
    let sql = format!(
        "select {LOAN_COLUMNS} from loans where ($1 is null or user_id = $1) \
         and ($2 is null or $2 = case when $5 is not null \
         and status in ('APPROVED', \
         'OVERDUE') then case when overdue_after < $5 then 'OVERDUE' else 'APPROVED' end else \
         status end) and ($3 is null or id < $3) order by id desc limit $4"
    );
    let rows: Vec<LoanRow> = with_read_pool!(db, |pool| sqlx::query_as(AssertSqlSafe(sql))
        .bind(filter.user_id.map(UserId::as_uuid))
        .bind(filter.status.map(LoanStatus::as_str))
        .bind(page.after())
        .bind(i64::from(page.limit()) + 1)
        .bind(filter.as_of)
        .fetch_all(pool)
        .await)?;
    let items = rows
        .into_iter()
        .map(LoanSummary::try_from)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(into_page(items, page, |item| item.loan_id.as_uuid()))
}

/// Payments matching `filter`, newest id first, one page at a time.
pub async fn list_payments(
    db: &Db,
    filter: PaymentFilter,
    page: PageRequest,
) -> Result<Page<StoredPayment>, StoreError> {
    let sql = format!(
        "select {PAYMENT_COLUMNS} from payments p join loans l on l.id = p.loan_id \
         where ($1 is null or p.loan_id = $1) and ($2 is null or l.user_id = $2) \
         and ($3 is null or p.id < $3) order by p.id desc limit $4"
    );
    let rows: Vec<PaymentRow> = with_read_pool!(db, |pool| sqlx::query_as(AssertSqlSafe(sql))
        .bind(filter.loan_id.map(LoanId::as_uuid))
        .bind(filter.user_id.map(UserId::as_uuid))
        .bind(page.after())
        .bind(i64::from(page.limit()) + 1)
        .fetch_all(pool)
        .await)?;
    let items = rows
        .into_iter()
        .map(StoredPayment::try_from)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(into_page(items, page, |item| {
        item.record.payment_id.as_uuid()
    }))
}

/// One payment with its loan and owner; `None` if there is no such payment.
pub async fn get_payment(
    db: &Db,
    payment_id: PaymentId,
) -> Result<Option<StoredPayment>, StoreError> {
    let sql = format!(
        "select {PAYMENT_COLUMNS} from payments p join loans l on l.id = p.loan_id where p.id = $1"
    );
    let row: Option<PaymentRow> = with_read_pool!(db, |pool| sqlx::query_as(AssertSqlSafe(sql))
        .bind(payment_id.as_uuid())
        .fetch_optional(pool)
        .await)?;
    row.map(StoredPayment::try_from).transpose()
}

/// The borrower of a loan, `None` if there is no such loan: the edge's
/// ownership check before it bothers an actor.
pub async fn loan_owner(db: &Db, loan_id: LoanId) -> Result<Option<UserId>, StoreError> {
    let owner: Option<Uuid> = with_read_pool!(db, |pool| sqlx::query_scalar(
        "select user_id from loans where id = $1"
    )
    .bind(loan_id.as_uuid())
    .fetch_optional(pool)
    .await)?;
    Ok(owner.map(UserId::new))
}

/// Who owns a loan and its currency, `None` if there is no such loan: what
/// a command needs checked before it goes to the actor, in one small read.
pub async fn loan_access(
    db: &Db,
    loan_id: LoanId,
) -> Result<Option<(UserId, Currency)>, StoreError> {
    let row: Option<(Uuid, String)> = with_read_pool!(db, |pool| sqlx::query_as(
        "select user_id, currency from loans where id = $1"
    )
    .bind(loan_id.as_uuid())
    .fetch_optional(pool)
    .await)?;
    row.map(|(owner, currency)| {
        Currency::parse(&currency)
            .map(|currency| (UserId::new(owner), currency))
            .map_err(|error| StoreError::Corrupt(format!("loans.currency of {loan_id}: {error}")))
    })
    .transpose()
}

/// The loan a payment reference already pays, `None` if no payment carries
/// it: references are unique across loans (SPEC §5).
pub async fn loan_paid_by_reference(
    db: &Db,
    reference: &str,
) -> Result<Option<LoanId>, StoreError> {
    let loan: Option<Uuid> = with_read_pool!(db, |pool| sqlx::query_scalar(
        "select loan_id from payments where reference = $1"
    )
    .bind(reference)
    .fetch_optional(pool)
    .await)?;
    Ok(loan.map(LoanId::new))
}

//! What the scheduled jobs look for in the loan tables: loans that may be
//! overdue, and installments due on a date. Both read only the partial index
//! `installments_unpaid_due` and `loans_status`, never a loan's history.

use chrono::NaiveDate;
use sqlx::FromRow;
use uuid::Uuid;

use crate::store::{Db, StoreError, with_read_pool};

/// Loans with an installment unpaid past `as_of` (the partial index
/// `installments_unpaid_due`), plus `OVERDUE` loans that may have caught up
/// (`loans_status`); ascending ids, each once.
pub async fn overdue_candidates(db: &Db, as_of: NaiveDate) -> Result<Vec<Uuid>, StoreError> {
    const SQL: &str = "\
        select i.loan_id from installments i join loans l on l.id = i.loan_id \
        where i.unpaid_minor > 0 and i.due_date < $1 and l.status in ('APPROVED', 'OVERDUE') \
        union select id from loans where status = 'OVERDUE' order by 1";
    Ok(with_read_pool!(db, |pool| {
        sqlx::query_scalar(SQL).bind(as_of).fetch_all(pool).await
    })?)
}

/// An unpaid installment of a repaying loan, with what a reminder needs.
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct DueInstallment {
    /// The loan.
    pub loan_id: Uuid,
    /// The installment's number (1-based).
    pub seq: i32,
    /// When it is due.
    pub due_date: NaiveDate,
    /// What is still unpaid of it, in minor units.
    pub unpaid_minor: i64,
    /// The borrower.
    pub user_id: Uuid,
    /// The loan's currency code.
    pub currency: String,
}

/// Unpaid installments of `APPROVED` / `OVERDUE` loans due on `due_date`
/// (the partial index `installments_unpaid_due`), by loan and number.
pub async fn installments_due_on(
    db: &Db,
    due_date: NaiveDate,
) -> Result<Vec<DueInstallment>, StoreError> {
    const SQL: &str = "\
        select i.loan_id, i.seq, i.due_date, i.unpaid_minor, l.user_id, l.currency \
        from installments i join loans l on l.id = i.loan_id \
        where i.due_date = $1 and i.unpaid_minor > 0 and l.status in ('APPROVED', 'OVERDUE') \
        order by i.loan_id, i.seq";
    Ok(with_read_pool!(db, |pool| {
        sqlx::query_as(SQL).bind(due_date).fetch_all(pool).await
    })?)
}

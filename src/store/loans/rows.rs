//! Rows of `loans`, `installments` and `payments`, private to the store, and
//! their conversion into the core's records (each checked once, here).

use actors::core::{
    Allocation, AllocationLine, Currency, DayCount, FoldedPayments, Frequency, GraceDays,
    Installment, LoanId, LoanSnapshot, LoanStatus, LoanTerms, Money, PaymentId, PaymentRecord,
    Rate, RepaymentMethod, TermMonths, UserId,
};
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use sqlx::FromRow;
use sqlx::types::Json;
use uuid::Uuid;

use crate::store::StoreError;

/// Columns of `loans` that `LoanRow` reads, in its field order.
pub(super) const LOAN_COLUMNS: &str = "id, user_id, status, currency, principal_minor, \
    annual_interest_rate, term_months, repayment_method, late_fee_rate, grace_days, \
    first_due_date, purpose, applied_on, disbursed_on, rejection_reason, version, \
    total_paid_minor, principal_outstanding_minor, interest_outstanding_minor, \
    fees_outstanding_minor, next_due_date, created_at, updated_at, overdue_after, \
    repayment_frequency, day_count";

/// Columns of `installments` that `InstallmentRow` reads.
pub(super) const INSTALLMENT_COLUMNS: &str = "seq, due_date, principal_minor, interest_minor, \
    late_fee_minor, late_fee_assessed_on, fee_paid_minor, interest_paid_minor, \
    principal_paid_minor, interest_waived_minor";

/// Columns of `payments` that `PaymentRow` reads (prefixed: queries join `loans`).
pub(super) const PAYMENT_COLUMNS: &str = "p.id, p.loan_id, l.user_id, p.amount_minor, \
    p.currency, p.paid_on, p.reference, p.fee_minor, p.interest_minor, p.principal_minor, \
    p.interest_waived_minor, p.allocation_lines, p.reversed_on, p.note, p.created_at";

#[derive(FromRow)]
pub(super) struct LoanRow {
    pub id: Uuid,
    pub user_id: Uuid,
    pub status: String,
    pub currency: String,
    pub principal_minor: i64,
    pub annual_interest_rate: String,
    pub term_months: i32,
    pub repayment_method: String,
    pub late_fee_rate: String,
    pub grace_days: i32,
    pub first_due_date: Option<NaiveDate>,
    pub purpose: Option<String>,
    pub applied_on: NaiveDate,
    pub disbursed_on: Option<NaiveDate>,
    pub rejection_reason: Option<String>,
    pub version: i64,
    pub total_paid_minor: i64,
    pub principal_outstanding_minor: i64,
    pub interest_outstanding_minor: i64,
    pub fees_outstanding_minor: i64,
    pub next_due_date: Option<NaiveDate>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub overdue_after: Option<NaiveDate>,
    pub repayment_frequency: String,
    pub day_count: String,
}

#[derive(FromRow)]
pub(super) struct InstallmentRow {
    seq: i32,
    due_date: NaiveDate,
    principal_minor: i64,
    interest_minor: i64,
    late_fee_minor: i64,
    late_fee_assessed_on: Option<NaiveDate>,
    fee_paid_minor: i64,
    interest_paid_minor: i64,
    principal_paid_minor: i64,
    interest_waived_minor: i64,
}

#[derive(FromRow)]
pub(super) struct PaymentRow {
    pub id: Uuid,
    pub loan_id: Uuid,
    pub user_id: Uuid,
    amount_minor: i64,
    currency: String,
    paid_on: NaiveDate,
    reference: Option<String>,
    fee_minor: i64,
    interest_minor: i64,
    principal_minor: i64,
    interest_waived_minor: i64,
    allocation_lines: Json<Vec<LineJson>>,
    reversed_on: Option<NaiveDate>,
    note: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// One allocation line as stored in `payments.allocation_lines`.
#[derive(Serialize, Deserialize)]
pub(super) struct LineJson {
    seq: u16,
    fee_minor: i64,
    interest_minor: i64,
    principal_minor: i64,
    interest_waived_minor: i64,
}

impl From<&AllocationLine> for LineJson {
    fn from(line: &AllocationLine) -> Self {
        LineJson {
            seq: line.seq,
            fee_minor: line.fee.minor(),
            interest_minor: line.interest.minor(),
            principal_minor: line.principal.minor(),
            interest_waived_minor: line.interest_waived.minor(),
        }
    }
}

fn corrupt(what: &str, id: Uuid, error: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what} of {id}: {error}"))
}

/// The loan's currency, checked against the code table.
pub(super) fn currency_of(row: &LoanRow) -> Result<Currency, StoreError> {
    Currency::parse(&row.currency).map_err(|error| corrupt("loans.currency", row.id, error))
}

/// Minor units of `currency` read from column `what` of row `id`.
pub(super) fn money(
    minor: i64,
    currency: Currency,
    what: &str,
    id: Uuid,
) -> Result<Money, StoreError> {
    Money::from_minor(minor, currency).map_err(|error| corrupt(what, id, error))
}

impl LoanRow {
    /// The terms, every field re-parsed through the core's constructors.
    pub(super) fn terms(&self) -> Result<LoanTerms, StoreError> {
        let id = self.id;
        let currency = currency_of(self)?;
        let rate = |text: &str, what| Rate::parse(text).map_err(|error| corrupt(what, id, error));
        let count =
            |value: i32, what| u32::try_from(value).map_err(|error| corrupt(what, id, error));
        let principal = money(self.principal_minor, currency, "loans.principal_minor", id)?;
        let installments = count(self.term_months, "loans.term_months")?;
        let frequency: Frequency = self
            .repayment_frequency
            .parse()
            .map_err(|error| corrupt("loans.repayment_frequency", id, error))?;
        let day_count: DayCount = self
            .day_count
            .parse()
            .map_err(|error| corrupt("loans.day_count", id, error))?;
        let one = TermMonths::new(1).map_err(|error| corrupt("loans.term_months", id, error))?;
        let method: RepaymentMethod = self
            .repayment_method
            .parse()
            .map_err(|error| corrupt("loans.repayment_method", id, error))?;
        let grace_days = GraceDays::new(count(self.grace_days, "loans.grace_days")?)
            .map_err(|error| corrupt("loans.grace_days", id, error))?;
        let annual_rate = rate(&self.annual_interest_rate, "loans.annual_interest_rate")?;
        let late_fee_rate = rate(&self.late_fee_rate, "loans.late_fee_rate")?;
        LoanTerms::new(principal, annual_rate, one)
            .and_then(|terms| terms.with_schedule(frequency, day_count, installments))
            .and_then(|terms| terms.with_late_fee_rate(late_fee_rate))
            .and_then(|terms| terms.with_purpose(self.purpose.as_deref()))
            .map(|terms| {
                terms
                    .with_method(method)
                    .with_grace_days(grace_days)
                    .with_first_due_date(self.first_due_date)
            })
            .map_err(|error| corrupt("loans terms", id, error))
    }

    /// The snapshot, from this row and the loan's installment and payment rows.
    pub(super) fn into_snapshot(
        self,
        installments: Vec<InstallmentRow>,
        payments: Vec<PaymentRow>,
    ) -> Result<LoanSnapshot, StoreError> {
        let terms = self.terms()?;
        let currency = terms.currency();
        let status: LoanStatus = self
            .status
            .parse()
            .map_err(|error| corrupt("loans.status", self.id, error))?;
        let installments = installments
            .into_iter()
            .map(|row| row.into_installment(currency, self.id))
            .collect::<Result<_, _>>()?;
        let payments = payments
            .into_iter()
            .map(|row| row.into_record(currency))
            .collect::<Result<_, _>>()?;
        Ok(LoanSnapshot {
            loan_id: LoanId::new(self.id),
            user_id: UserId::new(self.user_id),
            terms,
            status,
            applied_on: self.applied_on,
            disbursed_on: self.disbursed_on,
            rejection_reason: self.rejection_reason,
            installments,
            payments,
            folded: FoldedPayments::default(),
        })
    }
}

impl InstallmentRow {
    fn into_installment(
        self,
        currency: Currency,
        loan_id: Uuid,
    ) -> Result<Installment, StoreError> {
        let amount = |minor, what| money(minor, currency, what, loan_id);
        Ok(Installment {
            seq: u16::try_from(self.seq)
                .map_err(|error| corrupt("installments.seq", loan_id, error))?,
            due_date: self.due_date,
            principal: amount(self.principal_minor, "installments.principal_minor")?,
            interest: amount(self.interest_minor, "installments.interest_minor")?,
            late_fee: amount(self.late_fee_minor, "installments.late_fee_minor")?,
            late_fee_assessed_on: self.late_fee_assessed_on,
            fee_paid: amount(self.fee_paid_minor, "installments.fee_paid_minor")?,
            interest_paid: amount(self.interest_paid_minor, "installments.interest_paid_minor")?,
            principal_paid: amount(
                self.principal_paid_minor,
                "installments.principal_paid_minor",
            )?,
            interest_waived: amount(
                self.interest_waived_minor,
                "installments.interest_waived_minor",
            )?,
        })
    }
}

impl PaymentRow {
    /// The payment as the core keeps it; `currency` is the loan's.
    pub(super) fn into_record(self, currency: Currency) -> Result<PaymentRecord, StoreError> {
        let id = self.id;
        if self.currency != currency.code() {
            return Err(corrupt("payments.currency", id, "differs from the loan's"));
        }
        let amount = |minor, what| money(minor, currency, what, id);
        let lines = self
            .allocation_lines
            .0
            .iter()
            .map(|line| {
                Ok(AllocationLine {
                    seq: line.seq,
                    fee: amount(line.fee_minor, "payments.allocation_lines")?,
                    interest: amount(line.interest_minor, "payments.allocation_lines")?,
                    principal: amount(line.principal_minor, "payments.allocation_lines")?,
                    interest_waived: amount(
                        line.interest_waived_minor,
                        "payments.allocation_lines",
                    )?,
                })
            })
            .collect::<Result<_, StoreError>>()?;
        Ok(PaymentRecord {
            payment_id: PaymentId::new(id),
            amount: amount(self.amount_minor, "payments.amount_minor")?,
            paid_on: self.paid_on,
            reference: self.reference,
            note: self.note,
            allocation: Allocation {
                lines,
                fee: amount(self.fee_minor, "payments.fee_minor")?,
                interest: amount(self.interest_minor, "payments.interest_minor")?,
                principal: amount(self.principal_minor, "payments.principal_minor")?,
                interest_waived: amount(
                    self.interest_waived_minor,
                    "payments.interest_waived_minor",
                )?,
            },
            reversed_on: self.reversed_on,
        })
    }

    /// The currency code stored on the payment row.
    pub(super) fn currency_code(&self) -> &str {
        &self.currency
    }
}

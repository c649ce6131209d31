//! Request and response bodies of the loan and payment routes. Amounts are
//! strings in major units with the currency's full decimals.

use actors::core::{
    Allocation, InstallmentView, Loan, LoanId, LoanStatus, LoanTerms, Money, PaymentRecord,
    PayoffQuote, UserId,
};
use chrono::{DateTime, NaiveDate, Utc};
use salvo::oapi::ToSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::date::WireDate;
use crate::store::loans::LoanSummary;

/// A loan application.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApplyRequest {
    /// Amount to borrow, e.g. `"10000.00"`.
    #[salvo(schema(example = "10000.00"))]
    pub principal: String,
    /// ISO 4217 code; `USD` when omitted.
    #[salvo(schema(example = "USD"))]
    pub currency: Option<String>,
    /// Percent per year, e.g. `"12.5"`.
    #[salvo(schema(example = "12.5"))]
    pub annual_interest_rate: String,
    /// Number of monthly installments, 1 to 480: the monthly synonym of
    /// `number_of_installments` (give one of the two).
    #[salvo(schema(example = 12, minimum = 1, maximum = 480))]
    pub term_months: Option<u32>,
    /// Number of installments: 1 to 480 monthly, 1 to 520 weekly or biweekly.
    #[salvo(schema(example = 12, minimum = 1, maximum = 520))]
    pub number_of_installments: Option<u32>,
    /// `monthly` (default), `biweekly` or `weekly`.
    #[salvo(schema(example = "monthly"))]
    pub repayment_frequency: Option<String>,
    /// `30/360` (default), `actual/365` or `actual/360`.
    #[salvo(schema(example = "30/360"))]
    pub day_count: Option<String>,
    /// `annuity` (default), `equal_principal` or `flat`.
    #[salvo(schema(example = "annuity"))]
    pub repayment_method: Option<String>,
    /// Percent of an installment's unpaid principal and interest; `"3"` when omitted.
    #[salvo(schema(example = "3"))]
    pub late_fee_rate: Option<String>,
    /// Days past due before a late fee; 0 when omitted.
    #[salvo(schema(example = 5))]
    pub grace_days: Option<u32>,
    /// First due date; one month after disbursement when omitted.
    pub first_due_date: Option<WireDate>,
    /// What the loan is for.
    #[salvo(schema(example = "used car"))]
    pub purpose: Option<String>,
    /// Staff only: the borrower to apply for.
    pub user_id: Option<Uuid>,
}

/// A quote: an application, and the day it would be paid out. (Parsed by
/// taking `disbursed_on` off and reading the rest as an [`ApplyRequest`],
/// so unknown fields are refused.)
#[derive(Debug, Deserialize, ToSchema)]
pub struct QuoteRequest {
    /// The application, as `POST /loans` takes it (`user_id` is ignored).
    #[serde(flatten)]
    pub application: ApplyRequest,
    /// Disbursement date to quote for; today when omitted.
    pub disbursed_on: Option<WireDate>,
}

/// What a loan would cost: its schedule and the disclosure figures (SPEC §7).
#[derive(Debug, Serialize, ToSchema)]
pub struct QuoteBody {
    /// The installments it would have.
    pub schedule: ScheduleBody,
    /// The principal less the origination fee: what the borrower gets.
    pub amount_financed: String,
    /// Total of payments less the amount financed.
    pub finance_charge: String,
    /// Every installment, principal and interest.
    pub total_of_payments: String,
    /// Annual percentage rate by the actuarial method (Regulation Z
    /// appendix J), percent with 2 decimals.
    #[salvo(schema(example = "12.00"))]
    pub apr: String,
}

/// Approval options.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApproveRequest {
    /// Disbursement date; today when omitted.
    pub disbursed_on: Option<WireDate>,
}

/// A rejection.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RejectRequest {
    /// Why, 1 to 500 characters.
    #[salvo(schema(example = "insufficient income"))]
    pub reason: String,
}

/// A payment on a loan given in the path.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PaymentRequest {
    /// Amount paid, e.g. `"125.50"`.
    #[salvo(schema(example = "125.50"))]
    pub amount: String,
    /// Date received; today when omitted. Only staff may give a date before
    /// today (then `note` is required); a borrower's payment is dated today.
    /// Never in the future.
    pub paid_on: Option<WireDate>,
    /// Why the payment is recorded as it is (1 to 500 characters); required
    /// with a back-dated `paid_on`, kept on the payment and in its event.
    #[salvo(schema(example = "cheque received 2026-11-20, entered late"))]
    pub note: Option<String>,
}

/// A payment naming its loan.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoanPaymentRequest {
    /// The loan paid.
    #[salvo(schema(example = "0190f3a2-7c1e-7d4b-9a51-3f2e8c1d5b60"))]
    pub loan_id: Uuid,
    /// Amount paid.
    #[salvo(schema(example = "125.50"))]
    pub amount: String,
    /// Date received; today when omitted. Only staff may give a date before
    /// today (then `note` is required); a borrower's payment is dated today.
    /// Never in the future.
    pub paid_on: Option<WireDate>,
    /// Why the payment is recorded as it is (1 to 500 characters); required
    /// with a back-dated `paid_on`, kept on the payment and in its event.
    #[salvo(schema(example = "cheque received 2026-11-20, entered late"))]
    pub note: Option<String>,
}

/// A loan with its derived figures as of today.
#[derive(Debug, Serialize, ToSchema)]
pub struct LoanBody {
    /// Loan id.
    pub id: Uuid,
    /// The borrower.
    pub user_id: Uuid,
    /// `PENDING`, `APPROVED`, `OVERDUE`, `PAID`, `REJECTED`, `CANCELLED` or `WRITTEN_OFF`.
    pub status: String,
    /// Amount lent.
    pub principal: String,
    /// ISO 4217 code.
    pub currency: String,
    /// Percent per year.
    pub annual_interest_rate: String,
    /// Number of installments (months, for a monthly loan); the same as
    /// `number_of_installments`, kept for clients of the monthly-only API.
    pub term_months: u16,
    /// Number of installments.
    pub number_of_installments: u16,
    /// `monthly`, `biweekly` or `weekly`.
    pub repayment_frequency: String,
    /// `30/360`, `actual/365` or `actual/360`.
    pub day_count: String,
    /// `annuity`, `equal_principal` or `flat`.
    pub repayment_method: String,
    /// Percent.
    pub late_fee_rate: String,
    /// Days.
    pub grace_days: u16,
    /// What the loan is for.
    pub purpose: Option<String>,
    /// Application date.
    pub applied_on: NaiveDate,
    /// Disbursement date, once approved.
    pub disbursed_on: Option<NaiveDate>,
    /// Why it was rejected.
    pub rejection_reason: Option<String>,
    /// Sum of live payments.
    pub total_paid: String,
    /// Principal still owed.
    pub principal_outstanding: String,
    /// Scheduled interest still owed.
    pub interest_outstanding: String,
    /// Late fees still owed.
    pub fees_outstanding: String,
    /// Everything still owed.
    pub total_outstanding: String,
    /// Earliest due date of an unpaid installment.
    pub next_due_date: Option<NaiveDate>,
    /// Days since the oldest unpaid due date.
    pub days_past_due: u32,
    /// Commands applied so far (optimistic-concurrency version).
    pub version: u64,
}

impl LoanBody {
    /// The body of `loan` at `version`, figures as of `today`.
    pub fn new(loan: &Loan, version: u64, today: NaiveDate) -> Self {
        let figures = loan.figures(today);
        LoanFacts {
            loan_id: loan.loan_id(),
            user_id: loan.user_id(),
            status: figures.status,
            terms: loan.terms(),
            applied_on: loan.applied_on(),
            disbursed_on: loan.disbursed_on(),
            rejection_reason: loan.rejection_reason(),
            total_paid: figures.total_paid,
            principal_outstanding: figures.principal_outstanding,
            interest_outstanding: figures.interest_outstanding,
            fees_outstanding: figures.fees_outstanding,
            total_outstanding: figures.total_outstanding,
            next_due_date: figures.next_due_date,
            days_past_due: figures.days_past_due,
            version,
        }
        .into()
    }

    /// The body of a loan from its row, figures as of `today`: the same
    /// body [`LoanBody::new`] computes from the whole loan.
    pub fn from_summary(summary: &LoanSummary, today: NaiveDate) -> Self {
        LoanFacts {
            loan_id: summary.loan_id,
            user_id: summary.user_id,
            status: summary.status_on(today),
            terms: &summary.terms,
            applied_on: summary.applied_on,
            disbursed_on: summary.disbursed_on,
            rejection_reason: summary.rejection_reason.as_deref(),
            total_paid: summary.total_paid,
            principal_outstanding: summary.principal_outstanding,
            interest_outstanding: summary.interest_outstanding,
            fees_outstanding: summary.fees_outstanding,
            total_outstanding: summary.total_outstanding,
            next_due_date: summary.next_due_date,
            days_past_due: summary.days_past_due(today),
            version: summary.version,
        }
        .into()
    }
}

/// What a [`LoanBody`] shows, typed, from either source (the whole loan or
/// its row): the one place that spells the terms and amounts for the wire.
struct LoanFacts<'a> {
    loan_id: LoanId,
    user_id: UserId,
    status: LoanStatus,
    terms: &'a LoanTerms,
    applied_on: NaiveDate,
    disbursed_on: Option<NaiveDate>,
    rejection_reason: Option<&'a str>,
    total_paid: Money,
    principal_outstanding: Money,
    interest_outstanding: Money,
    fees_outstanding: Money,
    total_outstanding: Money,
    next_due_date: Option<NaiveDate>,
    days_past_due: u32,
    version: u64,
}

impl From<LoanFacts<'_>> for LoanBody {
    fn from(facts: LoanFacts<'_>) -> Self {
        let terms = facts.terms;
        Self {
            id: facts.loan_id.as_uuid(),
            user_id: facts.user_id.as_uuid(),
            status: facts.status.as_str().to_owned(),
            principal: terms.principal().to_string(),
            currency: terms.currency().code().to_owned(),
            annual_interest_rate: terms.annual_rate().to_string(),
            term_months: terms.term().get(),
            number_of_installments: terms.term().get(),
            repayment_frequency: terms.frequency().as_str().to_owned(),
            day_count: terms.day_count().as_str().to_owned(),
            repayment_method: terms.method().as_str().to_owned(),
            late_fee_rate: terms.late_fee_rate().to_string(),
            grace_days: terms.grace_days().get(),
            purpose: terms.purpose().map(str::to_owned),
            applied_on: facts.applied_on,
            disbursed_on: facts.disbursed_on,
            rejection_reason: facts.rejection_reason.map(str::to_owned),
            total_paid: facts.total_paid.to_string(),
            principal_outstanding: facts.principal_outstanding.to_string(),
            interest_outstanding: facts.interest_outstanding.to_string(),
            fees_outstanding: facts.fees_outstanding.to_string(),
            total_outstanding: facts.total_outstanding.to_string(),
            next_due_date: facts.next_due_date,
            days_past_due: facts.days_past_due,
            version: facts.version,
        }
    }
}

/// Where a payment went.
#[derive(Debug, Serialize, ToSchema)]
pub struct AllocationBody {
    /// To late fees.
    pub fee: String,
    /// To interest.
    pub interest: String,
    /// To principal.
    pub principal: String,
    /// Interest forgiven because this payment paid the loan off.
    pub interest_waived: String,
}

impl From<&Allocation> for AllocationBody {
    fn from(allocation: &Allocation) -> Self {
        Self {
            fee: allocation.fee.to_string(),
            interest: allocation.interest.to_string(),
            principal: allocation.principal.to_string(),
            interest_waived: allocation.interest_waived.to_string(),
        }
    }
}

/// A payment.
#[derive(Debug, Serialize, ToSchema)]
pub struct PaymentBody {
    /// Payment id.
    pub id: Uuid,
    /// The loan paid.
    pub loan_id: Uuid,
    /// Amount received.
    pub amount: String,
    /// ISO 4217 code.
    pub currency: String,
    /// Date received.
    pub paid_on: NaiveDate,
    /// External reference (bank or gateway), if any.
    pub reference: Option<String>,
    /// The note staff recorded with it (e.g. why it is back-dated), if any.
    pub note: Option<String>,
    /// Where it went.
    pub allocation: AllocationBody,
    /// True once reversed.
    pub reversed: bool,
    /// Date of the reversal.
    pub reversed_on: Option<NaiveDate>,
}

impl PaymentBody {
    /// The body of `record` on `loan_id`.
    pub fn new(loan_id: Uuid, record: &PaymentRecord) -> Self {
        Self {
            id: record.payment_id.as_uuid(),
            loan_id,
            amount: record.amount.to_string(),
            currency: record.amount.currency().code().to_owned(),
            paid_on: record.paid_on,
            reference: record.reference.clone(),
            note: record.note.clone(),
            allocation: AllocationBody::from(&record.allocation),
            reversed: record.reversed_on.is_some(),
            reversed_on: record.reversed_on,
        }
    }
}

/// A payment with the loan after it.
#[derive(Debug, Serialize, ToSchema)]
pub struct PaymentResult {
    /// The payment.
    pub payment: PaymentBody,
    /// The loan after applying it.
    pub loan: LoanBody,
}

/// One row of the schedule.
#[derive(Debug, Serialize, ToSchema)]
pub struct InstallmentBody {
    /// Position, from 1.
    pub seq: u16,
    /// Due date.
    pub due_date: NaiveDate,
    /// Scheduled principal.
    pub principal: String,
    /// Scheduled interest.
    pub interest: String,
    /// Late fee assessed.
    pub fee: String,
    /// Paid so far (fee, interest and principal).
    pub paid: String,
    /// Interest forgiven by an early payoff.
    pub interest_waived: String,
    /// `PENDING`, `PARTIAL`, `PAID` or `OVERDUE`.
    pub status: String,
}

impl From<InstallmentView> for InstallmentBody {
    fn from(view: InstallmentView) -> Self {
        Self {
            seq: view.seq,
            due_date: view.due_date,
            principal: view.principal.to_string(),
            interest: view.interest.to_string(),
            fee: view.fee.to_string(),
            paid: view.paid.to_string(),
            interest_waived: view.interest_waived.to_string(),
            status: view.status.as_str().to_owned(),
        }
    }
}

/// The schedule of a loan (empty until approved).
#[derive(Debug, Serialize, ToSchema)]
pub struct ScheduleBody {
    /// Installments in due order.
    pub installments: Vec<InstallmentBody>,
}

/// What closes the loan on a date.
#[derive(Debug, Serialize, ToSchema)]
pub struct PayoffBody {
    /// The date quoted for.
    pub as_of: NaiveDate,
    /// Principal outstanding.
    pub principal: String,
    /// Interest due by then, including the current period's accrued part.
    pub interest: String,
    /// Unpaid late fees.
    pub fees: String,
    /// The amount that closes the loan.
    pub total: String,
    /// Scheduled interest forgiven by paying this.
    pub interest_waived: String,
    /// ISO 4217 code.
    pub currency: String,
}

impl From<PayoffQuote> for PayoffBody {
    fn from(quote: PayoffQuote) -> Self {
        Self {
            as_of: quote.as_of,
            principal: quote.principal.to_string(),
            interest: quote.interest.to_string(),
            fees: quote.fees.to_string(),
            total: quote.total.to_string(),
            interest_waived: quote.interest_waived.to_string(),
            currency: quote.total.currency().code().to_owned(),
        }
    }
}

/// A page of loans.
pub type LoanListBody = crate::http::pagination::Page<LoanBody>;

/// A timestamp helper so every handler reads the clock once.
#[derive(Debug, Clone, Copy)]
pub struct Now {
    /// The instant.
    pub at: DateTime<Utc>,
    /// The business date.
    pub today: NaiveDate,
}

impl Now {
    /// Reads the application's clock once.
    pub fn read(clock: &crate::clock::Clock) -> Self {
        Self {
            at: clock.now(),
            today: clock.today(),
        }
    }
}

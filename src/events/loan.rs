//! The loan events (SPEC §5), version 1: one type per event, made from the
//! core's events and read back by the consumers.
//!
//! Amounts are strings in major units with the currency's full decimals
//! (`Money`'s `Display`), dates `YYYY-MM-DD`; each money-bearing payload names
//! its `currency`. Consumers may rely on every field listed here; new fields
//! may be added, none removed or re-typed without a new event type.

use actors::core::{self, Allocation, LoanSnapshot, Money, Reallocation};
use actors::store::EventRecord;
use chrono::NaiveDate;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::envelope::{Envelope, Payload, to_the_millisecond};
use super::outbox::OutboxEvent;

/// The events of a loan's life, tagged by `type`, each with its `data`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", content = "data")]
pub enum LoanEvent {
    /// An application was made.
    #[serde(rename = "loan.applied")]
    Applied(LoanApplied),
    /// The loan was approved and disbursed.
    #[serde(rename = "loan.approved")]
    Approved(LoanApproved),
    /// The application was rejected.
    #[serde(rename = "loan.rejected")]
    Rejected(LoanRejected),
    /// The borrower cancelled the application.
    #[serde(rename = "loan.cancelled")]
    Cancelled(NoData),
    /// A payment was recorded and allocated.
    #[serde(rename = "payment.received")]
    PaymentReceived(PaymentReceived),
    /// A payment was reversed.
    #[serde(rename = "payment.reversed")]
    PaymentReversed(PaymentReversed),
    /// An installment became past due.
    #[serde(rename = "loan.overdue")]
    Overdue(LoanOverdue),
    /// Nothing is past due any more: the loan is current again.
    #[serde(rename = "loan.current")]
    Current(AsOf),
    /// Late fees were charged.
    #[serde(rename = "late_fee.applied")]
    LateFeeApplied(LateFeeApplied),
    /// Nothing is outstanding.
    #[serde(rename = "loan.paid")]
    Paid(LoanPaid),
    /// The loan was written off.
    #[serde(rename = "loan.written_off")]
    WrittenOff(LoanWrittenOff),
    /// The loan was deleted (it never moved money).
    #[serde(rename = "loan.deleted")]
    Deleted(LoanDeleted),
}

impl Payload for LoanEvent {
    const TYPES: &'static [&'static str] = &[
        "loan.applied",
        "loan.approved",
        "loan.rejected",
        "loan.cancelled",
        "payment.received",
        "payment.reversed",
        "loan.overdue",
        "loan.current",
        "late_fee.applied",
        "loan.paid",
        "loan.written_off",
        "loan.deleted",
    ];

    fn event_type(&self) -> &'static str {
        match self {
            Self::Applied(_) => "loan.applied",
            Self::Approved(_) => "loan.approved",
            Self::Rejected(_) => "loan.rejected",
            Self::Cancelled(_) => "loan.cancelled",
            Self::PaymentReceived(_) => "payment.received",
            Self::PaymentReversed(_) => "payment.reversed",
            Self::Overdue(_) => "loan.overdue",
            Self::Current(_) => "loan.current",
            Self::LateFeeApplied(_) => "late_fee.applied",
            Self::Paid(_) => "loan.paid",
            Self::WrittenOff(_) => "loan.written_off",
            Self::Deleted(_) => "loan.deleted",
        }
    }
}

/// `data` of an event that carries nothing: `{}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct NoData {}

/// `data` of `loan.current`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct AsOf {
    /// The date the status was judged on.
    pub as_of: NaiveDate,
}

/// `data` of `loan.applied`: the terms applied for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct LoanApplied {
    /// Amount borrowed.
    pub principal: String,
    /// ISO 4217 code of every amount of the loan.
    pub currency: String,
    /// Percent per year, e.g. `"6"`.
    pub annual_interest_rate: String,
    /// Number of installments (months, for a monthly loan).
    pub term_months: u16,
    /// `monthly`, `biweekly` or `weekly` (`monthly` when absent: events
    /// written before frequencies existed).
    #[serde(default = "monthly")]
    pub repayment_frequency: String,
    /// `30/360`, `actual/365` or `actual/360` (`30/360` when absent).
    #[serde(default = "thirty_360")]
    pub day_count: String,
    /// `annuity`, `equal_principal` or `flat`.
    pub repayment_method: String,
    /// Percent of an installment's unpaid principal and interest.
    pub late_fee_rate: String,
    /// Days past due before a late fee.
    pub grace_days: u16,
    /// The first due date asked for, if any.
    pub first_due_date: Option<NaiveDate>,
    /// What the loan is for, if said.
    pub purpose: Option<String>,
    /// Date of the application.
    pub applied_on: NaiveDate,
}

fn monthly() -> String {
    "monthly".into()
}

fn thirty_360() -> String {
    "30/360".into()
}

/// `data` of `loan.approved`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct LoanApproved {
    /// Amount borrowed.
    pub principal: String,
    /// ISO 4217 code.
    pub currency: String,
    /// Date the money was paid out.
    pub disbursed_on: NaiveDate,
    /// Installments in the schedule.
    pub installment_count: usize,
    /// Due date of the first installment.
    pub first_due_date: Option<NaiveDate>,
    /// Due date of the last installment.
    pub last_due_date: Option<NaiveDate>,
    /// Interest over the whole schedule.
    pub total_interest: String,
}

/// `data` of `loan.rejected`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct LoanRejected {
    /// Why.
    pub reason: String,
}

/// `data` of `loan.deleted`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct LoanDeleted {
    /// The status the loan had.
    pub status: String,
}

/// `data` of `payment.received`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PaymentReceived {
    /// The payment's id. Always sent; a reader that does not need it
    /// accepts a message without it.
    #[serde(default)]
    #[schemars(with = "Uuid")]
    pub payment_id: Option<Uuid>,
    /// Amount paid.
    pub amount: String,
    /// ISO 4217 code.
    pub currency: String,
    /// Date it was paid.
    pub paid_on: NaiveDate,
    /// The payer's reference (an inbound payment's `external_ref`).
    pub reference: Option<String>,
    /// Staff's note on a back-dated payment.
    pub note: Option<String>,
    /// How it was split.
    pub allocation: AllocationTotals,
    /// Later-dated payments whose allocation changed.
    #[serde(default)]
    pub reallocated_payment_ids: Vec<Uuid>,
}

/// How a payment was split: fee, then interest, then principal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct AllocationTotals {
    /// To late fees.
    pub fee: String,
    /// To interest.
    pub interest: String,
    /// To principal.
    pub principal: String,
    /// Interest waived by a payoff. Always sent; a reader that does not
    /// need it accepts a message without it.
    #[serde(default)]
    #[schemars(with = "String")]
    pub interest_waived: Option<String>,
}

/// `data` of `payment.reversed`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PaymentReversed {
    /// The payment reversed.
    pub payment_id: Uuid,
    /// Its amount (`null` if the loan no longer lists it).
    pub amount: Option<String>,
    /// ISO 4217 code.
    pub currency: String,
    /// Its date (`null` if the loan no longer lists it).
    pub paid_on: Option<NaiveDate>,
    /// Date of the reversal.
    pub reversed_on: NaiveDate,
    /// Other payments whose allocation changed.
    pub reallocated_payment_ids: Vec<Uuid>,
}

/// `data` of `loan.overdue`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct LoanOverdue {
    /// Date the lateness was judged on.
    pub as_of: NaiveDate,
    /// Days since the oldest unpaid due date.
    pub days_past_due: u32,
}

/// `data` of `late_fee.applied`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct LateFeeApplied {
    /// The assessment date.
    pub as_of: NaiveDate,
    /// ISO 4217 code.
    pub currency: String,
    /// Sum of the fees.
    pub total: String,
    /// One fee per installment.
    pub fees: Vec<LateFeeLine>,
    /// Payments that now also pay the new fees.
    pub reallocated_payment_ids: Vec<Uuid>,
}

/// One installment's late fee.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct LateFeeLine {
    /// The installment's number, from 1.
    pub seq: u16,
    /// Unpaid principal and interest the fee is a percentage of.
    pub base: String,
    /// The fee.
    pub fee: String,
}

/// `data` of `loan.paid`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct LoanPaid {
    /// Date the status was judged on.
    pub as_of: NaiveDate,
    /// ISO 4217 code.
    pub currency: String,
    /// Interest waived by a payoff (zero when paid as scheduled).
    pub interest_waived: String,
}

/// `data` of `loan.written_off`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct LoanWrittenOff {
    /// ISO 4217 code.
    pub currency: String,
    /// Principal not recovered.
    pub principal_outstanding: String,
    /// Interest not recovered.
    pub interest_outstanding: String,
    /// Late fees not recovered.
    pub fees_outstanding: String,
}

/// The envelope of one committed loan event: `user_id` = the borrower,
/// `actor_id` = who caused it (`null`: the system — jobs, inbound
/// payments; the audit log attributes the entry to it). `loan` is the
/// state after the commit, used to describe payments an event only names by id.
pub fn loan_envelope(loan: &LoanSnapshot, record: &EventRecord) -> Envelope<LoanEvent> {
    Envelope {
        event_id: record.event_id,
        payload: LoanEvent::from_core(loan, &record.event),
        loan_id: Some(loan.loan_id.as_uuid()),
        user_id: Some(loan.user_id.as_uuid()),
        occurred_at: to_the_millisecond(record.occurred_at),
        actor_id: Some(record.actor_id.map(|actor| actor.as_uuid())),
    }
}

/// The outbox row of one loan event (see [`loan_envelope`]).
pub fn loan_event_outbox(loan: &LoanSnapshot, record: &EventRecord) -> OutboxEvent {
    loan_envelope(loan, record).to_outbox()
}

impl LoanEvent {
    /// The wire event of one core event, `loan` being the state after it.
    pub fn from_core(loan: &LoanSnapshot, event: &core::LoanEvent) -> Self {
        let currency = loan.terms.currency().code().to_owned();
        match event {
            core::LoanEvent::Applied { terms, applied_on } => Self::Applied(LoanApplied {
                principal: terms.principal().to_string(),
                currency,
                annual_interest_rate: terms.annual_rate().to_string(),
                term_months: terms.term().get(),
                repayment_frequency: terms.frequency().as_str().to_owned(),
                day_count: terms.day_count().as_str().to_owned(),
                repayment_method: terms.method().as_str().to_owned(),
                late_fee_rate: terms.late_fee_rate().to_string(),
                grace_days: terms.grace_days().get(),
                first_due_date: terms.first_due_date(),
                purpose: terms.purpose().map(str::to_owned),
                applied_on: *applied_on,
            }),
            core::LoanEvent::Approved {
                disbursed_on,
                schedule,
            } => {
                let interest_minor: i64 = schedule.iter().map(|line| line.interest.minor()).sum();
                Self::Approved(LoanApproved {
                    principal: loan.terms.principal().to_string(),
                    currency,
                    disbursed_on: *disbursed_on,
                    installment_count: schedule.len(),
                    first_due_date: schedule.first().map(|line| line.due_date),
                    last_due_date: schedule.last().map(|line| line.due_date),
                    total_interest: money_text(interest_minor, loan),
                })
            }
            core::LoanEvent::Rejected { reason } => Self::Rejected(LoanRejected {
                reason: reason.clone(),
            }),
            core::LoanEvent::Cancelled => Self::Cancelled(NoData {}),
            core::LoanEvent::Deleted { status } => Self::Deleted(LoanDeleted {
                status: status.as_str().to_owned(),
            }),
            core::LoanEvent::PaymentApplied {
                payment,
                reallocations,
            } => Self::PaymentReceived(PaymentReceived {
                payment_id: Some(payment.payment_id.as_uuid()),
                amount: payment.amount.to_string(),
                currency,
                paid_on: payment.paid_on,
                reference: payment.reference.clone(),
                note: payment.note.clone(),
                allocation: AllocationTotals::of(&payment.allocation),
                reallocated_payment_ids: reallocated_ids(reallocations),
            }),
            core::LoanEvent::PaymentReversed {
                payment_id,
                reversed_on,
                reallocations,
            } => {
                let reversed = loan
                    .payments
                    .iter()
                    .find(|payment| payment.payment_id == *payment_id);
                Self::PaymentReversed(PaymentReversed {
                    payment_id: payment_id.as_uuid(),
                    amount: reversed.map(|payment| payment.amount.to_string()),
                    currency,
                    paid_on: reversed.map(|payment| payment.paid_on),
                    reversed_on: *reversed_on,
                    reallocated_payment_ids: reallocated_ids(reallocations),
                })
            }
            _ => Self::from_status_event(loan, event),
        }
    }

    /// The events that assess fees or only move the status.
    fn from_status_event(loan: &LoanSnapshot, event: &core::LoanEvent) -> Self {
        let currency = loan.terms.currency().code().to_owned();
        match event {
            core::LoanEvent::LateFeesAssessed {
                as_of,
                fees,
                reallocations,
            } => {
                let total_minor: i64 = fees.iter().map(|fee| fee.fee.minor()).sum();
                Self::LateFeeApplied(LateFeeApplied {
                    as_of: *as_of,
                    currency,
                    total: money_text(total_minor, loan),
                    fees: fees
                        .iter()
                        .map(|fee| LateFeeLine {
                            seq: fee.seq,
                            base: fee.base.to_string(),
                            fee: fee.fee.to_string(),
                        })
                        .collect(),
                    reallocated_payment_ids: reallocated_ids(reallocations),
                })
            }
            core::LoanEvent::MarkedOverdue {
                as_of,
                days_past_due,
            } => Self::Overdue(LoanOverdue {
                as_of: *as_of,
                days_past_due: *days_past_due,
            }),
            core::LoanEvent::ReturnedToApproved { as_of } => Self::Current(AsOf { as_of: *as_of }),
            core::LoanEvent::Paid {
                as_of,
                interest_waived,
            } => Self::Paid(LoanPaid {
                as_of: *as_of,
                currency,
                interest_waived: interest_waived.to_string(),
            }),
            core::LoanEvent::WrittenOff {
                principal_outstanding,
                interest_outstanding,
                fees_outstanding,
            } => Self::WrittenOff(LoanWrittenOff {
                currency,
                principal_outstanding: principal_outstanding.to_string(),
                interest_outstanding: interest_outstanding.to_string(),
                fees_outstanding: fees_outstanding.to_string(),
            }),
            // `from_core` describes the others.
            core::LoanEvent::Applied { .. }
            | core::LoanEvent::Approved { .. }
            | core::LoanEvent::Rejected { .. }
            | core::LoanEvent::Cancelled
            | core::LoanEvent::Deleted { .. }
            | core::LoanEvent::PaymentApplied { .. }
            | core::LoanEvent::PaymentReversed { .. } => Self::from_core(loan, event),
        }
    }
}

impl AllocationTotals {
    fn of(allocation: &Allocation) -> Self {
        Self {
            fee: allocation.fee.to_string(),
            interest: allocation.interest.to_string(),
            principal: allocation.principal.to_string(),
            interest_waived: Some(allocation.interest_waived.to_string()),
        }
    }
}

fn reallocated_ids(reallocations: &[Reallocation]) -> Vec<Uuid> {
    reallocations
        .iter()
        .map(|reallocation| reallocation.payment_id.as_uuid())
        .collect()
}

/// A sum of minor units of the loan's currency as major-unit text.
fn money_text(minor: i64, loan: &LoanSnapshot) -> String {
    Money::from_minor(minor, loan.terms.currency())
        .map(|money| money.to_string())
        .unwrap_or_else(|_| minor.to_string())
}

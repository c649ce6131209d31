//! What callers ask of a loan (commands) and what happened to it (events).

use chrono::NaiveDate;

use super::LoanStatus;
use super::records::{AssessedFee, PaymentRecord, Reallocation};
use crate::core::ids::PaymentId;
use crate::core::money::Money;
use crate::core::schedule::ScheduledInstallment;
use crate::core::terms::LoanTerms;

/// A request to change a loan, decided by [`super::Loan::decide`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoanCommand {
    /// Staff approve a `PENDING` loan; the schedule is generated from `disbursed_on`.
    Approve {
        /// Date the money was paid out; not in the future, not before the application.
        disbursed_on: NaiveDate,
    },
    /// Staff reject a `PENDING` loan.
    Reject {
        /// Why, shown to the borrower; 1 to [`super::MAX_TEXT_CHARS`] characters.
        reason: String,
    },
    /// The borrower withdraws a `PENDING` application.
    Cancel,
    /// Money received for an `APPROVED` or `OVERDUE` loan.
    ApplyPayment {
        /// Caller-chosen id; the same id with the same details again is a no-op.
        payment_id: PaymentId,
        /// Amount received, in the loan's currency, positive.
        amount: Money,
        /// Date received: not before disbursement, not after `today`.
        paid_on: NaiveDate,
        /// External reference (bank, gateway); the same reference again is a no-op.
        reference: Option<String>,
        /// Why it was recorded (staff's note, e.g. for a back-dated payment); 1 to
        /// [`super::MAX_TEXT_CHARS`] characters when given.
        note: Option<String>,
    },
    /// An admin undoes a payment as if it had never been received.
    ReversePayment {
        /// The payment to reverse.
        payment_id: PaymentId,
    },
    /// The overdue job: assess late fees as of a date and move the loan between
    /// `APPROVED` and `OVERDUE`.
    AssessLateFees {
        /// The date to judge lateness on; not after `today`.
        as_of: NaiveDate,
    },
    /// An admin gives up on collecting an `APPROVED` or `OVERDUE` loan.
    WriteOff,
    /// An admin removes a loan that never moved money (`PENDING`, `REJECTED`
    /// or `CANCELLED`, no payment); afterwards the loan answers as unknown.
    Delete,
}

/// Something that happened to a loan; [`super::Loan::apply`] folds it into the state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoanEvent {
    /// The loan was applied for (emitted by [`super::Loan::apply_for`]; applying it again changes nothing).
    Applied {
        /// The terms applied for.
        terms: LoanTerms,
        /// Date of the application.
        applied_on: NaiveDate,
    },
    /// The loan was approved and disbursed; the schedule is fixed from here on.
    Approved {
        /// Date the money was paid out.
        disbursed_on: NaiveDate,
        /// The schedule.
        schedule: Vec<ScheduledInstallment>,
    },
    /// The application was rejected.
    Rejected {
        /// Why.
        reason: String,
    },
    /// The borrower cancelled the application.
    Cancelled,
    /// A payment was recorded and allocated.
    PaymentApplied {
        /// The payment with its allocation (its `interest_waived` is non-zero for a payoff).
        payment: PaymentRecord,
        /// Later-dated payments whose allocation changed (a back-dated payment).
        reallocations: Vec<Reallocation>,
    },
    /// A payment was reversed; it stays on record, marked reversed.
    PaymentReversed {
        /// The payment reversed.
        payment_id: PaymentId,
        /// Date of the reversal.
        reversed_on: NaiveDate,
        /// Other payments whose allocation changed as a result.
        reallocations: Vec<Reallocation>,
    },
    /// Late fees were assessed, at most one per installment ever.
    LateFeesAssessed {
        /// The assessment date.
        as_of: NaiveDate,
        /// The fees, one per installment.
        fees: Vec<AssessedFee>,
        /// Payments dated on or after `as_of` that now also pay the new fees.
        reallocations: Vec<Reallocation>,
    },
    /// An installment is past due and unpaid: `APPROVED` (or `PAID` after a reversal) → `OVERDUE`.
    MarkedOverdue {
        /// Date the lateness was judged on.
        as_of: NaiveDate,
        /// Days since the oldest unpaid due date.
        days_past_due: u32,
    },
    /// Nothing is past due any more: `OVERDUE` (or `PAID` after a reversal) → `APPROVED`.
    ReturnedToApproved {
        /// Date the status was judged on.
        as_of: NaiveDate,
    },
    /// Nothing is outstanding: the loan is `PAID`.
    Paid {
        /// Date the status was judged on.
        as_of: NaiveDate,
        /// Total interest waived by a payoff (zero when paid as scheduled).
        interest_waived: Money,
    },
    /// The loan was deleted (it never moved money); the store removes its rows.
    Deleted {
        /// The status it had.
        status: LoanStatus,
    },
    /// The loan was written off with these amounts outstanding.
    WrittenOff {
        /// Principal not recovered.
        principal_outstanding: Money,
        /// Interest not recovered.
        interest_outstanding: Money,
        /// Late fees not recovered.
        fees_outstanding: Money,
    },
}

impl LoanEvent {
    /// Stable dotted name for the bus (`loan.approved`, `payment.received`…), per SPEC §5.
    pub fn kind_name(&self) -> &'static str {
        match self {
            LoanEvent::Applied { .. } => "loan.applied",
            LoanEvent::Approved { .. } => "loan.approved",
            LoanEvent::Rejected { .. } => "loan.rejected",
            LoanEvent::Cancelled => "loan.cancelled",
            LoanEvent::PaymentApplied { .. } => "payment.received",
            LoanEvent::PaymentReversed { .. } => "payment.reversed",
            LoanEvent::LateFeesAssessed { .. } => "late_fee.applied",
            LoanEvent::MarkedOverdue { .. } => "loan.overdue",
            LoanEvent::ReturnedToApproved { .. } => "loan.current",
            LoanEvent::Paid { .. } => "loan.paid",
            LoanEvent::WrittenOff { .. } => "loan.written_off",
            LoanEvent::Deleted { .. } => "loan.deleted",
        }
    }

    /// The status this event moves the loan to, if it moves it.
    pub fn new_status(&self) -> Option<LoanStatus> {
        match self {
            LoanEvent::Applied { .. } => Some(LoanStatus::Pending),
            LoanEvent::Approved { .. } | LoanEvent::ReturnedToApproved { .. } => {
                Some(LoanStatus::Approved)
            }
            LoanEvent::Rejected { .. } => Some(LoanStatus::Rejected),
            LoanEvent::Cancelled => Some(LoanStatus::Cancelled),
            LoanEvent::MarkedOverdue { .. } => Some(LoanStatus::Overdue),
            LoanEvent::Paid { .. } => Some(LoanStatus::Paid),
            LoanEvent::WrittenOff { .. } => Some(LoanStatus::WrittenOff),
            LoanEvent::PaymentApplied { .. }
            | LoanEvent::Deleted { .. }
            | LoanEvent::PaymentReversed { .. }
            | LoanEvent::LateFeesAssessed { .. } => None,
        }
    }
}

//! The loan aggregate: state, `decide(command, today)` and `apply(event)`.
//!
//! The state is plain data ([`LoanSnapshot`]) that only [`Loan::apply`] changes, and
//! only with events [`Loan::decide`] produced, so every invariant checked by
//! [`Loan::restore`] holds after every event.

mod apply;
mod command;
mod decide;
mod figures;
mod folded;
mod ledger;
mod records;
mod snapshot;

use std::fmt;
use std::str::FromStr;

use chrono::NaiveDate;

pub use command::{LoanCommand, LoanEvent};
pub use figures::{InstallmentStatus, InstallmentView, LoanFigures, PayoffQuote};
pub use folded::FoldedPayments;
pub use records::{
    Allocation, AllocationLine, AssessedFee, Installment, PaymentRecord, Reallocation,
};
pub use snapshot::LoanSnapshot;

use super::error::LoanError;
use super::ids::{LoanId, PaymentId, UserId};
use super::terms::LoanTerms;

/// Longest free text (rejection reason, payment reference) we store.
pub const MAX_TEXT_CHARS: usize = 500;
/// Most payments one loan records: a runaway client is stopped, and the rare
/// full replay (a reversal, a back-dated payment) stays well under a second.
pub const MAX_PAYMENTS_PER_LOAN: usize = 100_000;

/// Where a loan is in its life (SPEC §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LoanStatus {
    /// Applied for, awaiting a decision.
    Pending,
    /// Disbursed and repaying, nothing past due.
    Approved,
    /// Disbursed, at least one installment past due and unpaid.
    Overdue,
    /// Nothing outstanding.
    Paid,
    /// Refused by staff.
    Rejected,
    /// Withdrawn by the borrower.
    Cancelled,
    /// Given up on.
    WrittenOff,
}

impl LoanStatus {
    /// The API spelling: `PENDING`, `APPROVED`, …
    pub fn as_str(self) -> &'static str {
        match self {
            LoanStatus::Pending => "PENDING",
            LoanStatus::Approved => "APPROVED",
            LoanStatus::Overdue => "OVERDUE",
            LoanStatus::Paid => "PAID",
            LoanStatus::Rejected => "REJECTED",
            LoanStatus::Cancelled => "CANCELLED",
            LoanStatus::WrittenOff => "WRITTEN_OFF",
        }
    }

    /// True while the loan is repaying: payments and late fees apply.
    pub fn is_repaying(self) -> bool {
        matches!(self, LoanStatus::Approved | LoanStatus::Overdue)
    }

    /// True once the loan has a schedule (approved at some point).
    pub fn is_disbursed(self) -> bool {
        matches!(
            self,
            LoanStatus::Approved | LoanStatus::Overdue | LoanStatus::Paid | LoanStatus::WrittenOff
        )
    }
}

/// Parses the API spelling; an unknown name is [`LoanError::UnknownStatus`] (a store
/// reading its own rows should treat that as corruption).
impl FromStr for LoanStatus {
    type Err = LoanError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let all = [
            LoanStatus::Pending,
            LoanStatus::Approved,
            LoanStatus::Overdue,
            LoanStatus::Paid,
            LoanStatus::Rejected,
            LoanStatus::Cancelled,
            LoanStatus::WrittenOff,
        ];
        all.into_iter()
            .find(|status| status.as_str() == text)
            .ok_or_else(|| LoanError::UnknownStatus(text.chars().take(16).collect()))
    }
}

impl fmt::Display for LoanStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One loan: its terms, status, installments and payments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loan {
    state: LoanSnapshot,
    /// Set by the `Deleted` event: the loan is gone, every command is refused.
    deleted: bool,
}

impl Loan {
    /// A new `PENDING` loan and the `Applied` event announcing it.
    pub fn apply_for(
        loan_id: LoanId,
        user_id: UserId,
        terms: LoanTerms,
        applied_on: NaiveDate,
    ) -> (Loan, LoanEvent) {
        let event = LoanEvent::Applied {
            terms: terms.clone(),
            applied_on,
        };
        let state = LoanSnapshot {
            loan_id,
            user_id,
            terms,
            status: LoanStatus::Pending,
            applied_on,
            disbursed_on: None,
            rejection_reason: None,
            installments: Vec::new(),
            payments: Vec::new(),
            folded: FoldedPayments::default(),
        };
        (
            Loan {
                state,
                deleted: false,
            },
            event,
        )
    }

    /// The loan's id.
    pub fn loan_id(&self) -> LoanId {
        self.state.loan_id
    }

    /// The borrower.
    pub fn user_id(&self) -> UserId {
        self.state.user_id
    }

    /// The terms applied for.
    pub fn terms(&self) -> &LoanTerms {
        &self.state.terms
    }

    /// True once a `Deleted` event was applied: the store no longer has the loan.
    pub fn is_deleted(&self) -> bool {
        self.deleted
    }

    /// The current status.
    pub fn status(&self) -> LoanStatus {
        self.state.status
    }

    /// Date of the application.
    pub fn applied_on(&self) -> NaiveDate {
        self.state.applied_on
    }

    /// Date of disbursement, once approved.
    pub fn disbursed_on(&self) -> Option<NaiveDate> {
        self.state.disbursed_on
    }

    /// The rejection reason, once rejected.
    pub fn rejection_reason(&self) -> Option<&str> {
        self.state.rejection_reason.as_deref()
    }

    /// The installments (empty until approved).
    pub fn installments(&self) -> &[Installment] {
        &self.state.installments
    }

    /// The payments kept as records, reversed ones included, in arrival order:
    /// every payment ever received unless older ones were folded
    /// ([`Loan::fold_payments`]); always those the latest commands made or changed.
    pub fn payments(&self) -> &[PaymentRecord] {
        &self.state.payments
    }

    /// What is kept of the folded payments.
    pub fn folded(&self) -> &FoldedPayments {
        &self.state.folded
    }

    /// How many payments the loan has recorded, reversed and folded ones included.
    pub fn payment_count(&self) -> usize {
        self.state.folded.count() + self.state.payments.len()
    }

    /// Once more than twice `keep` payments are kept as records, folds the
    /// oldest ones (those every later payment is allocated after) until about
    /// `keep` are left, so a live loan's memory and the cost of deciding do
    /// not grow with its history. A command that needs a folded payment's
    /// record is refused with [`LoanError::HistoryNeeded`]: decide it again on
    /// the loan as the store has it.
    pub fn fold_payments(&mut self, keep: usize) {
        if self.state.payments.len() > keep.saturating_mul(2) {
            folded::fold_oldest(&mut self.state.payments, &mut self.state.folded, keep);
        }
    }

    /// One payment kept as a record, by id.
    pub fn payment(&self, payment_id: PaymentId) -> Option<&PaymentRecord> {
        self.state
            .payments
            .iter()
            .find(|payment| payment.payment_id == payment_id)
    }

    /// A plain-data copy of the state for the store.
    pub fn snapshot(&self) -> LoanSnapshot {
        self.state.clone()
    }

    /// Rebuilds a loan from a stored snapshot, re-checking every invariant.
    pub fn restore(snapshot: LoanSnapshot) -> Result<Loan, LoanError> {
        snapshot.check()?;
        Ok(Loan {
            state: snapshot,
            deleted: false,
        })
    }
}

//! Figures derived from a loan's state: outstanding amounts, lateness, payoff quote.

use chrono::NaiveDate;

use super::command::LoanEvent;
use super::ledger;
use super::records::Allocation;
use super::{Loan, LoanStatus};
use crate::core::error::LoanError;
use crate::core::money::Money;

/// A loan's headline figures as of a date.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoanFigures {
    /// Status as of the date asked ([`Loan::status_on`]).
    pub status: LoanStatus,
    /// Principal lent.
    pub principal: Money,
    /// Sum of live (non-reversed) payments.
    pub total_paid: Money,
    /// Principal not yet paid.
    pub principal_outstanding: Money,
    /// Scheduled interest neither paid nor waived.
    pub interest_outstanding: Money,
    /// Late fees assessed and not yet paid.
    pub fees_outstanding: Money,
    /// Sum of the three outstanding amounts.
    pub total_outstanding: Money,
    /// Interest waived by a payoff.
    pub interest_waived: Money,
    /// Due date of the oldest installment with anything unpaid; `None` when none is.
    pub next_due_date: Option<NaiveDate>,
    /// Days since the oldest past-due unpaid installment's due date; 0 when none.
    pub days_past_due: u32,
}

/// Where one installment stands as of a date.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InstallmentStatus {
    /// Nothing paid and not yet past due.
    Pending,
    /// Something paid, something left, and not overdue (an unpaid late fee alone is not overdue).
    Partial,
    /// Principal, interest and any late fee fully paid (or interest waived).
    Paid,
    /// Past its due date with principal or interest unpaid.
    Overdue,
}

impl InstallmentStatus {
    /// The API spelling: `PENDING`, `PARTIAL`, `PAID`, `OVERDUE`.
    pub fn as_str(self) -> &'static str {
        match self {
            InstallmentStatus::Pending => "PENDING",
            InstallmentStatus::Partial => "PARTIAL",
            InstallmentStatus::Paid => "PAID",
            InstallmentStatus::Overdue => "OVERDUE",
        }
    }
}

/// One schedule row for display (`GET /loans/{id}/schedule`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct InstallmentView {
    /// Position in the schedule, from 1.
    pub seq: u16,
    /// Due date.
    pub due_date: NaiveDate,
    /// Scheduled principal.
    pub principal: Money,
    /// Scheduled interest.
    pub interest: Money,
    /// Late fee assessed (zero if none).
    pub fee: Money,
    /// Paid so far towards fee, interest and principal.
    pub paid: Money,
    /// Interest waived by a payoff.
    pub interest_waived: Money,
    /// Status as of the date asked.
    pub status: InstallmentStatus,
}

/// The amount that closes the loan on a date, and how it splits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayoffQuote {
    /// The date the quote holds for.
    pub as_of: NaiveDate,
    /// Principal outstanding.
    pub principal: Money,
    /// Interest of installments due by `as_of` plus the current period's accrued interest.
    pub interest: Money,
    /// Late fees outstanding (assessed by `as_of`).
    pub fees: Money,
    /// `principal + interest + fees`: pay exactly this on `as_of` to close the loan.
    pub total: Money,
    /// Scheduled interest the payoff forgives.
    pub interest_waived: Money,
}

impl Loan {
    /// The headline figures as of `as_of` (lateness depends on the date, amounts do not).
    pub fn figures(&self, as_of: NaiveDate) -> LoanFigures {
        let currency = self.terms().currency();
        let money = |minor: i64| {
            Money::from_minor(minor, currency).expect("derived amounts are never negative")
        };
        let sum = |part: fn(&super::Installment) -> i64| {
            self.installments().iter().map(part).sum::<i64>()
        };
        let principal_outstanding = sum(|installment| installment.principal_unpaid_minor());
        let interest_outstanding = sum(|installment| installment.interest_unpaid_minor());
        let fees_outstanding = sum(|installment| installment.fee_unpaid_minor());
        // Live allocations are the paid parts, so the history is not walked.
        let total_paid = self.state.total_paid_minor();
        let interest_waived = self.state.interest_waived_minor();
        LoanFigures {
            status: self.status_on(as_of),
            principal: self.terms().principal(),
            total_paid: money(total_paid),
            principal_outstanding: money(principal_outstanding),
            interest_outstanding: money(interest_outstanding),
            fees_outstanding: money(fees_outstanding),
            total_outstanding: money(
                principal_outstanding + interest_outstanding + fees_outstanding,
            ),
            interest_waived: money(interest_waived),
            next_due_date: self
                .installments()
                .iter()
                .find(|i| i.unpaid_minor() > 0)
                .map(|i| i.due_date),
            days_past_due: self.days_past_due(as_of),
        }
    }

    /// The status as of `as_of`: a repaying loan is `OVERDUE` exactly while an
    /// installment is past due with principal or interest unpaid, `APPROVED`
    /// otherwise — whether or not the overdue job has recorded the change yet
    /// (it still charges the fees and sends the notices). Any other status is
    /// as committed.
    pub fn status_on(&self, as_of: NaiveDate) -> LoanStatus {
        if !self.status().is_repaying() {
            return self.status();
        }
        if self.late_days(as_of) > 0 {
            LoanStatus::Overdue
        } else {
            LoanStatus::Approved
        }
    }

    /// Days since the oldest due date whose principal or interest is unpaid on `as_of`
    /// (unpaid late fees ignored); 0 when nothing is past due or the loan is not repaying.
    pub fn days_past_due(&self, as_of: NaiveDate) -> u32 {
        if !self.status().is_repaying() {
            return 0;
        }
        self.late_days(as_of)
    }

    /// [`Loan::days_past_due`] whatever the status: a `PAID` loan reopened by a reversal may be late.
    fn late_days(&self, as_of: NaiveDate) -> u32 {
        let unpaid =
            ledger::fee_blind_unpaid(self.installments(), (self.payments(), self.folded()), as_of);
        self.installments()
            .iter()
            .zip(unpaid)
            .find(|(installment, unpaid)| *unpaid > 0 && installment.due_date < as_of)
            .map_or(0, |(installment, _)| {
                u32::try_from((as_of - installment.due_date).num_days()).unwrap_or(u32::MAX)
            })
    }

    /// The schedule with what was paid and each installment's status as of `as_of`.
    pub fn installment_views(&self, as_of: NaiveDate) -> Vec<InstallmentView> {
        let unpaid =
            ledger::fee_blind_unpaid(self.installments(), (self.payments(), self.folded()), as_of);
        let currency = self.terms().currency();
        self.installments()
            .iter()
            .zip(unpaid)
            .map(|(installment, fee_blind_unpaid)| {
                let status = if installment.unpaid_minor() == 0 {
                    InstallmentStatus::Paid
                } else if fee_blind_unpaid > 0 && installment.due_date < as_of {
                    InstallmentStatus::Overdue
                } else if installment.paid_minor() > 0 {
                    InstallmentStatus::Partial
                } else {
                    InstallmentStatus::Pending
                };
                InstallmentView {
                    seq: installment.seq,
                    due_date: installment.due_date,
                    principal: installment.principal,
                    interest: installment.interest,
                    fee: installment.late_fee,
                    paid: Money::from_minor(installment.paid_minor(), currency)
                        .expect("paid is never negative"),
                    interest_waived: installment.interest_waived,
                    status,
                }
            })
            .collect()
    }

    /// What closes the loan on `as_of`, counting every payment on record.
    ///
    /// Only for a repaying loan (`Conflict` otherwise) and not before disbursement (`Invalid`).
    pub fn payoff_quote(&self, as_of: NaiveDate) -> Result<PayoffQuote, LoanError> {
        let disbursed_on = self.require_repaying("quote a payoff for")?;
        if as_of < disbursed_on {
            return Err(LoanError::DateOutOfRange {
                field: "as_of",
                date: as_of,
                reason: "before disbursement",
            });
        }
        let allocation: Allocation = ledger::payoff_allocation(
            self.installments(),
            disbursed_on,
            as_of,
            self.terms().currency(),
        );
        Ok(PayoffQuote {
            as_of,
            principal: allocation.principal,
            interest: allocation.interest,
            fees: allocation.fee,
            total: allocation
                .principal
                .checked_add(allocation.interest)?
                .checked_add(allocation.fee)?,
            interest_waived: allocation.interest_waived,
        })
    }

    /// The disbursement date of a repaying loan, or the typed refusal for `action`.
    pub(super) fn require_repaying(&self, action: &'static str) -> Result<NaiveDate, LoanError> {
        match self.disbursed_on() {
            Some(disbursed_on) if self.status().is_repaying() => Ok(disbursed_on),
            _ => Err(LoanError::InvalidTransition {
                action,
                status: self.status(),
            }),
        }
    }

    /// The status event that brings a disbursed loan in line with its figures on `as_of`, if any.
    pub(super) fn status_change(&self, as_of: NaiveDate) -> Option<LoanEvent> {
        if !matches!(
            self.status(),
            LoanStatus::Approved | LoanStatus::Overdue | LoanStatus::Paid
        ) {
            return None;
        }
        let figures = self.figures(as_of);
        let late_days = self.late_days(as_of);
        let target = if figures.total_outstanding.is_zero() {
            LoanStatus::Paid
        } else if late_days > 0 {
            LoanStatus::Overdue
        } else {
            LoanStatus::Approved
        };
        if target == self.status() {
            return None;
        }
        Some(match target {
            LoanStatus::Paid => LoanEvent::Paid {
                as_of,
                interest_waived: figures.interest_waived,
            },
            LoanStatus::Overdue => LoanEvent::MarkedOverdue {
                as_of,
                days_past_due: late_days,
            },
            _ => LoanEvent::ReturnedToApproved { as_of },
        })
    }
}

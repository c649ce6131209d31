//! `LoanSnapshot`: the loan as plain data for the store, and the invariant checks
//! that `Loan::restore` runs on whatever the store hands back.

use std::collections::HashSet;

use chrono::NaiveDate;

use super::folded::FoldedPayments;
use super::ledger;
use super::records::{Installment, PaymentRecord};
use super::{LoanStatus, MAX_PAYMENTS_PER_LOAN};
use crate::core::error::LoanError;
use crate::core::ids::{LoanId, UserId};
use crate::core::money::Money;
use crate::core::terms::LoanTerms;

/// Everything a store must keep to rebuild a loan (no version: the store owns that).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoanSnapshot {
    /// The loan's id.
    pub loan_id: LoanId,
    /// The borrower.
    pub user_id: UserId,
    /// The terms applied for.
    pub terms: LoanTerms,
    /// Current status.
    pub status: LoanStatus,
    /// Date of the application.
    pub applied_on: NaiveDate,
    /// Date of disbursement; set once approved.
    pub disbursed_on: Option<NaiveDate>,
    /// Why it was rejected; set once rejected.
    pub rejection_reason: Option<String>,
    /// The installments with fees and paid parts; empty until approved.
    pub installments: Vec<Installment>,
    /// The payments kept as records, reversed ones included, in arrival order:
    /// every payment, unless older ones were folded.
    pub payments: Vec<PaymentRecord>,
    /// What is kept of the payments before `payments` (a store hands back
    /// the whole history, so nothing is folded).
    pub folded: FoldedPayments,
}

impl LoanSnapshot {
    /// Due date of the oldest installment whose principal or interest no live
    /// payment covers (fee-blind, as lateness is judged); `None` when all are
    /// covered. Payments are never dated in the future, so a repaying loan is
    /// `OVERDUE` on exactly the days after this date ([`super::Loan::status_on`]);
    /// the store keeps it on the loan row so lists can filter on today's status.
    pub fn overdue_after(&self) -> Option<NaiveDate> {
        let unpaid = ledger::fee_blind_unpaid(
            &self.installments,
            (&self.payments, &self.folded),
            NaiveDate::MAX,
        );
        self.installments
            .iter()
            .zip(unpaid)
            .find(|(_, unpaid)| *unpaid > 0)
            .map(|(installment, _)| installment.due_date)
    }

    /// Everything paid by the live payments (folded ones included), in minor
    /// units: their allocations are the installments' paid parts.
    pub fn total_paid_minor(&self) -> i64 {
        self.installments.iter().map(Installment::paid_minor).sum()
    }

    /// Interest forgiven by the live payments' allocations (payoffs), in minor units.
    pub fn interest_waived_minor(&self) -> i64 {
        self.installments
            .iter()
            .map(|installment| installment.interest_waived.minor())
            .sum()
    }

    /// Checks every invariant a loan keeps; the first broken one is reported.
    pub(super) fn check(&self) -> Result<(), LoanError> {
        self.check_lifecycle()?;
        self.check_installments()?;
        self.check_payments()?;
        let Some(disbursed_on) = self.disbursed_on else {
            return Ok(());
        };
        // Allocations must be exactly what a replay of the live payments gives
        // (of the kept ones, on top of the folded ones' share).
        let replayed = ledger::replay(
            &self.installments,
            &self.payments,
            &self.payments,
            (disbursed_on, self.terms.currency()),
        )
        .map_err(|error| corrupt(format!("payments do not replay: {error}")))?;
        for (payment, allocation) in self.payments.iter().zip(replayed) {
            if let Some(allocation) = allocation
                && allocation != payment.allocation
            {
                return Err(corrupt(format!(
                    "payment {} allocation differs from replay",
                    payment.payment_id
                )));
            }
        }
        self.check_paid_parts()?;
        let outstanding: i64 = self
            .installments
            .iter()
            .map(Installment::unpaid_minor)
            .sum();
        match (self.status, outstanding) {
            (LoanStatus::Paid, 0) | (LoanStatus::WrittenOff, _) => Ok(()),
            (LoanStatus::Paid, _) => Err(corrupt("PAID with money outstanding".into())),
            (_, 0) => Err(corrupt("repaying with nothing outstanding".into())),
            _ => Ok(()),
        }
    }

    fn check_lifecycle(&self) -> Result<(), LoanError> {
        let disbursed = self.status.is_disbursed();
        if disbursed != self.disbursed_on.is_some() || disbursed == self.installments.is_empty() {
            return Err(corrupt(format!(
                "{} loan with inconsistent disbursement",
                self.status
            )));
        }
        if !disbursed && !self.payments.is_empty() {
            return Err(corrupt("payments on a loan never disbursed".into()));
        }
        if (self.status == LoanStatus::Rejected) != self.rejection_reason.is_some() {
            return Err(corrupt(
                "rejection reason without rejection, or the reverse".into(),
            ));
        }
        Ok(())
    }

    fn check_installments(&self) -> Result<(), LoanError> {
        if self.installments.is_empty() {
            return Ok(());
        }
        if self.installments.len() != usize::from(self.terms.term().get()) {
            return Err(corrupt("installment count differs from the term".into()));
        }
        let mut principal_sum: i64 = 0;
        let mut previous_due: Option<NaiveDate> = self.disbursed_on;
        for (index, installment) in self.installments.iter().enumerate() {
            if usize::from(installment.seq) != index + 1
                || previous_due.is_some_and(|due| installment.due_date <= due)
            {
                return Err(corrupt(format!(
                    "installment {} out of order",
                    installment.seq
                )));
            }
            previous_due = Some(installment.due_date);
            self.check_currencies(installment)?;
            if installment.late_fee.is_zero() == installment.late_fee_assessed_on.is_some() {
                return Err(corrupt(format!(
                    "installment {} late fee without date",
                    installment.seq
                )));
            }
            principal_sum += installment.principal.minor();
        }
        if principal_sum != self.terms.principal().minor() {
            return Err(corrupt(
                "principal parts do not sum to the principal".into(),
            ));
        }
        Ok(())
    }

    fn check_currencies(&self, installment: &Installment) -> Result<(), LoanError> {
        let amounts = [
            installment.principal,
            installment.interest,
            installment.late_fee,
            installment.fee_paid,
            installment.interest_paid,
            installment.principal_paid,
            installment.interest_waived,
        ];
        if amounts
            .iter()
            .any(|amount| amount.currency() != self.terms.currency())
        {
            return Err(corrupt(format!(
                "installment {} in another currency",
                installment.seq
            )));
        }
        Ok(())
    }

    fn check_payments(&self) -> Result<(), LoanError> {
        if self.folded.count() + self.payments.len() > MAX_PAYMENTS_PER_LOAN {
            return Err(corrupt("too many payments".into()));
        }
        let mut ids = HashSet::new();
        let mut references = HashSet::new();
        for payment in &self.payments {
            let fresh_reference = payment
                .reference
                .as_ref()
                .is_none_or(|reference| references.insert(reference));
            if !ids.insert(payment.payment_id) || !fresh_reference {
                return Err(corrupt(format!(
                    "payment {} id or reference repeated",
                    payment.payment_id
                )));
            }
            let valid = payment.amount.currency() == self.terms.currency()
                && !payment.amount.is_zero()
                && self
                    .disbursed_on
                    .is_some_and(|disbursed_on| payment.paid_on >= disbursed_on);
            if !valid {
                return Err(corrupt(format!(
                    "payment {} amount, currency or date invalid",
                    payment.payment_id
                )));
            }
        }
        Ok(())
    }

    /// Paid parts must equal the sum of the live allocations (at least the kept
    /// ones' when some are folded), and never exceed what is owed.
    fn check_paid_parts(&self) -> Result<(), LoanError> {
        let mut sums = vec![[0_i64; 4]; self.installments.len()];
        for payment in self
            .payments
            .iter()
            .filter(|payment| !payment.is_reversed())
        {
            for line in &payment.allocation.lines {
                let sum = sums
                    .get_mut(usize::from(line.seq).wrapping_sub(1))
                    .ok_or_else(|| {
                        corrupt(format!("allocation to unknown installment {}", line.seq))
                    })?;
                let parts = [
                    line.fee,
                    line.interest,
                    line.principal,
                    line.interest_waived,
                ];
                for (total, part) in sum.iter_mut().zip(parts) {
                    *total += part.minor();
                }
            }
        }
        for (installment, sum) in self.installments.iter().zip(sums) {
            let recorded = [
                installment.fee_paid,
                installment.interest_paid,
                installment.principal_paid,
                installment.interest_waived,
            ]
            .map(Money::minor);
            let consistent = if self.folded.is_empty() {
                recorded == sum
            } else {
                recorded
                    .iter()
                    .zip(sum)
                    .all(|(recorded, kept)| *recorded >= kept)
            };
            if !consistent
                || installment.fee_unpaid_minor() < 0
                || installment.interest_unpaid_minor() < 0
                || installment.principal_unpaid_minor() < 0
            {
                return Err(corrupt(format!(
                    "installment {} paid parts inconsistent",
                    installment.seq
                )));
            }
        }
        Ok(())
    }
}

fn corrupt(reason: String) -> LoanError {
    LoanError::CorruptSnapshot(reason)
}

//! `Loan::apply`: folds an event into the state. No decisions here, only bookkeeping.

use super::command::LoanEvent;
use std::collections::BTreeMap;

use super::records::{Allocation, Installment, Reallocation};
use super::{Loan, LoanStatus};
use crate::core::money::Money;

impl Loan {
    /// Folds `event` into the state.
    ///
    /// Events come from [`Loan::decide`] on this same state (or from the store, in
    /// order); an event that does not fit the state is a bug and panics rather than
    /// corrupt money.
    pub fn apply(&mut self, event: &LoanEvent) {
        let state = &mut self.state;
        match event {
            // The creation event: `Loan::apply_for` already built this state.
            LoanEvent::Applied { .. } => {}
            LoanEvent::Approved {
                disbursed_on,
                schedule,
            } => {
                assert_eq!(
                    state.status,
                    LoanStatus::Pending,
                    "only a pending loan is approved"
                );
                state.disbursed_on = Some(*disbursed_on);
                state.installments = schedule.iter().map(Installment::from_schedule).collect();
            }
            LoanEvent::Rejected { reason } => state.rejection_reason = Some(reason.clone()),
            LoanEvent::Deleted { .. } => self.deleted = true,
            LoanEvent::Cancelled
            | LoanEvent::MarkedOverdue { .. }
            | LoanEvent::ReturnedToApproved { .. }
            | LoanEvent::Paid { .. }
            | LoanEvent::WrittenOff { .. } => {}
            LoanEvent::PaymentApplied {
                payment,
                reallocations,
            } => {
                assert_eq!(
                    payment.allocation.applied_minor(),
                    payment.amount.minor(),
                    "allocation sums to the payment"
                );
                let mut paid = PaidChange::default();
                paid.add(&payment.allocation, 1);
                state.payments.push(payment.clone());
                self.reallocate(paid, reallocations);
            }
            LoanEvent::PaymentReversed {
                payment_id,
                reversed_on,
                reallocations,
            } => {
                let payment = state
                    .payments
                    .iter_mut()
                    .find(|payment| payment.payment_id == *payment_id)
                    .expect("a reversed payment is on record");
                let mut paid = PaidChange::default();
                paid.add(&payment.allocation, -1);
                payment.reversed_on = Some(*reversed_on);
                self.reallocate(paid, reallocations);
            }
            LoanEvent::LateFeesAssessed {
                as_of,
                fees,
                reallocations,
            } => {
                for fee in fees {
                    let installment = &mut state.installments[usize::from(fee.seq) - 1];
                    assert!(
                        installment.late_fee_assessed_on.is_none(),
                        "one late fee per installment"
                    );
                    installment.late_fee = fee.fee;
                    installment.late_fee_assessed_on = Some(*as_of);
                }
                self.reallocate(PaidChange::default(), reallocations);
            }
        }
        if let Some(status) = event.new_status() {
            self.state.status = status;
        }
    }

    /// Replaces the re-allocated payments' allocations and moves the installments'
    /// paid parts by exactly what changed (`paid` already holds the command's
    /// own change), so paid parts stay the sum of the live allocations without
    /// walking the history.
    fn reallocate(&mut self, mut paid: PaidChange, reallocations: &[Reallocation]) {
        let state = &mut self.state;
        for reallocation in reallocations {
            let payment = state
                .payments
                .iter_mut()
                .find(|payment| payment.payment_id == reallocation.payment_id)
                .expect("a re-allocated payment is kept as a record");
            assert!(
                !payment.is_reversed()
                    && reallocation.allocation.applied_minor() == payment.amount.minor(),
                "a live payment's allocation sums to it"
            );
            paid.add(&payment.allocation, -1);
            paid.add(&reallocation.allocation, 1);
            payment.allocation = reallocation.allocation.clone();
        }
        let currency = state.terms.currency();
        let money =
            |minor: i64| Money::from_minor(minor, currency).expect("paid parts are never negative");
        for (seq, [fee, interest, principal, waived]) in paid.by_seq {
            let installment = &mut state.installments[usize::from(seq) - 1];
            installment.fee_paid = money(installment.fee_paid.minor() + fee);
            installment.interest_paid = money(installment.interest_paid.minor() + interest);
            installment.principal_paid = money(installment.principal_paid.minor() + principal);
            installment.interest_waived = money(installment.interest_waived.minor() + waived);
            // No balance may ever go negative: paid never exceeds owed.
            assert!(installment.fee_unpaid_minor() >= 0, "late fee overpaid");
            assert!(
                installment.interest_unpaid_minor() >= 0,
                "interest overpaid"
            );
            assert!(
                installment.principal_unpaid_minor() >= 0,
                "principal overpaid"
            );
        }
    }
}

/// How an event moves the paid parts, per installment `seq`: fee, interest,
/// principal, waived interest, in minor units.
#[derive(Default)]
struct PaidChange {
    by_seq: BTreeMap<u16, [i64; 4]>,
}

impl PaidChange {
    /// Adds (`sign` 1) or takes back (`sign` -1) an allocation.
    fn add(&mut self, allocation: &Allocation, sign: i64) {
        for line in &allocation.lines {
            let parts = self.by_seq.entry(line.seq).or_default();
            parts[0] += sign * line.fee.minor();
            parts[1] += sign * line.interest.minor();
            parts[2] += sign * line.principal.minor();
            parts[3] += sign * line.interest_waived.minor();
        }
    }
}

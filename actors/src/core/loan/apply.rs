//! `Loan::apply`: folds an event into the state. No decisions here, only bookkeeping.

use super::command::LoanEvent;
use super::records::{Installment, Reallocation};
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
                state.payments.push(payment.clone());
                self.reallocate(reallocations);
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
                payment.reversed_on = Some(*reversed_on);
                self.reallocate(reallocations);
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
                self.reallocate(reallocations);
            }
        }
        if let Some(status) = event.new_status() {
            self.state.status = status;
        }
    }

    /// Replaces allocations and recomputes every installment's paid parts from the
    /// live payments, so paid parts can never drift from the allocations.
    fn reallocate(&mut self, reallocations: &[Reallocation]) {
        let state = &mut self.state;
        for reallocation in reallocations {
            let payment = state
                .payments
                .iter_mut()
                .find(|payment| payment.payment_id == reallocation.payment_id)
                .expect("a re-allocated payment is on record");
            payment.allocation = reallocation.allocation.clone();
        }
        let currency = state.terms.currency();
        let mut sums = vec![[0_i64; 4]; state.installments.len()];
        for payment in state
            .payments
            .iter()
            .filter(|payment| !payment.is_reversed())
        {
            assert_eq!(
                payment.allocation.applied_minor(),
                payment.amount.minor(),
                "allocation sums to the payment"
            );
            for line in &payment.allocation.lines {
                let sum = &mut sums[usize::from(line.seq) - 1];
                sum[0] += line.fee.minor();
                sum[1] += line.interest.minor();
                sum[2] += line.principal.minor();
                sum[3] += line.interest_waived.minor();
            }
        }
        let money =
            |minor: i64| Money::from_minor(minor, currency).expect("paid parts are never negative");
        for (installment, [fee, interest, principal, waived]) in
            state.installments.iter_mut().zip(sums)
        {
            installment.fee_paid = money(fee);
            installment.interest_paid = money(interest);
            installment.principal_paid = money(principal);
            installment.interest_waived = money(waived);
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

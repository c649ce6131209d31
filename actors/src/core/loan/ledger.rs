//! Allocation of payments to installments, replayed so that the result
//! depends only on the installments and the set of live payments.
//!
//! Replaying (rather than patching) is what makes a reversal or a back-dated
//! payment equal to "the payments as if they had always been exactly these".
//! A payment dated on or after every other is allocated last, so it needs no
//! replay at all ([`allocate_last`]): the common case costs one pass over the
//! installments, whatever the history.

use chrono::NaiveDate;
use rust_decimal::Decimal;

use super::folded::FoldedPayments;
use super::records::{Allocation, AllocationLine, Installment, PaymentRecord};
use crate::core::error::LoanError;
use crate::core::money::{Currency, Money, round_minor};

/// Amounts in minor units for one installment: paid parts, or one payment's line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Parts {
    pub fee: i64,
    pub interest: i64,
    pub principal: i64,
    pub waived: i64,
}

impl Parts {
    fn applied(self) -> i64 {
        self.fee + self.interest + self.principal
    }

    fn is_zero(self) -> bool {
        self == Parts::default()
    }

    fn add(&mut self, other: Parts) {
        self.fee += other.fee;
        self.interest += other.interest;
        self.principal += other.principal;
        self.waived += other.waived;
    }
}

/// Allocations of every payment, by index into `payments`; `None` for reversed ones.
///
/// `payments` is what the kept records become (one added, or one reversed);
/// `recorded` is what they are now, whose allocations the installments' paid
/// parts hold on top of the folded payments'. The replay starts from the
/// folded payments' share alone, so it is exact whenever every folded payment
/// is allocated before every kept one and is not changed by the command
/// (the caller checks; with nothing folded the base is zero).
pub(super) fn replay(
    installments: &[Installment],
    recorded: &[PaymentRecord],
    payments: &[PaymentRecord],
    (disbursed_on, currency): (NaiveDate, Currency),
) -> Result<Vec<Option<Allocation>>, LoanError> {
    let mut ledger = Ledger::as_recorded(installments, disbursed_on);
    for payment in recorded.iter().filter(|payment| !payment.is_reversed()) {
        ledger.remove(&payment.allocation);
    }
    let mut order: Vec<usize> = (0..payments.len())
        .filter(|&index| !payments[index].is_reversed())
        .collect();
    // Stable sort: same-day payments keep their arrival order.
    order.sort_by_key(|&index| payments[index].paid_on);
    let mut allocations = vec![None; payments.len()];
    for index in order {
        let payment = &payments[index];
        let lines = ledger.allocate(payment.amount, payment.paid_on)?;
        allocations[index] = Some(to_allocation(&lines, installments, currency));
    }
    Ok(allocations)
}

/// The allocation of a payment dated on or after every live payment: it comes
/// last in the replay order, so it is allocated against the paid parts as
/// recorded and changes no other allocation.
pub(super) fn allocate_last(
    installments: &[Installment],
    amount: Money,
    paid_on: NaiveDate,
    (disbursed_on, currency): (NaiveDate, Currency),
) -> Result<Allocation, LoanError> {
    let mut ledger = Ledger::as_recorded(installments, disbursed_on);
    let lines = ledger.allocate(amount, paid_on)?;
    Ok(to_allocation(&lines, installments, currency))
}

/// The lines a payoff on `as_of` would pay, against the installments' current paid parts.
pub(super) fn payoff_allocation(
    installments: &[Installment],
    disbursed_on: NaiveDate,
    as_of: NaiveDate,
    currency: Currency,
) -> Allocation {
    let ledger = Ledger::as_recorded(installments, disbursed_on);
    to_allocation(&ledger.payoff_lines(as_of), installments, currency)
}

/// Per installment, principal + interest still unpaid on `as_of` if every payment
/// dated up to then had gone to principal and interest only.
///
/// Lateness is judged on this view, so an unpaid late fee never makes the next
/// installment late (no pyramiding).
pub(super) fn fee_blind_unpaid(
    installments: &[Installment],
    (payments, folded): (&[PaymentRecord], &FoldedPayments),
    as_of: NaiveDate,
) -> Vec<i64> {
    let mut covered: i64 = folded.covered_on(as_of)
        + payments
            .iter()
            .filter(|payment| !payment.is_reversed() && payment.paid_on <= as_of)
            .map(|payment| payment.amount.minor() + payment.allocation.interest_waived.minor())
            .sum::<i64>();
    installments
        .iter()
        .map(|installment| {
            let due = installment.principal.minor() + installment.interest.minor();
            let taken = covered.min(due);
            covered -= taken;
            due - taken
        })
        .collect()
}

struct Ledger<'a> {
    installments: &'a [Installment],
    paid: Vec<Parts>,
    disbursed_on: NaiveDate,
}

impl<'a> Ledger<'a> {
    fn as_recorded(installments: &'a [Installment], disbursed_on: NaiveDate) -> Self {
        let paid = installments
            .iter()
            .map(|installment| Parts {
                fee: installment.fee_paid.minor(),
                interest: installment.interest_paid.minor(),
                principal: installment.principal_paid.minor(),
                waived: installment.interest_waived.minor(),
            })
            .collect();
        Ledger {
            installments,
            paid,
            disbursed_on,
        }
    }

    /// What installment `index` still owes a payment dated `on`. A late fee assessed
    /// after `on` is not owed by it: a payment cannot pay a fee that did not exist yet.
    fn unpaid_on(&self, index: usize, on: NaiveDate) -> Parts {
        let installment = &self.installments[index];
        let paid = self.paid[index];
        let fee_owed = match installment.late_fee_assessed_on {
            Some(assessed_on) if assessed_on <= on => installment.late_fee.minor(),
            _ => 0,
        };
        Parts {
            fee: (fee_owed - paid.fee).max(0),
            interest: installment.interest.minor() - paid.interest - paid.waived,
            principal: installment.principal.minor() - paid.principal,
            waived: 0,
        }
    }

    /// Takes a recorded allocation back out of the paid parts.
    fn remove(&mut self, allocation: &Allocation) {
        for line in &allocation.lines {
            let paid = &mut self.paid[usize::from(line.seq) - 1];
            paid.fee -= line.fee.minor();
            paid.interest -= line.interest.minor();
            paid.principal -= line.principal.minor();
            paid.waived -= line.interest_waived.minor();
        }
    }

    fn payable_on(&self, on: NaiveDate) -> i64 {
        (0..self.installments.len())
            .map(|index| self.unpaid_on(index, on).applied())
            .sum()
    }

    /// Allocates one payment and records it in the paid parts.
    fn allocate(&mut self, amount: Money, on: NaiveDate) -> Result<Vec<(usize, Parts)>, LoanError> {
        let payable = self.payable_on(on);
        if amount.minor() > payable {
            let payable = Money::from_minor(payable, amount.currency())?;
            return Err(LoanError::Overpayment { amount, payable });
        }
        let payoff = self.payoff_lines(on);
        let payoff_total: i64 = payoff.iter().map(|(_, parts)| parts.applied()).sum();
        // Exactly the payoff amount closes the loan and waives the interest not yet earned.
        let lines = if amount.minor() < payable && amount.minor() == payoff_total {
            payoff
        } else {
            self.oldest_first(amount.minor(), on)
        };
        let applied: i64 = lines.iter().map(|(_, parts)| parts.applied()).sum();
        assert_eq!(
            applied,
            amount.minor(),
            "an allocation must sum to its payment"
        );
        for &(index, parts) in &lines {
            self.paid[index].add(parts);
        }
        Ok(lines)
    }

    /// Installments oldest first; within each: late fee, then interest, then principal.
    fn oldest_first(&self, amount: i64, on: NaiveDate) -> Vec<(usize, Parts)> {
        let mut remaining = amount;
        let mut lines = Vec::new();
        for index in 0..self.installments.len() {
            if remaining == 0 {
                break;
            }
            let unpaid = self.unpaid_on(index, on);
            let mut take = |owed: i64| {
                let taken = owed.min(remaining);
                remaining -= taken;
                taken
            };
            let fee = take(unpaid.fee);
            let interest = take(unpaid.interest);
            let principal = take(unpaid.principal);
            let line = Parts {
                fee,
                interest,
                principal,
                waived: 0,
            };
            if !line.is_zero() {
                lines.push((index, line));
            }
        }
        lines
    }

    /// Everything owed on `as_of` with interest only up to `as_of`: installments due
    /// by then in full, the current period's interest pro rata by days, later interest waived.
    fn payoff_lines(&self, as_of: NaiveDate) -> Vec<(usize, Parts)> {
        let current = self
            .installments
            .iter()
            .position(|installment| installment.due_date > as_of);
        let mut lines = Vec::new();
        for index in 0..self.installments.len() {
            let mut line = self.unpaid_on(index, as_of);
            let interest_kept = match current {
                Some(current) if index == current => self.accrued_unpaid(index, as_of),
                Some(current) if index > current => 0,
                _ => line.interest,
            };
            line.waived = line.interest - interest_kept;
            line.interest = interest_kept;
            if !line.is_zero() {
                lines.push((index, line));
            }
        }
        lines
    }

    /// Interest of the current period earned by `as_of` (days elapsed / days in the
    /// period, half-even), less what was already paid or waived on it.
    fn accrued_unpaid(&self, index: usize, as_of: NaiveDate) -> i64 {
        let installment = &self.installments[index];
        let start = match index {
            0 => self.disbursed_on,
            _ => self.installments[index - 1].due_date,
        };
        let period_days = (installment.due_date - start).num_days().max(1);
        let elapsed_days = (as_of - start).num_days().clamp(0, period_days);
        let exact = Decimal::from(installment.interest.minor()) * Decimal::from(elapsed_days)
            / Decimal::from(period_days);
        // interest ≤ 10^17 and the ratio ≤ 1, so the rounded value always fits.
        let accrued = round_minor(exact).unwrap_or(installment.interest.minor());
        let unpaid = self.unpaid_on(index, as_of).interest;
        let settled = installment.interest.minor() - unpaid;
        (accrued - settled).clamp(0, unpaid)
    }
}

fn to_allocation(
    lines: &[(usize, Parts)],
    installments: &[Installment],
    currency: Currency,
) -> Allocation {
    let money = |minor: i64| {
        Money::from_minor(minor, currency).expect("allocation parts are never negative")
    };
    let mut total = Parts::default();
    let mut allocation = Allocation::empty(currency);
    for &(index, parts) in lines {
        total.add(parts);
        allocation.lines.push(AllocationLine {
            seq: installments[index].seq,
            fee: money(parts.fee),
            interest: money(parts.interest),
            principal: money(parts.principal),
            interest_waived: money(parts.waived),
        });
    }
    allocation.fee = money(total.fee);
    allocation.interest = money(total.interest);
    allocation.principal = money(total.principal);
    allocation.interest_waived = money(total.waived);
    allocation
}

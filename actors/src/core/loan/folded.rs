//! Payments folded out of memory: a loan keeps its recent payments as records
//! and reduces the older ones to what deciding still needs of them.
//!
//! What a folded payment still matters for, and how it is kept:
//! - its allocation: already inside the installments' paid parts, which
//!   never change for it again (folding keeps only payments that every kept
//!   and every future in-order payment is allocated after);
//! - lateness, judged on the money dated up to a day ([`FoldedPayments::covered_on`]):
//!   one total per payment date;
//! - a repeated external reference: a hash per reference. A hit (or a
//!   collision) asks for the full history ([`crate::core::LoanError::HistoryNeeded`]),
//!   so the check stays exact;
//! - the arrival numbers of later payments: a count.
//!
//! Anything else about them — a reversal, a payment dated before the newest
//! folded one, a late fee a folded payment could have paid — needs the full
//! history, which the actor loads from the store and decides on again.

use std::collections::{BTreeMap, HashSet};
use std::hash::{DefaultHasher, Hash, Hasher};

use chrono::NaiveDate;

use super::records::PaymentRecord;

/// What a loan keeps of the payments no longer held as records.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FoldedPayments {
    /// How many payments were folded, reversed ones included: the first kept
    /// payment arrived as number `count + 1`.
    count: usize,
    /// Per payment date, the live folded payments' amount plus the interest
    /// their allocation waived, in minor units.
    covered_by_date: BTreeMap<NaiveDate, i64>,
    /// Hashes of the folded payments' external references.
    references: HashSet<u64>,
}

impl FoldedPayments {
    /// Payments not read at all, for a loan shown without its history (the
    /// schedule or payoff of a loan whose actor is not live): only their
    /// coverage, `covered` minor units of amount plus waived interest, all
    /// dated on or before `through` (so lateness is exact on and after it),
    /// and whether there were any (`count` is 1 or 0, not their number). A
    /// loan built on it is for showing; deciding on it would need the history.
    pub fn unlisted(through: NaiveDate, covered: i64) -> FoldedPayments {
        let mut folded = FoldedPayments::default();
        if covered > 0 {
            folded.count = 1;
            folded.covered_by_date.insert(through, covered);
        }
        folded
    }

    /// True when nothing was folded: the records are the whole history.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// How many payments were folded.
    pub fn count(&self) -> usize {
        self.count
    }

    /// The newest date of a live folded payment: every kept payment and every
    /// payment decided without the full history is dated on or after it.
    pub fn latest_paid_on(&self) -> Option<NaiveDate> {
        self.covered_by_date.keys().next_back().copied()
    }

    /// Amount plus waived interest of the live folded payments dated up to `as_of`.
    pub fn covered_on(&self, as_of: NaiveDate) -> i64 {
        self.covered_by_date
            .range(..=as_of)
            .map(|(_, minor)| minor)
            .sum()
    }

    /// True when a folded payment may carry `reference` (a hash match).
    pub fn may_hold_reference(&self, reference: &str) -> bool {
        self.references.contains(&reference_hash(reference))
    }

    /// Folds `payment` (the oldest kept one).
    fn fold(&mut self, payment: &PaymentRecord) {
        self.count += 1;
        if let Some(reference) = &payment.reference {
            self.references.insert(reference_hash(reference));
        }
        if !payment.is_reversed() {
            *self.covered_by_date.entry(payment.paid_on).or_default() +=
                payment.amount.minor() + payment.allocation.interest_waived.minor();
        }
    }
}

/// Folds the oldest of `payments` into `folded`, keeping at least `keep` of
/// them as records. Only an arrival-order prefix whose live payments are all
/// dated on or before every payment left is folded, so the kept records are
/// allocated after every folded payment; a back-dated payment can hold more
/// records back than `keep`.
pub(super) fn fold_oldest(
    payments: &mut Vec<PaymentRecord>,
    folded: &mut FoldedPayments,
    keep: usize,
) {
    let Some(most) = payments.len().checked_sub(keep) else {
        return;
    };
    // earliest_from[i]: the earliest live date among payments[i..].
    let mut earliest_from = vec![NaiveDate::MAX; payments.len() + 1];
    for (index, payment) in payments.iter().enumerate().rev() {
        let own = if payment.is_reversed() {
            NaiveDate::MAX
        } else {
            payment.paid_on
        };
        earliest_from[index] = own.min(earliest_from[index + 1]);
    }
    let mut latest_folded = folded.latest_paid_on().unwrap_or(NaiveDate::MIN);
    let mut cut = 0;
    for (index, payment) in payments.iter().enumerate().take(most) {
        if !payment.is_reversed() {
            latest_folded = latest_folded.max(payment.paid_on);
        }
        if latest_folded <= earliest_from[index + 1] {
            cut = index + 1;
        }
    }
    for payment in payments.drain(..cut) {
        folded.fold(&payment);
    }
}

fn reference_hash(reference: &str) -> u64 {
    // SipHash with fixed keys: the same in every run, and only ever compared in memory.
    let mut hasher = DefaultHasher::new();
    reference.hash(&mut hasher);
    hasher.finish()
}

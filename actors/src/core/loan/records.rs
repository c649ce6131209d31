//! Plain records of a loan's state: installments, payments and their allocations.
//!
//! They are the persistence seam too: a store saves and reloads exactly these.

use chrono::NaiveDate;

use crate::core::ids::PaymentId;
use crate::core::money::{Currency, Money};
use crate::core::schedule::ScheduledInstallment;

/// One installment of an approved loan: what is owed and what has been paid on it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Installment {
    /// Position in the schedule, from 1.
    pub seq: u16,
    /// Date the installment falls due.
    pub due_date: NaiveDate,
    /// Scheduled principal.
    pub principal: Money,
    /// Scheduled interest.
    pub interest: Money,
    /// Late fee assessed on this installment; zero until assessed, assessed at most once.
    pub late_fee: Money,
    /// Date the late fee was assessed; payments dated before it cannot pay it.
    pub late_fee_assessed_on: Option<NaiveDate>,
    /// Part of the late fee paid.
    pub fee_paid: Money,
    /// Part of the interest paid.
    pub interest_paid: Money,
    /// Part of the principal paid.
    pub principal_paid: Money,
    /// Interest forgiven because the loan was paid off early.
    pub interest_waived: Money,
}

impl Installment {
    /// A fresh installment from its schedule line: no fee, nothing paid.
    pub fn from_schedule(line: &ScheduledInstallment) -> Installment {
        let zero = Money::zero(line.principal.currency());
        Installment {
            seq: line.seq,
            due_date: line.due_date,
            principal: line.principal,
            interest: line.interest,
            late_fee: zero,
            late_fee_assessed_on: None,
            fee_paid: zero,
            interest_paid: zero,
            principal_paid: zero,
            interest_waived: zero,
        }
    }

    /// Principal still owed, in minor units.
    pub fn principal_unpaid_minor(&self) -> i64 {
        self.principal.minor() - self.principal_paid.minor()
    }

    /// Interest still owed (neither paid nor waived), in minor units.
    pub fn interest_unpaid_minor(&self) -> i64 {
        self.interest.minor() - self.interest_paid.minor() - self.interest_waived.minor()
    }

    /// Late fee still owed, in minor units.
    pub fn fee_unpaid_minor(&self) -> i64 {
        self.late_fee.minor() - self.fee_paid.minor()
    }

    /// Everything still owed on this installment, in minor units.
    pub fn unpaid_minor(&self) -> i64 {
        self.principal_unpaid_minor() + self.interest_unpaid_minor() + self.fee_unpaid_minor()
    }

    /// Everything paid on this installment, in minor units.
    pub fn paid_minor(&self) -> i64 {
        self.fee_paid.minor() + self.interest_paid.minor() + self.principal_paid.minor()
    }
}

/// How much of a payment went to one installment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AllocationLine {
    /// The installment's `seq`.
    pub seq: u16,
    /// Paid towards its late fee.
    pub fee: Money,
    /// Paid towards its interest.
    pub interest: Money,
    /// Paid towards its principal.
    pub principal: Money,
    /// Interest forgiven by this payment (only a payoff waives interest).
    pub interest_waived: Money,
}

/// Where a payment went: per installment, oldest first, and in total.
///
/// Invariant (asserted): `fee + interest + principal` equals the payment amount.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Allocation {
    /// One line per installment touched, in schedule order.
    pub lines: Vec<AllocationLine>,
    /// Total paid towards late fees.
    pub fee: Money,
    /// Total paid towards interest.
    pub interest: Money,
    /// Total paid towards principal.
    pub principal: Money,
    /// Total interest waived by this payment (a payoff).
    pub interest_waived: Money,
}

impl Allocation {
    /// An allocation touching nothing, used for a payment not yet allocated.
    pub fn empty(currency: Currency) -> Allocation {
        let zero = Money::zero(currency);
        Allocation {
            lines: Vec::new(),
            fee: zero,
            interest: zero,
            principal: zero,
            interest_waived: zero,
        }
    }

    /// Sum of fee, interest and principal in minor units: what the payment covered.
    pub fn applied_minor(&self) -> i64 {
        self.fee.minor() + self.interest.minor() + self.principal.minor()
    }
}

/// A payment received on the loan, kept forever (reversed ones too).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PaymentRecord {
    /// The caller-chosen id; repeating it with the same details is a no-op.
    pub payment_id: PaymentId,
    /// Amount received.
    pub amount: Money,
    /// Date the money was received; payments are allocated in `paid_on` order.
    pub paid_on: NaiveDate,
    /// External reference (bank or gateway id); unique per loan when present.
    pub reference: Option<String>,
    /// Why staff recorded it (required by the edge for a back-dated payment).
    pub note: Option<String>,
    /// Where the payment went. For a reversed payment: where it went when reversed.
    pub allocation: Allocation,
    /// Date the payment was reversed; a reversed payment counts for nothing.
    pub reversed_on: Option<NaiveDate>,
}

impl PaymentRecord {
    /// True once reversed.
    pub fn is_reversed(&self) -> bool {
        self.reversed_on.is_some()
    }
}

/// A recorded payment whose allocation changed because an earlier-dated payment
/// arrived or was reversed, or a late fee was assessed before its date.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reallocation {
    /// The payment re-allocated.
    pub payment_id: PaymentId,
    /// Its new allocation.
    pub allocation: Allocation,
}

/// A late fee assessed on one installment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AssessedFee {
    /// The installment's `seq`.
    pub seq: u16,
    /// The installment's unpaid principal + interest the fee is a percentage of.
    pub base: Money,
    /// The fee.
    pub fee: Money,
}

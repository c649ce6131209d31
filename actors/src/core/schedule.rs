//! Repayment schedules: pure functions from terms and a disbursement date.

use chrono::NaiveDate;
use rust_decimal::Decimal;

use super::error::LoanError;
use super::money::{Money, round_minor};
use super::terms::{LoanTerms, MAX_FIRST_PERIOD_DAYS, RepaymentMethod};

/// One planned installment, before any payment or fee.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ScheduledInstallment {
    /// Position in the schedule, from 1.
    pub seq: u16,
    /// Date the installment falls due.
    pub due_date: NaiveDate,
    /// Principal part.
    pub principal: Money,
    /// Interest part.
    pub interest: Money,
}

/// The schedule a loan with `terms` would get if disbursed on `disbursed_on`.
///
/// Usable before approval as a preview; approval stores exactly this. Principal
/// parts always sum to the principal: the last installment absorbs rounding.
pub fn preview(
    terms: &LoanTerms,
    disbursed_on: NaiveDate,
) -> Result<Vec<ScheduledInstallment>, LoanError> {
    check_first_due_date(terms, disbursed_on)?;
    let count = terms.term().get();
    let principal = terms.principal().minor();
    let monthly_rate = terms.annual_rate().monthly_fraction();
    let parts = match terms.method() {
        RepaymentMethod::Annuity => annuity_parts(principal, monthly_rate, count)?,
        RepaymentMethod::EqualPrincipal => equal_principal_parts(principal, monthly_rate, count)?,
        RepaymentMethod::Flat => flat_parts(terms, count)?,
    };
    let principal_sum: i64 = parts
        .iter()
        .map(|&(principal_part, _)| principal_part)
        .sum();
    assert_eq!(
        principal_sum, principal,
        "schedule principal parts must sum to the principal"
    );
    let currency = terms.currency();
    let mut installments = Vec::with_capacity(parts.len());
    for (seq, (principal_part, interest_part)) in (1..=count).zip(parts) {
        installments.push(ScheduledInstallment {
            seq,
            due_date: terms.due_date(disbursed_on, seq)?,
            principal: Money::from_minor(principal_part, currency)?,
            interest: Money::from_minor(interest_part, currency)?,
        });
    }
    Ok(installments)
}

fn check_first_due_date(terms: &LoanTerms, disbursed_on: NaiveDate) -> Result<(), LoanError> {
    let Some(first_due) = terms.first_due_date() else {
        return Ok(());
    };
    let days = (first_due - disbursed_on).num_days();
    if days <= 0 || days > MAX_FIRST_PERIOD_DAYS {
        return Err(LoanError::DateOutOfRange {
            field: "first_due_date",
            date: first_due,
            reason: "must be after disbursement and within a year of it",
        });
    }
    Ok(())
}

/// `(principal, interest)` per installment of an annuity, in minor units.
fn annuity_parts(
    principal: i64,
    monthly_rate: Decimal,
    count: u16,
) -> Result<Vec<(i64, i64)>, LoanError> {
    let payment = annuity_payment(principal, monthly_rate, count)?;
    let mut outstanding = principal;
    let mut parts = Vec::with_capacity(usize::from(count));
    for seq in 1..=count {
        let interest = interest_on(outstanding, monthly_rate)?;
        // Clamped so rounding up the payment can never drive the balance below zero.
        let principal_part = if seq == count {
            outstanding
        } else {
            (payment - interest).clamp(0, outstanding)
        };
        outstanding -= principal_part;
        parts.push((principal_part, interest));
    }
    Ok(parts)
}

/// `(principal, interest)` per installment with equal principal parts, remainder on the last.
fn equal_principal_parts(
    principal: i64,
    monthly_rate: Decimal,
    count: u16,
) -> Result<Vec<(i64, i64)>, LoanError> {
    let base = principal / i64::from(count);
    let mut outstanding = principal;
    let mut parts = Vec::with_capacity(usize::from(count));
    for seq in 1..=count {
        let interest = interest_on(outstanding, monthly_rate)?;
        let principal_part = if seq == count { outstanding } else { base };
        outstanding -= principal_part;
        parts.push((principal_part, interest));
    }
    Ok(parts)
}

/// `(principal, interest)` per installment of a flat loan: both spread evenly, remainders on the last.
fn flat_parts(terms: &LoanTerms, count: u16) -> Result<Vec<(i64, i64)>, LoanError> {
    let principal = terms.principal().minor();
    // P × rate% × n/12 as one exact product over 1 200, rounded once.
    let exact = Decimal::from(principal)
        .checked_mul(terms.annual_rate().percent())
        .and_then(|value| value.checked_mul(Decimal::from(count)))
        .ok_or(LoanError::ArithmeticOverflow)?
        / Decimal::from(1_200);
    let total_interest = round_minor(exact).ok_or(LoanError::ArithmeticOverflow)?;
    let (principal_base, interest_base) = (
        principal / i64::from(count),
        total_interest / i64::from(count),
    );
    let remainder = |total: i64, base: i64| total - base * i64::from(count - 1);
    let parts = (1..=count)
        .map(|seq| match seq == count {
            true => (
                remainder(principal, principal_base),
                remainder(total_interest, interest_base),
            ),
            false => (principal_base, interest_base),
        })
        .collect();
    Ok(parts)
}

/// The annuity installment `A = P·r / (1 − (1 + r)^−n)` rounded half-even; `P / n` when r = 0.
fn annuity_payment(principal: i64, monthly_rate: Decimal, count: u16) -> Result<i64, LoanError> {
    let principal = Decimal::from(principal);
    if monthly_rate.is_zero() {
        return round_minor(principal / Decimal::from(count)).ok_or(LoanError::ArithmeticOverflow);
    }
    // (1 + r)^−n as (1/(1 + r))^n: the base is below 1, so the power can only underflow toward 0.
    let discount = Decimal::ONE
        .checked_div(Decimal::ONE + monthly_rate)
        .ok_or(LoanError::ArithmeticOverflow)?;
    let denominator = Decimal::ONE - power(discount, u32::from(count))?;
    let exact = (principal * monthly_rate)
        .checked_div(denominator)
        .ok_or(LoanError::ArithmeticOverflow)?;
    round_minor(exact).ok_or(LoanError::ArithmeticOverflow)
}

/// `base^exponent` by squaring, with overflow reported instead of panicking.
pub(super) fn power(base: Decimal, exponent: u32) -> Result<Decimal, LoanError> {
    let (mut result, mut square, mut remaining) = (Decimal::ONE, base, exponent);
    while remaining > 0 {
        if remaining & 1 == 1 {
            result = result
                .checked_mul(square)
                .ok_or(LoanError::ArithmeticOverflow)?;
        }
        remaining >>= 1;
        if remaining > 0 {
            square = square
                .checked_mul(square)
                .ok_or(LoanError::ArithmeticOverflow)?;
        }
    }
    Ok(result)
}

/// One period's interest on `outstanding` minor units, rounded half-even.
fn interest_on(outstanding: i64, monthly_rate: Decimal) -> Result<i64, LoanError> {
    let exact = Decimal::from(outstanding)
        .checked_mul(monthly_rate)
        .ok_or(LoanError::ArithmeticOverflow)?;
    round_minor(exact).ok_or(LoanError::ArithmeticOverflow)
}

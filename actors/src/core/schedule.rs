//! Repayment schedules: pure functions from terms and a disbursement date.

use chrono::NaiveDate;
use rust_decimal::Decimal;

use super::error::LoanError;
use super::money::{Money, round_minor};
use super::terms::{DayCount, Frequency, LoanTerms, MAX_FIRST_PERIOD_DAYS, RepaymentMethod};

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
    let due_dates = (1..=count)
        .map(|seq| terms.due_date(disbursed_on, seq))
        .collect::<Result<Vec<_>, _>>()?;
    let rates = PeriodRates::of(terms, disbursed_on, &due_dates);
    let parts = match terms.method() {
        RepaymentMethod::Annuity => annuity_parts(principal, &rates)?,
        RepaymentMethod::EqualPrincipal => equal_principal_parts(principal, &rates.periods)?,
        RepaymentMethod::Flat => flat_parts(terms, count, &rates)?,
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
    for ((seq, (principal_part, interest_part)), due_date) in (1..=count).zip(parts).zip(due_dates)
    {
        installments.push(ScheduledInstallment {
            seq,
            due_date,
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

/// The rates of a schedule: the nominal periodic rate the annuity amount uses,
/// and each period's own rate (its days under the day count).
struct PeriodRates {
    /// `rate/12`, or `rate × 14 / year` or `rate × 7 / year` (SPEC §7).
    payment: Decimal,
    /// Per installment: `payment` under `30/360`, `rate × actual days / year` otherwise.
    periods: Vec<Decimal>,
    /// Sum of the periods' day fractions as (numerator days, year days), for flat interest.
    days: (i64, i64),
}

impl PeriodRates {
    fn of(terms: &LoanTerms, disbursed_on: NaiveDate, due_dates: &[NaiveDate]) -> PeriodRates {
        let annual = terms.annual_rate().percent() / Decimal::ONE_HUNDRED;
        let year = i64::from(terms.day_count().year_days());
        let payment = match terms.frequency().period_days() {
            None => terms.annual_rate().monthly_fraction(),
            Some(days) => annual * Decimal::from(days) / Decimal::from(year),
        };
        let nominal_days = i64::from(terms.frequency().period_days().unwrap_or(30));
        let mut previous = disbursed_on;
        let mut periods = Vec::with_capacity(due_dates.len());
        let mut total_days = 0;
        for &due in due_dates {
            let days = match terms.day_count() {
                DayCount::Thirty360 => nominal_days,
                DayCount::Actual365 | DayCount::Actual360 => (due - previous).num_days(),
            };
            total_days += days;
            periods.push(match terms.day_count() {
                DayCount::Thirty360 => payment,
                DayCount::Actual365 | DayCount::Actual360 => {
                    annual * Decimal::from(days) / Decimal::from(year)
                }
            });
            previous = due;
        }
        PeriodRates {
            payment,
            periods,
            days: (total_days, year),
        }
    }
}

/// `(principal, interest)` per installment of an annuity, in minor units.
fn annuity_parts(principal: i64, rates: &PeriodRates) -> Result<Vec<(i64, i64)>, LoanError> {
    let count = u16::try_from(rates.periods.len()).map_err(|_| LoanError::ArithmeticOverflow)?;
    let payment = annuity_payment(principal, rates.payment, count)?;
    let mut outstanding = principal;
    let mut parts = Vec::with_capacity(usize::from(count));
    for (seq, &rate) in (1..=count).zip(&rates.periods) {
        let interest = interest_on(outstanding, rate)?;
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
    periods: &[Decimal],
) -> Result<Vec<(i64, i64)>, LoanError> {
    let count = u16::try_from(periods.len()).map_err(|_| LoanError::ArithmeticOverflow)?;
    let base = principal / i64::from(count);
    let mut outstanding = principal;
    let mut parts = Vec::with_capacity(usize::from(count));
    for (seq, &rate) in (1..=count).zip(periods) {
        let interest = interest_on(outstanding, rate)?;
        let principal_part = if seq == count { outstanding } else { base };
        outstanding -= principal_part;
        parts.push((principal_part, interest));
    }
    Ok(parts)
}

/// `(principal, interest)` per installment of a flat loan: both spread evenly, remainders on the last.
fn flat_parts(
    terms: &LoanTerms,
    count: u16,
    rates: &PeriodRates,
) -> Result<Vec<(i64, i64)>, LoanError> {
    let principal = terms.principal().minor();
    let monthly_30_360 =
        terms.frequency() == Frequency::Monthly && terms.day_count() == DayCount::Thirty360;
    // P × rate% × n/12 (or × the periods' days over the year) as one exact
    // product, rounded once.
    let (factor, divisor) = match monthly_30_360 {
        true => (Decimal::from(count), Decimal::from(1_200)),
        false => (
            Decimal::from(rates.days.0),
            Decimal::from(rates.days.1 * 100),
        ),
    };
    let exact = Decimal::from(principal)
        .checked_mul(terms.annual_rate().percent())
        .and_then(|value| value.checked_mul(factor))
        .ok_or(LoanError::ArithmeticOverflow)?
        / divisor;
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

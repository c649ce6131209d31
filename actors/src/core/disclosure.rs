//! Disclosure figures of a schedule (SPEC §7, issue 15; Regulation Z): the
//! amount financed, the finance charge, the total of payments and the annual
//! percentage rate by the actuarial method of appendix J.
//!
//! Pure groundwork of issue 15: nothing in the service shows these yet.
//!
//! Appendix J's general equation, for an amount financed `A` paid out on the
//! disbursement date and payments `P_j` due `t_j` whole unit periods and a
//! fraction `f_j` of one after it:
//!
//! ```text
//! A = Σ_j P_j / ((1 + f_j·i) · (1 + i)^t_j)
//! ```
//!
//! `i` is the rate per unit period (a month, or the 7 or 14 days of a weekly
//! or biweekly schedule) and the APR is `i` times the unit periods in a year.
//! The present value falls as `i` grows, so `i` is found by bisection, in
//! exact decimals, far below the 0.01 % the APR is shown with.

use chrono::{Datelike, NaiveDate};
use rust_decimal::{Decimal, RoundingStrategy};

use super::error::LoanError;
use super::money::Money;
use super::schedule::{ScheduledInstallment, power};

/// The unit period of a schedule, as appendix J counts time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnitPeriod {
    /// A calendar month (12 a year); a fraction of one counts days / 30.
    Month,
    /// Seven days (52 a year).
    Week,
    /// Fourteen days (26 a year).
    TwoWeeks,
}

impl UnitPeriod {
    fn per_year(self) -> Decimal {
        Decimal::from(match self {
            UnitPeriod::Month => 12,
            UnitPeriod::Week => 52,
            UnitPeriod::TwoWeeks => 26,
        })
    }

    /// Whole unit periods and the fraction of one from `start` to `due`.
    fn between(self, start: NaiveDate, due: NaiveDate) -> (u32, Decimal) {
        match self {
            UnitPeriod::Month => {
                let mut months =
                    (due.year() - start.year()) * 12 + due.month() as i32 - start.month() as i32;
                let mut anchor = add_months(start, months);
                while months > 0 && anchor > due {
                    months -= 1;
                    anchor = add_months(start, months);
                }
                let days = (due - anchor).num_days();
                (
                    u32::try_from(months.max(0)).unwrap_or(0),
                    Decimal::from(days) / Decimal::from(30),
                )
            }
            UnitPeriod::Week | UnitPeriod::TwoWeeks => {
                let length = if self == UnitPeriod::Week { 7 } else { 14 };
                let days = (due - start).num_days().max(0);
                (
                    u32::try_from(days / length).unwrap_or(u32::MAX),
                    Decimal::from(days % length) / Decimal::from(length),
                )
            }
        }
    }
}

/// `start` plus `months` calendar months, on the same day or the month's last.
fn add_months(start: NaiveDate, months: i32) -> NaiveDate {
    let total = start.year() * 12 + start.month0() as i32 + months;
    let (year, month0) = (total.div_euclid(12), total.rem_euclid(12));
    let mut day = start.day();
    loop {
        if let Some(date) = NaiveDate::from_ymd_opt(year, month0 as u32 + 1, day) {
            return date;
        }
        day -= 1;
    }
}

/// The four figures a borrower is shown before signing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Disclosure {
    /// The principal less the origination fee: what the borrower gets.
    pub amount_financed: Money,
    /// What the credit costs: the total of payments less the amount financed.
    pub finance_charge: Money,
    /// Every scheduled installment, principal and interest.
    pub total_of_payments: Money,
    /// The annual percentage rate, in percent, rounded half-even to 2 decimals.
    pub apr: Decimal,
}

/// Bisection steps: each halves the interval, so 100 take a rate per period
/// of at most 10 (1,000 %) to a width far below 10⁻²⁰.
const BISECTION_STEPS: usize = 100;

/// The disclosure of `schedule` for `principal` disbursed on `disbursed_on`
/// with `fee` kept back from the amount paid out.
pub fn disclose(
    (principal, fee): (Money, Money),
    disbursed_on: NaiveDate,
    schedule: &[ScheduledInstallment],
    unit: UnitPeriod,
) -> Result<Disclosure, LoanError> {
    let amount_financed = principal.checked_sub(fee)?;
    let mut total = Money::zero(principal.currency());
    let mut payments = Vec::with_capacity(schedule.len());
    for line in schedule {
        let payment = line.principal.checked_add(line.interest)?;
        total = total.checked_add(payment)?;
        let (periods, fraction) = unit.between(disbursed_on, line.due_date);
        payments.push((Decimal::from(payment.minor()), periods, fraction));
    }
    let finance_charge = total.checked_sub(amount_financed)?;
    let financed = Decimal::from(amount_financed.minor());
    let present_value = |rate: Decimal| -> Decimal {
        payments
            .iter()
            .map(|&(payment, periods, fraction)| {
                // A growth factor past Decimal's range makes the payment worth nothing today.
                power(Decimal::ONE + rate, periods)
                    .ok()
                    .and_then(|growth| growth.checked_mul(Decimal::ONE + fraction * rate))
                    .and_then(|growth| payment.checked_div(growth))
                    .unwrap_or(Decimal::ZERO)
            })
            .sum()
    };
    let (mut low, mut high) = (Decimal::ZERO, Decimal::TEN);
    for _ in 0..BISECTION_STEPS {
        let middle = (low + high) / Decimal::TWO;
        if present_value(middle) > financed {
            low = middle;
        } else {
            high = middle;
        }
    }
    let apr = (low * unit.per_year() * Decimal::ONE_HUNDRED)
        .round_dp_with_strategy(2, RoundingStrategy::MidpointNearestEven);
    Ok(Disclosure {
        amount_financed,
        finance_charge,
        total_of_payments: total,
        apr,
    })
}

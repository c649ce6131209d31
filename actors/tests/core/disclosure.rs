//! Disclosure figures and the APR by the actuarial method (issue 15, SPEC §7).

use actors::core::disclosure::{UnitPeriod, disclose};
use actors::core::{Money, RepaymentMethod, preview};
use proptest::prelude::*;
use rust_decimal::Decimal;

use super::support::{date, terms, usd};

#[test]
fn ten_thousand_at_12_percent_over_12_months_discloses_an_apr_of_12_00_and_15_85_with_a_2_percent_fee()
 {
    let terms = terms(usd("10000.00"), "12", 12, RepaymentMethod::Annuity);
    let disbursed_on = date(2026, 1, 15);
    let schedule = preview(&terms, disbursed_on).unwrap();
    assert_eq!(
        schedule[0]
            .principal
            .checked_add(schedule[0].interest)
            .unwrap(),
        usd("888.49")
    );

    let plain = disclose(
        (usd("10000.00"), usd("0.00")),
        disbursed_on,
        &schedule,
        UnitPeriod::Month,
    )
    .unwrap();
    assert_eq!(plain.apr, Decimal::new(1200, 2));
    assert_eq!(plain.amount_financed, usd("10000.00"));
    assert_eq!(plain.total_of_payments, usd("10661.86"));
    assert_eq!(plain.finance_charge, usd("661.86"));

    let with_fee = disclose(
        (usd("10000.00"), usd("200.00")),
        disbursed_on,
        &schedule,
        UnitPeriod::Month,
    )
    .unwrap();
    assert_eq!(with_fee.amount_financed, usd("9800.00"));
    assert_eq!(with_fee.finance_charge, usd("861.86"));
    assert_eq!(with_fee.apr, Decimal::new(1585, 2));
}

#[test]
fn a_first_period_longer_than_a_month_counts_its_extra_days_as_a_fraction() {
    // Due on the 15th from a disbursement on the 1st: 1 month and 14/30 to the first.
    let terms = terms(usd("1200.00"), "12", 12, RepaymentMethod::Annuity)
        .with_first_due_date(Some(date(2026, 2, 15)));
    let schedule = preview(&terms, date(2026, 1, 1)).unwrap();
    let longer = disclose(
        (usd("1200.00"), usd("0.00")),
        date(2026, 1, 1),
        &schedule,
        UnitPeriod::Month,
    )
    .unwrap();
    // The same payments, due later than a regular schedule's, cost less a year.
    assert!(longer.apr < Decimal::new(1200, 2), "{}", longer.apr);
    assert!(longer.apr > Decimal::new(1000, 2), "{}", longer.apr);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Without a fee, a regular monthly annuity's APR is its nominal rate
    /// (to the 0.01 % shown, give or take the rounding of the installments),
    /// and a fee always raises it.
    #[test]
    fn a_monthly_annuity_discloses_its_nominal_rate_and_a_fee_raises_the_apr(
        principal_minor in 100_000_i64..100_000_000,
        rate_tenths in 1_u32..300,
        months in 3_u32..=120,
        fee_permille in 1_i64..50,
    ) {
        let principal = Money::from_minor(principal_minor, usd("1.00").currency()).unwrap();
        let rate = format!("{}.{}", rate_tenths / 10, rate_tenths % 10);
        let terms = terms(principal, &rate, months, RepaymentMethod::Annuity);
        let disbursed_on = date(2026, 3, 10);
        let schedule = preview(&terms, disbursed_on).unwrap();
        let zero = Money::zero(principal.currency());
        let plain = disclose((principal, zero), disbursed_on, &schedule, UnitPeriod::Month).unwrap();
        let nominal = Decimal::from(rate_tenths) / Decimal::TEN;
        prop_assert!((plain.apr - nominal).abs() <= Decimal::new(1, 2), "APR {} for {}", plain.apr, nominal);
        let fee = Money::from_minor(principal_minor * fee_permille / 1_000, principal.currency()).unwrap();
        let charged = disclose((principal, fee), disbursed_on, &schedule, UnitPeriod::Month).unwrap();
        prop_assert!(charged.apr > plain.apr);
        prop_assert_eq!(charged.finance_charge.minor(), plain.finance_charge.minor() + fee.minor());
    }
}

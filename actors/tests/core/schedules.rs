//! Schedule tables with figures checkable by hand, each also recomputed independently.

use actors::core::{
    Currency, ErrorKind, LoanTerms, RepaymentMethod, ScheduledInstallment, preview,
};

use super::support::{date, money, reference_terms, terms, usd};

fn amounts(schedule: &[ScheduledInstallment]) -> Vec<(String, String)> {
    schedule
        .iter()
        .map(|line| (line.principal.to_string(), line.interest.to_string()))
        .collect()
}

fn installment_minor(line: &ScheduledInstallment) -> i64 {
    line.principal.minor() + line.interest.minor()
}

/// `numerator / denominator` rounded half-even, in plain integers.
fn round_half_even(numerator: i128, denominator: i128) -> i128 {
    let (quotient, remainder) = (numerator / denominator, numerator % denominator);
    match (2 * remainder).cmp(&denominator) {
        std::cmp::Ordering::Less => quotient,
        std::cmp::Ordering::Greater => quotient + 1,
        std::cmp::Ordering::Equal => quotient + (quotient % 2),
    }
}

/// An annuity at exactly 1 % a month computed with integers only: (1 + r)^n is
/// 101^n / 100^n, so `A = P · 101^n / (100 · (101^n − 100^n))` is an exact fraction.
/// Returns `(installment amounts, total interest)` in minor units.
fn annuity_at_one_percent_a_month(principal_minor: i128, months: u32) -> (Vec<i128>, i128) {
    let (grown, base) = (101_i128.pow(months), 100_i128.pow(months));
    let payment = round_half_even(principal_minor * grown, 100 * (grown - base));
    let (mut outstanding, mut total_interest, mut installments) = (principal_minor, 0, Vec::new());
    for month in 1..=months {
        let interest = round_half_even(outstanding, 100);
        let principal = if month == months {
            outstanding
        } else {
            payment - interest
        };
        outstanding -= principal;
        total_interest += interest;
        installments.push(principal + interest);
    }
    (installments, total_interest)
}

#[test]
fn the_reference_annuity_pays_888_49_with_a_last_installment_of_888_47() {
    let schedule = preview(&reference_terms(), date(2024, 1, 15)).unwrap();
    assert_eq!(schedule.len(), 12);
    for line in &schedule[..11] {
        assert_eq!(installment_minor(line), 88_849, "installment {}", line.seq);
    }
    assert_eq!(installment_minor(&schedule[11]), 88_847);
    let total_interest: i64 = schedule.iter().map(|line| line.interest.minor()).sum();
    assert_eq!(total_interest, 66_186);
    assert_eq!(schedule[0].interest.to_string(), "100.00");
    assert_eq!(schedule[0].principal.to_string(), "788.49");

    let (independent, independent_interest) = annuity_at_one_percent_a_month(1_000_000, 12);
    let computed: Vec<i128> = schedule
        .iter()
        .map(|line| i128::from(installment_minor(line)))
        .collect();
    assert_eq!(computed, independent);
    assert_eq!(i128::from(total_interest), independent_interest);
}

#[test]
fn yen_and_dinar_annuities_match_the_integer_computation() {
    let cases = [
        (money("1000000", Currency::JPY), 1_000_000_i128),
        (money("1000", Currency::KWD), 1_000_000),
    ];
    for (principal, principal_minor) in cases {
        let schedule = preview(
            &terms(principal, "12", 12, RepaymentMethod::Annuity),
            date(2024, 3, 1),
        )
        .unwrap();
        let (independent, _) = annuity_at_one_percent_a_month(principal_minor, 12);
        let computed: Vec<i128> = schedule
            .iter()
            .map(|line| i128::from(installment_minor(line)))
            .collect();
        assert_eq!(computed, independent, "{}", principal.currency());
    }
    let yen = preview(
        &terms(
            money("1000000", Currency::JPY),
            "12",
            12,
            RepaymentMethod::Annuity,
        ),
        date(2024, 3, 1),
    );
    assert_eq!(yen.unwrap()[0].principal.to_string(), "78849");
    let dinar = preview(
        &terms(
            money("1000", Currency::KWD),
            "12",
            12,
            RepaymentMethod::Annuity,
        ),
        date(2024, 3, 1),
    );
    assert_eq!(dinar.unwrap()[0].interest.to_string(), "10.000");
}

#[test]
fn a_zero_rate_loan_splits_the_principal_with_the_remainder_last() {
    let schedule = preview(
        &terms(usd("1000"), "0", 3, RepaymentMethod::Annuity),
        date(2024, 1, 10),
    )
    .unwrap();
    let expected = [("333.33", "0.00"), ("333.33", "0.00"), ("333.34", "0.00")];
    assert_eq!(
        amounts(&schedule),
        expected.map(|(p, i)| (p.to_owned(), i.to_owned()))
    );
}

#[test]
fn a_one_month_loan_is_one_installment_of_principal_plus_a_month_of_interest() {
    let schedule = preview(
        &terms(usd("1000"), "12", 1, RepaymentMethod::Annuity),
        date(2024, 1, 10),
    )
    .unwrap();
    assert_eq!(
        amounts(&schedule),
        [("1000.00".to_owned(), "10.00".to_owned())]
    );
    assert_eq!(schedule[0].due_date, date(2024, 2, 10));
}

#[test]
fn a_480_month_annuity_pays_550_21_and_sums_exactly_to_the_principal() {
    let schedule = preview(
        &terms(usd("100000"), "6", 480, RepaymentMethod::Annuity),
        date(2024, 1, 1),
    )
    .unwrap();
    assert_eq!(schedule.len(), 480);
    // Textbook figure: 100,000 at 6 % over 40 years is 550.21 a month.
    assert_eq!(installment_minor(&schedule[0]), 55_021);
    let principal: i64 = schedule.iter().map(|line| line.principal.minor()).sum();
    assert_eq!(principal, 10_000_000);
    // Rounding the payment up from 550.2076… overpays about 0.24 cents a month; with
    // interest, 479 months of that come off the last installment. Estimated here in
    // floating point (a test-only cross-check, never money): about 545.4.
    let (rate, exact_payment) = (0.005_f64, 100_000.0 * 0.005 / (1.0 - 1.005_f64.powi(-480)));
    let drift = (550.21 - exact_payment) * (1.005_f64.powi(479) - 1.0) / rate * 1.005;
    let estimated_last = (exact_payment - drift) * 100.0;
    assert!(
        (installment_minor(&schedule[479]) as f64 - estimated_last).abs() < 100.0,
        "{estimated_last}"
    );
    assert_eq!(schedule[479].due_date, date(2064, 1, 1));
}

#[test]
fn equal_principal_installments_shrink_by_one_month_of_interest_each() {
    let schedule = preview(
        &terms(usd("1200"), "12", 12, RepaymentMethod::EqualPrincipal),
        date(2024, 1, 1),
    )
    .unwrap();
    for (index, line) in schedule.iter().enumerate() {
        assert_eq!(line.principal.to_string(), "100.00");
        // Outstanding before period k is 1200 − 100(k − 1); 1 % of it.
        assert_eq!(line.interest.minor(), 1_200 - 100 * index as i64);
    }
    let odd = preview(
        &terms(usd("1000"), "12", 3, RepaymentMethod::EqualPrincipal),
        date(2024, 1, 1),
    )
    .unwrap();
    let expected = [("333.33", "10.00"), ("333.33", "6.67"), ("333.34", "3.33")];
    assert_eq!(
        amounts(&odd),
        expected.map(|(p, i)| (p.to_owned(), i.to_owned()))
    );
}

#[test]
fn flat_interest_is_fixed_up_front_and_spread_evenly_with_the_remainder_last() {
    let schedule = preview(
        &terms(usd("1200"), "12", 12, RepaymentMethod::Flat),
        date(2024, 1, 1),
    )
    .unwrap();
    assert!(
        schedule
            .iter()
            .all(|line| line.principal.to_string() == "100.00"
                && line.interest.to_string() == "12.00")
    );
    // 1000 × 10 % × 3/12 = 25.00 in total.
    let odd = preview(
        &terms(usd("1000"), "10", 3, RepaymentMethod::Flat),
        date(2024, 1, 1),
    )
    .unwrap();
    let expected = [("333.33", "8.33"), ("333.33", "8.33"), ("333.34", "8.34")];
    assert_eq!(
        amounts(&odd),
        expected.map(|(p, i)| (p.to_owned(), i.to_owned()))
    );
}

#[test]
fn due_dates_clamp_at_month_end_and_return_to_the_31st() {
    let schedule = preview(
        &terms(usd("400"), "0", 4, RepaymentMethod::Annuity),
        date(2024, 1, 31),
    )
    .unwrap();
    let due: Vec<_> = schedule.iter().map(|line| line.due_date).collect();
    assert_eq!(
        due,
        [
            date(2024, 2, 29),
            date(2024, 3, 31),
            date(2024, 4, 30),
            date(2024, 5, 31)
        ]
    );
}

#[test]
fn a_first_due_date_not_after_disbursement_is_rejected() {
    let terms: LoanTerms = reference_terms().with_first_due_date(Some(date(2024, 1, 10)));
    let error = preview(&terms, date(2024, 1, 10)).unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Invalid);
    let later = reference_terms().with_first_due_date(Some(date(2024, 2, 20)));
    assert_eq!(
        preview(&later, date(2024, 1, 10)).unwrap()[1].due_date,
        date(2024, 3, 20)
    );
}

#[test]
fn extreme_rates_and_terms_still_sum_to_the_principal() {
    for method in [
        RepaymentMethod::Annuity,
        RepaymentMethod::EqualPrincipal,
        RepaymentMethod::Flat,
    ] {
        for (rate, months) in [("1000", 480), ("0.000001", 480), ("1000", 1), ("0", 480)] {
            let terms = terms(usd("10000000000000"), rate, months, method);
            let schedule = preview(&terms, date(2024, 1, 1)).unwrap();
            let principal: i64 = schedule.iter().map(|line| line.principal.minor()).sum();
            assert_eq!(
                principal,
                terms.principal().minor(),
                "{method} {rate} {months}"
            );
        }
    }
}

/// SPEC §7 (issue 15): 5,200.00 at 12 %, weekly, 52 installments, `30/360`.
#[test]
fn a_weekly_30_360_loan_of_5_200_pays_106_31_with_the_last_absorbing_the_rounding() {
    use actors::core::{DayCount, Frequency};
    let terms = terms(usd("5200.00"), "12", 12, RepaymentMethod::Annuity)
        .with_schedule(Frequency::Weekly, DayCount::Thirty360, 52)
        .unwrap();
    let schedule = preview(&terms, date(2026, 1, 5)).unwrap();
    assert_eq!(schedule.len(), 52);
    let payment = |line: &actors::core::ScheduledInstallment| {
        line.principal.checked_add(line.interest).unwrap()
    };
    assert!(
        schedule[..51]
            .iter()
            .all(|line| payment(line) == usd("106.31"))
    );
    assert_eq!(payment(&schedule[51]), usd("106.08"));
    let interest: i64 = schedule.iter().map(|line| line.interest.minor()).sum();
    assert_eq!(interest, 32_789);
    let principal: i64 = schedule.iter().map(|line| line.principal.minor()).sum();
    assert_eq!(principal, 520_000);
    // Due every 7 days from disbursement.
    assert_eq!(schedule[0].due_date, date(2026, 1, 12));
    assert_eq!(schedule[51].due_date, date(2027, 1, 4));
}

#[test]
fn actual_day_counts_charge_each_period_its_own_days_and_biweekly_steps_14_days() {
    use actors::core::{DayCount, Frequency};
    let monthly = |count| {
        terms(usd("1000.00"), "12", 2, RepaymentMethod::EqualPrincipal)
            .with_schedule(Frequency::Monthly, count, 2)
            .unwrap()
    };
    // Disbursed 31 January: February has 28 days, March 31 (to 28 February, then 31 March).
    let thirty = preview(&monthly(DayCount::Thirty360), date(2026, 1, 31)).unwrap();
    let actual = preview(&monthly(DayCount::Actual365), date(2026, 1, 31)).unwrap();
    let actual_360 = preview(&monthly(DayCount::Actual360), date(2026, 1, 31)).unwrap();
    assert_eq!(thirty[0].interest, usd("10.00"));
    // 1,000.00 × 12 % × 28/365 = 9.2055 → 9.21; × 28/360 = 9.3333 → 9.33.
    assert_eq!(actual[0].interest, usd("9.21"));
    assert_eq!(actual_360[0].interest, usd("9.33"));
    // 500.00 × 12 % × 31/365 = 5.0959 → 5.10.
    assert_eq!(actual[1].interest, usd("5.10"));
    let biweekly = terms(usd("1000.00"), "12", 2, RepaymentMethod::Annuity)
        .with_schedule(Frequency::Biweekly, DayCount::Thirty360, 26)
        .unwrap();
    let schedule = preview(&biweekly, date(2026, 1, 1)).unwrap();
    assert_eq!(schedule[0].due_date, date(2026, 1, 15));
    assert_eq!(schedule[1].due_date, date(2026, 1, 29));
    // 1,000.00 × 12 % × 14/360 = 4.6667 → 4.67.
    assert_eq!(schedule[0].interest, usd("4.67"));
    assert!(
        biweekly
            .clone()
            .with_schedule(Frequency::Weekly, DayCount::Thirty360, 521)
            .is_err()
    );
    assert!(
        biweekly
            .with_schedule(Frequency::Monthly, DayCount::Thirty360, 481)
            .is_err()
    );
}

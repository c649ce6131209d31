//! Property tests: money is never created, lost or double-counted, whatever happens.
//!
//! 1,000 cases by default; `PROPTEST_CASES` overrides it.

use actors::core::{
    Currency, GraceDays, Loan, LoanCommand, LoanError, LoanEvent, LoanStatus, LoanTerms, Money,
    Rate, RepaymentMethod, TermMonths, preview,
};
use chrono::{Days, NaiveDate};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError};
use rust_decimal::Decimal;

use super::support::{date, payment_id, pending};

fn config() -> Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|cases| cases.parse().ok())
        .unwrap_or(1_000);
    Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    }
}

fn method() -> impl Strategy<Value = RepaymentMethod> {
    prop_oneof![
        Just(RepaymentMethod::Annuity),
        Just(RepaymentMethod::EqualPrincipal),
        Just(RepaymentMethod::Flat)
    ]
}

fn currency() -> impl Strategy<Value = Currency> {
    prop_oneof![
        Just(Currency::USD),
        Just(Currency::JPY),
        Just(Currency::KWD)
    ]
}

/// Terms with a rate of 0 to 50 % in hundredths and the given range of months.
fn terms(
    max_principal_minor: i64,
    months: std::ops::RangeInclusive<u32>,
) -> impl Strategy<Value = LoanTerms> {
    (
        1..=max_principal_minor,
        0..=5_000_i64,
        months,
        method(),
        currency(),
        0..=10_u32,
    )
        .prop_map(
            |(principal, rate_hundredths, months, method, currency, grace_days)| {
                let rate = Rate::from_percent(Decimal::new(rate_hundredths, 2)).unwrap();
                LoanTerms::new(
                    Money::from_minor(principal, currency).unwrap(),
                    rate,
                    TermMonths::new(months).unwrap(),
                )
                .unwrap()
                .with_method(method)
                .with_grace_days(GraceDays::new(grace_days).unwrap())
            },
        )
}

/// One step of a random loan history; `advance_days` moves "today" forward first.
#[derive(Debug, Clone)]
enum Step {
    Approve {
        back_days: u8,
    },
    Pay {
        permille_of_outstanding: u16,
        back_days: u8,
    },
    PayOff {
        back_days: u8,
    },
    Reverse {
        pick: usize,
    },
    Assess {
        back_days: u8,
    },
    Reject,
    Cancel,
    WriteOff,
}

fn step() -> impl Strategy<Value = (u8, Step)> {
    let step = prop_oneof![
        1 => (0..40_u8).prop_map(|back_days| Step::Approve { back_days }),
        16 => (1..=1_100_u16, 0..20_u8).prop_map(|(permille_of_outstanding, back_days)| Step::Pay { permille_of_outstanding, back_days }),
        2 => (0..10_u8).prop_map(|back_days| Step::PayOff { back_days }),
        4 => any::<usize>().prop_map(|pick| Step::Reverse { pick }),
        8 => (0..5_u8).prop_map(|back_days| Step::Assess { back_days }),
        1 => prop_oneof![Just(Step::Reject), Just(Step::Cancel)],
        1 => Just(Step::WriteOff),
    ];
    (0..35_u8, step)
}

fn command(loan: &Loan, step: &Step, today: NaiveDate, next_payment: u128) -> Option<LoanCommand> {
    let back = |days: u8| {
        today
            .checked_sub_days(Days::new(u64::from(days)))
            .unwrap()
            .max(loan.disbursed_on().unwrap_or(today))
    };
    let currency = loan.terms().currency();
    Some(match step {
        Step::Approve { back_days } => LoanCommand::Approve {
            disbursed_on: back(*back_days).max(loan.applied_on()),
        },
        Step::Pay {
            permille_of_outstanding,
            back_days,
        } => {
            let outstanding = loan.figures(today).total_outstanding.minor();
            let amount = (outstanding * i64::from(*permille_of_outstanding) / 1_000).max(1);
            let payment_id = payment_id(next_payment);
            let amount = Money::from_minor(amount, currency).unwrap();
            LoanCommand::ApplyPayment {
                payment_id,
                amount,
                paid_on: back(*back_days),
                reference: None,
                note: None,
            }
        }
        Step::PayOff { back_days } => {
            let paid_on = back(*back_days);
            let amount = loan.payoff_quote(paid_on).ok()?.total;
            LoanCommand::ApplyPayment {
                payment_id: payment_id(next_payment),
                amount,
                paid_on,
                reference: None,
                note: None,
            }
        }
        Step::Reverse { pick } => {
            let payments = loan.payments();
            let payment = payments.get(pick % payments.len().max(1))?;
            LoanCommand::ReversePayment {
                payment_id: payment.payment_id,
            }
        }
        Step::Assess { back_days } => LoanCommand::AssessLateFees {
            as_of: back(*back_days),
        },
        Step::Reject => LoanCommand::Reject {
            reason: "random".into(),
        },
        Step::Cancel => LoanCommand::Cancel,
        Step::WriteOff => LoanCommand::WriteOff,
    })
}

fn allowed_transition(from: LoanStatus, to: LoanStatus) -> bool {
    use LoanStatus::*;
    from == to
        || matches!(
            (from, to),
            (Pending, Approved | Overdue | Rejected | Cancelled)
                | (Approved, Overdue | Paid | WrittenOff)
                | (Overdue, Approved | Paid | WrittenOff)
                | (Paid, Approved | Overdue)
        )
}

/// Every invariant a loan must keep after every event.
fn check_invariants(loan: &Loan, today: NaiveDate) {
    let restored =
        Loan::restore(loan.snapshot()).unwrap_or_else(|error| panic!("illegal state: {error}"));
    assert_eq!(&restored, loan);
    let figures = loan.figures(today);
    let owed: i64 = loan
        .installments()
        .iter()
        .map(|installment| {
            installment.principal.minor()
                + installment.interest.minor()
                + installment.late_fee.minor()
        })
        .sum();
    let accounted = figures.total_paid.minor()
        + figures.total_outstanding.minor()
        + figures.interest_waived.minor();
    assert_eq!(
        accounted,
        if loan.installments().is_empty() {
            0
        } else {
            owed
        },
        "paid + outstanding + waived = owed"
    );
    for payment in loan
        .payments()
        .iter()
        .filter(|payment| !payment.is_reversed())
    {
        assert_eq!(
            payment.allocation.applied_minor(),
            payment.amount.minor(),
            "allocation sums to the payment"
        );
    }
    if loan.status() == LoanStatus::Paid {
        assert!(figures.total_outstanding.is_zero());
    }
}

/// Applying a payment and reversing it at once gives back the same balances and allocations.
fn check_reversal_undoes(before: &Loan, after: &Loan, command: &LoanCommand, today: NaiveDate) {
    let LoanCommand::ApplyPayment { payment_id, .. } = command else {
        return;
    };
    if after.payments().len() == before.payments().len() {
        return; // an idempotent repeat recorded nothing
    }
    let mut reversed = after.clone();
    let reverse = LoanCommand::ReversePayment {
        payment_id: *payment_id,
    };
    for event in reversed
        .decide(&reverse, today)
        .expect("a fresh payment can be reversed")
    {
        reversed.apply(&event);
    }
    assert_eq!(reversed.installments(), before.installments());
    assert_eq!(
        &reversed.payments()[..before.payments().len()],
        before.payments()
    );
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn schedule_principal_parts_sum_to_the_principal(terms in terms(1_000_000_000_000, 1..=480), offset in 0..400_u64) {
        let disbursed_on = date(2024, 1, 1).checked_add_days(Days::new(offset)).unwrap();
        let schedule = preview(&terms, disbursed_on).unwrap();
        prop_assert_eq!(schedule.len(), usize::from(terms.term().get()));
        let principal: i64 = schedule.iter().map(|line| line.principal.minor()).sum();
        prop_assert_eq!(principal, terms.principal().minor());
        prop_assert!(schedule.windows(2).all(|pair| pair[0].due_date < pair[1].due_date));
        prop_assert!(schedule[0].due_date > disbursed_on);
    }

    #[test]
    fn random_command_sequences_never_panic_or_leave_an_illegal_state(
        terms in terms(5_000_000, 1..=24),
        schedule in (frequency(), day_count()),
        approve_first in proptest::bool::weighted(0.9),
        steps in proptest::collection::vec(step(), 1..30),
    ) {
        let count = u32::from(terms.term().get());
        let terms = terms.with_schedule(schedule.0, schedule.1, count).unwrap();
        let mut today = date(2024, 1, 31);
        let mut loan = pending(terms, today);
        // Most histories start approved, so the steps exercise repayment rather than refusals.
        if approve_first {
            for event in loan.decide(&LoanCommand::Approve { disbursed_on: today }, today).unwrap() {
                loan.apply(&event);
            }
        }
        let mut fees_seen: Vec<Option<Money>> = Vec::new();
        for (number, (advance_days, step)) in steps.iter().enumerate() {
            today = today.checked_add_days(Days::new(u64::from(*advance_days))).unwrap();
            let Some(command) = command(&loan, step, today, number as u128 + 1) else { continue };
            let Ok(events) = loan.decide(&command, today) else { continue };
            let before = loan.clone();
            for event in &events {
                loan.apply(event);
            }
            prop_assert!(allowed_transition(before.status(), loan.status()), "{:?} → {:?}", before.status(), loan.status());
            check_invariants(&loan, today);
            check_reversal_undoes(&before, &loan, &command, today);
            // A late fee, once assessed, never changes and is never assessed again.
            fees_seen.resize(loan.installments().len(), None);
            for (seen, installment) in fees_seen.iter_mut().zip(loan.installments()) {
                let fee = installment.late_fee_assessed_on.map(|_| installment.late_fee);
                prop_assert!(seen.is_none() || *seen == fee, "late fee changed on installment {}", installment.seq);
                *seen = fee;
            }
        }
    }
}

/// Decides `command` on a loan that folds its payments as a live actor does:
/// asked for the whole history, it decides again on `whole` (what the store
/// holds), as the actor reloads.
fn decide_folding(
    folding: &mut Loan,
    whole: &Loan,
    command: &LoanCommand,
    today: NaiveDate,
) -> Result<Vec<LoanEvent>, LoanError> {
    match folding.decide(command, today) {
        Err(LoanError::HistoryNeeded) => {
            assert!(
                !folding.folded().is_empty(),
                "only a loan with folded payments asks for its history"
            );
            *folding = whole.clone();
            folding.decide(command, today)
        }
        decided => decided,
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn a_loan_folding_its_payments_decides_exactly_as_its_whole_history(
        terms in terms(5_000_000, 1..=24),
        schedule in (frequency(), day_count()),
        keep in 0..4_usize,
        steps in proptest::collection::vec(step(), 1..40),
    ) {
        let count = u32::from(terms.term().get());
        let terms = terms.with_schedule(schedule.0, schedule.1, count).unwrap();
        let mut today = date(2024, 1, 31);
        let mut whole = pending(terms, today);
        for event in whole.decide(&LoanCommand::Approve { disbursed_on: today }, today).unwrap() {
            whole.apply(&event);
        }
        let mut folding = whole.clone();
        for (number, (advance_days, step)) in steps.iter().enumerate() {
            today = today.checked_add_days(Days::new(u64::from(*advance_days))).unwrap();
            // Reversals pick among every payment, folded ones included.
            let Some(command) = command(&whole, step, today, number as u128 + 1) else { continue };
            let expected = whole.decide(&command, today);
            let decided = decide_folding(&mut folding, &whole, &command, today);
            prop_assert_eq!(&decided, &expected, "{:?}", command);
            if let Ok(events) = expected {
                for event in &events {
                    whole.apply(event);
                    folding.apply(event);
                }
            }
            folding.fold_payments(keep);
            prop_assert_eq!(folding.installments(), whole.installments());
            prop_assert_eq!(folding.status(), whole.status());
            prop_assert_eq!(folding.payment_count(), whole.payment_count());
            prop_assert_eq!(folding.figures(today), whole.figures(today));
            prop_assert_eq!(folding.installment_views(today), whole.installment_views(today));
            prop_assert_eq!(folding.payoff_quote(today).ok(), whole.payoff_quote(today).ok());
            prop_assert_eq!(folding.snapshot().overdue_after(), whole.snapshot().overdue_after());
            let kept = folding.payments().len();
            prop_assert_eq!(folding.payments(), &whole.payments()[whole.payments().len() - kept..]);
            Loan::restore(folding.snapshot()).map_err(|error| TestCaseError::fail(format!("folded state illegal: {error}")))?;
        }
    }
}

fn frequency() -> impl Strategy<Value = actors::core::Frequency> {
    use actors::core::Frequency;
    prop_oneof![
        Just(Frequency::Monthly),
        Just(Frequency::Biweekly),
        Just(Frequency::Weekly)
    ]
}

fn day_count() -> impl Strategy<Value = actors::core::DayCount> {
    use actors::core::DayCount;
    prop_oneof![
        Just(DayCount::Thirty360),
        Just(DayCount::Actual365),
        Just(DayCount::Actual360)
    ]
}

proptest! {
    #![proptest_config(config())]

    /// Every frequency, day count and method: principal parts sum to the
    /// principal, no part is negative, the balance never goes below zero and
    /// due dates step forward by the frequency.
    #[test]
    fn every_frequency_and_day_count_repays_the_principal_exactly_and_never_goes_negative(
        terms in terms(1_000_000_000_000, 1..=12),
        frequency in frequency(),
        day_count in day_count(),
        installments in 1_u32..=520,
        offset in 0..400_u64,
    ) {
        let installments = match frequency {
            actors::core::Frequency::Monthly => installments.min(480),
            _ => installments,
        };
        let terms = terms.with_schedule(frequency, day_count, installments).unwrap();
        let disbursed_on = date(2024, 1, 1).checked_add_days(Days::new(offset)).unwrap();
        let schedule = preview(&terms, disbursed_on).unwrap();
        prop_assert_eq!(schedule.len(), installments as usize);
        let mut balance = terms.principal().minor();
        for line in &schedule {
            prop_assert!(line.principal.minor() >= 0 && line.interest.minor() >= 0);
            balance -= line.principal.minor();
            prop_assert!(balance >= 0, "balance {} after installment {}", balance, line.seq);
        }
        prop_assert_eq!(balance, 0);
        if let Some(days) = frequency.period_days() {
            for pair in schedule.windows(2) {
                prop_assert_eq!((pair[1].due_date - pair[0].due_date).num_days(), i64::from(days));
            }
        }
    }
}

//! Payments: allocation, idempotency, late fees, payoff, reversal.

use actors::core::{
    ErrorKind, GraceDays, InstallmentStatus, LoanCommand, LoanError, LoanEvent, LoanStatus, Money,
};

use super::support::{approved, date, money, pay, payment_id, reference_terms, run, try_run, usd};

#[test]
fn payment_larger_than_outstanding_is_rejected_and_nothing_is_recorded() {
    let mut loan = approved(reference_terms(), date(2024, 1, 15));
    let error = try_run(
        &mut loan,
        pay(1, usd("10661.87"), date(2024, 2, 1)),
        date(2024, 2, 1),
    )
    .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Invalid);
    assert!(
        matches!(error, LoanError::Overpayment { payable, .. } if payable.to_string() == "10661.86")
    );
    assert!(loan.payments().is_empty());
}

#[test]
fn payment_in_another_currency_or_of_zero_is_rejected() {
    let loan = approved(reference_terms(), date(2024, 1, 15));
    let today = date(2024, 2, 1);
    let euros = pay(1, money("10", actors::core::Currency::EUR), today);
    assert_eq!(
        loan.decide(&euros, today).unwrap_err().kind(),
        ErrorKind::Invalid
    );
    assert_eq!(
        loan.decide(&pay(1, usd("0"), today), today)
            .unwrap_err()
            .kind(),
        ErrorKind::Invalid
    );
    let future = pay(1, usd("10"), date(2024, 2, 2));
    assert_eq!(
        loan.decide(&future, today).unwrap_err().kind(),
        ErrorKind::Invalid
    );
    let before_disbursement = pay(1, usd("10"), date(2024, 1, 14));
    assert_eq!(
        loan.decide(&before_disbursement, today).unwrap_err().kind(),
        ErrorKind::Invalid
    );
}

#[test]
fn a_payment_goes_oldest_installment_first_and_fee_then_interest_then_principal() {
    let mut loan = approved(reference_terms(), date(2024, 1, 15));
    run(
        &mut loan,
        LoanCommand::AssessLateFees {
            as_of: date(2024, 2, 16),
        },
        date(2024, 2, 16),
    );
    assert_eq!(loan.installments()[0].late_fee.to_string(), "26.65");
    let events = run(
        &mut loan,
        pay(1, usd("1000"), date(2024, 2, 20)),
        date(2024, 2, 20),
    );
    let LoanEvent::PaymentApplied { payment, .. } = &events[0] else {
        panic!("{events:?}")
    };
    let lines: Vec<_> = payment
        .allocation
        .lines
        .iter()
        .map(|line| {
            (
                line.seq,
                line.fee.to_string(),
                line.interest.to_string(),
                line.principal.to_string(),
            )
        })
        .collect();
    assert_eq!(
        lines,
        [
            (1, "26.65".into(), "100.00".into(), "788.49".into()),
            (2, "0.00".into(), "84.86".into(), "0.00".into())
        ]
    );
    assert_eq!(payment.allocation.applied_minor(), payment.amount.minor());
    assert_eq!(
        (
            payment.allocation.fee.to_string(),
            payment.allocation.interest.to_string()
        ),
        ("26.65".into(), "184.86".into())
    );
}

#[test]
fn a_repeated_payment_is_a_no_op_and_a_reused_id_with_other_details_conflicts() {
    let mut loan = approved(reference_terms(), date(2024, 1, 15));
    let today = date(2024, 2, 15);
    run(&mut loan, pay(1, usd("100"), today), today);
    assert!(run(&mut loan, pay(1, usd("100"), today), today).is_empty());
    assert_eq!(
        loan.decide(&pay(1, usd("101"), today), today)
            .unwrap_err()
            .kind(),
        ErrorKind::Conflict
    );
    let by_bank = |id, paid_on| LoanCommand::ApplyPayment {
        payment_id: payment_id(id),
        amount: usd("50"),
        paid_on,
        reference: Some("bank-42".into()),
        note: None,
    };
    run(&mut loan, by_bank(2, today), today);
    // Redelivered under a fresh id and another default date: still the same bank payment.
    assert!(run(&mut loan, by_bank(3, date(2024, 2, 16)), date(2024, 2, 16)).is_empty());
    assert_eq!(loan.payments().len(), 2);
}

#[test]
fn paying_every_installment_marks_the_loan_paid() {
    let mut loan = approved(reference_terms(), date(2024, 1, 15));
    let installments = loan.installments().to_vec();
    let mut last_events = Vec::new();
    for (n, installment) in installments.iter().enumerate() {
        let amount = installment
            .principal
            .checked_add(installment.interest)
            .unwrap();
        last_events = run(
            &mut loan,
            pay(n as u128, amount, installment.due_date),
            installment.due_date,
        );
    }
    assert!(
        matches!(last_events.last(), Some(LoanEvent::Paid { interest_waived, .. }) if interest_waived.is_zero())
    );
    assert_eq!(loan.status(), LoanStatus::Paid);
    assert_eq!(
        loan.figures(date(2025, 1, 15)).total_paid.to_string(),
        "10661.86"
    );
    let more = loan
        .decide(&pay(99, usd("1"), date(2025, 1, 20)), date(2025, 1, 20))
        .unwrap_err();
    assert_eq!(more.kind(), ErrorKind::Conflict);
}

#[test]
fn late_fees_wait_for_the_grace_period_and_are_assessed_once() {
    let terms = reference_terms().with_grace_days(GraceDays::new(5).unwrap());
    let mut loan = approved(terms, date(2024, 1, 15));
    let on_day_five = run(
        &mut loan,
        LoanCommand::AssessLateFees {
            as_of: date(2024, 2, 20),
        },
        date(2024, 2, 20),
    );
    assert!(matches!(
        &on_day_five[..],
        [LoanEvent::MarkedOverdue {
            days_past_due: 5,
            ..
        }]
    ));
    let on_day_six = run(
        &mut loan,
        LoanCommand::AssessLateFees {
            as_of: date(2024, 2, 21),
        },
        date(2024, 2, 21),
    );
    assert!(
        matches!(&on_day_six[..], [LoanEvent::LateFeesAssessed { fees, .. }] if fees.len() == 1 && fees[0].fee.to_string() == "26.65")
    );
    let again = run(
        &mut loan,
        LoanCommand::AssessLateFees {
            as_of: date(2024, 2, 28),
        },
        date(2024, 2, 28),
    );
    assert!(again.is_empty());
    assert_eq!(
        loan.figures(date(2024, 2, 28)).fees_outstanding.to_string(),
        "26.65"
    );
}

#[test]
fn an_unpaid_late_fee_never_makes_the_next_installment_late() {
    let mut loan = approved(reference_terms(), date(2024, 1, 15));
    run(
        &mut loan,
        LoanCommand::AssessLateFees {
            as_of: date(2024, 2, 16),
        },
        date(2024, 2, 16),
    );
    // The borrower pays installment 1 without its fee, then installment 2 on time.
    let events = run(
        &mut loan,
        pay(1, usd("888.49"), date(2024, 2, 17)),
        date(2024, 2, 17),
    );
    assert!(matches!(
        events.last(),
        Some(LoanEvent::ReturnedToApproved { .. })
    ));
    run(
        &mut loan,
        pay(2, usd("888.49"), date(2024, 3, 15)),
        date(2024, 3, 15),
    );
    let assessed = run(
        &mut loan,
        LoanCommand::AssessLateFees {
            as_of: date(2024, 3, 20),
        },
        date(2024, 3, 20),
    );
    assert!(assessed.is_empty(), "no fee on installment 2: {assessed:?}");
    assert_eq!(loan.status(), LoanStatus::Approved);
    assert_eq!(loan.days_past_due(date(2024, 3, 20)), 0);
    // The fee itself was paid first (oldest first, fee before interest), so installment 2 is partial.
    let views = loan.installment_views(date(2024, 3, 20));
    assert_eq!(
        (views[0].status, views[1].status),
        (InstallmentStatus::Paid, InstallmentStatus::Partial)
    );
}

#[test]
fn an_overdue_loan_returns_to_approved_when_caught_up() {
    let mut loan = approved(reference_terms(), date(2024, 1, 15));
    run(
        &mut loan,
        LoanCommand::AssessLateFees {
            as_of: date(2024, 3, 20),
        },
        date(2024, 3, 20),
    );
    assert_eq!(loan.status(), LoanStatus::Overdue);
    assert_eq!(loan.figures(date(2024, 3, 20)).days_past_due, 34);
    assert_eq!(
        loan.installment_views(date(2024, 3, 20))[0].status,
        InstallmentStatus::Overdue
    );
    let owed = loan.figures(date(2024, 3, 20)).fees_outstanding.minor() + 2 * 88_849;
    run(
        &mut loan,
        pay(
            1,
            Money::from_minor(owed, usd("0").currency()).unwrap(),
            date(2024, 3, 21),
        ),
        date(2024, 3, 21),
    );
    assert_eq!(loan.status(), LoanStatus::Approved);
    assert_eq!(
        loan.figures(date(2024, 3, 21)).next_due_date,
        Some(date(2024, 4, 15))
    );
}

#[test]
fn paying_the_payoff_quote_closes_the_loan_and_waives_unearned_interest() {
    let mut loan = approved(reference_terms(), date(2024, 1, 15));
    // 15 of the 31 days from Jan 15 to Feb 15: 100.00 × 15/31 = 48.387… → 48.39.
    let quote = loan.payoff_quote(date(2024, 1, 30)).unwrap();
    assert_eq!(
        (quote.principal.to_string(), quote.interest.to_string()),
        ("10000.00".into(), "48.39".into())
    );
    assert_eq!(
        (quote.total.to_string(), quote.interest_waived.to_string()),
        ("10048.39".into(), "613.47".into())
    );
    let events = run(
        &mut loan,
        pay(1, quote.total, date(2024, 1, 30)),
        date(2024, 1, 30),
    );
    let [
        LoanEvent::PaymentApplied { payment, .. },
        LoanEvent::Paid {
            interest_waived, ..
        },
    ] = &events[..]
    else {
        panic!("{events:?}");
    };
    assert_eq!(payment.allocation.interest_waived.to_string(), "613.47");
    assert_eq!(*interest_waived, payment.allocation.interest_waived);
    assert_eq!(loan.status(), LoanStatus::Paid);
    assert!(loan.figures(date(2024, 1, 30)).total_outstanding.is_zero());
}

#[test]
fn a_payoff_after_missed_installments_includes_them_and_their_fees() {
    let mut loan = approved(reference_terms(), date(2024, 1, 15));
    run(
        &mut loan,
        LoanCommand::AssessLateFees {
            as_of: date(2024, 2, 16),
        },
        date(2024, 2, 16),
    );
    let quote = loan.payoff_quote(date(2024, 2, 29)).unwrap();
    // Installment 1 interest 100.00 in full, then installment 2's 92.12 × 14/29 days = 44.472… → 44.47.
    assert_eq!(loan.installments()[1].interest.to_string(), "92.12");
    assert_eq!(
        (quote.interest.to_string(), quote.fees.to_string()),
        ("144.47".into(), "26.65".into())
    );
    run(
        &mut loan,
        pay(1, quote.total, date(2024, 2, 29)),
        date(2024, 2, 29),
    );
    assert_eq!(loan.status(), LoanStatus::Paid);
}

#[test]
fn reversing_a_payment_gives_the_state_as_if_it_had_never_been_received() {
    let disbursed = date(2024, 1, 15);
    let mut with_both = approved(reference_terms(), disbursed);
    run(
        &mut with_both,
        pay(1, usd("500"), date(2024, 2, 1)),
        date(2024, 2, 1),
    );
    run(
        &mut with_both,
        pay(2, usd("1200"), date(2024, 2, 15)),
        date(2024, 2, 15),
    );
    run(
        &mut with_both,
        LoanCommand::ReversePayment {
            payment_id: payment_id(1),
        },
        date(2024, 2, 20),
    );
    let mut only_second = approved(reference_terms(), disbursed);
    run(
        &mut only_second,
        pay(2, usd("1200"), date(2024, 2, 15)),
        date(2024, 2, 15),
    );
    assert_eq!(with_both.installments(), only_second.installments());
    assert_eq!(
        with_both.payment(payment_id(2)),
        only_second.payment(payment_id(2))
    );
    assert!(with_both.payment(payment_id(1)).unwrap().is_reversed());
    let again = with_both.decide(
        &LoanCommand::ReversePayment {
            payment_id: payment_id(1),
        },
        date(2024, 2, 20),
    );
    assert_eq!(again.unwrap_err().kind(), ErrorKind::Conflict);
    let unknown = with_both.decide(
        &LoanCommand::ReversePayment {
            payment_id: payment_id(9),
        },
        date(2024, 2, 20),
    );
    assert_eq!(unknown.unwrap_err().kind(), ErrorKind::NotFound);
}

#[test]
fn reversing_the_payoff_reopens_the_loan_and_restores_the_interest() {
    let mut loan = approved(reference_terms(), date(2024, 1, 15));
    let quote = loan.payoff_quote(date(2024, 1, 30)).unwrap();
    run(
        &mut loan,
        pay(1, quote.total, date(2024, 1, 30)),
        date(2024, 1, 30),
    );
    let events = run(
        &mut loan,
        LoanCommand::ReversePayment {
            payment_id: payment_id(1),
        },
        date(2024, 2, 1),
    );
    assert!(matches!(
        events.last(),
        Some(LoanEvent::ReturnedToApproved { .. })
    ));
    assert_eq!(
        loan.figures(date(2024, 2, 1)).total_outstanding.to_string(),
        "10661.86"
    );
}

#[test]
fn a_back_dated_payment_reallocates_the_later_ones() {
    let mut loan = approved(reference_terms(), date(2024, 1, 15));
    run(
        &mut loan,
        pay(1, usd("888.49"), date(2024, 2, 15)),
        date(2024, 2, 15),
    );
    let events = run(
        &mut loan,
        pay(2, usd("888.49"), date(2024, 2, 10)),
        date(2024, 2, 16),
    );
    let LoanEvent::PaymentApplied {
        payment,
        reallocations,
    } = &events[0]
    else {
        panic!("{events:?}")
    };
    assert_eq!(payment.allocation.lines[0].seq, 1);
    assert_eq!(reallocations.len(), 1);
    assert_eq!(reallocations[0].payment_id, payment_id(1));
    assert_eq!(
        loan.payment(payment_id(1)).unwrap().allocation.lines[0].seq,
        2
    );
}

#[test]
fn money_that_paid_an_earlier_fee_does_not_shrink_a_later_fee() {
    let mut loan = approved(reference_terms(), date(2024, 1, 15));
    run(
        &mut loan,
        LoanCommand::AssessLateFees {
            as_of: date(2024, 2, 16),
        },
        date(2024, 2, 16),
    );
    // Installment 1 and its 26.65 fee paid in full; installment 2 not at all.
    run(
        &mut loan,
        pay(1, usd("915.14"), date(2024, 2, 17)),
        date(2024, 2, 17),
    );
    let assessed = run(
        &mut loan,
        LoanCommand::AssessLateFees {
            as_of: date(2024, 3, 20),
        },
        date(2024, 3, 20),
    );
    let fee = assessed.iter().find_map(|event| match event {
        LoanEvent::LateFeesAssessed { fees, .. } => fees.first().copied(),
        _ => None,
    });
    let fee = fee.expect("installment 2 is late");
    assert_eq!(
        (fee.seq, fee.base.to_string(), fee.fee.to_string()),
        (2, "888.49".into(), "26.65".into())
    );
}

/// An external reference repeated after its payment was folded out of memory:
/// the folded loan cannot tell a repeat from a new payment, so it asks for the
/// history, and the whole history finds the repeat (no event) or the clash.
#[test]
fn a_repeated_reference_of_a_folded_payment_is_decided_on_the_whole_history() {
    let mut loan = approved(reference_terms(), date(2024, 1, 15));
    let with_reference = |n: u128, amount: &str, reference: &str| LoanCommand::ApplyPayment {
        payment_id: payment_id(n),
        amount: usd(amount),
        paid_on: date(2024, 1, 20),
        reference: Some(reference.into()),
        note: None,
    };
    for n in 1..=10 {
        run(
            &mut loan,
            with_reference(n, "10.00", &format!("bank-{n}")),
            date(2024, 1, 20),
        );
    }
    let whole = loan.clone();
    loan.fold_payments(2);
    assert_eq!(loan.folded().count(), 8);
    assert_eq!(loan.payments(), &whole.payments()[8..]);
    assert_eq!(
        loan.figures(date(2024, 1, 20)),
        whole.figures(date(2024, 1, 20))
    );

    let repeat = with_reference(101, "10.00", "bank-1");
    assert_eq!(
        loan.decide(&repeat, date(2024, 2, 1)),
        Err(LoanError::HistoryNeeded)
    );
    assert_eq!(whole.decide(&repeat, date(2024, 2, 1)), Ok(Vec::new()));
    let clash = with_reference(102, "99.00", "bank-1");
    assert_eq!(
        loan.decide(&clash, date(2024, 2, 1)),
        Err(LoanError::HistoryNeeded)
    );
    assert!(matches!(
        whole.decide(&clash, date(2024, 2, 1)),
        Err(LoanError::DuplicatePayment { .. })
    ));
    // A reference never seen, a payment of today: decided in memory, as on the whole history.
    let fresh = with_reference(103, "10.00", "bank-new");
    assert_eq!(
        loan.decide(&fresh, date(2024, 2, 1)),
        whole.decide(&fresh, date(2024, 2, 1))
    );
    assert!(loan.decide(&fresh, date(2024, 2, 1)).is_ok());
    // A reversal of a folded payment, or one dated before the folded ones, needs the history too.
    let reverse_folded = LoanCommand::ReversePayment {
        payment_id: payment_id(1),
    };
    assert_eq!(
        loan.decide(&reverse_folded, date(2024, 2, 1)),
        Err(LoanError::HistoryNeeded)
    );
    assert!(whole.decide(&reverse_folded, date(2024, 2, 1)).is_ok());
    let back_dated = pay(104, usd("1.00"), date(2024, 1, 16));
    assert_eq!(
        loan.decide(&back_dated, date(2024, 2, 1)),
        Err(LoanError::HistoryNeeded)
    );
}

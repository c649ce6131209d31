//! Status transitions, typed refusals, snapshots.

use actors::core::{
    ErrorKind, Loan, LoanCommand, LoanError, LoanEvent, LoanStatus, Money, MoneyError, RateError,
};

use super::support::{
    approved, date, pay, payment_id, pending, reference_terms, run, try_run, usd,
};

#[test]
fn approval_fixes_the_schedule_and_moves_the_loan_to_approved() {
    let mut loan = pending(reference_terms(), date(2024, 1, 10));
    let events = run(
        &mut loan,
        LoanCommand::Approve {
            disbursed_on: date(2024, 1, 15),
        },
        date(2024, 1, 15),
    );
    assert!(matches!(&events[..], [LoanEvent::Approved { schedule, .. }] if schedule.len() == 12));
    assert_eq!(loan.status(), LoanStatus::Approved);
    assert_eq!(loan.installments()[0].due_date, date(2024, 2, 15));
    let figures = loan.figures(date(2024, 1, 15));
    assert_eq!(figures.total_outstanding.to_string(), "10661.86");
    assert_eq!(figures.next_due_date, Some(date(2024, 2, 15)));
}

#[test]
fn every_illegal_transition_is_a_typed_conflict() {
    let today = date(2024, 1, 15);
    let mut loan = approved(reference_terms(), today);
    for command in [
        LoanCommand::Approve {
            disbursed_on: today,
        },
        LoanCommand::Reject {
            reason: "no".into(),
        },
        LoanCommand::Cancel,
    ] {
        let error = loan.decide(&command, today).unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Conflict, "{command:?}");
        assert!(matches!(
            error,
            LoanError::InvalidTransition {
                status: LoanStatus::Approved,
                ..
            }
        ));
    }
    run(&mut loan, LoanCommand::WriteOff, today);
    assert_eq!(loan.status(), LoanStatus::WrittenOff);
    let refused = loan.decide(&pay(1, usd("10"), today), today).unwrap_err();
    assert_eq!(refused.kind().http_status(), 409);
    let pending = pending(reference_terms(), today);
    for command in [
        pay(1, usd("10"), today),
        LoanCommand::WriteOff,
        LoanCommand::AssessLateFees { as_of: today },
    ] {
        assert_eq!(
            pending.decide(&command, today).unwrap_err().kind(),
            ErrorKind::Conflict,
            "{command:?}"
        );
    }
}

#[test]
fn a_pending_loan_can_be_rejected_with_a_reason_or_cancelled() {
    let today = date(2024, 1, 15);
    let mut rejected = pending(reference_terms(), today);
    let blank = rejected
        .decide(
            &LoanCommand::Reject {
                reason: "  ".into(),
            },
            today,
        )
        .unwrap_err();
    assert_eq!(blank.kind(), ErrorKind::Invalid);
    run(
        &mut rejected,
        LoanCommand::Reject {
            reason: " income too low ".into(),
        },
        today,
    );
    assert_eq!(
        (rejected.status(), rejected.rejection_reason()),
        (LoanStatus::Rejected, Some("income too low"))
    );
    let mut cancelled = pending(reference_terms(), today);
    run(&mut cancelled, LoanCommand::Cancel, today);
    assert_eq!(cancelled.status(), LoanStatus::Cancelled);
    assert_eq!(
        cancelled
            .decide(&LoanCommand::Cancel, today)
            .unwrap_err()
            .kind(),
        ErrorKind::Conflict
    );
}

#[test]
fn approval_dated_in_the_future_or_before_the_application_is_invalid() {
    let loan = pending(reference_terms(), date(2024, 1, 10));
    let future = LoanCommand::Approve {
        disbursed_on: date(2024, 1, 11),
    };
    assert_eq!(
        loan.decide(&future, date(2024, 1, 10)).unwrap_err().kind(),
        ErrorKind::Invalid
    );
    let early = LoanCommand::Approve {
        disbursed_on: date(2024, 1, 9),
    };
    assert_eq!(
        loan.decide(&early, date(2024, 1, 10)).unwrap_err().kind(),
        ErrorKind::Invalid
    );
}

#[test]
fn a_loan_approved_long_after_its_first_due_date_is_immediately_overdue() {
    let mut loan = pending(reference_terms(), date(2024, 1, 1));
    let events = run(
        &mut loan,
        LoanCommand::Approve {
            disbursed_on: date(2024, 1, 1),
        },
        date(2024, 3, 1),
    );
    assert!(matches!(
        events.last(),
        Some(LoanEvent::MarkedOverdue {
            days_past_due: 29,
            ..
        })
    ));
    assert_eq!(loan.status(), LoanStatus::Overdue);
}

#[test]
fn errors_map_to_422_409_404_and_500() {
    assert_eq!(LoanError::from(MoneyError::Zero).kind().http_status(), 422);
    let rate = LoanError::Rate {
        field: "annual_interest_rate",
        source: RateError::Negative,
    };
    assert_eq!(rate.kind().http_status(), 422);
    assert_eq!(
        LoanError::UnknownPayment(payment_id(1))
            .kind()
            .http_status(),
        404
    );
    assert_eq!(
        LoanError::AlreadyReversed(payment_id(1))
            .kind()
            .http_status(),
        409
    );
    assert_eq!(
        LoanError::CorruptSnapshot("x".into()).kind().http_status(),
        500
    );
    assert_eq!(
        "WRITTEN_OFF".parse::<LoanStatus>().unwrap(),
        LoanStatus::WrittenOff
    );
    assert_eq!(
        "LOST"
            .parse::<LoanStatus>()
            .unwrap_err()
            .kind()
            .http_status(),
        422
    );
}

#[test]
fn a_snapshot_restores_to_an_equal_loan() {
    let mut loan = approved(reference_terms(), date(2024, 1, 15));
    run(
        &mut loan,
        pay(1, usd("900"), date(2024, 2, 10)),
        date(2024, 2, 10),
    );
    run(
        &mut loan,
        LoanCommand::AssessLateFees {
            as_of: date(2024, 4, 1),
        },
        date(2024, 4, 1),
    );
    let restored = Loan::restore(loan.snapshot()).unwrap();
    assert_eq!(restored, loan);
    assert_eq!(
        Loan::restore(pending(reference_terms(), date(2024, 1, 1)).snapshot())
            .unwrap()
            .status(),
        LoanStatus::Pending
    );
}

#[test]
fn a_tampered_snapshot_is_refused_as_corrupt() {
    let mut loan = approved(reference_terms(), date(2024, 1, 15));
    run(
        &mut loan,
        pay(1, usd("900"), date(2024, 2, 10)),
        date(2024, 2, 10),
    );
    let mut paid_more = loan.snapshot();
    paid_more.installments[0].principal_paid = usd("700");
    let mut wrong_status = loan.snapshot();
    wrong_status.status = LoanStatus::Paid;
    let mut shifted_principal = loan.snapshot();
    shifted_principal.installments[0].principal = usd("788.48");
    let mut doubled = loan.snapshot();
    doubled.payments.push(doubled.payments[0].clone());
    for snapshot in [paid_more, wrong_status, shifted_principal, doubled] {
        assert_eq!(
            Loan::restore(snapshot).unwrap_err().kind(),
            ErrorKind::Corrupt
        );
    }
}

#[test]
fn writing_off_records_what_was_not_recovered() {
    let mut loan = approved(reference_terms(), date(2024, 1, 15));
    run(
        &mut loan,
        pay(1, usd("888.49"), date(2024, 2, 15)),
        date(2024, 2, 15),
    );
    let events = run(&mut loan, LoanCommand::WriteOff, date(2024, 3, 1));
    let LoanEvent::WrittenOff {
        principal_outstanding,
        interest_outstanding,
        fees_outstanding,
    } = &events[0]
    else {
        panic!("expected a write-off, got {events:?}");
    };
    assert_eq!(principal_outstanding.to_string(), "9211.51");
    assert_eq!(interest_outstanding.to_string(), "561.86");
    assert_eq!(
        *fees_outstanding,
        Money::zero(principal_outstanding.currency())
    );
    assert_eq!(
        try_run(&mut loan, LoanCommand::WriteOff, date(2024, 3, 1))
            .unwrap_err()
            .kind(),
        ErrorKind::Conflict
    );
}

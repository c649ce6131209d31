//! Builders shared by the core tests.

use actors::core::{
    Currency, Loan, LoanCommand, LoanEvent, LoanId, LoanTerms, Money, PaymentId, Rate,
    RepaymentMethod, TermMonths, UserId,
};
use chrono::NaiveDate;
use uuid::Uuid;

pub fn date(year: i32, month: u32, day: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(year, month, day).unwrap()
}

pub fn money(text: &str, currency: Currency) -> Money {
    Money::parse(text, currency).unwrap()
}

pub fn usd(text: &str) -> Money {
    money(text, Currency::USD)
}

pub fn terms(principal: Money, rate: &str, months: u32, method: RepaymentMethod) -> LoanTerms {
    LoanTerms::new(
        principal,
        Rate::parse(rate).unwrap(),
        TermMonths::new(months).unwrap(),
    )
    .unwrap()
    .with_method(method)
}

/// The reference loan: 10,000.00 at 12 % over 12 months, annuity.
pub fn reference_terms() -> LoanTerms {
    terms(usd("10000"), "12", 12, RepaymentMethod::Annuity)
}

pub fn payment_id(n: u128) -> PaymentId {
    PaymentId::new(Uuid::from_u128(n))
}

pub fn pending(terms: LoanTerms, applied_on: NaiveDate) -> Loan {
    Loan::apply_for(
        LoanId::new(Uuid::from_u128(1)),
        UserId::new(Uuid::from_u128(2)),
        terms,
        applied_on,
    )
    .0
}

/// Decides and applies; panics when the command is refused.
pub fn run(loan: &mut Loan, command: LoanCommand, today: NaiveDate) -> Vec<LoanEvent> {
    let events = loan
        .decide(&command, today)
        .unwrap_or_else(|error| panic!("{command:?} refused: {error}"));
    for event in &events {
        loan.apply(event);
    }
    events
}

/// Decides and applies if accepted; returns the refusal otherwise.
pub fn try_run(
    loan: &mut Loan,
    command: LoanCommand,
    today: NaiveDate,
) -> Result<Vec<LoanEvent>, actors::core::LoanError> {
    let events = loan.decide(&command, today)?;
    for event in &events {
        loan.apply(event);
    }
    Ok(events)
}

pub fn approved(terms: LoanTerms, disbursed_on: NaiveDate) -> Loan {
    let mut loan = pending(terms, disbursed_on);
    run(
        &mut loan,
        LoanCommand::Approve { disbursed_on },
        disbursed_on,
    );
    loan
}

pub fn pay(n: u128, amount: Money, paid_on: NaiveDate) -> LoanCommand {
    LoanCommand::ApplyPayment {
        payment_id: payment_id(n),
        amount,
        paid_on,
        reference: None,
        note: None,
    }
}

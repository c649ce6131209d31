//! Wire payloads of the loan events (SPEC §5), version 1.
//!
//! Amounts are strings in major units with the currency's full decimals
//! (`Money`'s `Display`), dates `YYYY-MM-DD`; each money-bearing payload names
//! its `currency`. Consumers may rely on every field listed here; new fields
//! may be added, none removed or re-typed without a new event type.

use actors::core::{Allocation, LoanEvent, LoanSnapshot, Money, Reallocation};
use actors::store::EventRecord;
use serde_json::{Value, json};

use super::envelope_with_id;
use crate::store::outbox::OutboxEvent;

/// The outbox row of one loan event: SPEC §5 envelope, `type` = the event's
/// `kind_name()`, `user_id` = the borrower. `loan` is the state after the
/// commit, used to describe payments an event only names by id.
pub fn loan_event_outbox(loan: &LoanSnapshot, record: &EventRecord) -> OutboxEvent {
    let mut outbox = envelope_with_id(
        record.event_id,
        record.event.kind_name(),
        Some(loan.loan_id.as_uuid()),
        Some(loan.user_id.as_uuid()),
        record.occurred_at,
        event_data(loan, &record.event),
    );
    // Who caused it (null: the system — jobs, inbound payments); the audit
    // log attributes the entry to this actor.
    outbox.payload["actor_id"] = json!(record.actor_id.map(|actor| actor.as_uuid()));
    outbox
}

/// The `data` member of a loan event.
pub fn event_data(loan: &LoanSnapshot, event: &LoanEvent) -> Value {
    let currency = loan.terms.currency().code();
    match event {
        LoanEvent::Applied { terms, applied_on } => json!({
            "principal": terms.principal().to_string(),
            "currency": currency,
            "annual_interest_rate": terms.annual_rate().to_string(),
            "term_months": terms.term().get(),
            "repayment_method": terms.method().as_str(),
            "late_fee_rate": terms.late_fee_rate().to_string(),
            "grace_days": terms.grace_days().get(),
            "first_due_date": terms.first_due_date(),
            "purpose": terms.purpose(),
            "applied_on": applied_on,
        }),
        LoanEvent::Approved {
            disbursed_on,
            schedule,
        } => {
            let interest_minor: i64 = schedule.iter().map(|line| line.interest.minor()).sum();
            json!({
                "principal": loan.terms.principal().to_string(),
                "currency": currency,
                "disbursed_on": disbursed_on,
                "installment_count": schedule.len(),
                "first_due_date": schedule.first().map(|line| line.due_date),
                "last_due_date": schedule.last().map(|line| line.due_date),
                "total_interest": money_text(interest_minor, loan),
            })
        }
        LoanEvent::Rejected { reason } => json!({ "reason": reason }),
        LoanEvent::Cancelled => json!({}),
        LoanEvent::Deleted { status } => json!({ "status": status.as_str() }),
        LoanEvent::PaymentApplied {
            payment,
            reallocations,
        } => json!({
            "payment_id": payment.payment_id.as_uuid(),
            "amount": payment.amount.to_string(),
            "currency": currency,
            "paid_on": payment.paid_on,
            "reference": payment.reference,
            "note": payment.note,
            "allocation": allocation_totals(&payment.allocation),
            "reallocated_payment_ids": reallocated_ids(reallocations),
        }),
        LoanEvent::PaymentReversed {
            payment_id,
            reversed_on,
            reallocations,
        } => {
            let reversed = loan
                .payments
                .iter()
                .find(|payment| payment.payment_id == *payment_id);
            json!({
                "payment_id": payment_id.as_uuid(),
                "amount": reversed.map(|payment| payment.amount.to_string()),
                "currency": currency,
                "paid_on": reversed.map(|payment| payment.paid_on),
                "reversed_on": reversed_on,
                "reallocated_payment_ids": reallocated_ids(reallocations),
            })
        }
        _ => status_event_data(loan, event),
    }
}

/// Data of the events that assess fees or only move the status.
fn status_event_data(loan: &LoanSnapshot, event: &LoanEvent) -> Value {
    let currency = loan.terms.currency().code();
    match event {
        LoanEvent::LateFeesAssessed {
            as_of,
            fees,
            reallocations,
        } => {
            let total_minor: i64 = fees.iter().map(|fee| fee.fee.minor()).sum();
            let lines: Vec<Value> = fees
                .iter()
                .map(|fee| {
                    json!({ "seq": fee.seq, "base": fee.base.to_string(), "fee": fee.fee.to_string() })
                })
                .collect();
            json!({
                "as_of": as_of,
                "currency": currency,
                "total": money_text(total_minor, loan),
                "fees": lines,
                "reallocated_payment_ids": reallocated_ids(reallocations),
            })
        }
        LoanEvent::MarkedOverdue {
            as_of,
            days_past_due,
        } => json!({ "as_of": as_of, "days_past_due": days_past_due }),
        LoanEvent::ReturnedToApproved { as_of } => json!({ "as_of": as_of }),
        LoanEvent::Paid {
            as_of,
            interest_waived,
        } => json!({
            "as_of": as_of,
            "currency": currency,
            "interest_waived": interest_waived.to_string(),
        }),
        LoanEvent::WrittenOff {
            principal_outstanding,
            interest_outstanding,
            fees_outstanding,
        } => json!({
            "currency": currency,
            "principal_outstanding": principal_outstanding.to_string(),
            "interest_outstanding": interest_outstanding.to_string(),
            "fees_outstanding": fees_outstanding.to_string(),
        }),
        // Every other variant is described by `event_data`.
        _ => json!({}),
    }
}

fn allocation_totals(allocation: &Allocation) -> Value {
    json!({
        "fee": allocation.fee.to_string(),
        "interest": allocation.interest.to_string(),
        "principal": allocation.principal.to_string(),
        "interest_waived": allocation.interest_waived.to_string(),
    })
}

fn reallocated_ids(reallocations: &[Reallocation]) -> Vec<uuid::Uuid> {
    reallocations
        .iter()
        .map(|reallocation| reallocation.payment_id.as_uuid())
        .collect()
}

/// A sum of minor units of the loan's currency as major-unit text.
fn money_text(minor: i64, loan: &LoanSnapshot) -> String {
    Money::from_minor(minor, loan.terms.currency())
        .map(|money| money.to_string())
        .unwrap_or_else(|_| minor.to_string())
}

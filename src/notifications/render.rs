//! What an event means to the borrower, in words: title and text of the
//! in-app notification and its e-mail. Amounts carry their currency.

use super::store::NewNotification;
use crate::events::loan::{
    LoanApplied, LoanApproved, LoanEvent, LoanOverdue, LoanWrittenOff, PaymentReceived,
    PaymentReversed,
};
use crate::events::{Envelope, Untyped};

/// A message the notifications cannot read: not an event envelope, or a
/// loan event whose `data` does not fit its type.
#[derive(Debug, thiserror::Error)]
#[error("not a readable event: {0}")]
pub struct UnreadableEvent(#[from] serde_json::Error);

/// The notification a published event (SPEC §5 envelope) gives its loan's
/// owner: `None` for events that notify nobody (account and job events,
/// types this version does not know, a loan event without a `user_id`).
pub fn notification_for(payload: &[u8]) -> Result<Option<NewNotification>, UnreadableEvent> {
    let envelope: Envelope<Untyped> = serde_json::from_slice(payload)?;
    let Some(parsed) = envelope.payload.parse::<LoanEvent>() else {
        return Ok(None);
    };
    let event = parsed?;
    let (Some(user_id), Some((title, body))) = (envelope.user_id, text_for(&event)) else {
        return Ok(None);
    };
    Ok(Some(NewNotification {
        user_id,
        event_id: envelope.event_id,
        kind: envelope.payload.event_type,
        title: title.to_owned(),
        body,
    }))
}

/// The event's title and text, for the events the borrower hears about.
fn text_for(event: &LoanEvent) -> Option<(&'static str, String)> {
    Some(match event {
        LoanEvent::Applied(applied) => applied_text(applied),
        LoanEvent::Approved(approved) => approved_text(approved),
        LoanEvent::Rejected(rejected) => (
            "Loan application rejected",
            format!("Your application was rejected: {}.", rejected.reason),
        ),
        LoanEvent::Cancelled(_) => (
            "Application cancelled",
            "Your loan application was cancelled.".to_owned(),
        ),
        LoanEvent::Paid(paid) => (
            "Loan paid off",
            format!("Your loan is fully paid as of {}. Thank you!", paid.as_of),
        ),
        LoanEvent::WrittenOff(written_off) => written_off_text(written_off),
        LoanEvent::PaymentReceived(payment) => payment_text(payment),
        LoanEvent::PaymentReversed(reversed) => reversed_text(reversed),
        LoanEvent::LateFeeApplied(fee) => (
            "Late fee applied",
            format!(
                "A late fee of {} {} was added on {} because an installment is past due.",
                fee.total, fee.currency, fee.as_of
            ),
        ),
        LoanEvent::Overdue(overdue) => overdue_text(overdue),
        LoanEvent::Current(_) | LoanEvent::Deleted(_) => return None,
    })
}

fn applied_text(applied: &LoanApplied) -> (&'static str, String) {
    (
        "Application received",
        format!(
            "We received your application for {} {} on {}.",
            applied.principal, applied.currency, applied.applied_on
        ),
    )
}

fn approved_text(approved: &LoanApproved) -> (&'static str, String) {
    (
        "Loan approved",
        format!(
            "Your loan of {} {} was approved and disbursed on {}: {} monthly installments, the first due on {}.",
            approved.principal,
            approved.currency,
            approved.disbursed_on,
            approved.installment_count,
            date_or_unknown(approved.first_due_date),
        ),
    )
}

fn written_off_text(written_off: &LoanWrittenOff) -> (&'static str, String) {
    (
        "Loan written off",
        format!(
            "Your loan was written off with {} {} principal outstanding.",
            written_off.principal_outstanding, written_off.currency
        ),
    )
}

fn payment_text(payment: &PaymentReceived) -> (&'static str, String) {
    let split = &payment.allocation;
    (
        "Payment received",
        format!(
            "We received {} {} on {}: {} to fees, {} to interest, {} to principal.",
            payment.amount,
            payment.currency,
            payment.paid_on,
            split.fee,
            split.interest,
            split.principal,
        ),
    )
}

fn reversed_text(reversed: &PaymentReversed) -> (&'static str, String) {
    (
        "Payment reversed",
        format!(
            "Your payment of {} {} from {} was reversed on {}.",
            reversed.amount.as_deref().unwrap_or("?"),
            reversed.currency,
            date_or_unknown(reversed.paid_on),
            reversed.reversed_on
        ),
    )
}

fn overdue_text(overdue: &LoanOverdue) -> (&'static str, String) {
    (
        "Loan overdue",
        format!(
            "Your loan is {} days past due as of {}. Please pay as soon as you can.",
            overdue.days_past_due, overdue.as_of
        ),
    )
}

/// A date the event may lack by contract (`null` on the wire): shown as `?`,
/// as before.
fn date_or_unknown(date: Option<chrono::NaiveDate>) -> String {
    date.map_or_else(|| "?".to_owned(), |date| date.to_string())
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use uuid::Uuid;

    use super::*;

    fn bytes(envelope: serde_json::Value) -> Vec<u8> {
        serde_json::to_vec(&envelope).unwrap()
    }

    #[test]
    fn a_payment_notification_names_the_amount_with_its_currency_and_date() {
        let envelope = json!({
            "event_id": Uuid::now_v7(), "type": "payment.received", "loan_id": Uuid::now_v7(),
            "user_id": Uuid::now_v7(), "occurred_at": "2026-01-01T00:00:00Z",
            "data": {"amount": "125.50", "currency": "USD", "paid_on": "2026-01-01",
                     "allocation": {"fee": "0.00", "interest": "25.50", "principal": "100.00"}}
        });
        let notification = notification_for(&bytes(envelope))
            .unwrap()
            .expect("a payment notifies");
        assert_eq!(notification.kind, "payment.received");
        assert!(
            notification.body.contains("125.50 USD on 2026-01-01"),
            "{}",
            notification.body
        );
    }

    #[test]
    fn account_events_notify_nobody() {
        let envelope = json!({"event_id": Uuid::now_v7(), "type": "user.registered", "user_id": Uuid::now_v7(),
            "occurred_at": "2026-01-01T00:00:00Z", "data": {}});
        assert!(notification_for(&bytes(envelope)).unwrap().is_none());
    }

    #[test]
    fn a_loan_event_whose_data_lost_a_field_is_refused_not_mailed_with_a_blank() {
        // `allocation.fee` renamed: before, the mail said "? to fees".
        let envelope = json!({
            "event_id": Uuid::now_v7(), "type": "payment.received", "loan_id": Uuid::now_v7(),
            "user_id": Uuid::now_v7(), "occurred_at": "2026-01-01T00:00:00Z",
            "data": {"amount": "125.50", "currency": "USD", "paid_on": "2026-01-01",
                     "allocation": {"fees": "0.00", "interest": "25.50", "principal": "100.00"}}
        });
        let refused = notification_for(&bytes(envelope)).unwrap_err();
        assert!(refused.to_string().contains("fee"), "{refused}");
    }
}

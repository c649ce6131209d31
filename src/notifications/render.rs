//! What an event means to the borrower, in words: title and text of the
//! in-app notification and its e-mail. Amounts carry their currency.

use serde_json::Value;
use uuid::Uuid;

use super::store::NewNotification;

/// The notification an event (SPEC §5 envelope) gives its loan's owner, if any.
pub fn notification_for(envelope: &Value) -> Option<NewNotification> {
    let event_type = envelope["type"].as_str()?;
    let event_id: Uuid = envelope["event_id"].as_str()?.parse().ok()?;
    let user_id: Uuid = envelope["user_id"].as_str()?.parse().ok()?;
    let data = &envelope["data"];
    let (title, body) = text_for(event_type, data)?;
    Some(NewNotification {
        user_id,
        event_id,
        kind: event_type.to_owned(),
        title,
        body,
    })
}

fn text(value: &Value) -> &str {
    value.as_str().unwrap_or("?")
}

fn amount(data: &Value, field: &str) -> String {
    format!("{} {}", text(&data[field]), text(&data["currency"]))
}

fn text_for(event_type: &str, data: &Value) -> Option<(String, String)> {
    lifecycle_text(event_type, data).or_else(|| money_text(event_type, data))
}

/// Decisions about the loan: applied, approved, rejected, cancelled, paid, written off.
fn lifecycle_text(event_type: &str, data: &Value) -> Option<(String, String)> {
    let (title, body) = match event_type {
        "loan.applied" => (
            "Application received",
            format!(
                "We received your application for {} on {}.",
                amount(data, "principal"),
                text(&data["applied_on"])
            ),
        ),
        "loan.approved" => (
            "Loan approved",
            format!(
                "Your loan of {} was approved and disbursed on {}: {} monthly installments, the first due on {}.",
                amount(data, "principal"),
                text(&data["disbursed_on"]),
                data["installment_count"],
                text(&data["first_due_date"]),
            ),
        ),
        "loan.rejected" => (
            "Loan application rejected",
            format!("Your application was rejected: {}.", text(&data["reason"])),
        ),
        "loan.cancelled" => (
            "Application cancelled",
            "Your loan application was cancelled.".to_owned(),
        ),
        "loan.paid" => (
            "Loan paid off",
            format!(
                "Your loan is fully paid as of {}. Thank you!",
                text(&data["as_of"])
            ),
        ),
        "loan.written_off" => (
            "Loan written off",
            format!(
                "Your loan was written off with {} principal outstanding.",
                amount(data, "principal_outstanding")
            ),
        ),
        _ => return None,
    };
    Some((title.to_owned(), body))
}

/// Money moving or owed: payments, reversals, late fees, overdue notices.
fn money_text(event_type: &str, data: &Value) -> Option<(String, String)> {
    let (title, body) = match event_type {
        "payment.received" => (
            "Payment received",
            format!(
                "We received {} on {}: {} to fees, {} to interest, {} to principal.",
                amount(data, "amount"),
                text(&data["paid_on"]),
                text(&data["allocation"]["fee"]),
                text(&data["allocation"]["interest"]),
                text(&data["allocation"]["principal"]),
            ),
        ),
        "payment.reversed" => (
            "Payment reversed",
            format!(
                "Your payment of {} from {} was reversed on {}.",
                amount(data, "amount"),
                text(&data["paid_on"]),
                text(&data["reversed_on"])
            ),
        ),
        "late_fee.applied" => (
            "Late fee applied",
            format!(
                "A late fee of {} was added on {} because an installment is past due.",
                amount(data, "total"),
                text(&data["as_of"])
            ),
        ),
        "loan.overdue" => (
            "Loan overdue",
            format!(
                "Your loan is {} days past due as of {}. Please pay as soon as you can.",
                data["days_past_due"],
                text(&data["as_of"])
            ),
        ),
        _ => return None,
    };
    Some((title.to_owned(), body))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_payment_notification_names_the_amount_with_its_currency_and_date() {
        let envelope = json!({
            "event_id": Uuid::now_v7(), "type": "payment.received", "loan_id": Uuid::now_v7(),
            "user_id": Uuid::now_v7(), "occurred_at": "2026-01-01T00:00:00Z",
            "data": {"amount": "125.50", "currency": "USD", "paid_on": "2026-01-01",
                     "allocation": {"fee": "0.00", "interest": "25.50", "principal": "100.00"}}
        });
        let notification = notification_for(&envelope).expect("a payment notifies");
        assert_eq!(notification.kind, "payment.received");
        assert!(
            notification.body.contains("125.50 USD on 2026-01-01"),
            "{}",
            notification.body
        );
    }

    #[test]
    fn account_events_notify_nobody() {
        let envelope = json!({"event_id": Uuid::now_v7(), "type": "user.registered", "user_id": Uuid::now_v7(), "data": {}});
        assert!(notification_for(&envelope).is_none());
    }
}

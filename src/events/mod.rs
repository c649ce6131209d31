//! The wire envelope of every published event (SPEC §5), and the payloads
//! of the loan events in [`loan`].

pub mod loan;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::store::outbox::OutboxEvent;

/// Subject prefix of outgoing events on the `LOAN_EVENTS` stream.
pub const EVENT_SUBJECT_PREFIX: &str = "loans.events.";

/// Builds the outbox row for an event of `event_type` (e.g. `user.registered`).
/// `loan_id` is `null` for account events; the aggregate is then the user.
pub fn envelope(
    event_type: &str,
    loan_id: Option<Uuid>,
    user_id: Option<Uuid>,
    occurred_at: DateTime<Utc>,
    data: Value,
) -> OutboxEvent {
    envelope_with_id(
        Uuid::now_v7(),
        event_type,
        loan_id,
        user_id,
        occurred_at,
        data,
    )
}

/// Like [`envelope`] with an `event_id` chosen by the caller (a loan actor
/// picks its events' ids before committing, so a retry keeps them).
pub fn envelope_with_id(
    event_id: Uuid,
    event_type: &str,
    loan_id: Option<Uuid>,
    user_id: Option<Uuid>,
    occurred_at: DateTime<Utc>,
    data: Value,
) -> OutboxEvent {
    let payload = json!({
        "event_id": event_id,
        "type": event_type,
        "loan_id": loan_id,
        "user_id": user_id,
        "occurred_at": occurred_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "data": data,
    });
    OutboxEvent {
        event_id,
        subject: format!("{EVENT_SUBJECT_PREFIX}{event_type}"),
        aggregate_id: loan_id.or(user_id).unwrap_or(event_id),
        payload,
        created_at: occurred_at,
    }
}

//! The outbox row an event is written as: what the relay publishes.

use chrono::{DateTime, Utc};
use uuid::Uuid;

/// One event to publish, written in the transaction of the change it describes.
#[derive(Debug, Clone)]
pub struct OutboxEvent {
    /// Unique id; also the `Nats-Msg-Id` and the consumers' idempotency key.
    pub event_id: Uuid,
    /// Full subject, e.g. `loans.events.payment.received`.
    pub subject: String,
    /// The loan or user the event is about (the relay keeps order per aggregate).
    pub aggregate_id: Uuid,
    /// The JSON message as published.
    pub payload: serde_json::Value,
    /// When the change happened.
    pub created_at: DateTime<Utc>,
}

//! Writing events to the transactional outbox.

use chrono::{DateTime, Utc};
use sqlx::types::Json;
use uuid::Uuid;

use super::{StoreError, Tx};
use crate::with_tx;

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

/// Adds `event` to the outbox inside `tx`.
pub async fn insert(tx: &mut Tx, event: &OutboxEvent) -> Result<(), StoreError> {
    with_tx!(tx, |conn| {
        sqlx::query(
        "insert into outbox (event_id, subject, aggregate_id, payload, created_at) values ($1, $2, $3, $4, $5)"
    )
    .bind(event.event_id)
    .bind(&event.subject)
    .bind(event.aggregate_id)
    .bind(Json(&event.payload))
    .bind(event.created_at)
    .execute(conn)
    .await
    .map(drop)
    })?;
    Ok(())
}

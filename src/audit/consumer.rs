//! The audit consumer: a durable consumer of every event that appends one
//! audit entry per event id.

use std::time::Duration;

use actors::bus::{Delivery, Settlement};
use actors::store::BoxFuture;
use chrono::Utc;

use super::entry::NewEntry;
use super::store::{self, Appended};
use crate::bus::backoff::redelivery_pause;
use crate::bus::consumer::Handler;
use crate::store::Db;

/// Name of the consumer definition in `nats/consumers/`.
pub const CONSUMER_NAME: &str = "audit";
/// First pause before redelivering an event the database did not take.
const FIRST_RETRY_PAUSE: Duration = Duration::from_millis(500);
/// Longest pause before a redelivery.
const MAX_RETRY_PAUSE: Duration = Duration::from_secs(30);

/// Records events in the audit log.
#[derive(Debug, Clone)]
pub struct AuditConsumer {
    db: Db,
}

impl AuditConsumer {
    /// A consumer writing to `db`.
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    /// Records one event; idempotent by its `event_id`.
    pub async fn record(&self, payload: &[u8], delivery_count: u64) -> Settlement {
        let entry = match NewEntry::from_event(payload) {
            Ok(entry) => entry,
            Err(error) => {
                tracing::error!(%error, "audit: dropping a message that is not an event");
                return Settlement::Reject;
            }
        };
        let event_id = entry.event_id;
        match store::append(&self.db, entry, Utc::now()).await {
            Ok(Appended::Recorded(recorded)) => {
                tracing::debug!(%event_id, seq = recorded.seq, "audit entry recorded");
                Settlement::Ack
            }
            Ok(Appended::AlreadyRecorded) => {
                tracing::debug!(%event_id, "audit: event already recorded");
                Settlement::Ack
            }
            Err(error) => {
                tracing::warn!(%event_id, %error, "audit: recording failed; will retry");
                Settlement::Retry {
                    after: redelivery_pause(delivery_count, FIRST_RETRY_PAUSE, MAX_RETRY_PAUSE),
                }
            }
        }
    }
}

impl Handler for AuditConsumer {
    fn handle<'a>(&'a self, delivery: &'a Delivery) -> BoxFuture<'a, Settlement> {
        Box::pin(self.record(&delivery.payload, delivery.delivery_count))
    }
}

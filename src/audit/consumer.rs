//! The audit consumer: a durable consumer of every event that appends one
//! audit entry per event id, a batch of events per transaction.

use std::time::Duration;

use actors::bus::{Delivery, Settlement};
use actors::store::BoxFuture;
use chrono::Utc;

use super::entry::NewEntry;
use super::store::{self, Appended};
use crate::bus::backoff::redelivery_pause;
use crate::bus::consumer::{BatchHandler, MAX_BATCH};
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

/// One delivered message, as the audit consumer needs it.
#[derive(Debug, Clone, Copy)]
pub struct Received<'a> {
    /// The message body (an event envelope, if well formed).
    pub payload: &'a [u8],
    /// How often the bus has delivered it (1 the first time).
    pub delivery_count: u64,
}

impl AuditConsumer {
    /// A consumer writing to `db`.
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    /// Records one event; idempotent by its `event_id`.
    pub async fn record(&self, payload: &[u8], delivery_count: u64) -> Settlement {
        let received = Received {
            payload,
            delivery_count,
        };
        let mut settlements = self.record_batch(&[received]).await;
        settlements.pop().expect("one settlement per message")
    }

    /// Records the events of `batch`, in order, in one transaction, and
    /// says how to settle each message: a message that is not an event is
    /// rejected alone; an event already recorded is acked without a second
    /// entry; when the database cannot be reached, every event of the batch
    /// is retried. When it refuses the batch (one entry it cannot store),
    /// the events are recorded one at a time, so only the one it refuses
    /// is retried.
    pub async fn record_batch(&self, batch: &[Received<'_>]) -> Vec<Settlement> {
        // Every message is rejected unless it parses as an event.
        let mut settlements = vec![Settlement::Reject; batch.len()];
        let mut entries = Vec::with_capacity(batch.len());
        let mut events = Vec::with_capacity(batch.len());
        for (position, received) in batch.iter().enumerate() {
            match NewEntry::from_event(received.payload) {
                Ok(entry) => {
                    entries.push(entry);
                    events.push(position);
                }
                Err(error) => {
                    tracing::error!(%error, "audit: dropping a message that is not an event");
                }
            }
        }
        match store::append_batch(&self.db, &entries, Utc::now()).await {
            Ok(outcomes) => {
                let recorded = outcomes
                    .iter()
                    .filter(|outcome| matches!(outcome, Appended::Recorded(_)))
                    .count();
                tracing::debug!(events = events.len(), recorded, "audit batch recorded");
                for position in events {
                    settlements[position] = Settlement::Ack;
                }
            }
            Err(error) if error.is_refusal() && entries.len() > 1 => {
                tracing::warn!(events = events.len(), %error, "audit: the database refused a batch; recording its events one at a time");
                for (entry, position) in entries.into_iter().zip(events) {
                    settlements[position] =
                        self.record_one(entry, batch[position].delivery_count).await;
                }
            }
            Err(error) => {
                tracing::warn!(events = events.len(), %error, "audit: recording a batch failed; will retry");
                for position in events {
                    settlements[position] = retry(batch[position].delivery_count);
                }
            }
        }
        settlements
    }

    /// Records one event in a transaction of its own.
    async fn record_one(&self, entry: NewEntry, delivery_count: u64) -> Settlement {
        let event_id = entry.event_id;
        match store::append(&self.db, entry, Utc::now()).await {
            Ok(_) => Settlement::Ack,
            Err(error) => {
                tracing::warn!(%event_id, %error, "audit: recording an event failed; will retry");
                retry(delivery_count)
            }
        }
    }
}

/// A redelivery after a pause that doubles with each delivery.
fn retry(delivery_count: u64) -> Settlement {
    Settlement::Retry {
        after: redelivery_pause(delivery_count, FIRST_RETRY_PAUSE, MAX_RETRY_PAUSE),
    }
}

impl BatchHandler for AuditConsumer {
    fn max_batch(&self) -> usize {
        MAX_BATCH
    }

    fn handle_batch<'a>(&'a self, batch: &'a [Delivery]) -> BoxFuture<'a, Vec<Settlement>> {
        Box::pin(async move {
            let received: Vec<Received<'_>> = batch
                .iter()
                .map(|delivery| Received {
                    payload: &delivery.payload,
                    delivery_count: delivery.delivery_count,
                })
                .collect();
            self.record_batch(&received).await
        })
    }
}

//! The seam between the service and its event bus: publish a message and get
//! the bus's acknowledgement, or subscribe as a named durable consumer and
//! settle each delivery after processing it.
//!
//! Two adapters live in the `loan-tracker` crate: NATS JetStream and an
//! in-process fan-out. Delivery is at least once in both, so every consumer
//! must be idempotent (keyed by the event id).

use std::time::Duration;

use thiserror::Error;

use crate::store::BoxFuture;

/// Why the bus could not do what was asked.
#[derive(Debug, Error)]
pub enum BusError {
    /// The bus cannot be reached right now (the caller retries with backoff).
    #[error("bus unavailable: {0}")]
    Unavailable(String),
    /// The bus answered, but refused or failed the request.
    #[error("bus request failed: {0}")]
    Failed(String),
    /// The bus was shut down; no further messages will come.
    #[error("bus closed")]
    Closed,
}

/// A message to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingMessage {
    /// Logical subject, e.g. `loans.events.payment.received` (an adapter may
    /// add a namespace in front; consumers see the logical subject again).
    pub subject: String,
    /// De-duplication id (`Nats-Msg-Id`): publishing the same id twice within
    /// the bus's duplicate window stores the message once.
    pub message_id: String,
    /// The body, JSON for every subject this service uses.
    pub payload: Vec<u8>,
}

/// A durable consumer: who reads what, and how redelivery is bounded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerSpec {
    /// Durable name; instances using the same name share the work.
    pub name: String,
    /// Logical name of the stream it reads (e.g. `LOAN_EVENTS`).
    pub stream: String,
    /// Logical subject filter, NATS wildcards allowed (`loans.events.>`).
    pub filter_subject: String,
    /// How long a delivery stays with a holder that stopped renewing it (a
    /// crashed process) before it is redelivered. A live holder renews each
    /// delivery it holds well within this, however long its handler takes.
    pub ack_wait: Duration,
    /// Most deliveries of one message; `None` retries until it is settled.
    pub max_deliver: Option<u32>,
    /// Most deliveries in flight (delivered, not yet settled) at once.
    pub max_ack_pending: u32,
}

/// What the consumer did with a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settlement {
    /// Processed (or already processed before): never deliver it again.
    Ack,
    /// Could not process it now (infrastructure failure): deliver it again after `after`.
    Retry {
        /// Pause before the redelivery.
        after: Duration,
    },
    /// Can never be processed (malformed): drop it without retrying.
    Reject,
}

/// Settles one delivery with the bus that delivered it. `Sync` so that a
/// batch of deliveries can be lent to a handler's future.
pub trait Acker: Send + Sync {
    /// Reports the outcome to the bus.
    fn settle(self: Box<Self>, settlement: Settlement) -> BoxFuture<'static, Result<(), BusError>>;
}

/// One delivered message; settle it exactly once after processing.
pub struct Delivery {
    /// Logical subject it was published on.
    pub subject: String,
    /// The de-duplication id it was published with, if any.
    pub message_id: Option<String>,
    /// The body.
    pub payload: Vec<u8>,
    /// 1 on first delivery, then counts redeliveries.
    pub delivery_count: u64,
    acker: Box<dyn Acker>,
}

impl std::fmt::Debug for Delivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Delivery")
            .field("subject", &self.subject)
            .field("message_id", &self.message_id)
            .field("delivery_count", &self.delivery_count)
            .finish_non_exhaustive()
    }
}

impl Delivery {
    /// A delivery that `acker` settles (adapters build these).
    pub fn new(
        subject: String,
        message_id: Option<String>,
        payload: Vec<u8>,
        delivery_count: u64,
        acker: Box<dyn Acker>,
    ) -> Self {
        Self {
            subject,
            message_id,
            payload,
            delivery_count,
            acker,
        }
    }

    /// Tells the bus the outcome; consumes the delivery so it is settled once.
    pub async fn settle(self, settlement: Settlement) -> Result<(), BusError> {
        self.acker.settle(settlement).await
    }
}

/// The messages of one durable consumer, in delivery order.
pub trait Subscription: Send {
    /// Waits for the next delivery. An `Err` means the subscription is
    /// broken: drop it, back off, and subscribe again.
    fn next(&mut self) -> BoxFuture<'_, Result<Delivery, BusError>>;

    /// The next delivery if one is already here, without waiting: a
    /// consumer takes these to fill a batch after [`Subscription::next`]
    /// gave it one. `None` when nothing is ready (by default, always).
    fn try_next(&mut self) -> Option<Result<Delivery, BusError>> {
        None
    }
}

/// An event bus.
pub trait Bus: Send + Sync + 'static {
    /// Short name for logs and `/ready` (`nats`, `in-process`).
    fn kind(&self) -> &'static str;

    /// `Ok` when messages can be published right now.
    fn check_ready(&self) -> Result<(), BusError>;

    /// Publishes one message and resolves once the bus has stored it (the
    /// JetStream ack); only then may the publisher forget it.
    fn publish(&self, message: OutgoingMessage) -> BoxFuture<'_, Result<(), BusError>>;

    /// Publishes `messages` in order and says how many from the front the
    /// bus stored: all of them, or those before the first failure, with its
    /// error. A message after a failure may have been stored too (an adapter
    /// may have several in flight); publishing it again is harmless, the bus
    /// drops the repeat by its `message_id`. By default, one after another.
    fn publish_all(
        &self,
        messages: Vec<OutgoingMessage>,
    ) -> BoxFuture<'_, (usize, Option<BusError>)> {
        Box::pin(async move {
            let mut stored = 0;
            for message in messages {
                if let Err(error) = self.publish(message).await {
                    return (stored, Some(error));
                }
                stored += 1;
            }
            (stored, None)
        })
    }

    /// Creates or updates the durable consumer `spec` and starts reading it.
    fn subscribe(
        &self,
        spec: ConsumerSpec,
    ) -> BoxFuture<'_, Result<Box<dyn Subscription>, BusError>>;

    /// Messages waiting for the consumer named `consumer`: not yet delivered
    /// plus delivered and unsettled, as far as the bus can tell (`None` by
    /// default: it cannot).
    fn backlog<'a>(
        &'a self,
        consumer: &'a ConsumerSpec,
    ) -> BoxFuture<'a, Result<Option<u64>, BusError>> {
        let _ = consumer;
        Box::pin(async { Ok(None) })
    }
}

/// True when `subject` matches the NATS `filter` (`*` = one token, `>` = the rest).
pub fn subject_matches(filter: &str, subject: &str) -> bool {
    let mut subject_tokens = subject.split('.');
    for filter_token in filter.split('.') {
        match (filter_token, subject_tokens.next()) {
            (">", Some(_)) => return true,
            (_, None) => return false,
            ("*", Some(_)) => {}
            (literal, Some(token)) if literal == token => {}
            _ => return false,
        }
    }
    subject_tokens.next().is_none()
}

#[cfg(test)]
mod tests {
    use super::subject_matches;

    #[test]
    fn subject_filters_follow_nats_wildcards() {
        for (filter, subject, expected) in [
            ("loans.events.>", "loans.events.loan.applied", true),
            ("loans.events.>", "loans.events", false),
            ("loans.events.*", "loans.events.x", true),
            ("loans.events.*", "loans.events.x.y", false),
            ("loans.inbound.payments", "loans.inbound.payments", true),
            ("loans.inbound.payments", "loans.inbound.dead", false),
            ("loans.inbound.payments", "loans.inbound.payments.x", false),
        ] {
            assert_eq!(
                subject_matches(filter, subject),
                expected,
                "{filter} vs {subject}"
            );
        }
    }
}

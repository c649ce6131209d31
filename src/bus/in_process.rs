//! The in-process bus of the embedded default: a fan-out to the consumers
//! registered in this process.
//!
//! There is no stream to store messages in, so `publish` resolves only once
//! every matching consumer has settled the message (or given up on it after
//! `max_deliver` attempts); `publish_all` hands every message of a batch to
//! the consumers at once (each consumer's queue keeps their order) and
//! resolves once all are settled, so a batching consumer gets them together. The outbox relay therefore marks a row published
//! only after the consumers processed it: a crash before that re-publishes
//! the row at the next start, and consumers are idempotent by event id.
//! Messages on subjects nobody consumes are dropped, like a NATS subject
//! without a stream.
//!
//! A consumer that goes away holding deliveries (its run panicked and is
//! being restarted) gets them again once it subscribes again under its
//! name, like a NATS delivery whose lease lapsed. If it does not come back
//! within [`RESUBSCRIBE_WAIT`], the message counts as not stored: the relay
//! leaves its outbox row unpublished and tries again later.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use actors::bus::{
    Acker, BusError, ConsumerSpec, Delivery, OutgoingMessage, Settlement, Subscription,
    subject_matches,
};
use actors::store::BoxFuture;
use tokio::sync::{Notify, mpsc, oneshot};

/// Deliveries queued per consumer before publishers wait for room: more
/// than one relay round (100 rows), so a round reaches a batching consumer
/// as one batch.
const CONSUMER_QUEUE: usize = 128;
/// How long a delivery waits for its consumer to subscribe again after the
/// consumer went away holding it (longer than a supervised restart's pause).
const RESUBSCRIBE_WAIT: Duration = Duration::from_secs(10);

/// One delivery on its way to a consumer, with the channel its settlement comes back on.
struct Queued {
    message: OutgoingMessage,
    delivery_count: u64,
    settled: oneshot::Sender<Settlement>,
}

/// A consumer registered by name.
struct Registered {
    spec: ConsumerSpec,
    queue: mpsc::Sender<Queued>,
}

/// The in-process fan-out.
#[derive(Default)]
pub struct InProcessBus {
    consumers: Mutex<Vec<Registered>>,
    /// Raised whenever a consumer (re-)subscribes.
    subscribed: Notify,
    /// Messages handed to each consumer (by name) and not yet settled.
    unsettled: Mutex<HashMap<String, Arc<AtomicU64>>>,
}

impl std::fmt::Debug for InProcessBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InProcessBus").finish_non_exhaustive()
    }
}

impl InProcessBus {
    /// Hands `message` to every matching consumer, one after another, and
    /// waits until each has settled it.
    pub async fn publish(&self, message: OutgoingMessage) -> Result<(), BusError> {
        for (spec, queue) in self.targets(&message) {
            if !self.deliver(&spec, queue, &message).await {
                return Err(gone(&spec));
            }
        }
        Ok(())
    }

    /// Hands every message to every matching consumer at once, and waits
    /// until each consumer has settled each message. Messages enter a
    /// consumer's queue in the order given (the futures first run in that
    /// order, and a full queue lets waiting senders in first come, first
    /// served). The stored prefix ends before the first message a consumer
    /// went away from without coming back.
    pub async fn publish_all(&self, messages: Vec<OutgoingMessage>) -> (usize, Option<BusError>) {
        let mut deliveries = Vec::new();
        for (index, message) in messages.iter().enumerate() {
            for (spec, queue) in self.targets(message) {
                deliveries.push(async move {
                    let delivered = self.deliver(&spec, queue, message).await;
                    (index, delivered.then_some(()).ok_or_else(|| gone(&spec)))
                });
            }
        }
        let outcomes = futures::future::join_all(deliveries).await;
        let first_failure = outcomes
            .into_iter()
            .filter_map(|(index, outcome)| outcome.err().map(|error| (index, error)))
            .min_by_key(|(index, _)| *index);
        match first_failure {
            Some((index, error)) => (index, Some(error)),
            None => (messages.len(), None),
        }
    }

    /// Messages handed to the consumer `name` and not yet settled (queued or in hand).
    pub fn backlog(&self, name: &str) -> Option<u64> {
        let unsettled = self.unsettled.lock().expect("unsettled lock");
        Some(
            unsettled
                .get(name)
                .map_or(0, |count| count.load(Ordering::Relaxed)),
        )
    }

    /// The consumers `message`'s subject matches.
    fn targets(&self, message: &OutgoingMessage) -> Vec<(ConsumerSpec, mpsc::Sender<Queued>)> {
        self.consumers
            .lock()
            .expect("consumer list lock")
            .iter()
            .filter(|consumer| subject_matches(&consumer.spec.filter_subject, &message.subject))
            .map(|consumer| (consumer.spec.clone(), consumer.queue.clone()))
            .collect()
    }

    /// Registers (or replaces) the consumer named `spec.name`.
    pub fn subscribe(&self, spec: ConsumerSpec) -> Box<dyn Subscription> {
        let (queue, receiver) = mpsc::channel(CONSUMER_QUEUE);
        let mut consumers = self.consumers.lock().expect("consumer list lock");
        consumers.retain(|consumer| consumer.spec.name != spec.name);
        consumers.push(Registered { spec, queue });
        drop(consumers);
        self.subscribed.notify_waiters();
        Box::new(InProcessSubscription { receiver })
    }

    /// The open queue of the consumer `name`, waiting up to
    /// [`RESUBSCRIBE_WAIT`] for it to subscribe again.
    async fn resubscribed(&self, name: &str) -> Option<mpsc::Sender<Queued>> {
        let deadline = tokio::time::Instant::now() + RESUBSCRIBE_WAIT;
        loop {
            let notified = self.subscribed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let open = self
                .consumers
                .lock()
                .expect("consumer list lock")
                .iter()
                .find(|consumer| consumer.spec.name == name && !consumer.queue.is_closed())
                .map(|consumer| consumer.queue.clone());
            if open.is_some() {
                return open;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return None;
            }
        }
    }

    fn unsettled_count(&self, name: &str) -> Arc<AtomicU64> {
        let mut unsettled = self.unsettled.lock().expect("unsettled lock");
        Arc::clone(unsettled.entry(name.to_owned()).or_default())
    }

    /// Delivers until settled or `max_deliver` is spent (true), or until the
    /// consumer went away and did not come back (false).
    async fn deliver(
        &self,
        spec: &ConsumerSpec,
        mut queue: mpsc::Sender<Queued>,
        message: &OutgoingMessage,
    ) -> bool {
        let unsettled = self.unsettled_count(&spec.name);
        unsettled.fetch_add(1, Ordering::Relaxed);
        let delivered = self.deliver_counted(spec, &mut queue, message).await;
        unsettled.fetch_sub(1, Ordering::Relaxed);
        delivered
    }

    async fn deliver_counted(
        &self,
        spec: &ConsumerSpec,
        queue: &mut mpsc::Sender<Queued>,
        message: &OutgoingMessage,
    ) -> bool {
        let mut delivery_count = 0_u64;
        loop {
            delivery_count += 1;
            if spec
                .max_deliver
                .is_some_and(|max| delivery_count > u64::from(max))
            {
                tracing::error!(consumer = %spec.name, message_id = %message.message_id, "giving up after max_deliver attempts");
                return true;
            }
            let (settled, settlement) = oneshot::channel();
            let queued = Queued {
                message: message.clone(),
                delivery_count,
                settled,
            };
            let handed = queue.send(queued).await.is_ok();
            // A delivery stays with its consumer while the consumer lives, as a
            // NATS delivery whose holder renews it: no `ack_wait` redelivery.
            let outcome = if handed { settlement.await.ok() } else { None };
            match outcome {
                Some(Settlement::Ack | Settlement::Reject) => return true,
                Some(Settlement::Retry { after }) => tokio::time::sleep(after).await,
                // Dropped unsettled: deliver it again, to the consumer's next
                // subscription if this one is gone.
                None if queue.is_closed() => match self.resubscribed(&spec.name).await {
                    Some(fresh) => *queue = fresh,
                    None => {
                        tracing::warn!(consumer = %spec.name, message_id = %message.message_id, "consumer gone; the message is not stored");
                        return false;
                    }
                },
                None => {}
            }
        }
    }
}

/// The error for a message whose consumer went away.
fn gone(spec: &ConsumerSpec) -> BusError {
    BusError::Unavailable(format!(
        "in-process consumer {} went away without settling",
        spec.name
    ))
}

struct InProcessSubscription {
    receiver: mpsc::Receiver<Queued>,
}

impl Queued {
    fn into_delivery(self) -> Delivery {
        Delivery::new(
            self.message.subject,
            Some(self.message.message_id),
            self.message.payload,
            self.delivery_count,
            Box::new(InProcessAcker(self.settled)),
        )
    }
}

impl Subscription for InProcessSubscription {
    fn next(&mut self) -> BoxFuture<'_, Result<Delivery, BusError>> {
        Box::pin(async move {
            let queued = self.receiver.recv().await.ok_or(BusError::Closed)?;
            Ok(queued.into_delivery())
        })
    }

    fn try_next(&mut self) -> Option<Result<Delivery, BusError>> {
        match self.receiver.try_recv() {
            Ok(queued) => Some(Ok(queued.into_delivery())),
            Err(mpsc::error::TryRecvError::Empty) => None,
            Err(mpsc::error::TryRecvError::Disconnected) => Some(Err(BusError::Closed)),
        }
    }
}

struct InProcessAcker(oneshot::Sender<Settlement>);

impl Acker for InProcessAcker {
    fn settle(self: Box<Self>, settlement: Settlement) -> BoxFuture<'static, Result<(), BusError>> {
        // The publisher may have timed out and redelivered already; that is fine.
        let _ = self.0.send(settlement);
        Box::pin(async { Ok(()) })
    }
}

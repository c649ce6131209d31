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

use std::sync::Mutex;

use actors::bus::{
    Acker, BusError, ConsumerSpec, Delivery, OutgoingMessage, Settlement, Subscription,
    subject_matches,
};
use actors::store::BoxFuture;
use tokio::sync::{mpsc, oneshot};

/// Deliveries queued per consumer before publishers wait for room: more
/// than one relay round (100 rows), so a round reaches a batching consumer
/// as one batch.
const CONSUMER_QUEUE: usize = 128;

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
            deliver(&spec, &queue, &message).await;
        }
        Ok(())
    }

    /// Hands every message to every matching consumer at once, and waits
    /// until each consumer has settled each message. Messages enter a
    /// consumer's queue in the order given (the futures first run in that
    /// order, and a full queue lets waiting senders in first come, first
    /// served). Nothing is refused: all of them count as stored.
    pub async fn publish_all(&self, messages: Vec<OutgoingMessage>) -> (usize, Option<BusError>) {
        let mut deliveries = Vec::new();
        for message in &messages {
            for (spec, queue) in self.targets(message) {
                deliveries.push(async move { deliver(&spec, &queue, message).await });
            }
        }
        futures::future::join_all(deliveries).await;
        (messages.len(), None)
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
        Box::new(InProcessSubscription { receiver })
    }
}

/// Delivers until settled, `max_deliver` is spent, or the consumer is gone.
async fn deliver(spec: &ConsumerSpec, queue: &mpsc::Sender<Queued>, message: &OutgoingMessage) {
    let mut delivery_count = 0_u64;
    loop {
        delivery_count += 1;
        if spec
            .max_deliver
            .is_some_and(|max| delivery_count > u64::from(max))
        {
            tracing::error!(consumer = %spec.name, message_id = %message.message_id, "giving up after max_deliver attempts");
            return;
        }
        let (settled, settlement) = oneshot::channel();
        let queued = Queued {
            message: message.clone(),
            delivery_count,
            settled,
        };
        if queue.send(queued).await.is_err() {
            return; // The consumer stopped; nobody is left to deliver to.
        }
        // A delivery stays with its consumer while the consumer lives, as a
        // NATS delivery whose holder renews it: no `ack_wait` redelivery.
        match settlement.await {
            Ok(Settlement::Ack | Settlement::Reject) => return,
            Ok(Settlement::Retry { after }) => tokio::time::sleep(after).await,
            // Dropped unsettled (the consumer is stopping): deliver it again.
            Err(_) => {
                if queue.is_closed() {
                    return;
                }
            }
        }
    }
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

//! The in-process bus of the embedded default: a fan-out to the consumers
//! registered in this process.
//!
//! There is no stream to store messages in, so `publish` resolves only once
//! every matching consumer has settled the message (or given up on it after
//! `max_deliver` attempts). The outbox relay therefore marks a row published
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

/// Deliveries queued per consumer before `publish` waits for room.
const CONSUMER_QUEUE: usize = 64;

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
        let targets: Vec<(ConsumerSpec, mpsc::Sender<Queued>)> = self
            .consumers
            .lock()
            .expect("consumer list lock")
            .iter()
            .filter(|consumer| subject_matches(&consumer.spec.filter_subject, &message.subject))
            .map(|consumer| (consumer.spec.clone(), consumer.queue.clone()))
            .collect();
        for (spec, queue) in targets {
            deliver(&spec, &queue, &message).await;
        }
        Ok(())
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

impl Subscription for InProcessSubscription {
    fn next(&mut self) -> BoxFuture<'_, Result<Delivery, BusError>> {
        Box::pin(async move {
            let queued = self.receiver.recv().await.ok_or(BusError::Closed)?;
            Ok(Delivery::new(
                queued.message.subject,
                Some(queued.message.message_id),
                queued.message.payload,
                queued.delivery_count,
                Box::new(InProcessAcker(queued.settled)),
            ))
        })
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

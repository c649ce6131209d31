//! Runs one durable consumer: subscribe (retrying while the bus is away),
//! hand the deliveries to a handler, settle each as the handler says.
//!
//! Deliveries go out in batches: once one has arrived, whatever else the
//! subscription already holds is taken with it, without waiting, up to the
//! handler's [`BatchHandler::max_batch`] (1 for a [`Handler`] that works
//! one message at a time). A quiet stream gives batches of one, at no added
//! latency; a backlog gives full batches, so a handler that writes a batch
//! in one transaction keeps up with bursts.
//!
//! On stop, the batch being processed is finished and settled first;
//! deliveries not yet handed out are left to the bus to redeliver.

use std::sync::Arc;
use std::time::Duration;

use actors::bus::{Bus, BusError, ConsumerSpec, Delivery, Settlement, Subscription};
use actors::store::BoxFuture;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::backoff::Backoff;

/// First pause after the bus failed us; doubled up to [`MAX_RETRY_PAUSE`].
const FIRST_RETRY_PAUSE: Duration = Duration::from_millis(200);
/// Longest pause between attempts to (re)subscribe.
const MAX_RETRY_PAUSE: Duration = Duration::from_secs(10);
/// Most deliveries any batch handler is given at once (the consumers'
/// `max_ack_pending` bounds what can be ready anyway).
pub const MAX_BATCH: usize = 256;

/// What a consumer does with one message.
pub trait Handler: Send + Sync + 'static {
    /// Processes the delivery and says how to settle it. Must be idempotent:
    /// the same message may arrive more than once.
    fn handle<'a>(&'a self, delivery: &'a Delivery) -> BoxFuture<'a, Settlement>;
}

/// What a consumer does with the messages that are ready together.
pub trait BatchHandler: Send + Sync + 'static {
    /// Most deliveries per batch, between 1 and [`MAX_BATCH`].
    fn max_batch(&self) -> usize;

    /// Processes `batch` (in delivery order) and says how to settle each
    /// delivery: one settlement per delivery, in the same order. One bad
    /// message must not decide the others' settlement. Must be idempotent:
    /// a message, or a whole batch, may arrive more than once.
    fn handle_batch<'a>(&'a self, batch: &'a [Delivery]) -> BoxFuture<'a, Vec<Settlement>>;
}

/// A [`Handler`] given batches of one.
pub struct OneAtATime(pub Arc<dyn Handler>);

impl BatchHandler for OneAtATime {
    fn max_batch(&self) -> usize {
        1
    }

    fn handle_batch<'a>(&'a self, batch: &'a [Delivery]) -> BoxFuture<'a, Vec<Settlement>> {
        Box::pin(async move {
            let mut settlements = Vec::with_capacity(batch.len());
            for delivery in batch {
                settlements.push(self.0.handle(delivery).await);
            }
            settlements
        })
    }
}

/// A running consumer task.
#[derive(Debug)]
pub struct ConsumerTask {
    name: String,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl ConsumerTask {
    /// Subscribes (one attempt, so an in-process consumer is registered
    /// before anything is published) and starts the task.
    pub async fn start(
        bus: Arc<dyn Bus>,
        spec: ConsumerSpec,
        handler: Arc<dyn BatchHandler>,
    ) -> Self {
        let first = match bus.subscribe(spec.clone()).await {
            Ok(subscription) => Some(subscription),
            Err(error) => {
                tracing::warn!(consumer = %spec.name, %error, "cannot subscribe yet; retrying in the background");
                None
            }
        };
        let (stop, stopped) = watch::channel(false);
        let name = spec.name.clone();
        let task = tokio::spawn(run(bus, spec, handler, first, stopped));
        Self { name, stop, task }
    }

    /// Finishes the batch in hand, settles it, and ends the task.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        if let Err(error) = self.task.await {
            tracing::error!(consumer = %self.name, %error, "consumer task failed");
        }
    }
}

async fn run(
    bus: Arc<dyn Bus>,
    spec: ConsumerSpec,
    handler: Arc<dyn BatchHandler>,
    mut subscription: Option<Box<dyn Subscription>>,
    mut stopped: watch::Receiver<bool>,
) {
    let mut backoff = Backoff::new(FIRST_RETRY_PAUSE, MAX_RETRY_PAUSE);
    loop {
        let current = match subscription.as_mut() {
            Some(current) => current,
            None => {
                tokio::select! {
                    biased;
                    _ = stopped.changed() => break,
                    result = bus.subscribe(spec.clone()) => match result {
                        Ok(fresh) => subscription.insert(fresh),
                        Err(error) => {
                            tracing::warn!(consumer = %spec.name, %error, "subscribing failed");
                            if pause_or_stop(&mut stopped, backoff.next_pause()).await { break; }
                            continue;
                        }
                    },
                }
            }
        };
        let delivery = tokio::select! {
            biased;
            _ = stopped.changed() => break,
            delivery = current.next() => delivery,
        };
        let broken = match delivery {
            Ok(first) => {
                backoff.reset();
                let (batch, broken) = fill_batch(first, current.as_mut(), handler.max_batch());
                process(&spec.name, handler.as_ref(), batch).await;
                broken
            }
            Err(error) => Some(error),
        };
        if let Some(error) = broken {
            tracing::warn!(consumer = %spec.name, %error, "subscription broken; subscribing again");
            subscription = None;
            if pause_or_stop(&mut stopped, backoff.next_pause()).await {
                break;
            }
        }
    }
    tracing::info!(consumer = %spec.name, "consumer stopped");
}

/// `first` and whatever else `subscription` already holds, up to `max`
/// deliveries; and the error that broke the subscription, if one did.
fn fill_batch(
    first: Delivery,
    subscription: &mut dyn Subscription,
    max: usize,
) -> (Vec<Delivery>, Option<BusError>) {
    let max = max.clamp(1, MAX_BATCH);
    let mut batch = Vec::with_capacity(max.min(16));
    batch.push(first);
    while batch.len() < max {
        match subscription.try_next() {
            Some(Ok(delivery)) => batch.push(delivery),
            Some(Err(error)) => return (batch, Some(error)),
            None => break,
        }
    }
    (batch, None)
}

/// Hands `batch` to `handler` and settles each delivery as it says, in order.
async fn process(consumer: &str, handler: &dyn BatchHandler, batch: Vec<Delivery>) {
    let mut settlements = handler.handle_batch(&batch).await;
    if settlements.len() != batch.len() {
        // A handler bug; retrying what it left unsaid loses nothing.
        tracing::error!(
            consumer,
            given = batch.len(),
            settled = settlements.len(),
            "a batch handler settled the wrong number of deliveries"
        );
        settlements.resize(
            batch.len(),
            Settlement::Retry {
                after: FIRST_RETRY_PAUSE,
            },
        );
    }
    for (delivery, settlement) in batch.into_iter().zip(settlements) {
        if let Err(error) = delivery.settle(settlement).await {
            // The bus redelivers it after ack_wait; the handler is idempotent.
            tracing::warn!(consumer, %error, "settling a delivery failed");
        }
    }
}

/// Sleeps for `pause`; true when a stop came first.
async fn pause_or_stop(stopped: &mut watch::Receiver<bool>, pause: Duration) -> bool {
    tokio::select! {
        _ = stopped.changed() => true,
        () = tokio::time::sleep(pause) => false,
    }
}

//! Runs one durable consumer: subscribe (retrying while the bus is away),
//! hand each delivery to a handler, settle it as the handler says.
//!
//! On stop, the delivery being processed is finished and settled first;
//! deliveries not yet handed out are left to the bus to redeliver.

use std::sync::Arc;
use std::time::Duration;

use actors::bus::{Bus, ConsumerSpec, Delivery, Settlement, Subscription};
use actors::store::BoxFuture;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::backoff::Backoff;

/// First pause after the bus failed us; doubled up to [`MAX_RETRY_PAUSE`].
const FIRST_RETRY_PAUSE: Duration = Duration::from_millis(200);
/// Longest pause between attempts to (re)subscribe.
const MAX_RETRY_PAUSE: Duration = Duration::from_secs(10);

/// What a consumer does with one message.
pub trait Handler: Send + Sync + 'static {
    /// Processes the delivery and says how to settle it. Must be idempotent:
    /// the same message may arrive more than once.
    fn handle<'a>(&'a self, delivery: &'a Delivery) -> BoxFuture<'a, Settlement>;
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
    pub async fn start(bus: Arc<dyn Bus>, spec: ConsumerSpec, handler: Arc<dyn Handler>) -> Self {
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

    /// Finishes the delivery in hand, settles it, and ends the task.
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
    handler: Arc<dyn Handler>,
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
        match delivery {
            Ok(delivery) => {
                backoff.reset();
                let settlement = handler.handle(&delivery).await;
                if let Err(error) = delivery.settle(settlement).await {
                    // The bus redelivers it after ack_wait; the handler is idempotent.
                    tracing::warn!(consumer = %spec.name, %error, "settling a delivery failed");
                }
            }
            Err(error) => {
                tracing::warn!(consumer = %spec.name, %error, "subscription broken; subscribing again");
                subscription = None;
                if pause_or_stop(&mut stopped, backoff.next_pause()).await {
                    break;
                }
            }
        }
    }
    tracing::info!(consumer = %spec.name, "consumer stopped");
}

/// Sleeps for `pause`; true when a stop came first.
async fn pause_or_stop(stopped: &mut watch::Receiver<bool>, pause: Duration) -> bool {
    tokio::select! {
        _ = stopped.changed() => true,
        () = tokio::time::sleep(pause) => false,
    }
}

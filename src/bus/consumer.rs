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
//!
//! A [`ConsumerService`] is supervised by the actor tree's root: a panic in
//! its handler ends that run with the batch unsettled (the bus redelivers
//! it; handlers are idempotent) and the root starts a fresh run, which
//! subscribes again.

use std::sync::Arc;
use std::time::Duration;

use std::sync::Mutex;

use actors::bus::{Bus, BusError, ConsumerSpec, Delivery, Settlement, Subscription};
use actors::store::BoxFuture;
use actors::tree::service::FaultSwitch;
use actors::tree::{Service, ServiceContext};
use tokio::sync::watch;

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

/// A durable consumer as a supervised service (`/admin/actors` lists it by
/// its consumer name).
pub struct ConsumerService {
    bus: Arc<dyn Bus>,
    spec: ConsumerSpec,
    handler: Arc<dyn BatchHandler>,
    /// The subscription made at construction, for the first run.
    first: Mutex<Option<Box<dyn Subscription>>>,
}

impl ConsumerService {
    /// Subscribes once (so an in-process consumer is registered before
    /// anything is published); the runs subscribe again while that failed,
    /// and after every restart.
    pub async fn new(
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
        Self {
            bus,
            spec,
            handler,
            first: Mutex::new(first),
        }
    }
}

impl Service for ConsumerService {
    fn name(&self) -> &str {
        &self.spec.name
    }

    fn run(&self, context: ServiceContext) -> BoxFuture<'_, ()> {
        let first = self
            .first
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        Box::pin(run(
            self.bus.as_ref(),
            &self.spec,
            self.handler.as_ref(),
            first,
            context.stopping(),
            context.fault(),
        ))
    }

    fn backlog(&self) -> BoxFuture<'_, Option<u64>> {
        Box::pin(async move {
            match self.bus.backlog(&self.spec).await {
                Ok(backlog) => backlog,
                Err(error) => {
                    tracing::debug!(consumer = %self.spec.name, %error, "consumer backlog unreadable");
                    None
                }
            }
        })
    }
}

async fn run(
    bus: &dyn Bus,
    spec: &ConsumerSpec,
    handler: &dyn BatchHandler,
    mut subscription: Option<Box<dyn Subscription>>,
    mut stopped: watch::Receiver<bool>,
    fault: Arc<FaultSwitch>,
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
                process(&spec.name, handler, batch, &fault).await;
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

/// Hands `batch` to `handler` and settles each delivery as it says, in
/// order. The fault point comes first: an injected panic drops a batch in
/// hand, unhandled and unsettled, which the bus must deliver again. (The
/// relay's fault point covers the opposite case: deliveries handled and
/// then sent again.)
async fn process(
    consumer: &str,
    handler: &dyn BatchHandler,
    batch: Vec<Delivery>,
    fault: &FaultSwitch,
) {
    fault.fire_if_armed();
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

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::sync::Mutex;

    use actors::bus::{Acker, OutgoingMessage};

    use super::*;

    /// The settlements the bus received: (delivery number, settlement).
    type Settled = Arc<Mutex<Vec<(usize, Settlement)>>>;

    struct RecordingAcker(usize, Settled);

    impl Acker for RecordingAcker {
        fn settle(
            self: Box<Self>,
            settlement: Settlement,
        ) -> BoxFuture<'static, Result<(), BusError>> {
            self.1.lock().unwrap().push((self.0, settlement));
            Box::pin(async { Ok(()) })
        }
    }

    /// A subscription whose deliveries are all there from the start.
    struct Ready(VecDeque<Delivery>);

    impl Subscription for Ready {
        fn next(&mut self) -> BoxFuture<'_, Result<Delivery, BusError>> {
            let next = self.0.pop_front();
            Box::pin(async move {
                match next {
                    Some(delivery) => Ok(delivery),
                    None => std::future::pending().await,
                }
            })
        }

        fn try_next(&mut self) -> Option<Result<Delivery, BusError>> {
            self.0.pop_front().map(Ok)
        }
    }

    /// A bus that gives one subscription: `count` deliveries, `b"poison"` at `poison`.
    struct Preloaded(Mutex<Option<Ready>>);

    impl Preloaded {
        fn new(count: usize, poison: usize, settled: &Settled) -> Arc<Self> {
            let deliveries = (0..count)
                .map(|number| {
                    let payload = if number == poison {
                        b"poison".to_vec()
                    } else {
                        b"{}".to_vec()
                    };
                    let acker = Box::new(RecordingAcker(number, settled.clone()));
                    Delivery::new("test.subject".into(), None, payload, 1, acker)
                })
                .collect();
            Arc::new(Self(Mutex::new(Some(Ready(deliveries)))))
        }
    }

    impl Bus for Preloaded {
        fn kind(&self) -> &'static str {
            "preloaded"
        }

        fn check_ready(&self) -> Result<(), BusError> {
            Ok(())
        }

        fn publish(&self, _: OutgoingMessage) -> BoxFuture<'_, Result<(), BusError>> {
            Box::pin(async { Ok(()) })
        }

        fn subscribe(
            &self,
            _: ConsumerSpec,
        ) -> BoxFuture<'_, Result<Box<dyn Subscription>, BusError>> {
            let ready = self.0.lock().unwrap().take();
            Box::pin(async move {
                ready
                    .map(|ready| Box::new(ready) as Box<dyn Subscription>)
                    .ok_or(BusError::Closed)
            })
        }
    }

    /// Records the size of each batch; rejects `b"poison"`, acks the rest.
    struct Sizes {
        max: usize,
        seen: Mutex<Vec<usize>>,
    }

    impl BatchHandler for Sizes {
        fn max_batch(&self) -> usize {
            self.max
        }

        fn handle_batch<'a>(&'a self, batch: &'a [Delivery]) -> BoxFuture<'a, Vec<Settlement>> {
            self.seen.lock().unwrap().push(batch.len());
            let settlements = batch
                .iter()
                .map(|delivery| match delivery.payload.as_slice() {
                    b"poison" => Settlement::Reject,
                    _ => Settlement::Ack,
                })
                .collect();
            Box::pin(async move { settlements })
        }
    }

    fn spec() -> ConsumerSpec {
        ConsumerSpec {
            name: "test".into(),
            stream: "TEST".into(),
            filter_subject: "test.>".into(),
            ack_wait: Duration::from_secs(3),
            max_deliver: None,
            max_ack_pending: 512,
        }
    }

    /// Runs a consumer over `count` ready deliveries; the batch sizes it
    /// handed out and the settlements in the order they reached the bus.
    async fn consume(
        max: usize,
        count: usize,
        poison: usize,
    ) -> (Vec<usize>, Vec<(usize, Settlement)>) {
        let settled = Settled::default();
        let bus = Preloaded::new(count, poison, &settled);
        let handler = Arc::new(Sizes {
            max,
            seen: Mutex::default(),
        });
        let (stop, stopped) = watch::channel(false);
        let first = bus.subscribe(spec()).await.ok();
        let consumer = {
            let handler = handler.clone();
            tokio::spawn(async move {
                run(
                    bus.as_ref(),
                    &spec(),
                    handler.as_ref(),
                    first,
                    stopped,
                    Arc::default(),
                )
                .await;
            })
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while settled.lock().unwrap().len() < count {
            assert!(
                tokio::time::Instant::now() < deadline,
                "deliveries left unsettled"
            );
            tokio::task::yield_now().await;
        }
        stop.send(true).unwrap();
        consumer.await.unwrap();
        let sizes = handler.seen.lock().unwrap().clone();
        let settlements = settled.lock().unwrap().clone();
        (sizes, settlements)
    }

    #[tokio::test]
    async fn what_is_ready_goes_out_in_batches_of_at_most_the_handlers_size() {
        for (max, count, expected) in [
            (MAX_BATCH, 300, vec![MAX_BATCH, 300 - MAX_BATCH]),
            (100, 250, vec![100, 100, 50]),
            (1, 3, vec![1, 1, 1]),
            (MAX_BATCH + 1, 300, vec![MAX_BATCH, 300 - MAX_BATCH]),
        ] {
            let (sizes, _) = consume(max, count, usize::MAX).await;
            assert_eq!(sizes, expected, "max {max}, {count} ready");
        }
    }

    #[tokio::test]
    async fn each_delivery_of_a_batch_is_settled_in_order_as_the_handler_says() {
        let (_, settlements) = consume(MAX_BATCH, 40, 17).await;
        let expected: Vec<(usize, Settlement)> = (0..40)
            .map(|number| {
                let settlement = if number == 17 {
                    Settlement::Reject
                } else {
                    Settlement::Ack
                };
                (number, settlement)
            })
            .collect();
        assert_eq!(settlements, expected);
    }
}

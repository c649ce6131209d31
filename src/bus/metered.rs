//! A consumer handler wrapper that counts settled deliveries per consumer.

use std::sync::Arc;

use actors::bus::{Delivery, Settlement};
use actors::store::BoxFuture;

use super::consumer::Handler;
use crate::metrics::Metrics;

/// Counts each settlement of `inner` as `events_consumed_total{consumer, outcome}`.
pub struct Metered {
    consumer: String,
    inner: Arc<dyn Handler>,
    metrics: Metrics,
}

impl Metered {
    /// Wraps `inner`, the handler of `consumer`.
    pub fn new(consumer: &str, inner: Arc<dyn Handler>, metrics: Metrics) -> Self {
        Self {
            consumer: consumer.to_owned(),
            inner,
            metrics,
        }
    }
}

impl Handler for Metered {
    fn handle<'a>(&'a self, delivery: &'a Delivery) -> BoxFuture<'a, Settlement> {
        let settling = self.inner.handle(delivery);
        Box::pin(async move {
            let settlement = settling.await;
            let outcome = match settlement {
                Settlement::Ack => "ack",
                Settlement::Retry { .. } => "retry",
                Settlement::Reject => "reject",
            };
            self.metrics.event_consumed(&self.consumer, outcome);
            settlement
        })
    }
}

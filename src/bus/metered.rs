//! A consumer handler wrapper that counts settled deliveries per consumer.

use std::sync::Arc;

use actors::bus::{Delivery, Settlement};
use actors::store::BoxFuture;

use super::consumer::BatchHandler;
use crate::metrics::Metrics;

/// Counts each settlement of `inner` as `events_consumed_total{consumer, outcome}`.
pub struct Metered {
    consumer: String,
    inner: Arc<dyn BatchHandler>,
    metrics: Metrics,
}

impl Metered {
    /// Wraps `inner`, the handler of `consumer`.
    pub fn new(consumer: &str, inner: Arc<dyn BatchHandler>, metrics: Metrics) -> Self {
        Self {
            consumer: consumer.to_owned(),
            inner,
            metrics,
        }
    }
}

impl BatchHandler for Metered {
    fn max_batch(&self) -> usize {
        self.inner.max_batch()
    }

    fn handle_batch<'a>(&'a self, batch: &'a [Delivery]) -> BoxFuture<'a, Vec<Settlement>> {
        let settling = self.inner.handle_batch(batch);
        Box::pin(async move {
            let settlements = settling.await;
            for settlement in &settlements {
                let outcome = match settlement {
                    Settlement::Ack => "ack",
                    Settlement::Retry { .. } => "retry",
                    Settlement::Reject => "reject",
                };
                self.metrics.event_consumed(&self.consumer, outcome);
            }
            settlements
        })
    }
}

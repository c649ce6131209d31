//! Exponential backoff for retry loops (relay, consumers).

use std::time::Duration;

/// Doubling pauses between `first` and `max`; reset after a success.
#[derive(Debug, Clone)]
pub struct Backoff {
    first: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    /// Starts at `first`, never waits longer than `max`.
    pub fn new(first: Duration, max: Duration) -> Self {
        assert!(first <= max && !first.is_zero(), "backoff bounds");
        Self {
            first,
            max,
            next: first,
        }
    }

    /// The pause to take now; the following one is twice as long (capped).
    pub fn next_pause(&mut self) -> Duration {
        let pause = self.next;
        self.next = (self.next * 2).min(self.max);
        pause
    }

    /// Back to the first pause.
    pub fn reset(&mut self) {
        self.next = self.first;
    }
}

/// The pause before redelivering a message seen `delivery_count` times:
/// doubling from `first`, capped at `max`.
pub fn redelivery_pause(delivery_count: u64, first: Duration, max: Duration) -> Duration {
    let doublings = u32::try_from(delivery_count.saturating_sub(1))
        .unwrap_or(u32::MAX)
        .min(16);
    first.saturating_mul(1 << doublings).min(max)
}

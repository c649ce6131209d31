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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::redelivery_pause;
    use crate::settings::Settings;

    #[test]
    fn the_default_pending_retry_lasts_about_an_hour() {
        let settings = Settings::from_lookup(|_| None).unwrap();
        let retry = settings.events.pending_retry;
        let total: Duration = (1..retry.max_attempts)
            .map(|attempt| redelivery_pause(u64::from(attempt), retry.first_pause, retry.max_pause))
            .sum();
        assert!(
            total > Duration::from_secs(1800) && total < Duration::from_secs(2 * 3600),
            "{total:?}"
        );
    }
}

//! The per-loan restart budget: plain bookkeeping over instants, no actors.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

/// Failures of one loan's actor within the restart window.
#[derive(Debug, Default)]
pub(crate) struct RestartHistory {
    /// Instants of the failures still inside the window, oldest first.
    failures: VecDeque<Instant>,
    /// Set once the budget is exhausted: the loan is refused until then.
    blocked_until: Option<Instant>,
}

/// What the supervisor does after a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AfterFailure {
    /// Within budget: re-spawn the actor.
    Restart,
    /// Budget exhausted: refuse the loan until the window has passed.
    Block,
}

impl RestartHistory {
    /// Records a failure at `now` and decides whether to restart.
    pub(crate) fn record(
        &mut self,
        now: Instant,
        max_restarts: u32,
        window: Duration,
    ) -> AfterFailure {
        self.forget_before(now, window);
        self.failures.push_back(now);
        // The deque never holds more than `max_restarts + 1` entries: past that we block.
        if self.failures.len() > max_restarts as usize {
            self.blocked_until = Some(now + window);
            AfterFailure::Block
        } else {
            AfterFailure::Restart
        }
    }

    /// Time until the loan may be tried again, if it is blocked at `now`.
    pub(crate) fn blocked_for(&mut self, now: Instant) -> Option<Duration> {
        match self.blocked_until {
            Some(until) if until > now => Some(until - now),
            Some(_) => {
                self.blocked_until = None;
                None
            }
            None => None,
        }
    }

    /// Failures inside the window at `now`.
    pub(crate) fn in_window(&mut self, now: Instant, window: Duration) -> usize {
        self.forget_before(now, window);
        self.failures.len()
    }

    /// True when nothing is remembered any more (the entry can be dropped).
    pub(crate) fn is_spent(&mut self, now: Instant, window: Duration) -> bool {
        self.in_window(now, window) == 0 && self.blocked_for(now).is_none()
    }

    fn forget_before(&mut self, now: Instant, window: Duration) {
        while let Some(oldest) = self.failures.front() {
            if now.duration_since(*oldest) >= window {
                self.failures.pop_front();
            } else {
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn budget_blocks_after_max_restarts_and_clears_after_the_window() {
        let window = Duration::from_secs(60);
        let mut history = RestartHistory::default();
        let start = Instant::now();
        assert_eq!(history.record(start, 2, window), AfterFailure::Restart);
        assert_eq!(history.record(start, 2, window), AfterFailure::Restart);
        assert_eq!(history.record(start, 2, window), AfterFailure::Block);
        assert_eq!(history.blocked_for(start), Some(window));
        let later = start + window;
        assert_eq!(history.blocked_for(later), None);
        assert!(history.is_spent(later, window));
        assert_eq!(history.record(later, 2, window), AfterFailure::Restart);
    }
}

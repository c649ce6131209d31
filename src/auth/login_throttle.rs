//! Failed logins slow down the attacker, never the real user (SPEC §4):
//! failures are counted per (account, address). The first
//! [`FREE_FAILURES`] cost nothing; each further one makes that pair wait
//! twice as long as the last (1 s, 2 s, 4 s … up to [`MAX_DELAY`]) before it
//! may try again. The right password from another address is never held
//! back, and a success from an address forgets that address's failures.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failures from one address on one account before any delay.
pub const FREE_FAILURES: u32 = 5;
/// Delay after the first failure beyond the free ones; doubled per failure.
const FIRST_DELAY: Duration = Duration::from_secs(1);
/// Longest delay between attempts of one pair.
pub const MAX_DELAY: Duration = Duration::from_secs(15 * 60);
/// A pair's failures are forgotten this long after its last one.
const FORGET_AFTER: Duration = Duration::from_secs(30 * 60);
/// Pairs tracked at most; beyond it, forgotten ones are dropped first and
/// then the one idle longest, so memory stays bounded under a spraying attack.
const MAX_TRACKED: usize = 100_000;

/// The failures of one (account, address) pair.
#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last: Instant,
    not_before: Instant,
}

/// Failed logins per (account, address).
#[derive(Debug, Default)]
pub struct LoginThrottle {
    pairs: Mutex<HashMap<(String, IpAddr), Failures>>,
}

impl LoginThrottle {
    /// `Err(wait)` while `address` must wait before trying `account` again.
    pub fn check(&self, account: &str, address: IpAddr, now: Instant) -> Result<(), Duration> {
        let pairs = self.lock();
        match pairs.get(&(account.to_owned(), address)) {
            Some(failures) if failures.not_before > now => Err(failures.not_before - now),
            _ => Ok(()),
        }
    }

    /// Counts a failed attempt of `address` on `account`.
    pub fn record_failure(&self, account: &str, address: IpAddr, now: Instant) {
        let mut pairs = self.lock();
        let key = (account.to_owned(), address);
        if pairs.len() >= MAX_TRACKED && !pairs.contains_key(&key) {
            make_room(&mut pairs, now);
        }
        let failures = pairs.entry(key).or_insert(Failures {
            count: 0,
            last: now,
            not_before: now,
        });
        if now.duration_since(failures.last) >= FORGET_AFTER {
            failures.count = 0;
        }
        failures.count = failures.count.saturating_add(1);
        failures.last = now;
        failures.not_before = now + delay_after(failures.count);
    }

    /// Forgets the failures of `address` on `account` (it knew the password).
    pub fn clear(&self, account: &str, address: IpAddr) {
        self.lock().remove(&(account.to_owned(), address));
    }

    /// Drops the pairs whose failures are forgotten.
    pub fn evict_idle(&self, now: Instant) {
        self.lock()
            .retain(|_, failures| now.duration_since(failures.last) < FORGET_AFTER);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, IpAddr), Failures>> {
        self.pairs
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The wait imposed after the `count`-th failure of a pair.
fn delay_after(count: u32) -> Duration {
    match count.checked_sub(FREE_FAILURES + 1) {
        None => Duration::ZERO,
        Some(doublings) => FIRST_DELAY
            .checked_mul(2u32.saturating_pow(doublings))
            .map_or(MAX_DELAY, |delay| delay.min(MAX_DELAY)),
    }
}

fn make_room(pairs: &mut HashMap<(String, IpAddr), Failures>, now: Instant) {
    pairs.retain(|_, failures| now.duration_since(failures.last) < FORGET_AFTER);
    if pairs.len() >= MAX_TRACKED
        && let Some(idlest) = pairs
            .iter()
            .min_by_key(|(_, failures)| failures.last)
            .map(|(key, _)| key.clone())
    {
        pairs.remove(&idlest);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ATTACKER: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 66));
    const OWNER: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 7));

    #[test]
    fn the_delay_doubles_after_the_free_failures_up_to_the_cap() {
        let delays: Vec<u64> = (1..=8).map(|n| delay_after(n).as_secs()).collect();
        assert_eq!(delays, [0, 0, 0, 0, 0, 1, 2, 4]);
        assert_eq!(delay_after(20), MAX_DELAY);
        assert_eq!(delay_after(u32::MAX), MAX_DELAY);
    }

    #[test]
    fn an_attacker_waits_while_the_owner_from_elsewhere_does_not() {
        let throttle = LoginThrottle::default();
        let start = Instant::now();
        for _ in 0..FREE_FAILURES {
            assert!(throttle.check("ann@example.com", ATTACKER, start).is_ok());
            throttle.record_failure("ann@example.com", ATTACKER, start);
        }
        assert!(throttle.check("ann@example.com", ATTACKER, start).is_ok());
        throttle.record_failure("ann@example.com", ATTACKER, start);
        assert_eq!(
            throttle.check("ann@example.com", ATTACKER, start),
            Err(Duration::from_secs(1))
        );
        assert!(throttle.check("ann@example.com", OWNER, start).is_ok());
        assert!(throttle.check("bob@example.com", ATTACKER, start).is_ok());
        let later = start + Duration::from_secs(1);
        assert!(throttle.check("ann@example.com", ATTACKER, later).is_ok());
        throttle.record_failure("ann@example.com", ATTACKER, later);
        assert_eq!(
            throttle.check("ann@example.com", ATTACKER, later),
            Err(Duration::from_secs(2))
        );
    }

    #[test]
    fn failures_are_forgotten_after_a_success_or_a_quiet_half_hour() {
        let throttle = LoginThrottle::default();
        let start = Instant::now();
        for _ in 0..=FREE_FAILURES {
            throttle.record_failure("ann@example.com", ATTACKER, start);
        }
        throttle.clear("ann@example.com", ATTACKER);
        assert!(throttle.check("ann@example.com", ATTACKER, start).is_ok());
        for _ in 0..=FREE_FAILURES {
            throttle.record_failure("ann@example.com", ATTACKER, start);
        }
        let quiet = start + FORGET_AFTER;
        throttle.record_failure("ann@example.com", ATTACKER, quiet);
        assert!(throttle.check("ann@example.com", ATTACKER, quiet).is_ok());
        throttle.evict_idle(quiet + FORGET_AFTER);
        assert!(throttle.lock().is_empty());
    }
}

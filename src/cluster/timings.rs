//! How long a lease lasts and how often it is renewed, checked once so the
//! rest of the layer can rely on the order between them.

use std::time::Duration;

use super::ClusterError;

/// Shortest TTL accepted: below it, the server's expiry timer and one busy
/// round trip are a large part of the lease.
const MIN_TTL: Duration = Duration::from_millis(500);

/// The lease timings. Every instance sharing a bucket must use the same ones
/// (the TTL is the bucket's `max_age`, set by whoever starts last).
///
/// - `ttl`: how long a value lives in the bucket after its last write; a
///   crashed instance's keys lapse after it.
/// - `valid_for`: how long after *sending* a successful write the instance
///   treats the partition as its own: three quarters of the TTL. The server
///   stamps the write no earlier than it was sent, so the local deadline
///   always comes `ttl - valid_for` before anyone else can take the
///   partition.
/// - `renew_every`: at most half of `valid_for`, so at least two renewals
///   are tried before a lease stops counting.
/// - `scan_every`: how often free partitions are looked for and excess ones
///   given back (changes seen on the watch also start a round at once).
/// - `request_timeout`: the bound on one KV request (half the renewal
///   interval, so a round ends before the next starts).
/// - `handoff_timeout`: the longest wait for the listener before a release is
///   written anyway (the partition stays renewed meanwhile).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseTimings {
    ttl: Duration,
    valid_for: Duration,
    renew_every: Duration,
    scan_every: Duration,
    request_timeout: Duration,
    handoff_timeout: Duration,
}

impl Default for LeaseTimings {
    /// TTL 6 s, renewed every 2 s, valid 4.5 s after each renewal, scans
    /// every 1 s: a crashed instance's partitions are free after at most 6 s
    /// and taken by the next scan, well within SPEC §8's 10 s.
    fn default() -> Self {
        Self::new(
            Duration::from_secs(6),
            Duration::from_secs(2),
            Duration::from_secs(1),
        )
        .expect("the production timings are consistent")
    }
}

impl LeaseTimings {
    /// Checks the timings: `ttl` at least 500 ms, `renew_every` at most
    /// three eighths of it (half of `valid_for`), `scan_every` below `ttl`.
    pub fn new(
        ttl: Duration,
        renew_every: Duration,
        scan_every: Duration,
    ) -> Result<Self, ClusterError> {
        let valid_for = ttl * 3 / 4;
        if ttl < MIN_TTL {
            return Err(ClusterError::InvalidTimings("ttl below 500 ms"));
        }
        if renew_every.is_zero() || renew_every > valid_for / 2 {
            return Err(ClusterError::InvalidTimings(
                "renew_every must be above zero and at most 3/8 of ttl",
            ));
        }
        if scan_every.is_zero() || scan_every >= ttl {
            return Err(ClusterError::InvalidTimings(
                "scan_every must be above zero and below ttl",
            ));
        }
        Ok(Self {
            ttl,
            valid_for,
            renew_every,
            scan_every,
            request_timeout: renew_every / 2,
            handoff_timeout: Duration::from_secs(10).max(ttl),
        })
    }

    /// How long a value lives in the bucket after its last write.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// How long after sending a successful write a lease counts as held.
    pub fn valid_for(&self) -> Duration {
        self.valid_for
    }

    /// The renewal interval.
    pub fn renew_every(&self) -> Duration {
        self.renew_every
    }

    /// The scan interval.
    pub fn scan_every(&self) -> Duration {
        self.scan_every
    }

    /// The bound on one KV request.
    pub fn request_timeout(&self) -> Duration {
        self.request_timeout
    }

    /// The longest wait for the listener before a release is written.
    pub fn handoff_timeout(&self) -> Duration {
        self.handoff_timeout
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_production_timings_renew_twice_within_validity_and_stop_before_the_ttl() {
        let timings = LeaseTimings::default();
        assert!(timings.renew_every() * 2 <= timings.valid_for());
        assert!(timings.valid_for() < timings.ttl());
        assert!(timings.request_timeout() < timings.renew_every());
        // A crashed instance's last write lapses after `ttl`; the next scan takes it.
        assert!(timings.ttl() + timings.scan_every() < Duration::from_secs(10));
    }

    #[test]
    fn inconsistent_timings_are_refused() {
        let ms = Duration::from_millis;
        assert!(LeaseTimings::new(ms(400), ms(100), ms(100)).is_err());
        assert!(LeaseTimings::new(ms(2000), ms(800), ms(100)).is_err());
        assert!(LeaseTimings::new(ms(2000), ms(0), ms(100)).is_err());
        assert!(LeaseTimings::new(ms(2000), ms(500), ms(2000)).is_err());
        assert!(LeaseTimings::new(ms(2000), ms(500), ms(200)).is_ok());
    }
}

//! Loans map to a fixed number of partitions; ownership moves a partition at
//! a time, never a loan.
//!
//! The mapping is part of the cluster's wire contract: every instance, of any
//! version, must put a loan in the same partition. It is
//! `SHA-256(the loan id's 16 bytes)`, its first 8 bytes read as a big-endian
//! `u64`, modulo [`PARTITION_COUNT`] (that is, byte 7 of the digest while the
//! count is 256). Not std's hasher: its keys are random per process.

use std::fmt;

use actors::core::LoanId;
use sha2::{Digest, Sha256};

/// How many partitions the loans are spread over. Changing it moves almost
/// every loan to another partition: every instance must stop first.
pub const PARTITION_COUNT: u16 = 256;

/// One partition: a number below [`PARTITION_COUNT`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Partition(u16);

impl Partition {
    /// The partition numbered `number`, if it is below [`PARTITION_COUNT`].
    pub fn new(number: u16) -> Option<Self> {
        (number < PARTITION_COUNT).then_some(Self(number))
    }

    /// Its number, below [`PARTITION_COUNT`].
    pub fn number(self) -> u16 {
        self.0
    }

    /// Its position in per-partition arrays.
    pub fn index(self) -> usize {
        usize::from(self.0)
    }

    /// Every partition, in order.
    pub fn all() -> impl Iterator<Item = Self> {
        (0..PARTITION_COUNT).map(Self)
    }
}

impl fmt::Display for Partition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The partition of `loan_id` (see the module documentation for the formula).
pub fn partition_of(loan_id: LoanId) -> Partition {
    let digest = Sha256::digest(loan_id.as_uuid().as_bytes());
    let mut head = [0_u8; 8];
    head.copy_from_slice(&digest[..8]);
    let number = u64::from_be_bytes(head) % u64::from(PARTITION_COUNT);
    Partition(u16::try_from(number).expect("a remainder below PARTITION_COUNT fits in u16"))
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;

    fn partition_of_uuid(text: &str) -> u16 {
        let uuid = Uuid::parse_str(text).expect("a fixed UUID");
        partition_of(LoanId::new(uuid)).number()
    }

    /// Pinned values: a change here moves loans between instances of
    /// different versions, which must never happen silently. (Checked
    /// independently with Python's `hashlib.sha256(uuid.UUID(s).bytes)`.)
    #[test]
    fn partition_of_is_stable_for_known_loan_ids() {
        let known = [
            ("00000000-0000-0000-0000-000000000000", 213),
            ("ffffffff-ffff-ffff-ffff-ffffffffffff", 9),
            ("0190f3a2-7c1e-7b3d-9a4f-2c8e5d6b1a09", 236),
            ("6f1c2b7e-3d4a-4e5f-8a9b-0c1d2e3f4a5b", 50),
        ];
        for (loan_id, expected) in known {
            assert_eq!(
                partition_of_uuid(loan_id),
                expected,
                "partition of {loan_id}"
            );
        }
    }

    #[test]
    fn partition_of_spreads_random_loan_ids_roughly_uniformly() {
        const SAMPLES: usize = 10_000;
        let mut counts = [0_usize; PARTITION_COUNT as usize];
        for _ in 0..SAMPLES {
            counts[partition_of(LoanId::new(Uuid::new_v4())).index()] += 1;
        }
        // Expected 39 per partition; a binomial spread keeps each within
        // 15..70 with overwhelming probability (over 4 standard deviations).
        let (fewest, most) = (
            counts.iter().min().copied().unwrap_or(0),
            counts.iter().max().copied().unwrap_or(0),
        );
        assert!(
            (15..=70).contains(&fewest) && (15..=70).contains(&most),
            "partition sizes from {fewest} to {most} for {SAMPLES} ids"
        );
        let expected = SAMPLES as f64 / f64::from(PARTITION_COUNT);
        let chi_square: f64 = counts
            .iter()
            .map(|&count| (count as f64 - expected).powi(2) / expected)
            .sum();
        // 255 degrees of freedom: the 99.99th percentile is about 360.
        assert!(
            chi_square < 360.0,
            "chi-square {chi_square:.1} over 255 degrees"
        );
    }

    #[test]
    fn time_ordered_loan_ids_spread_too() {
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..2_000 {
            seen.insert(partition_of(LoanId::new(Uuid::now_v7())).number());
        }
        assert!(
            seen.len() > 240,
            "UUIDv7 ids reached only {} partitions",
            seen.len()
        );
    }

    #[test]
    fn partition_numbers_stop_below_the_count() {
        assert!(Partition::new(PARTITION_COUNT - 1).is_some());
        assert!(Partition::new(PARTITION_COUNT).is_none());
        assert_eq!(Partition::all().count(), usize::from(PARTITION_COUNT));
    }
}

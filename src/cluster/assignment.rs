//! Which live instance each partition should belong to: the same answer on
//! every instance that sees the same live set, so nobody argues over a
//! partition and nothing flaps.
//!
//! Balanced rendezvous hashing: each (partition, instance) pair has a weight
//! from a hash of both; pairs are taken heaviest first, a partition going to
//! the first instance with room. Each instance has room for its fair share
//! (`256 / n`, the first `256 % n` ids in sorted order one more), so shares
//! differ by at most one, and an instance joining or leaving moves little
//! more than its own share.

use sha2::{Digest, Sha256};

use super::instance::InstanceId;
use super::partition::{PARTITION_COUNT, Partition};

/// Most instances taken into account; beyond it the extra ones (last in id
/// order) get nothing, since each would own less than one partition anyway.
pub const MAX_INSTANCES: usize = PARTITION_COUNT as usize;

/// The intended owner of every partition, for one live set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    /// The live instances, sorted (at most [`MAX_INSTANCES`]).
    instances: Vec<InstanceId>,
    /// Per partition, an index into `instances`.
    owner: Vec<usize>,
}

impl Assignment {
    /// The assignment for `live` (any order, duplicates ignored); `None` if empty.
    pub fn compute(live: &[InstanceId]) -> Option<Self> {
        let mut instances = live.to_vec();
        instances.sort();
        instances.dedup();
        instances.truncate(MAX_INSTANCES);
        if instances.is_empty() {
            return None;
        }
        let count = instances.len();
        let partitions = usize::from(PARTITION_COUNT);
        let mut room: Vec<usize> = (0..count)
            .map(|index| partitions / count + usize::from(index < partitions % count))
            .collect();
        let mut pairs: Vec<(u64, u16, usize)> = Vec::with_capacity(partitions * count);
        for partition in Partition::all() {
            for (index, instance) in instances.iter().enumerate() {
                pairs.push((weight(partition, instance), partition.number(), index));
            }
        }
        pairs.sort_unstable_by(|a, b| b.cmp(a));
        let mut owner = vec![usize::MAX; partitions];
        for (_, partition, index) in pairs {
            let slot = &mut owner[usize::from(partition)];
            if *slot == usize::MAX && room[index] > 0 {
                *slot = index;
                room[index] -= 1;
            }
        }
        // Total room equals the partition count, so every partition got one.
        assert!(owner.iter().all(|&index| index < count));
        Some(Self { instances, owner })
    }

    /// The live set this was computed for, sorted.
    pub fn instances(&self) -> &[InstanceId] {
        &self.instances
    }

    /// The intended owner of `partition`.
    pub fn owner_of(&self, partition: Partition) -> &InstanceId {
        &self.instances[self.owner[partition.index()]]
    }

    /// The partitions intended for `instance`, in order.
    pub fn share_of(&self, instance: &InstanceId) -> Vec<Partition> {
        Partition::all()
            .filter(|&partition| self.owner_of(partition) == instance)
            .collect()
    }
}

/// The rendezvous weight of a pair: the first 8 bytes of
/// SHA-256(instance id ‖ 0 ‖ partition number, big-endian u16).
fn weight(partition: Partition, instance: &InstanceId) -> u64 {
    let mut hasher = Sha256::new();
    hasher.update(instance.as_str().as_bytes());
    hasher.update([0]);
    hasher.update(partition.number().to_be_bytes());
    let digest = hasher.finalize();
    let mut head = [0_u8; 8];
    head.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(head)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(names: &[&str]) -> Vec<InstanceId> {
        names
            .iter()
            .map(|name| InstanceId::parse(name).unwrap())
            .collect()
    }

    #[test]
    fn shares_differ_by_at_most_one_and_cover_every_partition() {
        for count in 1..=7 {
            let live: Vec<String> = (0..count).map(|i| format!("instance-{i}")).collect();
            let live = ids(&live.iter().map(String::as_str).collect::<Vec<_>>());
            let assignment = Assignment::compute(&live).unwrap();
            let sizes: Vec<usize> = live
                .iter()
                .map(|id| assignment.share_of(id).len())
                .collect();
            assert_eq!(sizes.iter().sum::<usize>(), usize::from(PARTITION_COUNT));
            let (min, max) = (sizes.iter().min().unwrap(), sizes.iter().max().unwrap());
            assert!(max - min <= 1, "{count} instances: shares {sizes:?}");
        }
    }

    #[test]
    fn the_assignment_does_not_depend_on_the_order_instances_are_seen_in() {
        let one = Assignment::compute(&ids(&["b", "a", "c"])).unwrap();
        let other = Assignment::compute(&ids(&["c", "b", "a", "a"])).unwrap();
        assert_eq!(one, other);
        assert!(Assignment::compute(&[]).is_none());
    }

    #[test]
    fn a_joining_instance_takes_its_share_mostly_from_the_others_shares() {
        let before = Assignment::compute(&ids(&["a", "b", "c"])).unwrap();
        let after = Assignment::compute(&ids(&["a", "b", "c", "d"])).unwrap();
        let moved = Partition::all()
            .filter(|&p| before.owner_of(p) != after.owner_of(p))
            .count();
        // d's 64 must move; a greedy balanced assignment moves a few more.
        assert!((64..=96).contains(&moved), "{moved} partitions moved");
        let among_old = Partition::all()
            .filter(|&p| {
                after.owner_of(p).as_str() != "d" && before.owner_of(p) != after.owner_of(p)
            })
            .count();
        assert!(
            among_old <= 32,
            "{among_old} moved between staying instances"
        );
    }
}

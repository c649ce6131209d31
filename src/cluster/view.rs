//! What this instance knows of the bucket, kept from a watch on every key:
//! the live instances and each partition's recorded owner.
//!
//! A value removed by the bucket's `max_age` sends no event to watchers, so
//! every entry carries its own local expiry: its TTL counted from when it was
//! *received*. Receiving comes after writing, so an entry expires here no
//! earlier than on the server: the view may call a crashed owner live a
//! little too long (never too short), and when it calls a partition free the
//! server has already dropped the value. An entry replayed when the watch
//! starts is counted from then, so a newly started instance may wait up to
//! one TTL more for a crashed owner's keys.

use std::collections::BTreeMap;

use async_nats::jetstream::kv::{Entry, Operation};
use bytes::Bytes;
use tokio::time::{Duration, Instant};

use super::instance::{InstanceId, InstanceInfo};
use super::partition::{PARTITION_COUNT, Partition};

/// Key prefix of the partition keys (`partition.017`).
const PARTITION_KEY_PREFIX: &str = "partition.";
/// Key prefix of the instance keys (`instance.<id>`).
const INSTANCE_KEY_PREFIX: &str = "instance.";

/// The KV key of `partition`.
pub(crate) fn partition_key(partition: Partition) -> String {
    format!("{PARTITION_KEY_PREFIX}{:03}", partition.number())
}

/// The KV key of `instance`'s heartbeat.
pub(crate) fn instance_key(instance: &InstanceId) -> String {
    format!("{INSTANCE_KEY_PREFIX}{instance}")
}

/// The partition a key names, if it is a well-formed partition key.
fn partition_from_key(key: &str) -> Option<Partition> {
    let digits = key.strip_prefix(PARTITION_KEY_PREFIX)?;
    if digits.len() != 3 {
        return None;
    }
    Partition::new(digits.parse().ok()?)
}

/// One change seen on the watch: the parts of a KV entry the view reads.
#[derive(Debug, Clone)]
pub(crate) struct Change {
    /// The key.
    pub(crate) key: String,
    /// The value (empty for a removal).
    pub(crate) value: Bytes,
    /// Its revision.
    pub(crate) revision: u64,
    /// True for a delete or purge marker.
    pub(crate) removed: bool,
    /// True once the watch has replayed what the bucket held at its start.
    pub(crate) seen_current: bool,
}

impl From<Entry> for Change {
    fn from(entry: Entry) -> Self {
        Self {
            removed: matches!(entry.operation, Operation::Delete | Operation::Purge),
            key: entry.key,
            value: entry.value,
            revision: entry.revision,
            seen_current: entry.seen_current,
        }
    }
}

/// What the bucket holds under one partition key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Slot {
    /// A well-formed lease.
    Leased {
        /// The owner it names.
        owner: InstanceInfo,
        /// Its revision.
        revision: u64,
        /// When it lapses here unless written again.
        fresh_until: Instant,
    },
    /// A value that does not parse: no owner, but the key exists, so it is
    /// taken by an update on this revision instead of a create.
    Malformed {
        /// Its revision.
        revision: u64,
        /// When the server will have dropped it.
        fresh_until: Instant,
    },
}

impl Slot {
    fn fresh_until(&self) -> Instant {
        match self {
            Self::Leased { fresh_until, .. } | Self::Malformed { fresh_until, .. } => *fresh_until,
        }
    }
}

/// A partition that looks free, and how to take it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Free {
    /// No value: take it with a create.
    Empty,
    /// A malformed value at this revision: take it with an update on it.
    Malformed(u64),
}

/// The bucket as this instance last saw it.
#[derive(Debug)]
pub(crate) struct View {
    ttl: Duration,
    partitions: Vec<Option<Slot>>,
    instances: BTreeMap<InstanceId, (InstanceInfo, Instant)>,
    /// True once the watch delivered everything the bucket held at its start.
    synced: bool,
}

impl View {
    /// An empty view whose entries live `ttl` after they are received.
    pub(crate) fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            partitions: vec![None; usize::from(PARTITION_COUNT)],
            instances: BTreeMap::new(),
            synced: false,
        }
    }

    /// Applies one watched entry received at `now`; says whether it may
    /// change what this instance should hold (an owner or the live set).
    pub(crate) fn apply(&mut self, entry: &Change, now: Instant) -> bool {
        if entry.seen_current {
            self.synced = true;
        }
        let removed = entry.removed;
        let fresh_until = now + self.ttl;
        if let Some(partition) = partition_from_key(&entry.key) {
            let slot = &mut self.partitions[partition.index()];
            *slot = if removed {
                None
            } else {
                Some(match InstanceInfo::from_value(&entry.key, &entry.value) {
                    Some(owner) => Slot::Leased {
                        owner,
                        revision: entry.revision,
                        fresh_until,
                    },
                    None => Slot::Malformed {
                        revision: entry.revision,
                        fresh_until,
                    },
                })
            };
            return removed;
        }
        if let Some(id) = entry.key.strip_prefix(INSTANCE_KEY_PREFIX) {
            let known = |id: &str| InstanceId::parse(id).ok();
            let Some(id) = known(id) else {
                tracing::warn!(key = %entry.key, "instance key with an invalid id: ignored");
                return false;
            };
            if removed {
                return self.instances.remove(&id).is_some();
            }
            let info = InstanceInfo::from_value(&entry.key, &entry.value)
                .filter(|info| info.instance == id);
            let Some(info) = info else {
                return self.instances.remove(&id).is_some();
            };
            let new = self.instances.insert(id, (info, fresh_until)).is_none();
            return new;
        }
        tracing::debug!(key = %entry.key, "unknown key in the lease bucket: ignored");
        false
    }

    /// True once the bucket's contents at the watch's start were all seen.
    pub(crate) fn synced(&self) -> bool {
        self.synced
    }

    /// The recorded owner of `partition`, if its lease is fresh at `now`.
    pub(crate) fn owner_of(&self, partition: Partition, now: Instant) -> Option<&InstanceInfo> {
        match &self.partitions[partition.index()] {
            Some(Slot::Leased {
                owner, fresh_until, ..
            }) if *fresh_until > now => Some(owner),
            _ => None,
        }
    }

    /// How to take `partition` if it looks free at `now`.
    pub(crate) fn free(&self, partition: Partition, now: Instant) -> Option<Free> {
        match &self.partitions[partition.index()] {
            None => Some(Free::Empty),
            Some(slot) if slot.fresh_until() <= now => Some(Free::Empty),
            Some(Slot::Malformed { revision, .. }) => Some(Free::Malformed(*revision)),
            Some(Slot::Leased { .. }) => None,
        }
    }

    /// The instances whose heartbeat is fresh at `now`, in id order.
    pub(crate) fn live_instances(&self, now: Instant) -> Vec<InstanceInfo> {
        self.instances
            .values()
            .filter(|(_, fresh_until)| *fresh_until > now)
            .map(|(info, _)| info.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(key: &str, value: &[u8], revision: u64, operation: Operation) -> Change {
        Change {
            key: key.into(),
            value: Bytes::copy_from_slice(value),
            revision,
            removed: operation != Operation::Put,
            seen_current: true,
        }
    }

    fn info(id: &str) -> Vec<u8> {
        InstanceInfo::new(InstanceId::parse(id).unwrap(), format!("s.{id}"))
            .to_value()
            .to_vec()
    }

    #[test]
    fn keys_name_partitions_with_three_digits() {
        let partition = Partition::new(7).unwrap();
        assert_eq!(partition_key(partition), "partition.007");
        assert_eq!(partition_from_key("partition.007"), Some(partition));
        for bad in [
            "partition.7",
            "partition.256",
            "partition.abc",
            "partition.0070",
            "x",
        ] {
            assert_eq!(partition_from_key(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_lease_lapses_one_ttl_after_it_was_received_and_a_delete_frees_at_once() {
        let now = Instant::now();
        let ttl = Duration::from_secs(6);
        let mut view = View::new(ttl);
        let partition = Partition::new(3).unwrap();
        view.apply(&entry("partition.003", &info("a"), 5, Operation::Put), now);
        assert_eq!(
            view.owner_of(partition, now).unwrap().instance.as_str(),
            "a"
        );
        assert_eq!(view.free(partition, now), None);
        assert_eq!(view.free(partition, now + ttl), Some(Free::Empty));
        assert!(view.apply(&entry("partition.003", b"", 6, Operation::Delete), now));
        assert_eq!(view.owner_of(partition, now), None);
    }

    #[test]
    fn a_malformed_value_is_no_owner_and_is_taken_on_its_revision() {
        let now = Instant::now();
        let mut view = View::new(Duration::from_secs(6));
        let partition = Partition::new(9).unwrap();
        view.apply(
            &entry("partition.009", b"{garbage", 11, Operation::Put),
            now,
        );
        assert_eq!(view.owner_of(partition, now), None);
        assert_eq!(view.free(partition, now), Some(Free::Malformed(11)));
        // Instance keys: garbage, or a value naming another id, is not live.
        view.apply(&entry("instance.x", b"[]", 12, Operation::Put), now);
        view.apply(&entry("instance.y", &info("z"), 13, Operation::Put), now);
        view.apply(&entry("instance.a.b", &info("a"), 14, Operation::Put), now);
        assert!(view.live_instances(now).is_empty());
    }

    #[test]
    fn instances_are_live_while_their_heartbeat_is_fresh() {
        let now = Instant::now();
        let ttl = Duration::from_secs(2);
        let mut view = View::new(ttl);
        assert!(view.apply(&entry("instance.a", &info("a"), 1, Operation::Put), now));
        assert!(!view.apply(&entry("instance.a", &info("a"), 2, Operation::Put), now));
        assert_eq!(view.live_instances(now).len(), 1);
        assert!(view.live_instances(now + ttl).is_empty());
        assert!(view.apply(&entry("instance.a", b"", 3, Operation::Purge), now));
    }
}

//! The [`Ownership`] handle: what this instance owns and who owns the rest,
//! read without waiting on the bucket; and the state the lease loops share.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use tokio::sync::{Notify, watch};
use tokio::time::Instant;

use super::assignment::Assignment;
use super::instance::{InstanceId, InstanceInfo};
use super::kv::LeaseBucket;
use super::partition::{PARTITION_COUNT, Partition};
use super::timings::LeaseTimings;
use super::view::View;
use super::{ClusterError, PartitionListener};

/// The lease counters, as a plain copy (for the metrics scrape).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LeaseCounts {
    /// Partitions taken (create, or update over a malformed value) since start.
    pub acquired: u64,
    /// Partitions given back (to a joining instance, or at a graceful stop).
    pub released: u64,
    /// Partitions lost: a renewal refused, or no renewal before the deadline.
    pub lost: u64,
    /// Partitions owned now (a gauge).
    pub owned: u64,
}

/// The monotonic counters behind [`LeaseCounts`].
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) acquired: AtomicU64,
    pub(crate) released: AtomicU64,
    pub(crate) lost: AtomicU64,
}

impl Counters {
    /// Adds `count` to `counter`.
    pub(crate) fn add(counter: &AtomicU64, count: usize) {
        counter.fetch_add(u64::try_from(count).unwrap_or(u64::MAX), Ordering::Relaxed);
    }
}

/// Per partition, until when this instance treats it as its own: the send
/// time of its last successful write plus `valid_for`. Lock-free, so a
/// command's ownership check never waits on a lease round.
#[derive(Debug)]
pub(crate) struct Deadlines {
    epoch: Instant,
    /// Nanoseconds after `epoch`; 0 means not owned.
    slots: Vec<AtomicU64>,
}

impl Deadlines {
    fn new() -> Self {
        Self {
            epoch: Instant::now(),
            slots: (0..PARTITION_COUNT).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// Owned until `until`.
    pub(crate) fn set(&self, partition: Partition, until: Instant) {
        let nanos = until.saturating_duration_since(self.epoch).as_nanos();
        let nanos = u64::try_from(nanos).unwrap_or(u64::MAX).max(1);
        self.slots[partition.index()].store(nanos, Ordering::SeqCst);
    }

    /// Not owned any more.
    pub(crate) fn clear(&self, partition: Partition) {
        self.slots[partition.index()].store(0, Ordering::SeqCst);
    }

    /// The deadline of `partition`, if it is owned at `now`.
    pub(crate) fn until(&self, partition: Partition, now: Instant) -> Option<Instant> {
        match self.slots[partition.index()].load(Ordering::SeqCst) {
            0 => None,
            nanos => Some(self.epoch + std::time::Duration::from_nanos(nanos))
                .filter(|&until| until > now),
        }
    }
}

/// The leases this instance wrote, with the revision each is at. Changed
/// only under its async mutex, by whoever is writing to the bucket, so a
/// renewal and a release never race on a revision.
#[derive(Debug, Default)]
pub(crate) struct Leases {
    /// Partition → revision of this instance's last write.
    pub(crate) held: BTreeMap<Partition, u64>,
    /// True once the graceful stop took everything: nothing is renewed or
    /// taken any more.
    pub(crate) closing: bool,
}

/// What the lease loops and the handles share.
pub(crate) struct Shared {
    pub(crate) me: InstanceInfo,
    pub(crate) timings: LeaseTimings,
    pub(crate) bucket: LeaseBucket,
    pub(crate) listener: Arc<dyn PartitionListener>,
    pub(crate) view: RwLock<View>,
    pub(crate) deadlines: Deadlines,
    pub(crate) leases: tokio::sync::Mutex<Leases>,
    /// Losses the renewer found, for the balancer to report to the listener.
    pub(crate) unreported_losses: Mutex<Vec<Partition>>,
    /// The assignment of the last balancing round.
    pub(crate) intended: RwLock<Option<Arc<Assignment>>>,
    pub(crate) counters: Counters,
    /// Set by [`Ownership::shutdown`].
    pub(crate) stop: watch::Sender<bool>,
    /// Set once the graceful stop has released everything.
    pub(crate) stopped: watch::Sender<bool>,
    /// Wakes the balancer early: a partition was freed, the live set changed.
    pub(crate) nudge: Notify,
}

impl Shared {
    pub(crate) fn new(
        me: InstanceInfo,
        timings: LeaseTimings,
        bucket: LeaseBucket,
        listener: Arc<dyn PartitionListener>,
    ) -> Self {
        Self {
            view: RwLock::new(View::new(timings.ttl())),
            me,
            timings,
            bucket,
            listener,
            deadlines: Deadlines::new(),
            leases: tokio::sync::Mutex::new(Leases::default()),
            unreported_losses: Mutex::new(Vec::new()),
            intended: RwLock::new(None),
            counters: Counters::default(),
            stop: watch::Sender::new(false),
            stopped: watch::Sender::new(false),
            nudge: Notify::new(),
        }
    }

    /// The view, for reading (a poisoned lock still holds a usable view:
    /// every write to it is a single assignment).
    pub(crate) fn view(&self) -> std::sync::RwLockReadGuard<'_, View> {
        self.view.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// The view, for applying a change.
    pub(crate) fn view_mut(&self) -> std::sync::RwLockWriteGuard<'_, View> {
        self.view.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// Partitions owned at `now`, in order.
    pub(crate) fn owned_at(&self, now: Instant) -> Vec<Partition> {
        Partition::all()
            .filter(|&partition| self.deadlines.until(partition, now).is_some())
            .collect()
    }

    pub(crate) fn intended(&self) -> Option<Arc<Assignment>> {
        self.intended
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// Who owns which partition, as this instance knows it; cheap to clone.
#[derive(Clone)]
pub struct Ownership {
    pub(crate) shared: Arc<Shared>,
}

impl std::fmt::Debug for Ownership {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ownership")
            .field("instance", &self.shared.me.instance)
            .field("owned", &self.owned().len())
            .finish()
    }
}

impl Ownership {
    /// This instance.
    pub fn instance(&self) -> &InstanceInfo {
        &self.shared.me
    }

    /// True while this instance holds `partition` and its deadline has not
    /// passed: the check to make before serving a loan of it.
    pub fn is_owned(&self, partition: Partition) -> bool {
        self.owned_until(partition).is_some()
    }

    /// Until when `partition` counts as this instance's without a further
    /// renewal, if it does now.
    pub fn owned_until(&self, partition: Partition) -> Option<Instant> {
        self.shared.deadlines.until(partition, Instant::now())
    }

    /// The partitions this instance owns now, in order.
    pub fn owned(&self) -> Vec<Partition> {
        self.shared.owned_at(Instant::now())
    }

    /// The owner of `partition`: this instance if it owns it, else the one
    /// the bucket names while its lease is fresh; `None` while it is free,
    /// malformed or changing hands.
    pub fn owner_of(&self, partition: Partition) -> Option<InstanceInfo> {
        let now = Instant::now();
        if self.shared.deadlines.until(partition, now).is_some() {
            return Some(self.shared.me.clone());
        }
        self.shared
            .view()
            .owner_of(partition, now)
            .filter(|owner| owner.instance != self.shared.me.instance)
            .cloned()
    }

    /// The instances whose heartbeat is fresh, this one included, in id order.
    pub fn live_instances(&self) -> Vec<InstanceInfo> {
        let mut live = self.shared.view().live_instances(Instant::now());
        if !live
            .iter()
            .any(|info| info.instance == self.shared.me.instance)
        {
            live.push(self.shared.me.clone());
            live.sort_by(|a, b| a.instance.cmp(&b.instance));
        }
        live
    }

    /// The instance `partition` should belong to, by the last balancing
    /// round's assignment (`None` before the first round).
    pub fn intended_owner(&self, partition: Partition) -> Option<InstanceId> {
        self.shared
            .intended()
            .map(|assignment| assignment.owner_of(partition).clone())
    }

    /// True when this instance owns every partition intended for it.
    pub fn has_share(&self) -> bool {
        let Some(assignment) = self.shared.intended() else {
            return false;
        };
        let now = Instant::now();
        assignment
            .share_of(&self.shared.me.instance)
            .into_iter()
            .all(|partition| self.shared.deadlines.until(partition, now).is_some())
    }

    /// True when the bucket was read through and every partition has a
    /// known owner (this instance or a fresh lease of another).
    pub fn knows_owners(&self) -> bool {
        let now = Instant::now();
        let view = self.shared.view();
        view.synced()
            && Partition::all().all(|partition| {
                self.shared.deadlines.until(partition, now).is_some()
                    || view
                        .owner_of(partition, now)
                        .is_some_and(|owner| owner.instance != self.shared.me.instance)
            })
    }

    /// The counters and the owned gauge.
    pub fn counts(&self) -> LeaseCounts {
        let get = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        let counters = &self.shared.counters;
        LeaseCounts {
            acquired: get(&counters.acquired),
            released: get(&counters.released),
            lost: get(&counters.lost),
            owned: u64::try_from(self.owned().len()).unwrap_or(u64::MAX),
        }
    }

    /// The graceful stop: asks the running [`super::LeaseManager`] to hand
    /// every partition over (the listener's `releasing` first, then the
    /// releases) and to delete this instance's key, and waits until it has.
    pub async fn shutdown(&self) -> Result<(), ClusterError> {
        self.shared.stop.send_replace(true);
        let bound = self.shared.timings.handoff_timeout() + self.shared.timings.ttl();
        let mut stopped = self.shared.stopped.subscribe();
        match tokio::time::timeout(bound, stopped.wait_for(|done| *done)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(_)) | Err(_) => Err(ClusterError::ShutdownTimedOut(bound)),
        }
    }
}

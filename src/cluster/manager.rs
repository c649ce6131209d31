//! The lease loops of one instance, run as one future (a supervised service
//! or a task): the watch that keeps the view, the renewer that heartbeats
//! and renews every lease, and the balancer that reports losses, gives back
//! what is intended for others and takes what is intended for this one.
//! On stop: the listener is told, everything is released and the instance
//! key deleted, so the others take over at once instead of after the TTL.

use std::sync::{Arc, PoisonError};

use actors::store::BoxFuture;
use actors::tree::{Service, ServiceContext};
use bytes::Bytes;
use futures::StreamExt;
use tokio::sync::watch;
use tokio::time::{Instant, MissedTickBehavior};

use super::assignment::Assignment;
use super::instance::{InstanceId, InstanceInfo};
use super::kv::{LeaseBucket, Written};
use super::ownership::{Counters, Leases, Ownership, Shared};
use super::partition::Partition;
use super::timings::LeaseTimings;
use super::view::{Change, Free, instance_key, partition_key};
use super::{ClusterError, PartitionListener};
use crate::bus::Namespace;

/// Most KV writes in flight at once from one round.
const MAX_WRITES_IN_FLIGHT: usize = 64;
/// One balancing round's work: leases to give back, free partitions to take.
struct Plan {
    release: Vec<Partition>,
    take: Vec<(Partition, Free)>,
}

/// The service's name in the tree.
const SERVICE_NAME: &str = "partition-leases";

/// What an instance needs to take part.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// Who it is.
    pub instance: InstanceInfo,
    /// Its lease timings (the same on every instance).
    pub timings: LeaseTimings,
}

impl ClusterConfig {
    /// Instance `id`, answering forwarded commands on the namespaced
    /// subject `cluster.instances.<id>`, with `timings`.
    pub fn new(id: InstanceId, namespace: &Namespace, timings: LeaseTimings) -> Self {
        let subject = namespace.subject(&format!("cluster.instances.{id}"));
        Self {
            instance: InstanceInfo::new(id, subject),
            timings,
        }
    }
}

/// One instance's part in the partition leases; cheap to clone.
#[derive(Clone)]
pub struct LeaseManager {
    shared: Arc<Shared>,
}

impl LeaseManager {
    /// Opens (creates or updates) the bucket and writes the instance key.
    /// Nothing is taken until [`LeaseManager::run`] runs.
    pub async fn connect(
        client: async_nats::Client,
        namespace: &Namespace,
        config: ClusterConfig,
        listener: Arc<dyn PartitionListener>,
    ) -> Result<Self, ClusterError> {
        let timings = config.timings;
        let bucket =
            LeaseBucket::open(client, namespace, timings.ttl(), timings.request_timeout()).await?;
        let key = instance_key(&config.instance.instance);
        if let Written::Failed(cause) = bucket.put(&key, config.instance.to_value()).await {
            return Err(ClusterError::Request { key, cause });
        }
        let shared = Shared::new(config.instance, timings, bucket, listener);
        Ok(Self {
            shared: Arc::new(shared),
        })
    }

    /// The handle the rest of the service reads.
    pub fn ownership(&self) -> Ownership {
        Ownership {
            shared: Arc::clone(&self.shared),
        }
    }

    /// Runs until `stopping` turns true or [`Ownership::shutdown`] is
    /// called, then hands everything over and returns. Dropping the future
    /// instead is a crash: nothing is released and the leases lapse.
    pub async fn run(&self, stopping: watch::Receiver<bool>) {
        if *self.shared.stopped.borrow() {
            return;
        }
        let balancing = async {
            self.balance_until_stopped(stopping).await;
            self.release_everything().await;
        };
        tokio::select! {
            _ = async { tokio::join!(self.renew_until_closing(), balancing) } => {}
            () = self.watch_forever() => {}
        }
    }

    /// Keeps the view from a watch of the whole bucket, watching again
    /// after a pause when the watch ends or fails.
    async fn watch_forever(&self) {
        let pause = self.shared.timings.scan_every();
        loop {
            match self.shared.bucket.watch().await {
                Ok(mut watch) => {
                    while let Some(item) = watch.next().await {
                        match item {
                            Ok(entry) => self.apply(Change::from(entry)),
                            Err(error) => {
                                tracing::warn!(%error, "lease bucket watch failed: watching again");
                                break;
                            }
                        }
                    }
                }
                Err(error) => tracing::warn!(%error, "cannot watch the lease bucket"),
            }
            tokio::time::sleep(pause).await;
        }
    }

    fn apply(&self, change: Change) {
        let relevant = self.shared.view_mut().apply(&change, Instant::now());
        if relevant {
            self.shared.nudge.notify_one();
        }
    }

    /// Heartbeats and renews every `renew_every` until the graceful stop.
    async fn renew_until_closing(&self) {
        let mut ticker = tokio::time::interval(self.shared.timings.renew_every());
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            if !self.renew_round().await {
                return;
            }
        }
    }

    /// One renewal round: the instance key and every lease, concurrently.
    /// A refused renewal is a loss at once; a failed one keeps the old
    /// deadline, which passes on its own. False once closing.
    async fn renew_round(&self) -> bool {
        let shared = &self.shared;
        let mut leases = shared.leases.lock().await;
        if leases.closing {
            return false;
        }
        let mut lost = lapse_expired(shared, &mut leases, Instant::now());
        let sent_at = Instant::now();
        let value = shared.me.to_value();
        let held: Vec<(Partition, u64)> = leases.held.iter().map(|(&p, &rev)| (p, rev)).collect();
        let renewals = futures::stream::iter(held)
            .map(|(partition, revision)| {
                let value = value.clone();
                async move {
                    let key = partition_key(partition);
                    (partition, shared.bucket.update(&key, value, revision).await)
                }
            })
            .buffer_unordered(MAX_WRITES_IN_FLIGHT)
            .collect::<Vec<_>>();
        let own_key = instance_key(&shared.me.instance);
        let heartbeat = shared.bucket.put(&own_key, value.clone());
        let (results, heartbeat) = tokio::join!(renewals, heartbeat);
        if let Written::Failed(error) = heartbeat {
            tracing::warn!(%error, "instance heartbeat failed");
        }
        let mut failures = 0_usize;
        for (partition, written) in results {
            match written {
                Written::At(revision) => {
                    leases.held.insert(partition, revision);
                    shared
                        .deadlines
                        .set(partition, sent_at + shared.timings.valid_for());
                }
                Written::Refused => {
                    leases.held.remove(&partition);
                    shared.deadlines.clear(partition);
                    lost.push(partition);
                }
                Written::Failed(_) => failures += 1,
            }
        }
        drop(leases);
        if failures > 0 {
            tracing::warn!(failures, "lease renewals failed: retried next round");
        }
        self.record_losses(lost);
        true
    }

    /// Counts `lost` and queues them for the listener (told by the balancer,
    /// so a slow listener never delays a renewal).
    fn record_losses(&self, lost: Vec<Partition>) {
        if lost.is_empty() {
            return;
        }
        tracing::warn!(partitions = ?lost, "partition leases lost");
        Counters::add(&self.shared.counters.lost, lost.len());
        self.shared
            .unreported_losses
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend(lost);
        self.shared.nudge.notify_one();
    }

    /// Balancing rounds every `scan_every` (or when the watch nudges) until
    /// asked to stop.
    async fn balance_until_stopped(&self, mut stopping: watch::Receiver<bool>) {
        let mut own_stop = self.shared.stop.subscribe();
        let mut ticker = tokio::time::interval(self.shared.timings.scan_every());
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            if *stopping.borrow() || *own_stop.borrow() {
                return;
            }
            tokio::select! {
                biased;
                _ = wait_true(&mut stopping) => return,
                _ = wait_true(&mut own_stop) => return,
                _ = ticker.tick() => {}
                () = self.shared.nudge.notified() => {}
            }
            self.balance_round().await;
        }
    }

    /// Reports losses, then gives back what is intended for another live
    /// instance and takes the free partitions intended for this one.
    async fn balance_round(&self) {
        let shared = &self.shared;
        let lapsed = {
            let mut leases = shared.leases.lock().await;
            lapse_expired(shared, &mut leases, Instant::now())
        };
        self.record_losses(lapsed);
        let unreported = std::mem::take(
            &mut *shared
                .unreported_losses
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        if !unreported.is_empty() {
            self.bounded_listener("lost", shared.listener.lost(&unreported))
                .await;
        }
        let Some(Plan { release, take }) = self.plan() else {
            return;
        };
        if !release.is_empty() {
            self.release(&release).await;
        }
        if !take.is_empty() {
            self.take(take).await;
        }
    }

    /// What to release and what to take, from the view; `None` until the
    /// view has read the bucket through.
    fn plan(&self) -> Option<Plan> {
        let shared = &self.shared;
        let now = Instant::now();
        let view = shared.view();
        if !view.synced() {
            return None;
        }
        let mut live: Vec<InstanceId> = view
            .live_instances(now)
            .into_iter()
            .map(|info| info.instance)
            .collect();
        live.push(shared.me.instance.clone());
        let assignment = self.assignment_for(live)?;
        let me = &shared.me.instance;
        let mut release = Vec::new();
        let mut take = Vec::new();
        for partition in Partition::all() {
            let owned = shared.deadlines.until(partition, now).is_some();
            let mine = assignment.owner_of(partition) == me;
            if owned && !mine {
                release.push(partition);
            } else if !owned
                && mine
                && let Some(free) = view.free(partition, now)
            {
                take.push((partition, free));
            }
        }
        Some(Plan { release, take })
    }

    /// The assignment for `live`, reusing the last one if the set is the same.
    fn assignment_for(&self, mut live: Vec<InstanceId>) -> Option<Arc<Assignment>> {
        live.sort();
        live.dedup();
        let mut intended = self
            .shared
            .intended
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(current) = intended.as_ref()
            && current.instances() == live.as_slice()
        {
            return Some(Arc::clone(current));
        }
        let assignment = Arc::new(Assignment::compute(&live)?);
        tracing::info!(instances = live.len(), "partition assignment recomputed");
        *intended = Some(Arc::clone(&assignment));
        Some(assignment)
    }

    /// Tells the listener, then deletes each lease on its revision. The
    /// partitions stop counting as owned before their deletes are sent.
    async fn release(&self, partitions: &[Partition]) {
        let shared = &self.shared;
        self.bounded_listener("releasing", shared.listener.releasing(partitions))
            .await;
        let mut leases = shared.leases.lock().await;
        let targets: Vec<(Partition, u64)> = partitions
            .iter()
            .filter_map(|partition| {
                let revision = leases.held.remove(partition)?;
                shared.deadlines.clear(*partition);
                Some((*partition, revision))
            })
            .collect();
        let released = self.delete_all(targets).await;
        drop(leases);
        tracing::info!(count = released, "partitions released");
    }

    /// Deletes each lease on its revision; returns how many were deleted.
    async fn delete_all(&self, targets: Vec<(Partition, u64)>) -> usize {
        let bucket = &self.shared.bucket;
        let results = futures::stream::iter(targets)
            .map(|(partition, revision)| async move {
                let key = partition_key(partition);
                (partition, bucket.delete(&key, Some(revision)).await)
            })
            .buffer_unordered(MAX_WRITES_IN_FLIGHT)
            .collect::<Vec<_>>()
            .await;
        let mut released = 0;
        for (partition, written) in results {
            match written {
                Written::At(_) => released += 1,
                // Our value is gone already (lapsed): nothing to give back.
                Written::Refused => {}
                Written::Failed(error) => {
                    tracing::warn!(%partition, %error, "release not written: the lease lapses by its TTL");
                }
            }
        }
        Counters::add(&self.shared.counters.released, released);
        released
    }

    /// Takes each free partition: a create, or an update over a malformed value.
    async fn take(&self, partitions: Vec<(Partition, Free)>) {
        let shared = &self.shared;
        let mut leases = shared.leases.lock().await;
        if leases.closing {
            return;
        }
        let sent_at = Instant::now();
        let value = shared.me.to_value();
        let results = futures::stream::iter(partitions)
            .map(|(partition, free)| {
                let value: Bytes = value.clone();
                async move {
                    let key = partition_key(partition);
                    let written = match free {
                        Free::Empty => shared.bucket.create(&key, value).await,
                        Free::Malformed(revision) => {
                            shared.bucket.update(&key, value, revision).await
                        }
                    };
                    (partition, written)
                }
            })
            .buffer_unordered(MAX_WRITES_IN_FLIGHT)
            .collect::<Vec<_>>()
            .await;
        let mut acquired = Vec::new();
        for (partition, written) in results {
            match written {
                Written::At(revision) => {
                    leases.held.insert(partition, revision);
                    shared
                        .deadlines
                        .set(partition, sent_at + shared.timings.valid_for());
                    acquired.push(partition);
                }
                Written::Refused => {}
                Written::Failed(error) => {
                    tracing::warn!(%partition, %error, "taking a partition failed");
                }
            }
        }
        drop(leases);
        if !acquired.is_empty() {
            acquired.sort();
            Counters::add(&shared.counters.acquired, acquired.len());
            tracing::info!(count = acquired.len(), "partitions acquired");
            self.bounded_listener("acquired", shared.listener.acquired(&acquired))
                .await;
        }
    }

    /// The graceful stop: the listener first (the leases still renewed
    /// meanwhile), then every release and the instance key's delete.
    async fn release_everything(&self) {
        let shared = &self.shared;
        let owned = shared.owned_at(Instant::now());
        if !owned.is_empty() {
            self.bounded_listener("releasing", shared.listener.releasing(&owned))
                .await;
        }
        let mut leases = shared.leases.lock().await;
        leases.closing = true;
        let targets: Vec<(Partition, u64)> = std::mem::take(&mut leases.held).into_iter().collect();
        for (partition, _) in &targets {
            shared.deadlines.clear(*partition);
        }
        let released = self.delete_all(targets).await;
        let key = instance_key(&shared.me.instance);
        if let Written::Failed(error) = shared.bucket.delete(&key, None).await {
            tracing::warn!(%error, "instance key not deleted: it lapses by its TTL");
        }
        drop(leases);
        tracing::info!(released, "partition leases handed over");
        shared.stopped.send_replace(true);
    }

    /// Awaits a listener call for at most the handoff timeout.
    async fn bounded_listener(&self, call: &'static str, future: BoxFuture<'_, ()>) {
        let bound = self.shared.timings.handoff_timeout();
        if tokio::time::timeout(bound, future).await.is_err() {
            tracing::warn!(
                call,
                ?bound,
                "partition listener too slow: going on without it"
            );
        }
    }
}

/// Drops the leases whose deadline passed (they stopped counting already)
/// and returns them.
fn lapse_expired(shared: &Shared, leases: &mut Leases, now: Instant) -> Vec<Partition> {
    let lapsed: Vec<Partition> = leases
        .held
        .keys()
        .copied()
        .filter(|&partition| shared.deadlines.until(partition, now).is_none())
        .collect();
    for partition in &lapsed {
        leases.held.remove(partition);
        shared.deadlines.clear(*partition);
    }
    lapsed
}

/// Resolves once `receiver` holds true; never, if its sender is gone.
async fn wait_true(receiver: &mut watch::Receiver<bool>) {
    if receiver.wait_for(|value| *value).await.is_err() {
        std::future::pending::<()>().await;
    }
}

impl Service for LeaseManager {
    fn name(&self) -> &str {
        SERVICE_NAME
    }

    fn run(&self, context: ServiceContext) -> BoxFuture<'_, ()> {
        Box::pin(LeaseManager::run(self, context.stopping()))
    }
}

//! Lease managers as separate instances would run them: each on its own NATS
//! connection, with a listener that records what it was told and checks the
//! bucket while a release is pending.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock};

use actors::store::BoxFuture;
use async_nats::jetstream::{self, kv};
use loan_tracker::bus::Namespace;
use loan_tracker::cluster::{
    ClusterConfig, InstanceId, LEASE_BUCKET, LeaseManager, LeaseTimings, Ownership, Partition,
    PartitionListener,
};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// The test NATS, or `None` (and why) when the run has none.
pub fn nats_url() -> Option<String> {
    let url = std::env::var("TEST_NATS_URL").ok();
    if url.is_none() {
        eprintln!("TEST_NATS_URL not set: partition leases need NATS JetStream KV; skipped");
    }
    url
}

/// The KV key of partition `number` (the layout of `src/cluster/view.rs`).
pub fn partition_key(partition: Partition) -> String {
    format!("partition.{:03}", partition.number())
}

/// The lease bucket of `namespace`, opened on a connection of the test's own.
pub async fn bucket(url: &str, namespace: &str) -> kv::Store {
    let client = async_nats::connect(url).await.expect("test NATS reachable");
    jetstream::new(client)
        .get_key_value(Namespace::new(Some(namespace)).name(LEASE_BUCKET))
        .await
        .expect("the lease bucket exists once a manager connected")
}

/// The instance a stored value names, if it is a well-formed lease.
pub fn named_instance(value: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(value).ok()?;
    value.get("instance")?.as_str().map(str::to_owned)
}

/// The owner the bucket records for every partition (`None`: no value).
pub async fn recorded_owners(store: &kv::Store) -> BTreeMap<Partition, Option<String>> {
    let mut owners = BTreeMap::new();
    for partition in Partition::all() {
        let entry = store
            .entry(partition_key(partition))
            .await
            .expect("an entry read");
        let owner = entry
            .filter(|entry| entry.operation == kv::Operation::Put)
            .and_then(|entry| named_instance(&entry.value));
        owners.insert(partition, owner);
    }
    owners
}

/// One call of `releasing`, as the listener saw it.
#[derive(Debug, Clone)]
pub struct Release {
    /// The partitions it named.
    pub partitions: Vec<Partition>,
    /// Whether, during the callback, the bucket still named this instance
    /// for every one of them and the instance still owned them.
    pub still_held: bool,
}

/// Records what the manager told it.
#[derive(Default)]
pub struct Recorder {
    name: String,
    store: OnceLock<kv::Store>,
    ownership: OnceLock<Ownership>,
    releases: Mutex<Vec<Release>>,
    losses: Mutex<Vec<(Instant, Vec<Partition>)>>,
}

impl Recorder {
    pub fn releases(&self) -> Vec<Release> {
        self.releases.lock().unwrap().clone()
    }

    pub fn losses(&self) -> Vec<(Instant, Vec<Partition>)> {
        self.losses.lock().unwrap().clone()
    }

    async fn still_held(&self, partitions: &[Partition]) -> bool {
        let (Some(store), Some(ownership)) = (self.store.get(), self.ownership.get()) else {
            return false;
        };
        for &partition in partitions {
            let entry = store.entry(partition_key(partition)).await.ok().flatten();
            let named = entry.and_then(|entry| named_instance(&entry.value));
            if named.as_deref() != Some(self.name.as_str()) || !ownership.is_owned(partition) {
                return false;
            }
        }
        true
    }
}

impl PartitionListener for Recorder {
    fn releasing<'a>(&'a self, partitions: &'a [Partition]) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            // A loan tree passivating actors takes a moment.
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            let still_held = self.still_held(partitions).await;
            self.releases.lock().unwrap().push(Release {
                partitions: partitions.to_vec(),
                still_held,
            });
        })
    }

    fn lost<'a>(&'a self, partitions: &'a [Partition]) -> BoxFuture<'a, ()> {
        self.losses
            .lock()
            .unwrap()
            .push((Instant::now(), partitions.to_vec()));
        Box::pin(async {})
    }
}

/// One running lease manager.
pub struct Member {
    pub name: String,
    pub ownership: Ownership,
    pub recorder: Arc<Recorder>,
    task: JoinHandle<()>,
}

impl Member {
    /// Connects (its own NATS connection) and starts running.
    pub async fn join(url: &str, namespace: &str, name: &str, timings: LeaseTimings) -> Self {
        let (manager, recorder) = Self::manager(url, namespace, name, timings).await;
        Self::running(name, manager, recorder)
    }

    /// A connected manager that does not run yet.
    pub async fn manager(
        url: &str,
        namespace: &str,
        name: &str,
        timings: LeaseTimings,
    ) -> (LeaseManager, Arc<Recorder>) {
        let client = async_nats::connect(url).await.expect("test NATS reachable");
        let namespace_value = Namespace::new(Some(namespace));
        let id = InstanceId::parse(name).expect("a valid test instance id");
        let config = ClusterConfig::new(id, &namespace_value, timings);
        let recorder = Arc::new(Recorder {
            name: name.to_owned(),
            ..Recorder::default()
        });
        let listener: Arc<dyn PartitionListener> = recorder.clone();
        let manager = LeaseManager::connect(client, &namespace_value, config, listener)
            .await
            .expect("the manager connects and opens the bucket");
        let _ = recorder.ownership.set(manager.ownership());
        let _ = recorder.store.set(bucket(url, namespace).await);
        (manager, recorder)
    }

    /// Wraps a manager started by the test itself.
    pub fn running(name: &str, manager: LeaseManager, recorder: Arc<Recorder>) -> Self {
        let ownership = manager.ownership();
        let (_, stop) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(async move { manager.run(stop).await });
        Self {
            name: name.to_owned(),
            ownership,
            recorder,
            task,
        }
    }

    /// A crash: the loops stop mid-flight, nothing is released.
    pub fn crash(&self) {
        self.task.abort();
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Which member owns each partition (all of them, several if several claim it).
pub fn claims(members: &[&Member]) -> BTreeMap<Partition, Vec<String>> {
    let mut claims: BTreeMap<Partition, Vec<String>> = BTreeMap::new();
    for partition in Partition::all() {
        let owners = members
            .iter()
            .filter(|member| member.ownership.is_owned(partition))
            .map(|member| member.name.clone())
            .collect();
        claims.insert(partition, owners);
    }
    claims
}

/// True when every partition has exactly one owner among `members` and
/// each member holds its fair share (256 / n, rounded either way).
pub fn balanced(members: &[&Member]) -> bool {
    let count = members.len();
    let low = 256 / count;
    let high = low + usize::from(256 % count != 0);
    let one_owner_each = claims(members).values().all(|owners| owners.len() == 1);
    one_owner_each
        && members.iter().all(|member| {
            let owned = member.ownership.owned().len();
            (low..=high).contains(&owned)
        })
}

//! Several instances, one owner per partition (SPEC §8, issue 14): loans map
//! to [`PARTITION_COUNT`] partitions, and each partition is leased by one
//! instance through a NATS JetStream KV bucket.
//!
//! - `partition.rs`: [`partition_of`], stable across processes and versions.
//! - `instance.rs`: who an instance is ([`InstanceInfo`], the stored value).
//! - `timings.rs`: the TTL and the intervals ([`LeaseTimings`]).
//! - `assignment.rs`: the intended owner of each partition for a live set
//!   (balanced rendezvous hashing; the same on every instance).
//! - `view.rs`: the bucket as a watch shows it (owners, live instances).
//! - `kv.rs`: the bucket and the conditional writes, each bounded in time.
//! - `ownership.rs`: the [`Ownership`] handle the service reads, the local
//!   lease deadlines and the counters.
//! - `manager.rs`: [`LeaseManager`], the loops that heartbeat, renew, take
//!   and release, and the graceful stop.
//! - `forward.rs`: commands forwarded to a partition's owner over NATS
//!   request-reply, and the owner's per-partition subscriptions.
//! - `node.rs`: [`ClusterNode`], the glue: the ownership the loan tree asks,
//!   the handover order (stop answering, refuse, passivate, release).
//!
//! What must never happen: two instances treating one partition as theirs at
//! the same time. Writes are conditional (create only if absent, renew and
//! release only on the revision last written), and an instance stops
//! counting a partition as its own `ttl - valid_for` before the bucket could
//! drop its value, measured from when it *sent* its last successful write.

mod assignment;
pub mod forward;
mod instance;
mod kv;
mod manager;
mod node;
mod ownership;
mod partition;
mod timings;
mod view;

use actors::store::BoxFuture;
use thiserror::Error;

pub use assignment::{Assignment, MAX_INSTANCES};
pub use instance::{InstanceId, InstanceInfo, MAX_INSTANCE_ID_LEN};
pub use manager::{ClusterConfig, LeaseManager};
pub use node::{ClusterNode, OwnedLoans};
pub use ownership::{LeaseCounts, Ownership};
pub use partition::{PARTITION_COUNT, Partition, partition_of};
pub use timings::LeaseTimings;

/// The logical name of the lease bucket (namespaced on the server).
pub const LEASE_BUCKET: &str = "loan_partitions";

/// Failures of the ownership layer.
#[derive(Debug, Error)]
pub enum ClusterError {
    /// An instance id that cannot be part of a key or a subject.
    #[error("invalid instance id {0:?}: 1 to 64 of A-Z a-z 0-9 _ -")]
    InvalidInstanceId(String),
    /// Lease timings that contradict each other.
    #[error("invalid lease timings: {0}")]
    InvalidTimings(&'static str),
    /// The bucket could not be created or opened.
    #[error("lease bucket {bucket}: {cause}")]
    Bucket {
        /// Its name on the server.
        bucket: String,
        /// What the server or client said.
        cause: String,
    },
    /// A KV request failed or timed out.
    #[error("lease bucket request on {key}: {cause}")]
    Request {
        /// The key.
        key: String,
        /// What went wrong.
        cause: String,
    },
    /// The graceful stop did not finish in time (the leases then lapse).
    #[error("releasing the partitions did not finish within {0:?}")]
    ShutdownTimedOut(std::time::Duration),
}

/// What the rest of the service is told about partitions changing hands: the
/// seam through which the loan tree passivates the actors of a partition.
pub trait PartitionListener: Send + Sync + 'static {
    /// Before `partitions` are given up (to a joining instance, or at a
    /// graceful stop). They are still owned and renewed while the future
    /// runs; the release is written once it completes, or after the handoff
    /// timeout. Their actors should be passivated here.
    fn releasing<'a>(&'a self, partitions: &'a [Partition]) -> BoxFuture<'a, ()>;

    /// After `partitions` were lost (a renewal found another revision, or no
    /// renewal succeeded before the deadline). They already stopped counting
    /// as owned at that deadline, before anyone else could take them; this
    /// only says so after the fact.
    fn lost<'a>(&'a self, partitions: &'a [Partition]) -> BoxFuture<'a, ()>;

    /// After `partitions` were acquired.
    fn acquired<'a>(&'a self, partitions: &'a [Partition]) -> BoxFuture<'a, ()> {
        let _ = partitions;
        Box::pin(async {})
    }
}

/// A listener that does nothing (an instance with nothing to passivate).
#[derive(Debug, Default, Clone, Copy)]
pub struct NoListener;

impl PartitionListener for NoListener {
    fn releasing<'a>(&'a self, _partitions: &'a [Partition]) -> BoxFuture<'a, ()> {
        Box::pin(async {})
    }

    fn lost<'a>(&'a self, _partitions: &'a [Partition]) -> BoxFuture<'a, ()> {
        Box::pin(async {})
    }
}

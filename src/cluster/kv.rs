//! The lease bucket on the server and the writes the leases are made of,
//! each bounded by the request timeout and sorted into what the caller acts
//! on: written (at a revision), refused (someone else's revision is there),
//! or failed (nothing known: the server may or may not have it).

use std::future::Future;
use std::time::Duration;

use async_nats::jetstream::kv::{self, CreateErrorKind, UpdateErrorKind};
use async_nats::jetstream::{self, stream::StorageType};
use bytes::Bytes;

use super::{ClusterError, LEASE_BUCKET};
use crate::bus::Namespace;

/// Largest value the bucket accepts (an [`super::InstanceInfo`] is ~100 bytes).
const MAX_VALUE_BYTES: i32 = 1024;
/// Largest the bucket may grow: one small value per partition and per
/// instance, with room to spare.
const MAX_BUCKET_BYTES: i64 = 1024 * 1024;

/// The outcome of one conditional write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Written {
    /// Stored; the key's new revision (0 for a delete, whose marker's
    /// revision is not returned).
    At(u64),
    /// Refused: the key is not at the expected revision (or, for a create,
    /// exists).
    Refused,
    /// The request failed or timed out; the write may or may not be stored.
    Failed(String),
}

/// The lease bucket.
#[derive(Clone)]
pub(crate) struct LeaseBucket {
    store: kv::Store,
    timeout: Duration,
}

impl LeaseBucket {
    /// Creates the bucket, or updates it to these settings, with values
    /// living `ttl` after their last write.
    pub(crate) async fn open(
        client: async_nats::Client,
        namespace: &Namespace,
        ttl: Duration,
        timeout: Duration,
    ) -> Result<Self, ClusterError> {
        let bucket = namespace.name(LEASE_BUCKET);
        let mut context = jetstream::new(client);
        context.set_timeout(timeout);
        let config = kv::Config {
            bucket: bucket.clone(),
            description: "partition leases and instance heartbeats (src/cluster)".into(),
            history: 1,
            max_age: ttl,
            max_value_size: MAX_VALUE_BYTES,
            max_bytes: MAX_BUCKET_BYTES,
            storage: StorageType::File,
            ..Default::default()
        };
        // Stream management requests get a few request timeouts: start-up
        // can afford it, and the server may be busy creating the stream.
        let store = tokio::time::timeout(timeout * 4, context.create_or_update_key_value(config))
            .await
            .map_err(|_| ClusterError::Bucket {
                bucket: bucket.clone(),
                cause: format!("no answer within {:?}", timeout * 4),
            })?
            .map_err(|error| ClusterError::Bucket {
                bucket,
                cause: error.to_string(),
            })?;
        Ok(Self { store, timeout })
    }

    /// Writes `value` under `key` only if the key has no value.
    pub(crate) async fn create(&self, key: &str, value: Bytes) -> Written {
        match self.bounded(self.store.create(key, value)).await {
            Ok(Ok(revision)) => Written::At(revision),
            Ok(Err(error)) if error.kind() == CreateErrorKind::AlreadyExists => Written::Refused,
            Ok(Err(error)) => Written::Failed(error.to_string()),
            Err(elapsed) => Written::Failed(elapsed),
        }
    }

    /// Writes `value` under `key` only if the key is at `revision`.
    pub(crate) async fn update(&self, key: &str, value: Bytes, revision: u64) -> Written {
        match self.bounded(self.store.update(key, value, revision)).await {
            Ok(Ok(revision)) => Written::At(revision),
            Ok(Err(error)) if error.kind() == UpdateErrorKind::WrongLastRevision => {
                Written::Refused
            }
            Ok(Err(error)) => Written::Failed(error.to_string()),
            Err(elapsed) => Written::Failed(elapsed),
        }
    }

    /// Writes `value` under `key` whatever is there (the instance's own key).
    pub(crate) async fn put(&self, key: &str, value: Bytes) -> Written {
        match self.bounded(self.store.put(key, value)).await {
            Ok(Ok(revision)) => Written::At(revision),
            Ok(Err(error)) => Written::Failed(error.to_string()),
            Err(elapsed) => Written::Failed(elapsed),
        }
    }

    /// Deletes `key`, only if it is at `revision` when one is given.
    pub(crate) async fn delete(&self, key: &str, revision: Option<u64>) -> Written {
        match self
            .bounded(self.store.delete_expect_revision(key, revision))
            .await
        {
            Ok(Ok(())) => Written::At(0),
            Ok(Err(error)) if error.kind() == UpdateErrorKind::WrongLastRevision => {
                Written::Refused
            }
            Ok(Err(error)) => Written::Failed(error.to_string()),
            Err(elapsed) => Written::Failed(elapsed),
        }
    }

    /// A watch of every key: the current value of each, then every change.
    pub(crate) async fn watch(&self) -> Result<kv::Watch, String> {
        match self.bounded(self.store.watch_with_history(">")).await {
            Ok(Ok(watch)) => Ok(watch),
            Ok(Err(error)) => Err(error.to_string()),
            Err(elapsed) => Err(elapsed),
        }
    }

    async fn bounded<T>(&self, request: impl Future<Output = T>) -> Result<T, String> {
        tokio::time::timeout(self.timeout, request)
            .await
            .map_err(|_| format!("no answer within {:?}", self.timeout))
    }
}

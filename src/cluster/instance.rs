//! Who an instance is: its id (a setting, or generated at start) and the
//! subject it answers forwarded commands on. This pair is the value stored in
//! the lease bucket, under the instance's own key and under each partition
//! it holds.

use std::fmt;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::ClusterError;

/// Longest instance id: it is part of a KV key and of a subject.
pub const MAX_INSTANCE_ID_LEN: usize = 64;

/// An instance's id: 1 to [`MAX_INSTANCE_ID_LEN`] of `A-Z a-z 0-9 _ -`, so
/// that it is valid in a KV key and a NATS subject token as it is.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct InstanceId(String);

impl InstanceId {
    /// Checks `id` (see the type's documentation).
    pub fn parse(id: &str) -> Result<Self, ClusterError> {
        let valid_chars = id
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'-');
        if id.is_empty() || id.len() > MAX_INSTANCE_ID_LEN || !valid_chars {
            return Err(ClusterError::InvalidInstanceId(id.to_owned()));
        }
        Ok(Self(id.to_owned()))
    }

    /// A fresh random id, for an instance started without one.
    pub fn generate() -> Self {
        Self(Uuid::new_v4().simple().to_string())
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for InstanceId {
    type Error = ClusterError;

    fn try_from(id: String) -> Result<Self, Self::Error> {
        Self::parse(&id)
    }
}

impl From<InstanceId> for String {
    fn from(id: InstanceId) -> Self {
        id.0
    }
}

impl fmt::Display for InstanceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// An instance as the others see it: the JSON value under its instance key
/// and under every partition key it holds (`{"instance": …, "subject": …}`;
/// readers ignore members they do not know, so one can be added).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceInfo {
    /// Its id.
    pub instance: InstanceId,
    /// The NATS subject (already namespaced) it answers forwarded commands on.
    pub subject: String,
}

impl InstanceInfo {
    /// `instance`, answering on `subject`.
    pub fn new(instance: InstanceId, subject: String) -> Self {
        Self { instance, subject }
    }

    /// The JSON stored in the bucket.
    pub(crate) fn to_value(&self) -> bytes::Bytes {
        serde_json::to_vec(self)
            .expect("a struct of two strings always serializes")
            .into()
    }

    /// Reads a stored value; `None` (and a warning) for anything malformed.
    pub(crate) fn from_value(key: &str, value: &[u8]) -> Option<Self> {
        match serde_json::from_slice(value) {
            Ok(info) => Some(info),
            Err(error) => {
                tracing::warn!(%key, %error, "malformed value in the lease bucket: treated as no owner");
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_ids_are_checked() {
        assert!(InstanceId::parse("app-1_a").is_ok());
        assert!(InstanceId::generate().as_str().len() == 32);
        for bad in [
            "",
            "a.b",
            "a b",
            "a*",
            "ü",
            &"x".repeat(MAX_INSTANCE_ID_LEN + 1),
        ] {
            assert!(InstanceId::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn a_stored_value_round_trips_and_a_malformed_one_reads_as_none() {
        let info = InstanceInfo::new(InstanceId::parse("a1").unwrap(), "ns.cluster.a1".into());
        let value = info.to_value();
        assert_eq!(
            std::str::from_utf8(&value).unwrap(),
            r#"{"instance":"a1","subject":"ns.cluster.a1"}"#
        );
        assert_eq!(InstanceInfo::from_value("k", &value), Some(info));
        for bad in [
            &b"not json"[..],
            br#"{"instance":"a.b","subject":"s"}"#,
            b"",
            b"{}",
        ] {
            assert_eq!(InstanceInfo::from_value("k", bad), None);
        }
    }
}

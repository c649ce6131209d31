//! The stream and consumer definitions in `nats/`, compiled into the binary
//! so a deployment cannot run with definitions other than its code's.

use std::time::Duration;

use actors::bus::ConsumerSpec;
use serde::{Deserialize, Serialize};

/// Every stream the service owns, created or updated on start.
const STREAM_FILES: [(&str, &str); 2] = [
    (
        "nats/streams/LOAN_EVENTS.json",
        include_str!("../../nats/streams/LOAN_EVENTS.json"),
    ),
    (
        "nats/streams/LOAN_INBOUND.json",
        include_str!("../../nats/streams/LOAN_INBOUND.json"),
    ),
];

/// Every durable consumer the service runs.
const CONSUMER_FILES: [(&str, &str); 3] = [
    (
        "nats/consumers/audit.json",
        include_str!("../../nats/consumers/audit.json"),
    ),
    (
        "nats/consumers/notifications.json",
        include_str!("../../nats/consumers/notifications.json"),
    ),
    (
        "nats/consumers/inbound.json",
        include_str!("../../nats/consumers/inbound.json"),
    ),
];

/// Where a stream keeps its messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Storage {
    /// On disk: survives a server restart.
    File,
    /// In memory.
    Memory,
}

/// What happens when a stream is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Discard {
    /// Refuse new messages: the outbox keeps them until there is room.
    New,
    /// Drop the oldest.
    Old,
}

/// One stream, as written in `nats/streams/<NAME>.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamDefinition {
    /// Logical name (a namespace may be put in front).
    pub name: String,
    /// What the stream holds.
    pub description: String,
    /// Logical subjects it captures.
    pub subjects: Vec<String>,
    /// Where messages are kept.
    pub storage: Storage,
    /// Only `limits` is used: messages stay until a limit removes them.
    pub retention: String,
    /// Behaviour when full.
    pub discard: Discard,
    /// Oldest message kept.
    pub max_age_secs: u64,
    /// Most messages kept.
    pub max_msgs: i64,
    /// Largest message accepted.
    pub max_msg_size_bytes: i32,
    /// Window in which a repeated `Nats-Msg-Id` is dropped (at least 2 minutes).
    pub duplicate_window_secs: u64,
    /// Copies in a cluster.
    pub num_replicas: usize,
}

/// One durable consumer, as written in `nats/consumers/<name>.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsumerDefinition {
    /// Durable name (a namespace may be put in front).
    pub name: String,
    /// What it does with each message.
    pub description: String,
    /// The stream it reads.
    pub stream: String,
    /// Logical subjects it takes.
    pub filter_subject: String,
    /// Seconds a delivery stays leased without an in-progress ack.
    pub ack_wait_secs: u64,
    /// Deliveries before the server gives up (`None`: unlimited).
    #[serde(default)]
    pub max_deliver: Option<u32>,
    /// Deliveries pulled ahead and not yet settled.
    pub max_ack_pending: u32,
}

/// Shortest duplicate window the relay's retry logic relies on.
pub const MIN_DUPLICATE_WINDOW: Duration = Duration::from_secs(120);

/// The stream definitions, parsed and checked.
pub fn streams() -> Vec<StreamDefinition> {
    STREAM_FILES
        .iter()
        .map(|(path, text)| {
            let definition: StreamDefinition = serde_json::from_str(text)
                .unwrap_or_else(|error| panic!("{path} is not a valid stream definition: {error}"));
            assert!(
                Duration::from_secs(definition.duplicate_window_secs) >= MIN_DUPLICATE_WINDOW,
                "{path}: duplicate window below {MIN_DUPLICATE_WINDOW:?}"
            );
            assert!(
                definition.duplicate_window_secs <= definition.max_age_secs,
                "{path}: duplicate window longer than max age"
            );
            assert_eq!(definition.retention, "limits", "{path}: retention");
            definition
        })
        .collect()
}

/// Every consumer definition, parsed and checked.
pub fn consumers() -> Vec<ConsumerDefinition> {
    CONSUMER_FILES
        .iter()
        .map(|(path, text)| {
            let definition: ConsumerDefinition =
                serde_json::from_str(text).unwrap_or_else(|error| {
                    panic!("{path} is not a valid consumer definition: {error}")
                });
            assert!(!definition.description.is_empty(), "{path}: description");
            definition
        })
        .collect()
}

/// The consumer named `name` (a programming error if there is none).
pub fn consumer(name: &str) -> ConsumerSpec {
    consumers()
        .into_iter()
        .find(|definition| definition.name == name)
        .map(|definition| ConsumerSpec {
            name: definition.name,
            stream: definition.stream,
            filter_subject: definition.filter_subject,
            ack_wait: Duration::from_secs(definition.ack_wait_secs),
            max_deliver: definition.max_deliver,
            max_ack_pending: definition.max_ack_pending,
        })
        .unwrap_or_else(|| panic!("no consumer definition named {name:?} in nats/consumers"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_definition_parses_and_states_its_limits() {
        let streams = streams();
        assert!(streams.iter().any(|stream| stream.name == "LOAN_EVENTS"));
        assert!(
            streams
                .iter()
                .all(|stream| stream.storage == Storage::File && stream.max_msgs > 0)
        );
        let audit = consumer("audit");
        assert!(
            streams.iter().any(|stream| stream.name == audit.stream
                && stream.subjects.contains(&audit.filter_subject))
        );
    }
}

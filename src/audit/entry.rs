//! An audit entry and its place in the hash chain.

use chrono::{DateTime, SubsecRound, Utc};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::events::{Envelope, Untyped};

/// `prev_hash` of the first entry.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";
/// The actor of events no user caused (jobs, inbound payments, failed logins).
pub const SYSTEM_ACTOR: &str = "system";

/// What the audit consumer records for one event, before it is chained.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEntry {
    /// The event's id: one entry per event.
    pub event_id: Uuid,
    /// User id of whoever caused it, or [`SYSTEM_ACTOR`].
    pub actor: String,
    /// The event type (`loan.approved`).
    pub action: String,
    /// `loan` or `user`.
    pub entity: &'static str,
    /// The loan or user id.
    pub entity_id: Option<Uuid>,
    /// When the event happened (microsecond precision, as stored).
    pub occurred_at: DateTime<Utc>,
    /// The event's `data`.
    pub detail: Value,
}

/// An event that cannot be audited because it is not a SPEC §5 envelope.
#[derive(Debug, thiserror::Error)]
#[error("not an event envelope: {0}")]
pub struct MalformedEvent(String);

/// Who caused an event, where its `data` names them: the `changed_by` of
/// the account events an admin makes, or an `actor_id`.
#[derive(Debug, Default, Deserialize)]
struct NamedActor {
    #[serde(default)]
    actor_id: Option<Uuid>,
    #[serde(default)]
    changed_by: Option<Uuid>,
}

impl NewEntry {
    /// Reads an event envelope of any type (the audit records every event,
    /// its `data` as sent). The actor is the envelope's `actor_id`, else
    /// `data.actor_id` or `data.changed_by`, else the user who registered
    /// (for `user.registered`), else `system`.
    pub fn from_event(payload: &[u8]) -> Result<Self, MalformedEvent> {
        let envelope: Envelope<Untyped> =
            serde_json::from_slice(payload).map_err(|error| MalformedEvent(error.to_string()))?;
        if envelope.payload.event_type.is_empty() {
            return Err(MalformedEvent("empty type".into()));
        }
        // A `data` without (well-formed) names names nobody.
        let named = NamedActor::deserialize(&envelope.payload.data).unwrap_or_default();
        let actor = envelope
            .actor_id
            .flatten()
            .or(named.actor_id)
            .or(named.changed_by)
            .or(if envelope.payload.event_type == "user.registered" {
                envelope.user_id
            } else {
                None
            })
            .map_or_else(|| SYSTEM_ACTOR.to_owned(), |id| id.to_string());
        let (entity, entity_id) = match envelope.loan_id {
            Some(loan_id) => ("loan", Some(loan_id)),
            None => ("user", envelope.user_id),
        };
        Ok(Self {
            event_id: envelope.event_id,
            actor,
            action: envelope.payload.event_type,
            entity,
            entity_id,
            occurred_at: envelope.occurred_at.trunc_subsecs(6),
            detail: envelope.payload.data,
        })
    }
}

/// A recorded entry.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEntry {
    /// Position in the chain, from 1, without gaps.
    pub seq: i64,
    /// The entry's id (the pagination cursor).
    pub id: Uuid,
    /// The event recorded.
    pub event_id: Uuid,
    /// User id or `system`.
    pub actor: String,
    /// Event type.
    pub action: String,
    /// `loan` or `user`.
    pub entity: String,
    /// The loan or user id.
    pub entity_id: Option<Uuid>,
    /// When the event happened.
    pub occurred_at: DateTime<Utc>,
    /// When the entry was written.
    pub recorded_at: DateTime<Utc>,
    /// The event's data.
    pub detail: Value,
    /// Hash of the previous entry.
    pub prev_hash: String,
    /// This entry's hash.
    pub hash: String,
}

impl AuditEntry {
    /// The hash this entry must carry given its content and `prev_hash`:
    /// hex `sha256(prev_hash ‖ canonical JSON)`, where the canonical JSON has
    /// every object's keys sorted, no whitespace, and timestamps in RFC 3339
    /// UTC with microseconds.
    pub fn expected_hash(&self) -> String {
        let canonical = json!({
            "seq": self.seq,
            "id": self.id,
            "event_id": self.event_id,
            "actor": self.actor,
            "action": self.action,
            "entity": self.entity,
            "entity_id": self.entity_id,
            "occurred_at": timestamp(self.occurred_at),
            "recorded_at": timestamp(self.recorded_at),
            "detail": self.detail,
        });
        let mut hasher = Sha256::new();
        hasher.update(self.prev_hash.as_bytes());
        hasher.update(canonical_json(&canonical).as_bytes());
        hex(&hasher.finalize())
    }
}

fn timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// JSON text with object keys sorted at every depth and no whitespace.
pub fn canonical_json(value: &Value) -> String {
    fn sorted(value: &Value) -> Value {
        match value {
            Value::Object(map) => {
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort();
                let mut out = Map::new();
                for key in keys {
                    out.insert(key.clone(), sorted(&map[key]));
                }
                Value::Object(out)
            }
            Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
            other => other.clone(),
        }
    }
    sorted(value).to_string()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> AuditEntry {
        AuditEntry {
            seq: 1,
            id: Uuid::from_u128(7),
            event_id: Uuid::from_u128(8),
            actor: SYSTEM_ACTOR.into(),
            action: "loan.approved".into(),
            entity: "loan".into(),
            entity_id: Some(Uuid::from_u128(9)),
            occurred_at: DateTime::from_timestamp(1_700_000_000, 123_000).unwrap(),
            recorded_at: DateTime::from_timestamp(1_700_000_001, 0).unwrap(),
            detail: json!({"b": 1, "a": {"y": "2", "x": [3]}}),
            prev_hash: GENESIS_HASH.into(),
            hash: String::new(),
        }
    }

    #[test]
    fn the_hash_ignores_key_order_but_not_content_or_the_previous_hash() {
        let original = entry();
        let mut reordered = entry();
        reordered.detail = json!({"a": {"x": [3], "y": "2"}, "b": 1});
        assert_eq!(original.expected_hash(), reordered.expected_hash());
        let mut changed = entry();
        changed.detail = json!({"b": 2, "a": {"y": "2", "x": [3]}});
        assert_ne!(original.expected_hash(), changed.expected_hash());
        let mut relinked = entry();
        relinked.prev_hash = "f".repeat(64);
        assert_ne!(original.expected_hash(), relinked.expected_hash());
    }

    #[test]
    fn the_actor_is_whoever_the_event_names_else_system() {
        let user = Uuid::from_u128(5);
        let admin = Uuid::from_u128(6);
        let event = |kind: &str, data: Value| {
            serde_json::to_vec(
                &json!({"event_id": Uuid::from_u128(1), "type": kind, "loan_id": null,
                "user_id": user, "occurred_at": "2026-01-02T03:04:05.678Z", "data": data}),
            )
            .unwrap()
        };
        let registered = NewEntry::from_event(&event("user.registered", json!({}))).unwrap();
        assert_eq!(
            (registered.actor, registered.entity, registered.entity_id),
            (user.to_string(), "user", Some(user))
        );
        let promoted =
            NewEntry::from_event(&event("user.role_changed", json!({"changed_by": admin})))
                .unwrap();
        assert_eq!(promoted.actor, admin.to_string());
        let failed = NewEntry::from_event(&event("user.login_failed", json!({}))).unwrap();
        assert_eq!(failed.actor, SYSTEM_ACTOR);
        assert!(NewEntry::from_event(b"{not json").is_err());
    }
}

//! The JSON Schema (draft-07, self-contained) of every message the service
//! publishes or accepts, generated from the event types: one per event type
//! (the envelope with that `type` and its `data`), one per inbound message.
//!
//! Every member of an event's `data` is listed as required, since the
//! producers always send every member (`null` where the type says so);
//! the Rust types may still accept a message without a member no consumer
//! needs.

use schemars::generate::SchemaSettings;
use schemars::{JsonSchema, Schema};
use serde_json::{Map, Value, json};

use super::account::AccountEvent;
use super::envelope::Payload;
use super::inbound::{DeadLetterMessage, InboundPayment};
use super::job::JobEvent;
use super::loan::LoanEvent;

/// The dialect of every schema here.
pub const SCHEMA_DIALECT: &str = "http://json-schema.org/draft-07/schema#";

/// One event type's schema, with what the document says about it.
#[derive(Debug, Clone)]
pub struct EventSchema {
    /// The event type, e.g. `payment.received`.
    pub event_type: &'static str,
    /// The family's name: `loan`, `account` or `job`.
    pub family: &'static str,
    /// One line on what happened (the variant's doc comment).
    pub summary: String,
    /// The schema of the whole message.
    pub schema: Value,
}

/// The schema of every event type, in the contract's order (loan, account, job).
pub fn event_schemas() -> Vec<EventSchema> {
    let mut schemas = family::<LoanEvent>("loan", true);
    schemas.extend(family::<AccountEvent>("account", false));
    schemas.extend(family::<JobEvent>("job", false));
    schemas
}

/// The schema of the message on `loans.inbound.payments`.
pub fn inbound_payment_schema() -> Value {
    standalone::<InboundPayment>()
}

/// The schema of the summary on `ops.metrics`.
pub fn ops_summary_schema() -> Value {
    standalone::<super::ops::OpsSummary>()
}

/// The schema of the message on `loans.inbound.dead`.
pub fn dead_letter_schema() -> Value {
    let mut schema = standalone::<DeadLetterMessage>();
    require_every_property(&mut schema);
    schema
}

/// Every event type of family `P`, each wrapped in the envelope; loan
/// events carry `actor_id`, the others do not.
fn family<P: Payload + JsonSchema>(name: &'static str, with_actor: bool) -> Vec<EventSchema> {
    let generated = standalone::<P>();
    let variants = generated["oneOf"].as_array().cloned().unwrap_or_default();
    let schemas: Vec<EventSchema> = variants
        .iter()
        .filter_map(|variant| {
            let event_type = P::TYPES
                .iter()
                .find(|known| variant["properties"]["type"]["const"] == **known)?;
            let summary = variant["description"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            let mut data = variant["properties"]["data"].clone();
            require_every_property(&mut data);
            Some(EventSchema {
                event_type,
                family: name,
                schema: envelope_schema(event_type, &summary, data, with_actor),
                summary,
            })
        })
        .collect();
    assert_eq!(
        schemas.len(),
        P::TYPES.len(),
        "every event type of the {name} family has its schema"
    );
    schemas
}

/// The SPEC §5 envelope of `event_type` around `data`.
fn envelope_schema(event_type: &str, summary: &str, data: Value, with_actor: bool) -> Value {
    let nullable_uuid = json!({"type": ["string", "null"], "format": "uuid"});
    let mut properties = Map::new();
    properties.insert(
        "event_id".into(),
        json!({"type": "string", "format": "uuid", "description": "Unique id; also the Nats-Msg-Id header and the consumers' idempotency key."}),
    );
    properties.insert(
        "type".into(),
        json!({"type": "string", "const": event_type}),
    );
    properties.insert("loan_id".into(), nullable_uuid.clone());
    properties.insert("user_id".into(), nullable_uuid.clone());
    properties.insert(
        "occurred_at".into(),
        json!({"type": "string", "format": "date-time", "description": "RFC 3339, UTC, milliseconds."}),
    );
    if with_actor {
        let mut actor = nullable_uuid;
        actor["description"] =
            json!("The user who caused it; null: the system (a job, an inbound payment).");
        properties.insert("actor_id".into(), actor);
    }
    properties.insert("data".into(), data);
    let required: Vec<Value> = properties.keys().map(|key| json!(key)).collect();
    json!({
        "$schema": SCHEMA_DIALECT,
        "title": event_type,
        "description": summary,
        "type": "object",
        "properties": properties,
        "required": required,
    })
}

/// `T`'s schema with every subschema inline (no `$ref`), so it stands alone.
fn standalone<T: JsonSchema>() -> Value {
    let mut settings = SchemaSettings::draft07();
    settings.inline_subschemas = true;
    let schema: Schema = settings.into_generator().into_root_schema_for::<T>();
    schema.to_value()
}

/// Marks every listed property required, at every depth.
fn require_every_property(schema: &mut Value) {
    match schema {
        Value::Object(object) => {
            if let Some(Value::Object(properties)) = object.get("properties") {
                let required: Vec<Value> = properties.keys().map(|key| json!(key)).collect();
                object.insert("required".into(), Value::Array(required));
            }
            for value in object.values_mut() {
                require_every_property(value);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(require_every_property),
        _ => {}
    }
}

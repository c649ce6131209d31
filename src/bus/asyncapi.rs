//! The AsyncAPI 3.0 document of the bus (`GET /asyncapi.json`, `loan-tracker
//! asyncapi`): every stream and subject (channels), every message with the
//! JSON Schema generated from its type, every producer and durable consumer
//! (operations). Built from the same definitions the service runs with:
//! `nats/streams`, `nats/consumers` and the event types of `events`.
//!
//! Names are the logical ones; with `NATS_NAMESPACE=ns` a deployment puts
//! `ns_` before streams and consumers and `ns.` before subjects.

use serde_json::{Map, Value, json};

use super::definitions::{self, ConsumerDefinition, StreamDefinition};
use crate::events::EVENT_SUBJECT_PREFIX;
use crate::events::inbound::{DEAD_LETTER_SUBJECT, INBOUND_PAYMENT_SUBJECT};
use crate::events::ops::OPS_METRICS_SUBJECT;
use crate::events::schema::{self, EventSchema};

/// The AsyncAPI version the document follows.
pub const ASYNCAPI_VERSION: &str = "3.0.0";
/// Channel of every outgoing event, `loans.events.{type}`.
const EVENTS_CHANNEL: &str = "loanEvents";
/// Channel of inbound payments.
const INBOUND_CHANNEL: &str = "inboundPayments";
/// Channel of dead letters.
const DEAD_CHANNEL: &str = "inboundDeadLetters";
/// Channel of the operators' summary (plain NATS, no stream).
const OPS_CHANNEL: &str = "opsMetrics";
/// Message (and schema) names of the inbound messages and the summary.
const INBOUND_MESSAGE: &str = "InboundPayment";
const DEAD_MESSAGE: &str = "DeadLetter";
const OPS_MESSAGE: &str = "OpsSummary";
/// Version of the NATS bindings used.
const NATS_BINDING_VERSION: &str = "0.1.0";

/// One channel: its id, its address, the subject filter a consumer of all
/// of it uses, and its messages.
struct Channel {
    id: &'static str,
    address: String,
    filter: String,
    description: &'static str,
    messages: Vec<String>,
}

/// The whole document.
pub fn document() -> Value {
    let events = schema::event_schemas();
    let streams = definitions::streams();
    let channels = channels(&events);
    let mut schemas = Map::new();
    let mut messages = Map::new();
    for event in &events {
        let mut payload = event.schema.clone();
        strip_dialect(&mut payload);
        schemas.insert(event.event_type.into(), payload);
        messages.insert(event.event_type.into(), event_message(event));
    }
    let mut inbound = schema::inbound_payment_schema();
    strip_dialect(&mut inbound);
    schemas.insert(INBOUND_MESSAGE.into(), inbound);
    messages.insert(INBOUND_MESSAGE.into(), inbound_message());
    let mut dead = schema::dead_letter_schema();
    strip_dialect(&mut dead);
    schemas.insert(DEAD_MESSAGE.into(), dead);
    messages.insert(DEAD_MESSAGE.into(), dead_message());
    let mut ops = schema::ops_summary_schema();
    strip_dialect(&mut ops);
    schemas.insert(OPS_MESSAGE.into(), ops);
    messages.insert(OPS_MESSAGE.into(), ops_message());
    json!({
        "asyncapi": ASYNCAPI_VERSION,
        "id": "urn:loan-tracker:bus",
        "info": {
            "title": "loan-tracker bus",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "The events loan-tracker publishes (one JSON envelope per event, SPEC §5) and the payments it accepts from banks and gateways, on NATS JetStream. Every event is written to an outbox in the transaction of its change and published by a relay with `Nats-Msg-Id` = `event_id`; consumers are idempotent by `event_id`. Stream and consumer settings are in `x-nats-stream` and `x-nats-consumer`. With NATS_NAMESPACE=ns, streams and consumers are named `ns_<name>` and subjects `ns.<subject>`.",
        },
        "defaultContentType": "application/json",
        "servers": {
            "nats": {
                "host": "localhost:4222",
                "protocol": "nats",
                "description": "The deployment's NATS server with JetStream (NATS_URL).",
            }
        },
        "channels": channels_object(&channels, &streams),
        "operations": operations(&channels),
        "components": {
            "schemas": schemas,
            "messages": messages,
        },
    })
}

/// The event types of every outgoing event, in the contract's order.
pub fn event_types() -> Vec<&'static str> {
    schema::event_schemas()
        .iter()
        .map(|event| event.event_type)
        .collect()
}

fn channels(events: &[EventSchema]) -> Vec<Channel> {
    vec![
        Channel {
            id: EVENTS_CHANNEL,
            address: format!("{EVENT_SUBJECT_PREFIX}{{type}}"),
            filter: format!("{EVENT_SUBJECT_PREFIX}>"),
            description: "Every domain event, on the subject of its type.",
            messages: events
                .iter()
                .map(|event| event.event_type.to_owned())
                .collect(),
        },
        Channel {
            id: INBOUND_CHANNEL,
            address: INBOUND_PAYMENT_SUBJECT.into(),
            filter: INBOUND_PAYMENT_SUBJECT.into(),
            description: "Payments reported by banks and gateways; applied exactly once per external_ref.",
            messages: vec![INBOUND_MESSAGE.into()],
        },
        Channel {
            id: DEAD_CHANNEL,
            address: DEAD_LETTER_SUBJECT.into(),
            filter: DEAD_LETTER_SUBJECT.into(),
            description: "Inbound payments that can never apply, with the reason.",
            messages: vec![DEAD_MESSAGE.into()],
        },
        Channel {
            id: OPS_CHANNEL,
            address: OPS_METRICS_SUBJECT.into(),
            filter: OPS_METRICS_SUBJECT.into(),
            description: "The operators' summary of one instance, every OPS_METRICS_INTERVAL_SECS (plain NATS publish, kept by no stream; NATS deployments only).",
            messages: vec![OPS_MESSAGE.into()],
        },
    ]
}

fn channels_object(channels: &[Channel], streams: &[StreamDefinition]) -> Value {
    let mut object = Map::new();
    for channel in channels {
        let stream = streams
            .iter()
            .find(|stream| stream.subjects.contains(&channel.filter));
        let messages: Map<String, Value> = channel
            .messages
            .iter()
            .map(|name| (name.clone(), reference("components/messages", name)))
            .collect();
        let mut entry = json!({
            "address": channel.address,
            "title": channel.filter,
            "description": channel.description,
            "messages": messages,
        });
        match stream {
            Some(stream) => entry["x-nats-stream"] = json!(stream),
            None => entry["x-nats-core"] = json!(true),
        }
        if channel.id == EVENTS_CHANNEL {
            entry["parameters"] = json!({
                "type": {
                    "description": "The event type.",
                    "enum": channel.messages,
                }
            });
        }
        object.insert(channel.id.into(), entry);
    }
    Value::Object(object)
}

/// The relay and the inbound consumer send; the durable consumers receive.
fn operations(channels: &[Channel]) -> Value {
    let mut object = Map::new();
    let events = &channels[0];
    object.insert(
        "publishEvents".into(),
        operation(
            "send",
            events,
            "The outbox relay publishes every committed event, in commit order per loan (or user, or job run), waiting for the stream's ack.",
        ),
    );
    let dead = channels
        .iter()
        .find(|channel| channel.id == DEAD_CHANNEL)
        .expect("the dead-letter channel");
    object.insert(
        "publishDeadLetters".into(),
        operation(
            "send",
            dead,
            "The inbound-payments consumer copies each message that can never apply here.",
        ),
    );
    let ops = channels
        .iter()
        .find(|channel| channel.id == OPS_CHANNEL)
        .expect("the ops channel");
    object.insert(
        "publishOpsSummary".into(),
        operation(
            "send",
            ops,
            "Each instance on NATS publishes its summary; nothing stores it, so only current subscribers see it.",
        ),
    );
    for consumer in definitions::consumers() {
        let channel = channels
            .iter()
            .find(|channel| channel.filter == consumer.filter_subject)
            .unwrap_or_else(|| panic!("no channel for consumer {}", consumer.name));
        object.insert(
            consumer.name.clone(),
            consumer_operation(&consumer, channel),
        );
    }
    Value::Object(object)
}

fn operation(action: &str, channel: &Channel, description: &str) -> Value {
    let messages: Vec<Value> = channel
        .messages
        .iter()
        .map(|name| reference(&format!("channels/{}/messages", channel.id), name))
        .collect();
    json!({
        "action": action,
        "channel": reference("channels", channel.id),
        "description": description,
        "messages": messages,
    })
}

fn consumer_operation(consumer: &ConsumerDefinition, channel: &Channel) -> Value {
    let mut entry = operation("receive", channel, &consumer.description);
    entry["summary"] = json!(format!("Durable consumer `{}`", consumer.name));
    entry["bindings"] = json!({
        "nats": {"queue": consumer.name, "bindingVersion": NATS_BINDING_VERSION}
    });
    entry["x-nats-consumer"] = json!(consumer);
    entry
}

fn event_message(event: &EventSchema) -> Value {
    json!({
        "name": event.event_type,
        "title": event.event_type,
        "summary": event.summary,
        "contentType": "application/json",
        "headers": message_id_header("The event's event_id: the stream drops a repeat within its duplicate window."),
        "payload": reference("components/schemas", event.event_type),
        "x-family": event.family,
    })
}

fn inbound_message() -> Value {
    json!({
        "name": INBOUND_MESSAGE,
        "title": "Inbound payment",
        "summary": "A payment a bank or gateway received for a loan.",
        "contentType": "application/json",
        "headers": message_id_header("Optional: a repeat within the stream's duplicate window is dropped. A redelivery is harmless anyway: a payment applies once per external_ref."),
        "payload": reference("components/schemas", INBOUND_MESSAGE),
    })
}

fn dead_message() -> Value {
    json!({
        "name": DEAD_MESSAGE,
        "title": "Dead letter",
        "summary": "An inbound payment that can never apply, and why.",
        "contentType": "application/json",
        "headers": message_id_header("`dead-` and the SHA-256 of the message: one dead letter per distinct message."),
        "payload": reference("components/schemas", DEAD_MESSAGE),
    })
}

fn ops_message() -> Value {
    json!({
        "name": OPS_MESSAGE,
        "title": "Operators' summary",
        "summary": "One instance's loan actor counters, outbox backlog and event flow.",
        "contentType": "application/json",
        "payload": reference("components/schemas", OPS_MESSAGE),
    })
}

fn message_id_header(description: &str) -> Value {
    json!({
        "type": "object",
        "properties": {
            "Nats-Msg-Id": {"type": "string", "description": description}
        }
    })
}

/// `{"$ref": "#/<section>/<name>"}`, with `name` escaped as a JSON pointer.
fn reference(section: &str, name: &str) -> Value {
    let escaped = name.replace('~', "~0").replace('/', "~1");
    json!({ "$ref": format!("#/{section}/{escaped}") })
}

/// An embedded schema takes the document's dialect (AsyncAPI's superset of draft-07).
fn strip_dialect(schema: &mut Value) {
    if let Some(object) = schema.as_object_mut() {
        object.remove("$schema");
    }
}

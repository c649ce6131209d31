//! The SPEC §5 envelope every event travels in, generic over its payload
//! (`type` + `data`, a family of events tagged by `type`).

use chrono::{DateTime, SubsecRound, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;
use uuid::Uuid;

use super::outbox::OutboxEvent;

/// Subject prefix of outgoing events on the `LOAN_EVENTS` stream.
pub const EVENT_SUBJECT_PREFIX: &str = "loans.events.";

/// A family of events (`LoanEvent`, `AccountEvent`, `JobEvent`): an enum
/// serialized as `{"type": …, "data": …}`, each variant one event type.
pub trait Payload: Serialize {
    /// Every event type of the family, in the order the contract lists them.
    const TYPES: &'static [&'static str];

    /// This event's type, e.g. `payment.received`.
    fn event_type(&self) -> &'static str;
}

/// One published event: SPEC §5 fields around a typed payload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope<P> {
    /// Unique id; also the `Nats-Msg-Id` and the consumers' idempotency key.
    pub event_id: Uuid,
    /// `type` and `data`.
    #[serde(flatten)]
    pub payload: P,
    /// The loan it is about (`null` for account and job events).
    pub loan_id: Option<Uuid>,
    /// The borrower of the loan, or the user an account event is about.
    pub user_id: Option<Uuid>,
    /// When the change happened; sent as RFC 3339 UTC with milliseconds
    /// (the producers keep it to the millisecond: see [`to_the_millisecond`];
    /// a reader keeps whatever precision a message has).
    #[serde(serialize_with = "millis")]
    pub occurred_at: DateTime<Utc>,
    /// Who caused it, on loan events only: `None` — not stated (the member
    /// is absent); `Some(None)` — the system (a job, an inbound payment);
    /// `Some(Some(user))` — that user.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "stated"
    )]
    pub actor_id: Option<Option<Uuid>>,
}

impl<P: Payload> Envelope<P> {
    /// The subject it is published on: `loans.events.<type>`.
    pub fn subject(&self) -> String {
        format!("{EVENT_SUBJECT_PREFIX}{}", self.payload.event_type())
    }

    /// The outbox row that publishes it, created at `occurred_at`, ordered
    /// with the other events of its loan, else its user, else alone.
    pub fn to_outbox(&self) -> OutboxEvent {
        OutboxEvent {
            event_id: self.event_id,
            subject: self.subject(),
            aggregate_id: self.loan_id.or(self.user_id).unwrap_or(self.event_id),
            // A `Value` keeps its members sorted: the bytes published are
            // the same whatever the order of the fields above.
            payload: serde_json::to_value(self).expect("an event serializes to JSON"),
            created_at: self.occurred_at,
        }
    }
}

/// An event of a type the reader need not know: the envelope checked, the
/// `data` kept as sent. The audit records any event this way; the
/// notifications read `type` first and parse only the families they render.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Untyped {
    /// The event type, e.g. `loan.approved`.
    #[serde(rename = "type")]
    pub event_type: String,
    /// The event's `data`, as sent (`null` when absent).
    #[serde(default)]
    pub data: Value,
}

impl Untyped {
    /// The payload as an event of family `P`: `None` when its type is not
    /// one of `P`'s, else the typed event or why its `data` does not fit.
    pub fn parse<P>(&self) -> Option<Result<P, serde_json::Error>>
    where
        P: Payload + for<'de> Deserialize<'de>,
    {
        if !P::TYPES.contains(&self.event_type.as_str()) {
            return None;
        }
        let tagged = serde_json::json!({ "type": self.event_type, "data": self.data });
        Some(P::deserialize(&tagged))
    }
}

/// `at` as an event's `occurred_at` holds it: the wire carries milliseconds,
/// so an event reads back equal to the one written.
pub fn to_the_millisecond(at: DateTime<Utc>) -> DateTime<Utc> {
    at.trunc_subsecs(3)
}

/// `occurred_at` as the wire has always carried it: `2026-01-02T03:04:05.678Z`.
fn millis<S: Serializer>(at: &DateTime<Utc>, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
}

/// A member that is present, `null` or not, is `Some` (absent is the `default`).
fn stated<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Option<Uuid>>, D::Error> {
    Option::<Uuid>::deserialize(deserializer).map(Some)
}

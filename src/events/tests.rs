//! Each event type, serialized: the JSON it has always had on the wire,
//! read back equal, and valid against its published schema.

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use uuid::Uuid;

use super::account::{AccountEvent, LoginFailed, RoleChanged, UserDeactivated, UserRegistered};
use super::envelope::{Envelope, Payload, Untyped};
use super::inbound::{DeadLetterMessage, InboundPayment};
use super::job::{JobEvent, JobRun};
use super::loan::*;
use super::schema;

const EVENT: Uuid = Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0001);
const LOAN: Uuid = Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0002);
const USER: Uuid = Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0003);
const ADMIN: Uuid = Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0004);
const PAYMENT: Uuid = Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0005);

fn at() -> DateTime<Utc> {
    "2026-03-04T05:06:07.089Z".parse().unwrap()
}

fn day(text: &str) -> NaiveDate {
    text.parse().unwrap()
}

fn loan_envelope(event: LoanEvent, actor: Option<Uuid>) -> Envelope<LoanEvent> {
    Envelope {
        event_id: EVENT,
        payload: event,
        loan_id: Some(LOAN),
        user_id: Some(USER),
        occurred_at: at(),
        actor_id: Some(actor),
    }
}

/// The loan envelope's members around `type` and `data`, as `json!` built them.
fn loan_json(event_type: &str, actor: Option<Uuid>, data: Value) -> Value {
    json!({
        "event_id": EVENT, "type": event_type, "loan_id": LOAN, "user_id": USER,
        "occurred_at": "2026-03-04T05:06:07.089Z", "data": data, "actor_id": actor,
    })
}

fn account_json(event_type: &str, user: Option<Uuid>, data: Value) -> Value {
    json!({
        "event_id": EVENT, "type": event_type, "loan_id": null, "user_id": user,
        "occurred_at": "2026-03-04T05:06:07.089Z", "data": data,
    })
}

fn loan_samples() -> Vec<(Envelope<LoanEvent>, Value)> {
    let applied = LoanApplied {
        principal: "1000.00".into(),
        currency: "USD".into(),
        annual_interest_rate: "6".into(),
        term_months: 12,
        repayment_frequency: "monthly".into(),
        day_count: "30/360".into(),
        repayment_method: "annuity".into(),
        late_fee_rate: "5".into(),
        grace_days: 5,
        first_due_date: None,
        purpose: Some("car".into()),
        applied_on: day("2026-03-04"),
    };
    let approved = LoanApproved {
        principal: "1000.00".into(),
        currency: "USD".into(),
        disbursed_on: day("2026-03-05"),
        installment_count: 12,
        first_due_date: Some(day("2026-04-05")),
        last_due_date: Some(day("2027-03-05")),
        total_interest: "32.80".into(),
    };
    let received = PaymentReceived {
        payment_id: Some(PAYMENT),
        amount: "125.50".into(),
        currency: "USD".into(),
        paid_on: day("2026-04-01"),
        reference: None,
        note: Some("late cheque".into()),
        allocation: AllocationTotals {
            fee: "0.00".into(),
            interest: "5.00".into(),
            principal: "120.50".into(),
            interest_waived: Some("0.00".into()),
        },
        reallocated_payment_ids: vec![],
    };
    let reversed = PaymentReversed {
        payment_id: PAYMENT,
        amount: Some("125.50".into()),
        currency: "USD".into(),
        paid_on: Some(day("2026-04-01")),
        reversed_on: day("2026-04-02"),
        reallocated_payment_ids: vec![ADMIN],
    };
    let fee = LateFeeApplied {
        as_of: day("2026-04-20"),
        currency: "USD".into(),
        total: "4.30".into(),
        fees: vec![LateFeeLine {
            seq: 1,
            base: "86.07".into(),
            fee: "4.30".into(),
        }],
        reallocated_payment_ids: vec![],
    };
    let written_off = LoanWrittenOff {
        currency: "USD".into(),
        principal_outstanding: "900.00".into(),
        interest_outstanding: "10.00".into(),
        fees_outstanding: "4.30".into(),
    };
    vec![
        (
            loan_envelope(LoanEvent::Applied(applied), Some(USER)),
            loan_json(
                "loan.applied",
                Some(USER),
                json!({
                    "principal": "1000.00", "currency": "USD", "annual_interest_rate": "6",
                    "term_months": 12, "repayment_frequency": "monthly", "day_count": "30/360",
                    "repayment_method": "annuity", "late_fee_rate": "5",
                    "grace_days": 5, "first_due_date": null, "purpose": "car", "applied_on": "2026-03-04",
                }),
            ),
        ),
        (
            loan_envelope(LoanEvent::Approved(approved), Some(ADMIN)),
            loan_json(
                "loan.approved",
                Some(ADMIN),
                json!({
                    "principal": "1000.00", "currency": "USD", "disbursed_on": "2026-03-05",
                    "installment_count": 12, "first_due_date": "2026-04-05",
                    "last_due_date": "2027-03-05", "total_interest": "32.80",
                }),
            ),
        ),
        (
            loan_envelope(
                LoanEvent::Rejected(LoanRejected {
                    reason: "income".into(),
                }),
                Some(ADMIN),
            ),
            loan_json("loan.rejected", Some(ADMIN), json!({"reason": "income"})),
        ),
        (
            loan_envelope(LoanEvent::Cancelled(NoData {}), Some(USER)),
            loan_json("loan.cancelled", Some(USER), json!({})),
        ),
        (
            loan_envelope(LoanEvent::PaymentReceived(received), None),
            loan_json(
                "payment.received",
                None,
                json!({
                    "payment_id": PAYMENT, "amount": "125.50", "currency": "USD",
                    "paid_on": "2026-04-01", "reference": null, "note": "late cheque",
                    "allocation": {"fee": "0.00", "interest": "5.00", "principal": "120.50", "interest_waived": "0.00"},
                    "reallocated_payment_ids": [],
                }),
            ),
        ),
        (
            loan_envelope(LoanEvent::PaymentReversed(reversed), Some(ADMIN)),
            loan_json(
                "payment.reversed",
                Some(ADMIN),
                json!({
                    "payment_id": PAYMENT, "amount": "125.50", "currency": "USD",
                    "paid_on": "2026-04-01", "reversed_on": "2026-04-02",
                    "reallocated_payment_ids": [ADMIN],
                }),
            ),
        ),
        (
            loan_envelope(
                LoanEvent::Overdue(LoanOverdue {
                    as_of: day("2026-04-10"),
                    days_past_due: 5,
                }),
                None,
            ),
            loan_json(
                "loan.overdue",
                None,
                json!({"as_of": "2026-04-10", "days_past_due": 5}),
            ),
        ),
        (
            loan_envelope(
                LoanEvent::Current(AsOf {
                    as_of: day("2026-04-11"),
                }),
                None,
            ),
            loan_json("loan.current", None, json!({"as_of": "2026-04-11"})),
        ),
        (
            loan_envelope(LoanEvent::LateFeeApplied(fee), None),
            loan_json(
                "late_fee.applied",
                None,
                json!({
                    "as_of": "2026-04-20", "currency": "USD", "total": "4.30",
                    "fees": [{"seq": 1, "base": "86.07", "fee": "4.30"}],
                    "reallocated_payment_ids": [],
                }),
            ),
        ),
        (
            loan_envelope(
                LoanEvent::Paid(LoanPaid {
                    as_of: day("2027-03-05"),
                    currency: "USD".into(),
                    interest_waived: "1.20".into(),
                }),
                Some(USER),
            ),
            loan_json(
                "loan.paid",
                Some(USER),
                json!({"as_of": "2027-03-05", "currency": "USD", "interest_waived": "1.20"}),
            ),
        ),
        (
            loan_envelope(LoanEvent::WrittenOff(written_off), Some(ADMIN)),
            loan_json(
                "loan.written_off",
                Some(ADMIN),
                json!({
                    "currency": "USD", "principal_outstanding": "900.00",
                    "interest_outstanding": "10.00", "fees_outstanding": "4.30",
                }),
            ),
        ),
        (
            loan_envelope(
                LoanEvent::Deleted(LoanDeleted {
                    status: "PENDING".into(),
                }),
                Some(ADMIN),
            ),
            loan_json("loan.deleted", Some(ADMIN), json!({"status": "PENDING"})),
        ),
    ]
}

fn account_samples() -> Vec<(Envelope<AccountEvent>, Value)> {
    let envelope = |event: AccountEvent, user: Option<Uuid>| Envelope {
        event_id: EVENT,
        ..event.envelope(user, at())
    };
    vec![
        (
            envelope(
                AccountEvent::Registered(UserRegistered {
                    email: "ann@example.com".into(),
                    username: "ann".into(),
                    role: "USER".into(),
                }),
                Some(USER),
            ),
            account_json(
                "user.registered",
                Some(USER),
                json!({"email": "ann@example.com", "username": "ann", "role": "USER"}),
            ),
        ),
        (
            envelope(
                AccountEvent::LoginFailed(LoginFailed {
                    email: "who@example.com".into(),
                    reason: "unknown_email".into(),
                    ip: "127.0.0.1".into(),
                }),
                None,
            ),
            account_json(
                "user.login_failed",
                None,
                json!({"email": "who@example.com", "reason": "unknown_email", "ip": "127.0.0.1"}),
            ),
        ),
        (
            envelope(
                AccountEvent::RoleChanged(RoleChanged {
                    from: "USER".into(),
                    to: "MANAGER".into(),
                    changed_by: Some(ADMIN),
                }),
                Some(USER),
            ),
            account_json(
                "user.role_changed",
                Some(USER),
                json!({"from": "USER", "to": "MANAGER", "changed_by": ADMIN}),
            ),
        ),
        (
            envelope(
                AccountEvent::Deactivated(UserDeactivated { changed_by: ADMIN }),
                Some(USER),
            ),
            account_json("user.deactivated", Some(USER), json!({"changed_by": ADMIN})),
        ),
    ]
}

fn job_samples() -> Vec<(Envelope<JobEvent>, Value)> {
    let started: DateTime<Utc> = "2026-03-04T05:00:00.123456Z".parse().unwrap();
    let run = |finished_at: Option<DateTime<Utc>>| JobRun {
        job: "overdue".into(),
        as_of: day("2026-03-04"),
        owner: "host-1".into(),
        started_at: started,
        finished_at,
        processed: 3,
        errors: 0,
    };
    let data = |finished_at: Value| {
        json!({
            "job": "overdue", "as_of": "2026-03-04", "owner": "host-1",
            "started_at": "2026-03-04T05:00:00.123456Z", "finished_at": finished_at,
            "processed": 3, "errors": 0,
        })
    };
    let envelope = |event: JobEvent| Envelope {
        event_id: EVENT,
        ..event.envelope()
    };
    let job_json = |event_type: &str, occurred_at: &str, data: Value| {
        json!({
            "event_id": EVENT, "type": event_type, "loan_id": null, "user_id": null,
            "occurred_at": occurred_at, "data": data,
        })
    };
    vec![
        (
            envelope(JobEvent::Started(run(None))),
            job_json("job.started", "2026-03-04T05:00:00.123Z", data(Value::Null)),
        ),
        (
            envelope(JobEvent::Finished(run(Some(at())))),
            job_json(
                "job.finished",
                "2026-03-04T05:06:07.089Z",
                data(json!("2026-03-04T05:06:07.089Z")),
            ),
        ),
    ]
}

/// Serialized as expected, read back equal (as itself and as any event),
/// valid against its schema; and every type of the family has a sample.
fn check_family<P>(samples: Vec<(Envelope<P>, Value)>)
where
    P: Payload + DeserializeOwned + PartialEq + std::fmt::Debug + Clone + Serialize,
{
    let schemas = schema::event_schemas();
    let mut seen = Vec::new();
    for (envelope, expected) in samples {
        let event_type = envelope.payload.event_type();
        let written = serde_json::to_value(&envelope).unwrap();
        assert_eq!(written, expected, "{event_type}: the wire shape changed");
        let row = envelope.to_outbox();
        assert_eq!(row.payload, expected, "{event_type}: the outbox row");
        assert_eq!(row.subject, format!("loans.events.{event_type}"));
        let bytes = serde_json::to_vec(&envelope).unwrap();
        let read: Envelope<P> = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(read, envelope, "{event_type}: round trip");
        let untyped: Envelope<Untyped> = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(untyped.payload.event_type, event_type);
        let typed = untyped
            .payload
            .parse::<P>()
            .expect("its family's type")
            .unwrap();
        assert_eq!(
            typed, envelope.payload,
            "{event_type}: parsed from its parts"
        );
        let schema = &schemas
            .iter()
            .find(|schema| schema.event_type == event_type)
            .expect("a schema per type")
            .schema;
        assert_valid(schema, &written, event_type);
        seen.push(event_type);
    }
    assert_eq!(seen, P::TYPES, "a sample per event type, in order");
}

fn assert_valid(schema: &Value, instance: &Value, what: &str) {
    let validator = jsonschema::options()
        .with_draft(jsonschema::Draft::Draft7)
        .should_validate_formats(true)
        .build(schema)
        .unwrap();
    let errors: Vec<String> = validator
        .iter_errors(instance)
        .map(|error| error.to_string())
        .collect();
    assert!(errors.is_empty(), "{what}: {errors:?}");
}

#[test]
fn every_loan_event_keeps_its_wire_shape_and_round_trips() {
    check_family(loan_samples());
}

#[test]
fn every_account_event_keeps_its_wire_shape_and_round_trips() {
    check_family(account_samples());
}

#[test]
fn every_job_event_keeps_its_wire_shape_and_round_trips() {
    check_family(job_samples());
}

#[test]
fn the_inbound_messages_round_trip_and_match_their_schemas() {
    let payment = InboundPayment {
        loan_id: LOAN,
        amount: "10.00".into(),
        currency: "USD".into(),
        external_ref: "bank-1".into(),
        paid_on: None,
    };
    let sent =
        json!({"loan_id": LOAN, "amount": "10.00", "currency": "USD", "external_ref": "bank-1"});
    let read: InboundPayment = serde_json::from_value(sent.clone()).unwrap();
    assert_eq!(read, payment);
    assert_valid(&schema::inbound_payment_schema(), &sent, "inbound payment");
    let extra = json!({"loan_id": LOAN, "amount": "10.00", "currency": "USD", "external_ref": "b", "memo": "x"});
    assert!(serde_json::from_value::<InboundPayment>(extra.clone()).is_err());
    assert!(!jsonschema::draft7::is_valid(
        &schema::inbound_payment_schema(),
        &extra
    ));

    let dead = DeadLetterMessage {
        reason: "unknown loan".into(),
        external_ref: None,
        message: "{}".into(),
    };
    let written = serde_json::to_value(&dead).unwrap();
    assert_eq!(
        written,
        json!({"reason": "unknown loan", "external_ref": null, "message": "{}"})
    );
    assert_eq!(
        serde_json::from_value::<DeadLetterMessage>(written.clone()).unwrap(),
        dead
    );
    assert_valid(&schema::dead_letter_schema(), &written, "dead letter");
}

#[test]
fn a_schema_refuses_an_event_that_lost_or_retyped_a_member() {
    let schemas = schema::event_schemas();
    let received = &schemas
        .iter()
        .find(|schema| schema.event_type == "payment.received")
        .unwrap()
        .schema;
    let (_, mut renamed) = loan_samples().swap_remove(4);
    let allocation = renamed["data"]["allocation"].as_object_mut().unwrap();
    let fee = allocation.remove("fee").unwrap();
    allocation.insert("fees".into(), fee);
    assert!(!jsonschema::draft7::is_valid(received, &renamed));
    let (_, mut retyped) = loan_samples().swap_remove(4);
    retyped["data"]["amount"] = json!(125.5);
    assert!(!jsonschema::draft7::is_valid(received, &retyped));
    let (_, mut wrong_type) = loan_samples().swap_remove(4);
    wrong_type["type"] = json!("payment.reversed");
    assert!(!jsonschema::draft7::is_valid(received, &wrong_type));
}

#[test]
fn the_ops_summary_keeps_its_wire_shape_round_trips_and_matches_its_schema() {
    use super::ops::{LoanActorCounts, OpsSummary};
    let summary = OpsSummary {
        at: "2026-03-01T12:00:00Z".parse().unwrap(),
        loan_actors: LoanActorCounts {
            live: Some(3),
            spawned: 5,
            passivated: 2,
            restarted: 0,
            failed: 0,
            budget_exhausted: 0,
            commands_committed: 9,
            version_conflicts: 1,
        },
        outbox_pending: Some(0),
        events_published: None,
        inbound_dead_letters: Some(1),
        emails: Some([("sent".to_owned(), 4)].into()),
    };
    let wire = serde_json::to_value(&summary).unwrap();
    assert_eq!(
        wire,
        json!({
            "at": "2026-03-01T12:00:00Z",
            "loan_actors": {"live": 3, "spawned": 5, "passivated": 2, "restarted": 0,
                "failed": 0, "budget_exhausted": 0, "commands_committed": 9,
                "version_conflicts": 1},
            "outbox_pending": 0, "events_published": null, "inbound_dead_letters": 1,
            "emails": {"sent": 4},
        })
    );
    assert_eq!(
        serde_json::from_value::<OpsSummary>(wire.clone()).unwrap(),
        summary
    );
    assert_valid(&schema::ops_summary_schema(), &wire, "ops summary");
    let mut lost = wire.clone();
    lost["loan_actors"]
        .as_object_mut()
        .unwrap()
        .remove("spawned");
    assert!(!jsonschema::draft7::is_valid(
        &schema::ops_summary_schema(),
        &lost
    ));
}

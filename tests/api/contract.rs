//! The published contract of the bus: `GET /asyncapi.json` over HTTP, every
//! event the service emits checked against the JSON Schema it publishes for
//! its type, and `nats/SUBJECTS.md` agreeing with the document.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use actors::bus::{ConsumerSpec, OutgoingMessage, Settlement};
use loan_tracker::accounts::Role;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{Session, TestApp, approved_loans, eventually, spawn_app, spawn_app_at};

const DEADLINE: Duration = Duration::from_secs(20);

fn at(day: &str) -> chrono::DateTime<chrono::Utc> {
    format!("{day}T10:00:00Z").parse().unwrap()
}

/// The document as the service serves it.
async fn asyncapi(app: &TestApp) -> Value {
    let response = app.get("/asyncapi.json", None).await;
    assert_eq!(response.status(), StatusCode::OK);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}"
    );
    response.json().await.unwrap()
}

/// Every event type the document lists on the events channel.
fn event_types(document: &Value) -> Vec<String> {
    document["channels"]["loanEvents"]["parameters"]["type"]["enum"]
        .as_array()
        .expect("the event types")
        .iter()
        .map(|kind| kind.as_str().unwrap().to_owned())
        .collect()
}

fn validator(document: &Value, name: &str) -> jsonschema::Validator {
    let schema = &document["components"]["schemas"][name];
    assert!(schema.is_object(), "no schema for {name}");
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft7)
        .should_validate_formats(true)
        .build(schema)
        .unwrap_or_else(|error| panic!("the schema of {name} does not compile: {error}"))
}

#[tokio::test]
async fn asyncapi_json_is_served_beside_openapi_json_and_lists_every_stream_message_and_consumer() {
    let app = spawn_app().await;
    let document = asyncapi(&app).await;
    assert_eq!(document["asyncapi"], "3.0.0");
    let types = event_types(&document);
    for kind in [
        "loan.applied",
        "payment.received",
        "user.registered",
        "job.finished",
    ] {
        assert!(types.iter().any(|listed| listed == kind), "{kind} missing");
        assert_eq!(
            document["components"]["messages"][kind]["payload"]["$ref"],
            format!("#/components/schemas/{kind}")
        );
        assert_eq!(
            document["components"]["schemas"][kind]["properties"]["type"]["const"],
            kind
        );
    }
    let operations = document["operations"].as_object().unwrap();
    for consumer in ["audit", "notifications", "inbound-payments"] {
        assert_eq!(operations[consumer]["action"], "receive", "{consumer}");
        assert_eq!(operations[consumer]["x-nats-consumer"]["name"], consumer);
    }
    let streams: BTreeSet<&str> = document["channels"]
        .as_object()
        .unwrap()
        .values()
        .filter_map(|channel| channel["x-nats-stream"]["name"].as_str())
        .collect();
    assert_eq!(streams, BTreeSet::from(["LOAN_EVENTS", "LOAN_INBOUND"]));
    let ops = &document["channels"]["opsMetrics"];
    assert_eq!(ops["address"], "ops.metrics");
    assert_eq!(ops["x-nats-core"], true, "ops.metrics is kept by no stream");
    assert_eq!(operations["publishOpsSummary"]["action"], "send");

    // And the API document describes the route.
    let openapi: Value = app.get("/openapi.json", None).await.json().await.unwrap();
    assert!(
        openapi["paths"]["/asyncapi.json"]["get"].is_object(),
        "/asyncapi.json not in /openapi.json"
    );
}

/// One real instance of every event type, each through the service's own
/// routes and jobs; then every outbox row, validated against its type's
/// schema from `/asyncapi.json`.
#[tokio::test]
async fn every_event_the_service_emits_matches_the_schema_published_for_its_type() {
    let app = spawn_app_at(at("2026-01-10"), &[]).await;
    let document = asyncapi(&app).await;
    inbound_messages_match_their_schemas(&app, &document).await;
    emit_every_event_type(&app).await;
    let validators: BTreeMap<String, jsonschema::Validator> = event_types(&document)
        .into_iter()
        .map(|kind| {
            let validator = validator(&document, &kind);
            (kind, validator)
        })
        .collect();
    let rows: Vec<(String, sqlx::types::Json<Value>)> =
        with_read_pool!(&app.db, |pool| sqlx::query_as(
            "select subject, payload from outbox order by seq"
        )
        .fetch_all(pool)
        .await)
        .unwrap();
    let mut seen = BTreeSet::new();
    let mut failures = Vec::new();
    for (subject, payload) in &rows {
        let kind = subject
            .strip_prefix("loans.events.")
            .expect("an event subject");
        let Some(validator) = validators.get(kind) else {
            failures.push(format!("{subject}: a type the document does not list"));
            continue;
        };
        for error in validator.iter_errors(&payload.0) {
            failures.push(format!("{kind}: {error} at {}", error.instance_path()));
        }
        seen.insert(kind.to_owned());
    }
    assert!(
        failures.is_empty(),
        "events off their schema:\n{}",
        failures.join("\n")
    );
    let listed: BTreeSet<String> = validators.keys().cloned().collect();
    assert_eq!(seen, listed, "the test did not make every event type");
}

/// A payment a bank would send (valid against the published schema, and
/// applied) and a dead letter the service publishes (valid against its own).
async fn inbound_messages_match_their_schemas(app: &TestApp, document: &Value) {
    let dead_letters = ConsumerSpec {
        name: format!("contract-{}", uuid::Uuid::new_v4().simple()),
        stream: "LOAN_INBOUND".into(),
        filter_subject: "loans.inbound.dead".into(),
        ack_wait: Duration::from_secs(3),
        max_deliver: None,
        max_ack_pending: 16,
    };
    let mut dead = app.bus.subscribe(dead_letters).await.expect("subscribed");
    let unknown_loan = json!({"loan_id": uuid::Uuid::now_v7(), "amount": "10.00", "currency": "USD", "external_ref": "contract-1"});
    let errors: Vec<String> = validator(document, "InboundPayment")
        .iter_errors(&unknown_loan)
        .map(|error| error.to_string())
        .collect();
    assert!(errors.is_empty(), "the example payment: {errors:?}");
    let message = OutgoingMessage {
        subject: "loans.inbound.payments".into(),
        message_id: "contract-1".into(),
        payload: unknown_loan.to_string().into_bytes(),
    };
    // The in-process bus answers a publish once every consumer settled it,
    // the dead letter's reader included: read while publishing.
    let read = async {
        let delivery = tokio::time::timeout(DEADLINE, dead.next())
            .await
            .expect("a dead letter in time")
            .expect("a delivery");
        let letter: Value = serde_json::from_slice(&delivery.payload).unwrap();
        delivery.settle(Settlement::Ack).await.expect("settled");
        letter
    };
    let (published, letter) = tokio::join!(app.bus.publish(message), read);
    published.expect("published");
    let errors: Vec<String> = validator(document, "DeadLetter")
        .iter_errors(&letter)
        .map(|error| error.to_string())
        .collect();
    assert!(errors.is_empty(), "the dead letter {letter}: {errors:?}");
    assert_eq!(letter["external_ref"], "contract-1", "{letter}");
}

async fn post(app: &TestApp, who: &Session, path: &str, body: Value) -> Value {
    let response = app.post_json(path, Some(&who.access_token), &body).await;
    let status = response.status();
    let text = response.text().await.unwrap();
    assert!(status.is_success(), "POST {path}: {status} {text}");
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

async fn apply(app: &TestApp, owner: &Session) -> String {
    let body = json!({"principal": "500.00", "annual_interest_rate": "6", "term_months": 6});
    post(app, owner, "/api/v1/loans", body).await["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Accounts, every loan decision, payments, a reversal, a payoff, a write-off,
/// the overdue job (overdue, late fee, its run events) and a loan made current.
async fn emit_every_event_type(app: &TestApp) {
    let admin = app.user_with_role("root", Role::Admin).await; // registered, role_changed
    let ann = app.register("ann").await;
    let wrong = json!({"email": ann.email, "password": "not the password at all"});
    let refused = app.post_json("/api/v1/auth/login", None, &wrong).await;
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED); // login_failed
    let victim = app.register("victim").await;
    post(
        app,
        &admin,
        &format!("/api/v1/users/{}/deactivate", victim.user_id),
        json!({}),
    )
    .await;

    let rejected = apply(app, &ann).await;
    post(
        app,
        &admin,
        &format!("/api/v1/loans/{rejected}/reject"),
        json!({"reason": "income"}),
    )
    .await;
    let cancelled = apply(app, &ann).await;
    post(
        app,
        &ann,
        &format!("/api/v1/loans/{cancelled}/cancel"),
        json!({}),
    )
    .await;
    let deleted = apply(app, &ann).await;
    let response = app
        .client
        .delete(app.url(&format!("/api/v1/loans/{deleted}")))
        .bearer_auth(&admin.access_token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);

    let loans = approved_loans(app, &ann, 4, "1000.00").await;
    let (late, paid_off, written_off, reversed) = (loans[0], loans[1], loans[2], loans[3]);
    let paid = post(
        app,
        &ann,
        &format!("/api/v1/loans/{reversed}/payments"),
        json!({"amount": "50.00"}),
    )
    .await;
    let payment = paid["payment"]["id"].as_str().unwrap();
    post(
        app,
        &admin,
        &format!("/api/v1/payments/{payment}/reverse"),
        json!({"reason": "clerical"}),
    )
    .await;
    let quote: Value = app
        .get(
            &format!("/api/v1/loans/{paid_off}/payoff"),
            Some(&ann.access_token),
        )
        .await
        .json()
        .await
        .unwrap();
    let total = quote["total"].as_str().unwrap();
    post(
        app,
        &ann,
        &format!("/api/v1/loans/{paid_off}/payments"),
        json!({"amount": total}),
    )
    .await;
    post(
        app,
        &admin,
        &format!("/api/v1/loans/{written_off}/write-off"),
        json!({}),
    )
    .await;

    // Past the first due date (2026-02-10) and the grace days.
    app.clock.set(at("2026-02-25"));
    post(app, &admin, "/api/v1/admin/jobs/overdue/run", json!({})).await;
    post(
        app,
        &ann,
        &format!("/api/v1/loans/{late}/payments"),
        json!({"amount": "300.00"}),
    )
    .await;
    let read: Value = app
        .get(&format!("/api/v1/loans/{late}"), Some(&ann.access_token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(read["status"], "APPROVED", "{read}");
    eventually("the relay published everything", DEADLINE, || async {
        (crate::bus::unpublished(&app.db).await == 0).then_some(())
    })
    .await;
}

/// The backticked names in `text`.
fn quoted(text: &str) -> BTreeSet<String> {
    text.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

/// The table rows of `markdown` whose first cell is `` `name` ``, as cells.
fn row<'a>(markdown: &'a str, name: &str) -> Vec<&'a str> {
    let first = format!("| `{name}` |");
    let line = markdown
        .lines()
        .find(|line| line.starts_with(&first))
        .unwrap_or_else(|| panic!("nats/SUBJECTS.md has no row for `{name}`"));
    line.trim_matches('|').split('|').map(str::trim).collect()
}

#[test]
fn subjects_md_agrees_with_the_asyncapi_document() {
    let markdown =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/nats/SUBJECTS.md")).unwrap();
    let document = loan_tracker::bus::asyncapi::document();
    for channel in document["channels"].as_object().unwrap().values() {
        let stream = &channel["x-nats-stream"];
        let Some(name) = stream["name"].as_str() else {
            // A plain NATS subject: the subjects table still names it.
            row(&markdown, channel["address"].as_str().unwrap());
            continue;
        };
        let cells = row(&markdown, name);
        let subjects: BTreeSet<String> = stream["subjects"]
            .as_array()
            .unwrap()
            .iter()
            .map(|subject| subject.as_str().unwrap().to_owned())
            .collect();
        assert_eq!(quoted(cells[1]), subjects, "the subjects of stream {name}");
        // The subjects table names the channel's address (`{type}` as `<type>`).
        let address = channel["address"]
            .as_str()
            .unwrap()
            .replace("{type}", "<type>");
        row(&markdown, &address);
    }
    let types_line = markdown
        .split("\n\n")
        .find(|paragraph| paragraph.starts_with("Types on `loans.events.`"))
        .expect("the paragraph listing the event types");
    let listed: BTreeSet<String> = quoted(types_line)
        .into_iter()
        .filter(|name| name != "loans.events." && !name.starts_with("data."))
        .collect();
    let published: BTreeSet<String> = event_types(&document).into_iter().collect();
    assert_eq!(listed, published, "the event types of nats/SUBJECTS.md");
    for operation in document["operations"].as_object().unwrap().values() {
        let Some(consumer) = operation.get("x-nats-consumer") else {
            continue;
        };
        let name = consumer["name"].as_str().unwrap();
        let cells = row(&markdown, name);
        assert_eq!(
            cells[1],
            format!("`{}`", consumer["stream"].as_str().unwrap()),
            "{name}"
        );
        assert_eq!(
            cells[2],
            format!("`{}`", consumer["filter_subject"].as_str().unwrap()),
            "{name}"
        );
        assert_eq!(
            cells[3],
            format!("{} s", consumer["ack_wait_secs"]),
            "{name}"
        );
        match consumer["max_deliver"].as_u64() {
            Some(most) => assert_eq!(cells[4], most.to_string(), "{name}"),
            None => assert!(cells[4].starts_with("unlimited"), "{name}: {}", cells[4]),
        }
        assert_eq!(cells[5], consumer["max_ack_pending"].to_string(), "{name}");
    }
}

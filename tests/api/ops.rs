//! Operations: `/metrics` in Prometheus text, the supervision view at
//! `/api/v1/admin/actors`.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use loan_tracker::accounts::Role;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{Session, TestApp, eventually, spawn_app, spawn_app_with};

/// One sample line of the exposition: `name{labels} value`.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// Parses the Prometheus text format strictly enough to catch hand-made
/// mistakes: metric and label names, quoted and escaped label values, a float
/// value, and a `# TYPE` line declared for every sample's family.
fn parse_prometheus(text: &str) -> Vec<Sample> {
    let mut typed: BTreeSet<String> = BTreeSet::new();
    let mut samples = Vec::new();
    for line in text.lines().filter(|line| !line.trim().is_empty()) {
        if let Some(comment) = line.strip_prefix("# ") {
            let mut words = comment.split_whitespace();
            if words.next() == Some("TYPE") {
                let family = words.next().expect("TYPE names a family");
                let kind = words.next().expect("TYPE names a kind");
                assert!(
                    ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                    "unknown type in {line:?}"
                );
                typed.insert(family.to_owned());
            }
            continue;
        }
        let sample = parse_sample(line);
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| sample.name.strip_suffix(suffix))
            .filter(|family| typed.contains(*family))
            .unwrap_or(&sample.name)
            .to_owned();
        assert!(typed.contains(&family), "no # TYPE for {line:?}");
        samples.push(sample);
    }
    samples
}

fn is_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn parse_sample(line: &str) -> Sample {
    let name_end = line
        .find(['{', ' '])
        .unwrap_or_else(|| panic!("no value: {line:?}"));
    let name = &line[..name_end];
    assert!(is_name(name), "bad metric name in {line:?}");
    let mut rest = &line[name_end..];
    let mut labels = BTreeMap::new();
    if let Some(inside) = rest.strip_prefix('{') {
        let (parsed, after) = parse_labels(inside, line);
        labels = parsed;
        rest = after;
    }
    let value = rest.trim();
    let value: f64 = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        other => other
            .parse()
            .unwrap_or_else(|_| panic!("bad value in {line:?}")),
    };
    Sample {
        name: name.to_owned(),
        labels,
        value,
    }
}

/// Parses `a="x",b="y\"z"}` and returns the labels and what follows the `}`.
fn parse_labels<'a>(mut text: &'a str, line: &str) -> (BTreeMap<String, String>, &'a str) {
    let mut labels = BTreeMap::new();
    loop {
        if let Some(after) = text.strip_prefix('}') {
            return (labels, after);
        }
        let eq = text
            .find("=\"")
            .unwrap_or_else(|| panic!("bad labels in {line:?}"));
        let key = text[..eq].trim_start_matches(',');
        assert!(is_name(key), "bad label name in {line:?}");
        let mut value = String::new();
        let mut chars = text[eq + 2..].char_indices();
        let end = loop {
            match chars.next() {
                Some((_, '\\')) => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, escaped)) => value.push(escaped),
                    None => panic!("dangling escape in {line:?}"),
                },
                Some((at, '"')) => break eq + 2 + at + 1,
                Some((_, c)) => value.push(c),
                None => panic!("unterminated label value in {line:?}"),
            }
        };
        labels.insert(key.to_owned(), value);
        text = text[end..].trim_start_matches(',');
    }
}

/// The value of the one sample named `name` whose labels include `with`.
fn value_of(samples: &[Sample], name: &str, with: &[(&str, &str)]) -> Option<f64> {
    samples
        .iter()
        .find(|sample| {
            sample.name == name
                && with
                    .iter()
                    .all(|(key, value)| sample.labels.get(*key).map(String::as_str) == Some(value))
        })
        .map(|sample| sample.value)
}

async fn scrape(app: &TestApp) -> Vec<Sample> {
    let response = app.get("/metrics", None).await;
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    parse_prometheus(&response.text().await.unwrap())
}

/// An owner, an admin, and one approved loan of the owner with one payment.
async fn paid_once(app: &TestApp) -> (Session, Session, Uuid) {
    let owner = app.register("owner").await;
    let admin = app.user_with_role("admin", Role::Admin).await;
    let application =
        json!({"principal": "1200.00", "annual_interest_rate": "12", "term_months": 12});
    let created: Value = app
        .post_json("/api/v1/loans", Some(&owner.access_token), &application)
        .await
        .json()
        .await
        .unwrap();
    let loan_id: Uuid = created["id"].as_str().unwrap().parse().unwrap();
    let approve = format!("/api/v1/loans/{loan_id}/approve");
    let approved = app
        .post_json(&approve, Some(&admin.access_token), &json!({}))
        .await;
    assert_eq!(approved.status(), 200);
    let pay = format!("/api/v1/loans/{loan_id}/payments");
    let paid = app
        .post_json(
            &pay,
            Some(&owner.access_token),
            &json!({"amount": "100.00"}),
        )
        .await;
    assert_eq!(paid.status(), 201);
    (owner, admin, loan_id)
}

#[tokio::test]
async fn metrics_parse_as_prometheus_text_and_show_the_loan_actor_after_a_payment() {
    let app = spawn_app().await;
    paid_once(&app).await;
    let samples = scrape(&app).await;
    let value = |name: &str, with: &[(&str, &str)]| {
        value_of(&samples, name, with).unwrap_or_else(|| panic!("no {name} {with:?}"))
    };
    assert_eq!(value("loan_actors_live", &[]), 1.0);
    assert_eq!(value("loan_actors_spawned_total", &[]), 1.0);
    assert_eq!(value("loan_actors_failed_total", &[]), 0.0);
    assert_eq!(value("loan_actor_restart_budget_exhausted_total", &[]), 0.0);
    // apply, approve, pay: three commands through the actor.
    assert_eq!(value("loan_commands_committed_total", &[]), 3.0);
    assert_eq!(value("loan_actor_mailbox_depth", &[]), 0.0);
    let payment = [("command", "payment"), ("outcome", "committed")];
    assert_eq!(value("loan_command_duration_seconds_count", &payment), 1.0);
    let payment_bucket = [("command", "payment"), ("le", "+Inf")];
    assert_eq!(
        value("loan_command_duration_seconds_bucket", &payment_bucket),
        1.0
    );
    let route = [
        ("route", "/api/v1/loans/{id}/payments"),
        ("method", "POST"),
        ("status", "201"),
    ];
    assert_eq!(value("http_requests_total", &route), 1.0);
    let timed = [("route", "/api/v1/loans/{id}/payments"), ("method", "POST")];
    assert_eq!(value("http_request_duration_seconds_count", &timed), 1.0);
    assert!(value("outbox_pending", &[]) >= 0.0);
    assert!(value("outbox_oldest_pending_age_seconds", &[]) >= 0.0);
    assert!(value("db_pool_connections", &[("state", "idle")]) >= 0.0);
    assert_eq!(
        value("metrics_scrape_error", &[("source", "actor_tree")]),
        0.0
    );
    assert_eq!(value("metrics_scrape_error", &[("source", "outbox")]), 0.0);
}

#[tokio::test]
async fn each_app_counts_only_its_own_requests() {
    let first = spawn_app().await;
    let second = spawn_app().await;
    for _ in 0..3 {
        assert_eq!(first.get("/ready", None).await.status(), 200);
    }
    // `/ready`, not `/health`: spawn_app itself polls /health until the app serves.
    let health = [("route", "/ready"), ("status", "200")];
    assert_eq!(
        value_of(&scrape(&first).await, "http_requests_total", &health),
        Some(3.0)
    );
    assert_eq!(
        value_of(&scrape(&second).await, "http_requests_total", &health),
        None
    );
}

#[tokio::test]
async fn unmatched_paths_share_one_route_label() {
    let app = spawn_app().await;
    for id in 0..3 {
        app.get(&format!("/no/such/thing/{id}"), None).await;
    }
    let samples = scrape(&app).await;
    let unmatched = [("route", "unmatched"), ("status", "404")];
    assert_eq!(
        value_of(&samples, "http_requests_total", &unmatched),
        Some(3.0)
    );
    assert!(
        samples
            .iter()
            .all(|s| !s.labels.get("route").is_some_and(|r| r.starts_with("/no/"))),
        "raw paths must never become labels"
    );
}

async fn actor_tree(app: &TestApp, admin: &Session) -> Value {
    let response = app
        .get("/api/v1/admin/actors", Some(&admin.access_token))
        .await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

#[tokio::test]
async fn admin_actors_shows_the_loan_actor_after_a_payment_and_none_after_passivation() {
    let app = spawn_app_with(&[("LOAN_ACTOR_IDLE_SECS", "1")]).await;
    let (_owner, admin, loan_id) = paid_once(&app).await;

    let tree = actor_tree(&app, &admin).await;
    assert_eq!(tree["supervisor"], "root");
    let loans = &tree["children"][0];
    assert_eq!(loans["supervisor"], "loans");
    assert_eq!(loans["live_count"], 1);
    assert_eq!(loans["idle_timeout_secs"], 1);
    let actor = &loans["actors"][0];
    assert_eq!(actor["loan_id"], loan_id.to_string());
    assert_eq!(actor["mailbox_depth"], 0);
    assert_eq!(actor["restarts_in_window"], 0);
    assert!(actor["last_activity_at"].is_string());
    assert!(actor["idle_ms"].is_u64());
    assert_eq!(loans["blocked"], json!([]));
    assert_eq!(loans["counters"]["spawned"], 1);
    assert_eq!(loans["counters"]["commands_committed"], 3);

    let passivated = eventually(
        "the idle loan actor to passivate",
        Duration::from_secs(10),
        || async {
            let tree = actor_tree(&app, &admin).await;
            let loans = &tree["children"][0];
            (loans["live_count"] == 0 && loans["stopping_count"] == 0).then(|| loans.clone())
        },
    )
    .await;
    assert_eq!(passivated["actors"], json!([]));
    assert_eq!(passivated["counters"]["passivated"], 1);
    let samples = scrape(&app).await;
    assert_eq!(value_of(&samples, "loan_actors_live", &[]), Some(0.0));
    assert_eq!(
        value_of(&samples, "loan_actors_passivated_total", &[]),
        Some(1.0)
    );
}

#[tokio::test]
async fn every_described_operation_has_a_tag_a_summary_and_its_auth_errors() {
    let app = spawn_app().await;
    let spec: Value = app.get("/openapi.json", None).await.json().await.unwrap();
    let mut missing = Vec::new();
    for (path, operations) in spec["paths"].as_object().unwrap() {
        for (method, operation) in operations.as_object().unwrap() {
            let name = format!("{} {path}", method.to_uppercase());
            if operation["tags"].as_array().is_none_or(Vec::is_empty) {
                missing.push(format!("{name}: no tag"));
            }
            if operation["summary"].as_str().is_none_or(str::is_empty) {
                missing.push(format!("{name}: no summary"));
            }
            let secured = operation["security"]
                .as_array()
                .is_some_and(|s| !s.is_empty());
            if secured && operation["responses"].get("401").is_none() {
                missing.push(format!("{name}: secured but no 401 response"));
            }
        }
    }
    assert!(missing.is_empty(), "{}", missing.join("\n"));
    let admin = &spec["paths"]["/api/v1/admin/actors"]["get"];
    assert_eq!(admin["security"], json!([{"bearer": []}]));
    assert!(admin["responses"].get("403").is_some());
}

#[tokio::test]
async fn metrics_show_the_event_flow_publishing_consuming_and_mailing() {
    let app = spawn_app().await;
    paid_once(&app).await;
    let samples = crate::helpers::eventually(
        "the payment's events published, consumed and mailed",
        std::time::Duration::from_secs(20),
        || async {
            let samples = scrape(&app).await;
            let consumed = value_of(
                &samples,
                "events_consumed_total",
                &[("consumer", "notifications"), ("outcome", "ack")],
            );
            let sent = value_of(&samples, "notification_emails", &[("status", "sent")]);
            // Consumers run independently on NATS: wait for the audit one too.
            let audited = value_of(
                &samples,
                "events_consumed_total",
                &[("consumer", "audit"), ("outcome", "ack")],
            );
            // The relay stamps a batch once the bus stored all of it; on the
            // in-process bus that is after the consumers settled it.
            let published = value_of(&samples, "events_published_total", &[]);
            let done = consumed.unwrap_or(0.0) >= 1.0
                && sent.unwrap_or(0.0) >= 1.0
                && audited.unwrap_or(0.0) >= 3.0
                && published.unwrap_or(0.0) >= 3.0;
            done.then_some(samples)
        },
    )
    .await;
    assert!(
        value_of(&samples, "events_published_total", &[]).unwrap() >= 3.0,
        "applied, approved, payment"
    );
    assert!(
        value_of(
            &samples,
            "events_consumed_total",
            &[("consumer", "audit"), ("outcome", "ack")]
        )
        .unwrap()
            >= 3.0
    );
    assert_eq!(
        value_of(&samples, "inbound_dead_letters_total", &[]),
        Some(0.0)
    );
    assert_eq!(
        value_of(
            &samples,
            "metrics_scrape_error",
            &[("source", "event_flow")]
        ),
        Some(0.0)
    );
}

#[tokio::test]
async fn a_metrics_summary_goes_out_on_ops_metrics_when_on_nats() {
    let Ok(url) = std::env::var("TEST_NATS_URL") else {
        eprintln!("TEST_NATS_URL not set: the in-process bus has no ops.metrics");
        return;
    };
    let namespace = crate::helpers::test_namespace();
    let client = async_nats::connect(&url).await.unwrap();
    let mut summaries = client
        .subscribe(format!("{namespace}.ops.metrics"))
        .await
        .unwrap();
    let app = crate::helpers::spawn_app_with(&[
        ("NATS_NAMESPACE", namespace.as_str()),
        ("OPS_METRICS_INTERVAL_SECS", "1"),
    ])
    .await;
    paid_once(&app).await;
    let message = tokio::time::timeout(
        std::time::Duration::from_secs(20),
        futures::StreamExt::next(&mut summaries),
    )
    .await
    .expect("a summary within 20 s")
    .expect("subscription open");
    let summary: Value = serde_json::from_slice(&message.payload).unwrap();
    assert!(
        summary["loan_actors"]["spawned"].as_u64().is_some(),
        "{summary}"
    );
    assert!(summary["outbox_pending"].as_i64().is_some(), "{summary}");
    // What went out matches the schema the AsyncAPI document publishes for it.
    let document: Value = app.get("/asyncapi.json", None).await.json().await.unwrap();
    let schema = &document["components"]["schemas"]["OpsSummary"];
    let errors: Vec<String> = jsonschema::draft7::new(schema)
        .expect("the published schema compiles")
        .iter_errors(&summary)
        .map(|error| error.to_string())
        .collect();
    assert!(errors.is_empty(), "{summary}: {errors:?}");
}

//! One supervision tree (issue 13 item 1): the relay, the audit,
//! notification and inbound consumers and the job scheduler run under the
//! root supervisor. A panic injected into each (test hook) restarts it —
//! counted in `/admin/actors` and `/metrics` — and its work resumes with
//! nothing lost or repeated.

use std::time::Duration;

use actors::bus::OutgoingMessage;
use chrono::{NaiveDate, TimeZone, Utc};
use loan_tracker::accounts::Role;
use loan_tracker::store::Db;
use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::bus::{assert_stream_matches_outbox, settled};
use crate::helpers::{
    Session, TestApp, approved_loans, eventually, spawn_app_at, spawn_app_with, test_namespace,
    total_paid,
};

const DEADLINE: Duration = Duration::from_secs(30);

/// The services with a backlog, first in `/admin/actors`, in start order.
const SERVICES: [&str; 5] = [
    "audit",
    "notifications",
    "inbound-payments",
    "relay",
    "scheduler",
];
/// The background loops after them (and `ops-summary` on NATS).
const LOOPS: [&str; 5] = [
    "email-sweep",
    "housekeeping",
    "outbox-retention",
    "session-changes",
    "metrics-upkeep",
];

/// An app (its own NATS namespace when on NATS), a borrower with one
/// approved loan, and an ADMIN.
struct Fixture {
    app: TestApp,
    namespace: String,
    owner: Session,
    admin: Session,
    loan: Uuid,
}

impl Fixture {
    async fn new(extra: &[(&str, &str)]) -> Self {
        let namespace = test_namespace();
        let mut settings = vec![("NATS_NAMESPACE", namespace.as_str())];
        settings.extend_from_slice(extra);
        let app = spawn_app_with(&settings).await;
        let owner = app.register("owner").await;
        let admin = app.user_with_role("boss", Role::Admin).await;
        let loan = approved_loans(&app, &owner, 1, "1000.00").await[0];
        Self {
            app,
            namespace,
            owner,
            admin,
            loan,
        }
    }

    /// Pays `amount` over HTTP; the event id of its `payment.received`.
    async fn pay(&self, amount: &str) -> Uuid {
        let response = self
            .app
            .post_json(
                &format!("/api/v1/loans/{}/payments", self.loan),
                Some(&self.owner.access_token),
                &json!({ "amount": amount }),
            )
            .await;
        assert_eq!(response.status(), StatusCode::CREATED);
        latest_payment_event(&self.app.db).await
    }
}

/// The `services` of `/admin/actors`.
async fn services(app: &TestApp, admin: &Session) -> Vec<Value> {
    let response = app
        .get("/api/v1/admin/actors", Some(&admin.access_token))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let tree: Value = response.json().await.unwrap();
    tree["services"].as_array().cloned().unwrap_or_default()
}

async fn service(app: &TestApp, admin: &Session, name: &str) -> Value {
    services(app, admin)
        .await
        .into_iter()
        .find(|service| service["name"] == name)
        .unwrap_or_else(|| panic!("{name} is not listed"))
}

/// `supervised_actor_restarts_total{actor="<name>"}` from `/metrics`.
async fn restarts_in_metrics(app: &TestApp, name: &str) -> Option<f64> {
    let text = app.get("/metrics", None).await.text().await.unwrap();
    let prefix = format!("supervised_actor_restarts_total{{actor=\"{name}\"}} ");
    text.lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .map(|value| value.trim().parse().unwrap())
}

/// Arms the panic hook of `name` (it has not restarted yet).
async fn arm_panic(fixture: &Fixture, name: &str) {
    let (app, admin) = (&fixture.app, &fixture.admin);
    assert_eq!(service(app, admin, name).await["restarts"], 0);
    app.tree.inject_service_panic(name).unwrap();
}

/// Waits for one restart, seen in `/admin/actors` and in `/metrics`.
async fn restarted(fixture: &Fixture, name: &str) {
    let (app, admin) = (&fixture.app, &fixture.admin);
    let listed = eventually(&format!("{name} restarted"), DEADLINE, || async {
        let listed = service(app, admin, name).await;
        (listed["restarts"] == 1 && listed["state"] == "running").then_some(listed)
    })
    .await;
    assert!(
        listed["last_failure"]
            .as_str()
            .is_some_and(|text| text.contains("injected panic")),
        "{listed}"
    );
    assert_eq!(listed["failures_in_window"], 1);
    assert_eq!(restarts_in_metrics(app, name).await, Some(1.0));
    assert_eq!(app.get("/ready", None).await.status(), StatusCode::OK);
}

async fn latest_payment_event(db: &Db) -> Uuid {
    with_read_pool!(db, |pool| sqlx::query_scalar(
        "select event_id from outbox where subject = 'loans.events.payment.received' \
         order by seq desc limit 1"
    )
    .fetch_one(pool)
    .await)
    .unwrap()
}

/// (audit entries, notifications) of one event.
async fn traces_of(db: &Db, event_id: Uuid) -> (i64, i64) {
    let audited: i64 = with_read_pool!(db, |pool| sqlx::query_scalar(
        "select count(*) from audit_log where event_id = $1"
    )
    .bind(event_id)
    .fetch_one(pool)
    .await)
    .unwrap();
    let notified: i64 = with_read_pool!(db, |pool| sqlx::query_scalar(
        "select count(*) from notifications where event_id = $1"
    )
    .bind(event_id)
    .fetch_one(pool)
    .await)
    .unwrap();
    (audited, notified)
}

/// Waits until `event_id` is audited and notified, then checks once each.
async fn audited_and_notified_once(fixture: &Fixture, event_id: Uuid) {
    let db = &fixture.app.db;
    eventually("the payment audited and notified", DEADLINE, || async {
        let (audited, notified) = traces_of(db, event_id).await;
        (audited > 0 && notified > 0).then_some(())
    })
    .await;
    settled(&fixture.app).await;
    assert_eq!(traces_of(db, event_id).await, (1, 1), "once each");
}

/// The payment made while the component's panic was armed, and one after
/// its restart, each reach the audit log and the notifications once; every
/// outbox row is published (on NATS: in the stream exactly once).
async fn payments_around_a_panic_leave_one_trace_each(name: &str) {
    let fixture = Fixture::new(&[]).await;
    arm_panic(&fixture, name).await;
    let during = fixture.pay("10.00").await;
    restarted(&fixture, name).await;
    let after = fixture.pay("15.00").await;
    audited_and_notified_once(&fixture, during).await;
    audited_and_notified_once(&fixture, after).await;
    assert_eq!(
        total_paid(&fixture.app, &fixture.owner, fixture.loan).await,
        "25.00"
    );
    assert_stream_matches_outbox(&fixture.namespace, &fixture.app.db).await;
    let verified: Value = fixture
        .app
        .get(
            "/api/v1/audit-logs/verify",
            Some(&fixture.admin.access_token),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(verified["ok"], true, "{verified}");
}

#[tokio::test]
async fn every_long_lived_component_is_listed_under_the_root_with_its_backlog() {
    let fixture = Fixture::new(&[]).await;
    let listed = services(&fixture.app, &fixture.admin).await;
    let names: Vec<&str> = listed
        .iter()
        .map(|service| service["name"].as_str().unwrap())
        .collect();
    let mut expected: Vec<&str> = SERVICES.iter().chain(&LOOPS).copied().collect();
    if std::env::var_os("TEST_NATS_URL").is_some() {
        expected.push("ops-summary");
    }
    assert_eq!(names, expected);
    for service in &listed {
        assert_eq!(service["state"], "running", "{service}");
        assert_eq!(service["restarts"], 0, "{service}");
        assert_eq!(service["max_restarts"], 5, "{service}");
        assert_eq!(service["restart_window_secs"], 60, "{service}");
    }
    settled(&fixture.app).await;
    let backlogs_as_expected = |listed: &[Value]| {
        listed.iter().all(|service| {
            let measured = SERVICES.contains(&service["name"].as_str().unwrap());
            service["backlog"] == if measured { json!(0) } else { Value::Null }
        })
    };
    let until = tokio::time::Instant::now() + DEADLINE;
    loop {
        let listed = services(&fixture.app, &fixture.admin).await;
        if backlogs_as_expected(&listed) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < until,
            "backlogs not as expected: {listed:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let text = fixture
        .app
        .get("/metrics", None)
        .await
        .text()
        .await
        .unwrap();
    for name in expected.iter().chain(&["loans"]) {
        for metric in ["supervised_actor_up", "supervised_actor_restarts_total"] {
            let line = format!("{metric}{{actor=\"{name}\"}} ");
            assert!(text.contains(&line), "no {line} in /metrics");
        }
    }
    assert!(text.contains("supervised_actor_backlog{actor=\"relay\"} 0"));
}

#[tokio::test]
async fn the_relay_restarts_after_a_panic_between_the_acks_and_the_stamps() {
    payments_around_a_panic_leave_one_trace_each("relay").await;
}

#[tokio::test]
async fn the_audit_consumer_restarts_after_a_panic_with_its_batch_unsettled() {
    payments_around_a_panic_leave_one_trace_each("audit").await;
}

#[tokio::test]
async fn the_notification_consumer_restarts_after_a_panic_with_its_batch_unsettled() {
    payments_around_a_panic_leave_one_trace_each("notifications").await;
}

/// Publishes an inbound payment without waiting (the in-process bus answers
/// only once the consumer settled it).
fn publish_inbound(app: &TestApp, body: Value) {
    let bus = app.bus.clone();
    let message = OutgoingMessage {
        subject: "loans.inbound.payments".into(),
        message_id: Uuid::new_v4().to_string(),
        payload: body.to_string().into_bytes(),
    };
    tokio::spawn(async move { bus.publish(message).await.expect("published") });
}

async fn payments_with_reference(db: &Db, reference: &str) -> i64 {
    with_read_pool!(db, |pool| sqlx::query_scalar(
        "select count(*) from payments where reference = $1"
    )
    .bind(reference)
    .fetch_one(pool)
    .await)
    .unwrap()
}

#[tokio::test]
async fn the_inbound_consumer_restarts_after_a_panic_and_applies_each_payment_once() {
    let fixture = Fixture::new(&[]).await;
    let (app, loan) = (&fixture.app, fixture.loan);
    arm_panic(&fixture, "inbound-payments").await;
    publish_inbound(
        app,
        json!({"loan_id": loan, "amount": "40.00", "currency": "USD", "external_ref": "bank-1"}),
    );
    restarted(&fixture, "inbound-payments").await;
    publish_inbound(
        app,
        json!({"loan_id": loan, "amount": "2.50", "currency": "USD", "external_ref": "bank-2"}),
    );
    eventually("both inbound payments applied", DEADLINE, || async {
        (total_paid(app, &fixture.owner, loan).await == "42.50").then_some(())
    })
    .await;
    settled(app).await;
    assert_eq!(payments_with_reference(&app.db, "bank-1").await, 1);
    assert_eq!(payments_with_reference(&app.db, "bank-2").await, 1);
    let backlog = eventually("the inbound backlog drained", DEADLINE, || async {
        let listed = service(app, &fixture.admin, "inbound-payments").await;
        (listed["backlog"] == 0).then_some(listed)
    })
    .await;
    assert_eq!(backlog["restarts"], 1);
    assert_eq!(total_paid(app, &fixture.owner, loan).await, "42.50");
}

fn day(text: &str) -> NaiveDate {
    text.parse().unwrap()
}

async fn overdue_runs(db: &Db) -> Vec<(NaiveDate, bool)> {
    with_read_pool!(db, |pool| sqlx::query_as(
        "select as_of, finished_at is not null from job_runs where job = 'overdue' order by as_of"
    )
    .fetch_all(pool)
    .await)
    .unwrap()
}

#[tokio::test]
async fn the_scheduler_restarts_after_a_panic_and_runs_each_date_once() {
    let start = Utc.with_ymd_and_hms(2026, 3, 1, 1, 0, 0).unwrap();
    // A fire every second: the panic comes with the next one.
    let app = spawn_app_at(start, &[("OVERDUE_CRON", "* * * * * *")]).await;
    let admin = app.user_with_role("boss", Role::Admin).await;
    eventually("the start-up catch-up", DEADLINE, || async {
        (overdue_runs(&app.db).await == [(day("2026-03-01"), true)]).then_some(())
    })
    .await;
    let fixture = Fixture {
        namespace: String::new(),
        owner: admin.clone(),
        loan: Uuid::nil(),
        admin,
        app,
    };
    arm_panic(&fixture, "scheduler").await;
    restarted(&fixture, "scheduler").await;
    let app = &fixture.app;
    // Work resumes: the next date runs on a fire of the restarted scheduler.
    app.clock
        .set(Utc.with_ymd_and_hms(2026, 3, 2, 1, 0, 0).unwrap());
    eventually("the next date's run", DEADLINE, || async {
        (overdue_runs(&app.db).await.len() == 2).then_some(())
    })
    .await;
    let started = eventually("the runs finished", DEADLINE, || async {
        let runs = overdue_runs(&app.db).await;
        runs.iter().all(|(_, finished)| *finished).then_some(runs)
    })
    .await;
    assert_eq!(
        started,
        [(day("2026-03-01"), true), (day("2026-03-02"), true)]
    );
    let job_started = crate::helpers::outbox_count(&app.db, "job.started").await;
    assert_eq!(job_started, 2, "one run per date, none repeated");
}

#[tokio::test]
async fn a_component_failing_past_its_budget_stays_down_and_the_instance_is_not_ready() {
    let start = Utc.with_ymd_and_hms(2026, 3, 1, 1, 0, 0).unwrap();
    let app = spawn_app_at(start, &[("OVERDUE_CRON", "* * * * * *")]).await;
    let admin = app.user_with_role("boss", Role::Admin).await;
    // The budget allows 5 restarts a minute; the 6th failure is final.
    for failures in 1..=6_u64 {
        app.tree.inject_service_panic("scheduler").unwrap();
        eventually("the scheduler failing again", DEADLINE, || async {
            let listed = service(&app, &admin, "scheduler").await;
            let settled = listed["state"] == "running" || listed["state"] == "failed";
            (listed["failures_in_window"] == failures && settled).then_some(())
        })
        .await;
    }
    let listed = service(&app, &admin, "scheduler").await;
    assert_eq!(listed["state"], "failed", "{listed}");
    assert_eq!(listed["restarts"], 5);
    let ready = app.get("/ready", None).await;
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    let problem: Value = ready.json().await.unwrap();
    assert!(
        problem["detail"]
            .as_str()
            .is_some_and(|detail| detail.contains("scheduler")),
        "{problem}"
    );
    let text = app.get("/metrics", None).await.text().await.unwrap();
    assert!(text.contains("supervised_actor_failed{actor=\"scheduler\"} 1"));
    assert!(text.contains("supervised_actor_up{actor=\"scheduler\"} 0"));
    assert!(text.contains("supervised_actor_failed{actor=\"relay\"} 0"));
    // The rest of the service goes on.
    assert_eq!(app.get("/health", None).await.status(), StatusCode::OK);
    let owner = app.register("still-served").await;
    assert_eq!(approved_loans(&app, &owner, 1, "100.00").await.len(), 1);
}

//! The event flow under stress: many inbound payments with duplicates across
//! a consumer restart, and NATS down while payments are made.

use std::process::Stdio;
use std::time::Duration;

use actors::bus::OutgoingMessage;
use reqwest::StatusCode;
use serde_json::json;
use tempfile::TempDir;
use uuid::Uuid;

use crate::bus::{outbox_event_ids, shared_database, stream_message_ids_at, unpublished};
use crate::helpers::{TestApp, approved_loans, eventually, spawn_app_with, test_namespace};

const DEADLINE: Duration = Duration::from_secs(120);

/// 1,000 inbound messages: 830 distinct payments, 150 repeats of them, 20 that can never apply.
fn inbound_messages(loans: &[Uuid]) -> Vec<(String, Option<&'static str>)> {
    let mut messages = Vec::with_capacity(1000);
    for n in 0..830 {
        let body = json!({"loan_id": loans[n % loans.len()], "amount": "1.00", "currency": "USD", "external_ref": format!("bank-{n}")});
        messages.push((body.to_string(), None));
        if n % 83 < 15 {
            // A repeat of this payment, sent again later as a bank would.
            messages.push((body.to_string(), None));
        }
    }
    for (n, loan_id) in loans.iter().take(10).enumerate() {
        let unknown = json!({"loan_id": Uuid::now_v7(), "amount": "1.00", "currency": "USD", "external_ref": format!("lost-{n}")});
        messages.push((unknown.to_string(), Some("unknown loan")));
        let euro = json!({"loan_id": loan_id, "amount": "1.00", "currency": "EUR", "external_ref": format!("euro-{n}")});
        messages.push((euro.to_string(), Some("currency")));
    }
    // Interleave deterministically so repeats and bad ones are spread out.
    let len = messages.len();
    (0..len).map(|i| messages[(i * 7) % len].clone()).collect()
}

async fn publish(app: &TestApp, body: &str) {
    let message = OutgoingMessage {
        subject: "loans.inbound.payments".into(),
        message_id: Uuid::new_v4().to_string(),
        payload: body.as_bytes().to_vec(),
    };
    app.bus.publish(message).await.expect("published");
}

async fn count(app: &TestApp, sql: &'static str) -> i64 {
    with_pool!(&app.db, |pool| sqlx::query_scalar::<_, i64>(sql)
        .fetch_one(pool)
        .await)
    .unwrap()
}

#[tokio::test]
async fn a_thousand_inbound_payments_with_duplicates_apply_exactly_once_across_a_restart() {
    let dir = TempDir::new().unwrap();
    let database_url = shared_database(&dir).await;
    let namespace = test_namespace();
    let settings = [
        ("DATABASE_URL", database_url.as_str()),
        ("NATS_NAMESPACE", namespace.as_str()),
    ];
    let first = spawn_app_with(&settings).await;
    let owner = first.register("owner").await;
    let loans = approved_loans(&first, &owner, 20, "100000.00").await;
    let messages = inbound_messages(&loans);
    assert_eq!(messages.len(), 1000);
    let expected_dead = messages.iter().filter(|(_, dead)| dead.is_some()).count() as i64;
    for (body, _) in &messages[..500] {
        publish(&first, body).await;
    }
    // Restart the consumers mid-stream: whatever was in flight is redelivered.
    first.stop().await.expect("first instance stops");
    let second = spawn_app_with(&settings).await;
    for (body, _) in &messages[500..] {
        publish(&second, body).await;
    }
    eventually(
        "every inbound payment applied or dead-lettered",
        DEADLINE,
        || async {
            let payments = count(&second, "select count(*) from payments").await;
            let dead = count(&second, "select count(*) from inbound_dead_letters").await;
            (payments == 830 && dead == expected_dead).then_some(())
        },
    )
    .await;
    let paid: i64 = count(
        &second,
        "select cast(sum(total_paid_minor) as bigint) from loans",
    )
    .await;
    assert_eq!(paid, 830 * 100, "each payment applied exactly once");
    let reasons: Vec<String> = with_pool!(&second.db, |pool| sqlx::query_scalar(
        "select reason from inbound_dead_letters"
    )
    .fetch_all(pool)
    .await)
    .unwrap();
    assert_eq!(
        reasons
            .iter()
            .filter(|r| r.contains("unknown loan"))
            .count(),
        10,
        "{reasons:?}"
    );
    assert_eq!(
        reasons.iter().filter(|r| r.contains("currency")).count(),
        10,
        "{reasons:?}"
    );
}

/// A NATS server this test owns (so it can be down and come back), when
/// `NATS_SERVER_BIN` names a 2.10+ `nats-server` binary.
struct OwnNats {
    port: u16,
    store: TempDir,
    process: Option<tokio::process::Child>,
}

impl OwnNats {
    fn reserve() -> Option<Self> {
        std::env::var_os("NATS_SERVER_BIN")?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        Some(Self {
            port,
            store: TempDir::new().unwrap(),
            process: None,
        })
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    async fn start(&mut self) {
        let binary = std::env::var_os("NATS_SERVER_BIN").unwrap();
        let child = tokio::process::Command::new(binary)
            .args([
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-js",
                "-sd",
            ])
            .arg(self.store.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("nats-server starts");
        self.process = Some(child);
        let port = self.port;
        eventually(
            "the test's NATS to listen",
            Duration::from_secs(10),
            || async move {
                tokio::net::TcpStream::connect(("127.0.0.1", port))
                    .await
                    .ok()
                    .map(drop)
            },
        )
        .await;
    }
}

#[tokio::test]
async fn payments_made_while_nats_is_down_are_published_exactly_once_when_it_returns() {
    let Some(mut nats) = OwnNats::reserve() else {
        eprintln!("NATS_SERVER_BIN not set: skipped (CI sets it)");
        return;
    };
    let namespace = test_namespace();
    let url = nats.url();
    let app = spawn_app_with(&[
        ("NATS_URL", url.as_str()),
        ("NATS_NAMESPACE", namespace.as_str()),
    ])
    .await;
    let owner = app.register("owner").await;
    let loans = approved_loans(&app, &owner, 5, "10000.00").await;
    let runs = loans.iter().map(|loan_id| {
        let (client, token) = (app.client.clone(), owner.access_token.clone());
        let url = app.url(&format!("/api/v1/loans/{loan_id}/payments"));
        async move {
            for _ in 0..100 {
                let response = client
                    .post(&url)
                    .bearer_auth(&token)
                    .json(&json!({"amount": "1.00"}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), StatusCode::CREATED);
            }
        }
    });
    futures::future::join_all(runs).await;
    let rows = outbox_event_ids(&app.db).await.len();
    assert!(rows >= 500);
    assert_eq!(
        unpublished(&app.db).await as usize,
        rows,
        "published while NATS was down?"
    );
    let ready = app.get("/ready", None).await;
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);

    nats.start().await;
    eventually(
        "the outbox to drain into the returned NATS",
        DEADLINE,
        || async { (unpublished(&app.db).await == 0).then_some(()) },
    )
    .await;
    let ids = stream_message_ids_at(&url, &namespace).await;
    let distinct: std::collections::BTreeSet<&String> = ids.iter().collect();
    assert_eq!(ids.len(), distinct.len(), "an event was published twice");
    assert_eq!(
        ids.len(),
        rows,
        "stream message count differs from outbox rows"
    );
    assert_eq!(app.get("/ready", None).await.status(), StatusCode::OK);
}

/// A stop must end even when NATS went away first (it used to wait for a
/// reconnection forever in the final flush).
#[tokio::test]
async fn a_graceful_stop_ends_when_nats_is_gone() {
    let Some(mut nats) = OwnNats::reserve() else {
        eprintln!("NATS_SERVER_BIN not set: skipped (CI sets it)");
        return;
    };
    nats.start().await;
    let namespace = test_namespace();
    let url = nats.url();
    let app = spawn_app_with(&[
        ("NATS_URL", url.as_str()),
        ("NATS_NAMESPACE", namespace.as_str()),
    ])
    .await;
    let owner = app.register("stopper").await;
    approved_loans(&app, &owner, 1, "100.00").await;
    let mut server = nats.process.take().expect("started");
    server.kill().await.expect("NATS killed");
    let stopped = tokio::time::timeout(Duration::from_secs(45), app.stop()).await;
    assert!(
        stopped.is_ok(),
        "the graceful stop did not end with NATS gone"
    );
}

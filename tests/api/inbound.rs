//! Inbound payments beyond the happy path (SPEC §5): a reference pays one
//! loan only, a payment for a `PENDING` loan waits with backoff before it is
//! dead-lettered, and an ADMIN lists and replays dead letters.

use std::time::Duration;

use actors::bus::OutgoingMessage;
use loan_tracker::accounts::Role;
use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{
    Session, TestApp, approved_loans, eventually, spawn_app, spawn_app_with, total_paid,
};

const DEADLINE: Duration = Duration::from_secs(20);

/// Publishes without waiting: the in-process bus answers a publish only once
/// the consumer settled it, which for a waiting payment is much later.
fn publish_inbound(app: &TestApp, body: Value) {
    let bus = app.bus.clone();
    let message = OutgoingMessage {
        subject: "loans.inbound.payments".into(),
        message_id: Uuid::new_v4().to_string(),
        payload: body.to_string().into_bytes(),
    };
    tokio::spawn(async move { bus.publish(message).await.expect("published") });
}

async fn pending_loan(app: &TestApp, owner: &Session) -> Uuid {
    let body = json!({"principal": "1000.00", "annual_interest_rate": "6", "term_months": 12});
    let loan: Value = app
        .post_json("/api/v1/loans", Some(&owner.access_token), &body)
        .await
        .json()
        .await
        .unwrap();
    loan["id"].as_str().unwrap().parse().unwrap()
}

async fn approve(app: &TestApp, admin: &Session, loan_id: Uuid) {
    let approved = app
        .post_json(
            &format!("/api/v1/loans/{loan_id}/approve"),
            Some(&admin.access_token),
            &json!({}),
        )
        .await;
    assert_eq!(approved.status(), StatusCode::OK);
}

async fn dead_letter_list(app: &TestApp, admin: &Session, query: &str) -> Value {
    let answer = app
        .get(
            &format!("/api/v1/admin/inbound/dead-letters{query}"),
            Some(&admin.access_token),
        )
        .await;
    assert_eq!(answer.status(), StatusCode::OK);
    answer.json().await.unwrap()
}

async fn first_dead_letter(app: &TestApp, admin: &Session) -> Value {
    eventually("a dead letter", DEADLINE, || async {
        dead_letter_list(app, admin, "").await["items"]
            .as_array()
            .and_then(|items| items.first().cloned())
    })
    .await
}

async fn replay(app: &TestApp, admin: &Session, id: &str) -> reqwest::Response {
    app.post_json(
        &format!("/api/v1/admin/inbound/dead-letters/{id}/replay"),
        Some(&admin.access_token),
        &json!({}),
    )
    .await
}

async fn payments_with_reference(app: &TestApp, reference: &str) -> i64 {
    with_pool!(&app.db, |pool| sqlx::query_scalar(
        "select count(*) from payments where reference = $1"
    )
    .bind(reference)
    .fetch_one(pool)
    .await)
    .unwrap()
}

#[tokio::test]
async fn a_reference_pays_one_loan_only_a_second_loan_gets_a_dead_letter() {
    let app = spawn_app().await;
    let owner = app.register("owner").await;
    let admin = app.user_with_role("boss", Role::Admin).await;
    let loans = approved_loans(&app, &owner, 2, "1000.00").await;
    publish_inbound(
        &app,
        json!({"loan_id": loans[0], "amount": "40.00", "currency": "USD", "external_ref": "bank-77"}),
    );
    eventually("the first payment", DEADLINE, || async {
        (total_paid(&app, &owner, loans[0]).await == "40.00").then_some(())
    })
    .await;
    publish_inbound(
        &app,
        json!({"loan_id": loans[1], "amount": "40.00", "currency": "USD", "external_ref": "bank-77"}),
    );
    let letter = first_dead_letter(&app, &admin).await;
    assert_eq!(letter["external_ref"], "bank-77");
    let reason = letter["reason"].as_str().unwrap();
    assert!(reason.contains("already pays another loan"), "{reason}");
    assert!(
        letter["message"]
            .as_str()
            .unwrap()
            .contains(&loans[1].to_string())
    );
    assert_eq!(total_paid(&app, &owner, loans[1]).await, "0.00");
    // A replay still refuses it, and says why.
    let replayed = replay(&app, &admin, letter["id"].as_str().unwrap()).await;
    assert_eq!(replayed.status(), StatusCode::OK);
    let replayed: Value = replayed.json().await.unwrap();
    assert_eq!(replayed["replay_outcome"], "not_applied");
    assert!(
        replayed["replay_detail"]
            .as_str()
            .unwrap()
            .contains("already pays another loan")
    );
    assert_eq!(payments_with_reference(&app, "bank-77").await, 1);
}

#[tokio::test]
async fn a_payment_for_a_pending_loan_waits_and_applies_once_the_loan_is_approved() {
    let app = spawn_app_with(&[
        ("INBOUND_PENDING_RETRY_FIRST_MS", "20"),
        ("INBOUND_PENDING_RETRY_MAX_MS", "100"),
        ("INBOUND_PENDING_RETRY_ATTEMPTS", "1000"),
    ])
    .await;
    let owner = app.register("owner").await;
    let admin = app.user_with_role("boss", Role::Admin).await;
    let loan_id = pending_loan(&app, &owner).await;
    publish_inbound(
        &app,
        json!({"loan_id": loan_id, "amount": "25.00", "currency": "USD", "external_ref": "early-1"}),
    );
    // It is being retried: redelivered, not yet applied, not buried.
    eventually("a redelivery", DEADLINE, || async {
        let consumed = app.get("/metrics", None).await.text().await.unwrap();
        consumed
            .lines()
            .any(|line| {
                line.starts_with("events_consumed_total")
                    && line.contains("inbound-payments")
                    && line.contains("retry")
            })
            .then_some(())
    })
    .await;
    approve(&app, &admin, loan_id).await;
    eventually("the waiting payment", DEADLINE, || async {
        (total_paid(&app, &owner, loan_id).await == "25.00").then_some(())
    })
    .await;
    let letters = dead_letter_list(&app, &admin, "").await;
    assert_eq!(letters["items"], json!([]), "{letters}");
}

#[tokio::test]
async fn a_loan_pending_too_long_dead_letters_the_payment_and_an_admin_replays_it() {
    let app = spawn_app_with(&[
        ("INBOUND_PENDING_RETRY_FIRST_MS", "10"),
        ("INBOUND_PENDING_RETRY_MAX_MS", "20"),
        ("INBOUND_PENDING_RETRY_ATTEMPTS", "3"),
    ])
    .await;
    let owner = app.register("owner").await;
    let admin = app.user_with_role("boss", Role::Admin).await;
    let loan_id = pending_loan(&app, &owner).await;
    publish_inbound(
        &app,
        json!({"loan_id": loan_id, "amount": "30.00", "currency": "USD", "external_ref": "late-1"}),
    );
    let letter = first_dead_letter(&app, &admin).await;
    let id = letter["id"].as_str().unwrap().to_owned();
    assert_eq!(letter["external_ref"], "late-1");
    assert!(
        letter["reason"]
            .as_str()
            .unwrap()
            .ends_with("is still PENDING after 3 deliveries"),
        "{letter}"
    );
    assert_eq!(letter["replay_outcome"], Value::Null);

    // Still pending: the replay applies nothing and says why.
    let early: Value = replay(&app, &admin, &id).await.json().await.unwrap();
    assert_eq!(early["replay_outcome"], "not_applied");
    assert!(early["replay_detail"].as_str().unwrap().contains("PENDING"));
    assert!(early["replayed_at"].is_string());
    assert_eq!(payments_with_reference(&app, "late-1").await, 0);

    approve(&app, &admin, loan_id).await;
    let applied: Value = replay(&app, &admin, &id).await.json().await.unwrap();
    assert_eq!(applied["replay_outcome"], "applied", "{applied}");
    assert_eq!(applied["replay_detail"], Value::Null);
    assert_eq!(total_paid(&app, &owner, loan_id).await, "30.00");

    // Replaying an applied reference changes nothing.
    let again: Value = replay(&app, &admin, &id).await.json().await.unwrap();
    assert_eq!(again["replay_outcome"], "already_applied", "{again}");
    assert_eq!(total_paid(&app, &owner, loan_id).await, "30.00");
    assert_eq!(payments_with_reference(&app, "late-1").await, 1);

    let unknown = replay(&app, &admin, &Uuid::now_v7().to_string()).await;
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    let body: Value = unknown.json().await.unwrap();
    assert_eq!(body["detail"], "dead letter not found");
}

#[tokio::test]
async fn dead_letters_are_listed_newest_first_one_per_distinct_message() {
    let app = spawn_app().await;
    let admin = app.user_with_role("boss", Role::Admin).await;
    let bad = |n: u32| json!({"loan_id": Uuid::now_v7(), "amount": "1.00", "currency": "USD", "external_ref": format!("ghost-{n}")});
    let first = bad(1);
    publish_inbound(&app, first.clone());
    first_dead_letter(&app, &admin).await;
    publish_inbound(&app, bad(2));
    // The same message again is the same dead letter.
    publish_inbound(&app, first);
    publish_inbound(&app, bad(3));
    let page = eventually("three dead letters", DEADLINE, || async {
        let page = dead_letter_list(&app, &admin, "?limit=2").await;
        (page["next_cursor"].is_string()).then_some(page)
    })
    .await;
    let cursor = page["next_cursor"].as_str().unwrap();
    let rest = eventually("the third", DEADLINE, || async {
        let rest = dead_letter_list(&app, &admin, &format!("?limit=2&cursor={cursor}")).await;
        (rest["items"].as_array().unwrap().len() == 1).then_some(rest)
    })
    .await;
    let refs: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .chain(rest["items"].as_array().unwrap())
        .map(|item| item["external_ref"].as_str().unwrap())
        .collect();
    assert_eq!(refs[2], "ghost-1", "{refs:?}");
    let mut sorted = refs.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, ["ghost-1", "ghost-2", "ghost-3"]);
    assert_eq!(rest["next_cursor"], Value::Null);
    let all = dead_letter_list(&app, &admin, "?limit=100").await;
    assert_eq!(all["items"].as_array().unwrap().len(), 3, "{all}");
}

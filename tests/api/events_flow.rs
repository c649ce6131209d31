//! Events flowing out: notifications and e-mails for the owner, the audit
//! trail; and payments flowing in from outside systems.

use std::time::Duration;

use actors::bus::OutgoingMessage;
use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{
    Session, TestApp, approved_loans, eventually, spawn_app, spawn_app_with, total_paid,
};
use crate::smtp::SmtpSink;

const DEADLINE: Duration = Duration::from_secs(20);

async fn approved_loan(app: &TestApp, owner: &Session) -> Uuid {
    approved_loans(app, owner, 1, "1000.00").await[0]
}

async fn notification_of_kind(app: &TestApp, owner: &Session, kind: &str) -> Option<Value> {
    let list: Value = app
        .get("/api/v1/notifications", Some(&owner.access_token))
        .await
        .json()
        .await
        .ok()?;
    list["items"]
        .as_array()?
        .iter()
        .find(|item| item["kind"] == kind)
        .cloned()
}

#[tokio::test]
async fn a_payment_notifies_the_owner_writes_an_eml_and_is_audited() {
    let app = spawn_app().await;
    let owner = app.register("owner").await;
    let loan_id = approved_loan(&app, &owner).await;
    let paid = app
        .post_json(
            &format!("/api/v1/loans/{loan_id}/payments"),
            Some(&owner.access_token),
            &json!({"amount": "125.50"}),
        )
        .await;
    assert_eq!(paid.status(), StatusCode::CREATED);

    let notification = eventually("the payment notification", DEADLINE, || {
        notification_of_kind(&app, &owner, "payment.received")
    })
    .await;
    assert!(
        notification["body"]
            .as_str()
            .unwrap()
            .contains("125.50 USD"),
        "{notification}"
    );
    assert!(
        notification_of_kind(&app, &owner, "loan.approved")
            .await
            .is_some()
    );

    if std::env::var("TEST_NATS_URL").is_err() {
        // The embedded default writes mail files.
        let mail_dir = app.data_dir.join("mail");
        let mail = eventually("an .eml file", DEADLINE, || async {
            let entries = std::fs::read_dir(&mail_dir).ok()?;
            let texts: Vec<String> = entries
                .filter_map(|e| std::fs::read_to_string(e.ok()?.path()).ok())
                .collect();
            texts
                .into_iter()
                .find(|text| text.contains("Payment received"))
        })
        .await;
        assert!(mail.contains("owner@example.com"), "{mail}");
    }
    let admin = app
        .user_with_role("auditor", loan_tracker::accounts::Role::Admin)
        .await;
    let audit = eventually("the payment in the audit log", DEADLINE, || async {
        let list: Value = app
            .get(
                &format!("/api/v1/audit-logs?action=payment.received&entity_id={loan_id}"),
                Some(&admin.access_token),
            )
            .await
            .json()
            .await
            .ok()?;
        list["items"]
            .as_array()
            .filter(|items| !items.is_empty())
            .cloned()
    })
    .await;
    assert_eq!(audit[0]["actor"], owner.user_id.to_string(), "{audit:?}");
}

#[tokio::test]
async fn e_mail_goes_through_smtp_and_transient_failures_are_retried() {
    let sink = SmtpSink::start(2).await;
    let app = spawn_app_with(&[("SMTP_URL", sink.url.as_str())]).await;
    let owner = app.register("owner").await;
    let loan_id = approved_loan(&app, &owner).await;
    app.post_json(
        &format!("/api/v1/loans/{loan_id}/payments"),
        Some(&owner.access_token),
        &json!({"amount": "10.00"}),
    )
    .await;
    let received = eventually("the payment e-mail over SMTP", DEADLINE, || async {
        sink.received()
            .into_iter()
            .find(|mail| mail.data.contains("Payment received"))
    })
    .await;
    assert_eq!(received.recipients, vec!["owner@example.com".to_owned()]);
    assert!(received.data.contains("10.00 USD"), "{}", received.data);
    let statuses: Vec<(String, i32)> = with_pool!(&app.db, |pool| sqlx::query_as(
        "select email_status, email_attempts from notifications where kind = 'payment.received'"
    )
    .fetch_all(pool)
    .await)
    .unwrap();
    assert_eq!(statuses.len(), 1, "one notification per event");
    let sent = eventually("the e-mail recorded as sent", DEADLINE, || async {
        let rows: Vec<(String, i32)> = with_pool!(&app.db, |pool| {
            sqlx::query_as(
            "select email_status, email_attempts from notifications where email_status <> 'pending'"
        )
        .fetch_all(pool)
        .await
        })
        .ok()?;
        (rows.len() >= 2).then_some(rows)
    })
    .await;
    assert!(sent.iter().all(|(status, _)| status == "sent"), "{sent:?}");
    assert!(
        sent.iter().any(|(_, attempts)| *attempts > 1),
        "the 451s were not retried: {sent:?}"
    );
}

async fn publish_inbound(app: &TestApp, body: &str) {
    let message = OutgoingMessage {
        subject: "loans.inbound.payments".into(),
        message_id: Uuid::new_v4().to_string(),
        payload: body.as_bytes().to_vec(),
    };
    app.bus
        .publish(message)
        .await
        .expect("inbound message published");
}

async fn dead_letters(app: &TestApp) -> Vec<String> {
    with_pool!(&app.db, |pool| sqlx::query_scalar(
        "select reason from inbound_dead_letters"
    )
    .fetch_all(pool)
    .await)
    .unwrap()
}

#[tokio::test]
async fn inbound_payments_apply_once_per_external_ref_and_bad_ones_are_dead_lettered() {
    let app = spawn_app().await;
    let owner = app.register("owner").await;
    let loan_id = approved_loan(&app, &owner).await;
    let good = json!({"loan_id": loan_id, "amount": "50.00", "currency": "USD", "external_ref": "bank-tx-1"}).to_string();
    for _ in 0..3 {
        publish_inbound(&app, &good).await;
    }
    eventually("the inbound payment", DEADLINE, || async {
        (total_paid(&app, &owner, loan_id).await == "50.00").then_some(())
    })
    .await;

    publish_inbound(&app, "{not json").await;
    publish_inbound(&app, &json!({"loan_id": Uuid::now_v7(), "amount": "1.00", "currency": "USD", "external_ref": "x"}).to_string()).await;
    publish_inbound(
        &app,
        &json!({"loan_id": loan_id, "amount": "1.00", "currency": "EUR", "external_ref": "y"})
            .to_string(),
    )
    .await;
    publish_inbound(
        &app,
        &json!({"loan_id": loan_id, "amount": "999999.00", "currency": "USD", "external_ref": "z"})
            .to_string(),
    )
    .await;
    let reasons = eventually("four dead letters", DEADLINE, || async {
        let reasons = dead_letters(&app).await;
        (reasons.len() >= 4).then_some(reasons)
    })
    .await;
    assert_eq!(reasons.len(), 4, "{reasons:?}");
    for expected in ["invalid message", "unknown loan", "currency", "exceeds"] {
        assert!(
            reasons.iter().any(|reason| reason.contains(expected)),
            "no {expected:?} in {reasons:?}"
        );
    }
    // Redelivered good message after all that: still one payment.
    publish_inbound(&app, &good).await;
    assert_eq!(total_paid(&app, &owner, loan_id).await, "50.00");
    let payments: i64 = with_pool!(&app.db, |pool| sqlx::query_scalar(
        "select count(*) from payments where loan_id = $1"
    )
    .bind(loan_id)
    .fetch_one(pool)
    .await)
    .unwrap();
    assert_eq!(payments, 1);
}

//! `DELETE /loans/{id}` (SPEC §4): through the loan's actor, `loan.deleted` in
//! the outbox with the deletion, audited; the actor stops and the loan is gone.

use std::time::Duration;

use actors::core::{LoanCommand, LoanId};
use actors::tree::{LoanRequest, TreeError};
use loan_tracker::accounts::Role;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{Session, TestApp, approved_loans, eventually, outbox_count, spawn_app};

async fn application(app: &TestApp, borrower: &Session) -> Uuid {
    let body = json!({"principal": "500.00", "annual_interest_rate": "6", "term_months": 6});
    let loan: Value = app
        .post_json("/api/v1/loans", Some(&borrower.access_token), &body)
        .await
        .json()
        .await
        .unwrap();
    loan["id"].as_str().unwrap().parse().unwrap()
}

async fn delete(app: &TestApp, admin: &Session, loan: Uuid) -> reqwest::Response {
    app.client
        .delete(app.url(&format!("/api/v1/loans/{loan}")))
        .bearer_auth(&admin.access_token)
        .send()
        .await
        .unwrap()
}

async fn is_live(app: &TestApp, loan: Uuid) -> bool {
    let snapshot = app.tree.snapshot().await.unwrap();
    snapshot
        .live
        .iter()
        .any(|actor| actor.loan_id == LoanId::new(loan))
}

#[tokio::test]
async fn deleting_an_application_goes_through_its_actor_emits_loan_deleted_and_is_audited() {
    let app = spawn_app().await;
    let admin = app.user_with_role("root", Role::Admin).await;
    let borrower = app.register("dina").await;
    let loan = application(&app, &borrower).await;
    assert!(is_live(&app, loan).await, "the application's actor runs");

    assert_eq!(delete(&app, &admin, loan).await.status(), 204);
    assert_eq!(outbox_count(&app.db, "loan.deleted").await, 1);
    let query = format!("/api/v1/audit-logs?entity_id={loan}&action=loan.deleted");
    let entry = eventually(
        "the deletion's audit entry",
        Duration::from_secs(15),
        || async {
            let page: Value = app
                .get(&query, Some(&admin.access_token))
                .await
                .json()
                .await
                .unwrap();
            page["items"].as_array().unwrap().first().cloned()
        },
    )
    .await;
    assert_eq!(entry["actor"], admin.user_id.to_string());
    assert_eq!(entry["detail"]["status"], "PENDING");

    // The actor is stopped; later commands find no loan.
    eventually("the actor to stop", Duration::from_secs(10), || async {
        (!is_live(&app, loan).await).then_some(())
    })
    .await;
    let now = app.clock.now();
    let request = LoanRequest {
        command: LoanCommand::Cancel,
        today: app.clock.today(),
        now,
        actor_id: None,
        reply: None,
    };
    let outcome = app.tree.execute(LoanId::new(loan), request).await;
    assert!(
        matches!(outcome, Err(TreeError::NotFound(_))),
        "{outcome:?}"
    );
    let read = app
        .get(&format!("/api/v1/loans/{loan}"), Some(&admin.access_token))
        .await;
    assert_eq!(read.status(), 404);
    let approve = app
        .post_json(
            &format!("/api/v1/loans/{loan}/approve"),
            Some(&admin.access_token),
            &json!({}),
        )
        .await;
    assert_eq!(approve.status(), 404);
    assert_eq!(delete(&app, &admin, loan).await.status(), 404);
    assert_eq!(outbox_count(&app.db, "loan.deleted").await, 1);
}

#[tokio::test]
async fn only_pending_rejected_or_cancelled_loans_are_deleted() {
    let app = spawn_app().await;
    let admin = app.user_with_role("root", Role::Admin).await;
    let borrower = app.register("eli").await;
    let approved = approved_loans(&app, &borrower, 1, "800.00").await[0];
    let refused = delete(&app, &admin, approved).await;
    assert_eq!(refused.status(), 409);
    let problem: Value = refused.json().await.unwrap();
    assert!(
        problem["detail"].as_str().unwrap().contains("APPROVED"),
        "{problem}"
    );
    let still = app
        .get(
            &format!("/api/v1/loans/{approved}"),
            Some(&admin.access_token),
        )
        .await;
    assert_eq!(still.status(), 200);

    let rejected = application(&app, &borrower).await;
    let reject = app
        .post_json(
            &format!("/api/v1/loans/{rejected}/reject"),
            Some(&admin.access_token),
            &json!({"reason": "no"}),
        )
        .await;
    assert_eq!(reject.status(), 200);
    let cancelled = application(&app, &borrower).await;
    let cancel = app
        .post_json(
            &format!("/api/v1/loans/{cancelled}/cancel"),
            Some(&borrower.access_token),
            &json!({}),
        )
        .await;
    assert_eq!(cancel.status(), 200);
    for loan in [rejected, cancelled] {
        assert_eq!(delete(&app, &admin, loan).await.status(), 204);
    }
    assert_eq!(outbox_count(&app.db, "loan.deleted").await, 2);
}

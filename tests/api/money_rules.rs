//! SPEC §4 "Who may do what to money": staff never decide on their own loan;
//! only staff back-date a payment, and then with a note.

use loan_tracker::accounts::Role;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{Session, TestApp, spawn_app};

/// A PENDING loan `borrower` applied for themselves.
async fn own_application(app: &TestApp, borrower: &Session) -> Uuid {
    let body = json!({"principal": "1200.00", "annual_interest_rate": "6", "term_months": 12});
    let response = app
        .post_json("/api/v1/loans", Some(&borrower.access_token), &body)
        .await;
    assert_eq!(response.status(), 201);
    let loan: Value = response.json().await.unwrap();
    loan["id"].as_str().unwrap().parse().unwrap()
}

/// Asserts a 403 problem+json that says why.
async fn assert_refused_as_own(response: reqwest::Response) {
    assert_eq!(response.status(), 403);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let problem: Value = response.json().await.unwrap();
    let detail = problem["detail"].as_str().unwrap();
    assert!(detail.contains("borrowed yourself"), "{detail}");
}

#[tokio::test]
async fn staff_cannot_approve_or_reject_their_own_application() {
    let app = spawn_app().await;
    let manager = app.user_with_role("mona", Role::Manager).await;
    let colleague = app.user_with_role("milo", Role::Manager).await;
    let loan = own_application(&app, &manager).await;
    for (action, body) in [
        ("approve", json!({})),
        ("reject", json!({"reason": "mine"})),
    ] {
        let response = app
            .post_json(
                &format!("/api/v1/loans/{loan}/{action}"),
                Some(&manager.access_token),
                &body,
            )
            .await;
        assert_refused_as_own(response).await;
    }
    let still: Value = app
        .get(
            &format!("/api/v1/loans/{loan}"),
            Some(&manager.access_token),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(still["status"], "PENDING");
    let approved = app
        .post_json(
            &format!("/api/v1/loans/{loan}/approve"),
            Some(&colleague.access_token),
            &json!({}),
        )
        .await;
    assert_eq!(
        approved.status(),
        200,
        "another staff member may approve it"
    );
}

#[tokio::test]
async fn an_admin_cannot_write_off_or_reverse_on_their_own_loan() {
    let app = spawn_app().await;
    let admin = app.user_with_role("ada", Role::Admin).await;
    let other_admin = app.user_with_role("abe", Role::Admin).await;
    let loan = own_application(&app, &admin).await;
    let approve = app
        .post_json(
            &format!("/api/v1/loans/{loan}/approve"),
            Some(&other_admin.access_token),
            &json!({}),
        )
        .await;
    assert_eq!(approve.status(), 200);
    let paid: Value = app
        .post_json(
            &format!("/api/v1/loans/{loan}/payments"),
            Some(&admin.access_token),
            &json!({"amount": "50.00"}),
        )
        .await
        .json()
        .await
        .unwrap();
    let payment = paid["payment"]["id"].as_str().unwrap().to_owned();

    let reverse = format!("/api/v1/payments/{payment}/reverse");
    let own_reversal = app
        .post_json(&reverse, Some(&admin.access_token), &json!({}))
        .await;
    assert_refused_as_own(own_reversal).await;
    let write_off = format!("/api/v1/loans/{loan}/write-off");
    let own_write_off = app
        .post_json(&write_off, Some(&admin.access_token), &json!({}))
        .await;
    assert_refused_as_own(own_write_off).await;
    let unchanged: Value = app
        .get(&format!("/api/v1/loans/{loan}"), Some(&admin.access_token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(unchanged["status"], "APPROVED");
    assert_eq!(unchanged["total_paid"], "50.00");

    let reversed = app
        .post_json(&reverse, Some(&other_admin.access_token), &json!({}))
        .await;
    assert_eq!(reversed.status(), 200);
    let written_off = app
        .post_json(&write_off, Some(&other_admin.access_token), &json!({}))
        .await;
    assert_eq!(written_off.status(), 200);
}

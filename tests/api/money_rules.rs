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

fn at(day: &str) -> chrono::DateTime<chrono::Utc> {
    format!("{day}T10:00:00Z").parse().unwrap()
}

/// An APPROVED loan disbursed on 2026-01-10 (first due 2026-02-10), the clock
/// then moved to `today`; returns the app, the borrower, a MANAGER and the loan.
async fn loan_disbursed_2026_01_10(today: &str) -> (TestApp, Session, Session, Uuid) {
    let app = crate::helpers::spawn_app_at(at("2026-01-10"), &[]).await;
    let borrower = app.register("bob").await;
    let manager = app.user_with_role("meg", Role::Manager).await;
    let loan = crate::helpers::approved_loans(&app, &borrower, 1, "1200.00").await[0];
    app.clock.set(at(today));
    (app, borrower, manager, loan)
}

async fn pay(
    app: &TestApp,
    who: &Session,
    path: &str,
    body: Value,
) -> (reqwest::StatusCode, Value) {
    let response = app.post_json(path, Some(&who.access_token), &body).await;
    (response.status(), response.json().await.unwrap())
}

#[tokio::test]
async fn a_borrower_pays_today_only_and_staff_back_date_with_a_note() {
    let (app, borrower, manager, loan) = loan_disbursed_2026_01_10("2026-02-20").await;
    let on_loan = format!("/api/v1/loans/{loan}/payments");
    for path in [on_loan.as_str(), "/api/v1/payments"] {
        let mut body = json!({"loan_id": loan, "amount": "10.00", "paid_on": "2026-02-09"});
        if path == on_loan {
            body.as_object_mut().unwrap().remove("loan_id");
        }
        let (status, problem) = pay(&app, &borrower, path, body.clone()).await;
        assert_eq!(status, 403, "{path}: {problem}");
        assert!(problem["detail"].as_str().unwrap().contains("only staff"));
        // Staff without a note: 422 naming it.
        let (status, problem) = pay(&app, &manager, path, body.clone()).await;
        assert_eq!(status, 422, "{path}: {problem}");
        assert!(problem["detail"].as_str().unwrap().starts_with("note"));
        // A future date: 422 for everyone.
        body["paid_on"] = json!("2026-02-21");
        body["note"] = json!("typo");
        for who in [&borrower, &manager] {
            let (status, _) = pay(&app, who, path, body.clone()).await;
            assert_eq!(status, 422, "{path}: a future paid_on");
        }
    }
    let payments: Value = app
        .get("/api/v1/payments", Some(&manager.access_token))
        .await
        .json()
        .await
        .unwrap();
    assert!(
        payments["items"].as_array().unwrap().is_empty(),
        "a refused payment was recorded"
    );

    // Today, said explicitly, is the borrower's own date.
    let (status, _) = pay(
        &app,
        &borrower,
        &on_loan,
        json!({"amount": "10.00", "paid_on": "2026-02-20"}),
    )
    .await;
    assert_eq!(status, 201);
    let note = "cheque received 2026-02-09, entered late";
    let (status, paid) = pay(
        &app,
        &manager,
        &on_loan,
        json!({"amount": "20.00", "paid_on": "2026-02-09", "note": note}),
    )
    .await;
    assert_eq!(status, 201, "{paid}");
    assert_eq!(paid["payment"]["paid_on"], "2026-02-09");
    assert_eq!(paid["payment"]["note"], note);
    let id = paid["payment"]["id"].as_str().unwrap();
    let shown: Value = app
        .get(
            &format!("/api/v1/payments/{id}"),
            Some(&borrower.access_token),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(shown["note"], note);
    let event: sqlx::types::Json<Value> = with_pool!(&app.db, |pool| {
        sqlx::query_scalar(
            "select payload from outbox where subject = 'loans.events.payment.received' \
             order by seq desc limit 1",
        )
        .fetch_one(pool)
        .await
    })
    .unwrap();
    assert_eq!(event.0["data"]["note"], note);
    assert_eq!(event.0["data"]["paid_on"], "2026-02-09");
}

async fn loan_status(app: &TestApp, who: &Session, loan: Uuid) -> Value {
    app.get(&format!("/api/v1/loans/{loan}"), Some(&who.access_token))
        .await
        .json()
        .await
        .unwrap()
}

async fn listed_with_status(app: &TestApp, who: &Session, status: &str) -> Vec<Value> {
    let page: Value = app
        .get(
            &format!("/api/v1/loans?status={status}"),
            Some(&who.access_token),
        )
        .await
        .json()
        .await
        .unwrap();
    page["items"].as_array().unwrap().clone()
}

#[tokio::test]
async fn a_loan_past_due_reads_overdue_before_the_job_runs_and_lists_agree() {
    // Installment 1 (2026-02-10) is two days past due; the overdue job has not run.
    let (app, borrower, manager, loan) = loan_disbursed_2026_01_10("2026-02-12").await;
    let read = loan_status(&app, &borrower, loan).await;
    assert_eq!(read["status"], "OVERDUE", "{read}");
    assert_eq!(read["days_past_due"], 2);
    let overdue = listed_with_status(&app, &manager, "OVERDUE").await;
    assert_eq!(overdue.len(), 1);
    assert_eq!(overdue[0]["id"], loan.to_string());
    assert_eq!(overdue[0]["status"], "OVERDUE");
    assert!(
        listed_with_status(&app, &manager, "APPROVED")
            .await
            .is_empty()
    );
    let all: Value = app
        .get("/api/v1/loans", Some(&borrower.access_token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(all["items"][0]["status"], "OVERDUE");

    // A payment too small to catch up answers the loan as it stands today.
    let on_loan = format!("/api/v1/loans/{loan}/payments");
    let (status, paid) = pay(&app, &borrower, &on_loan, json!({"amount": "1.00"})).await;
    assert_eq!(status, 201);
    assert_eq!(paid["loan"]["status"], "OVERDUE");

    // The job still charges the late fee and announces the lateness.
    let admin = app.user_with_role("ari", Role::Admin).await;
    let run = app
        .post_json(
            "/api/v1/admin/jobs/overdue/run",
            Some(&admin.access_token),
            &json!({"as_of": "2026-02-12"}),
        )
        .await;
    assert_eq!(run.status(), 200);
    assert_eq!(
        crate::helpers::outbox_count(&app.db, "late_fee.applied").await,
        1
    );
    assert_eq!(
        crate::helpers::outbox_count(&app.db, "loan.overdue").await,
        1
    );
    assert_eq!(
        loan_status(&app, &borrower, loan).await["status"],
        "OVERDUE"
    );

    // Caught up: APPROVED again, in the item and in the filtered lists.
    let (status, paid) = pay(&app, &borrower, &on_loan, json!({"amount": "200.00"})).await;
    assert_eq!(status, 201, "{paid}");
    assert_eq!(paid["loan"]["status"], "APPROVED", "{paid}");
    assert_eq!(
        listed_with_status(&app, &manager, "APPROVED").await.len(),
        1
    );
    assert!(
        listed_with_status(&app, &manager, "OVERDUE")
            .await
            .is_empty()
    );
}

//! `GET /loans/{id}` and the lists are served from the loan rows alone (one
//! row, no history): they must show exactly what the core computes from the
//! whole loan, in every state and on every day (issue 12 item 6).

use actors::core::LoanId;
use chrono::NaiveDate;
use loan_tracker::accounts::Role;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{Session, TestApp, approved_loans, spawn_app_at};

fn at(day: &str) -> chrono::DateTime<chrono::Utc> {
    format!("{day}T10:00:00Z").parse().unwrap()
}

async fn post(app: &TestApp, who: &Session, path: &str, body: Value) -> Value {
    let response = app.post_json(path, Some(&who.access_token), &body).await;
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert!(status.is_success(), "{path}: {status} {body}");
    body
}

/// The figures of the loan as the core computes them from everything stored.
async fn core_figures(app: &TestApp, loan: Uuid, today: NaiveDate) -> Value {
    let view = loan_tracker::store::loans::get_loan(&app.db, LoanId::new(loan))
        .await
        .unwrap()
        .expect("the loan exists");
    let figures = view.loan.figures(today);
    json!({
        "status": figures.status.as_str(),
        "total_paid": figures.total_paid.to_string(),
        "principal_outstanding": figures.principal_outstanding.to_string(),
        "interest_outstanding": figures.interest_outstanding.to_string(),
        "fees_outstanding": figures.fees_outstanding.to_string(),
        "total_outstanding": figures.total_outstanding.to_string(),
        "next_due_date": figures.next_due_date,
        "days_past_due": figures.days_past_due,
        "version": view.version,
    })
}

fn shown_figures(body: &Value) -> Value {
    let fields = [
        "status",
        "total_paid",
        "principal_outstanding",
        "interest_outstanding",
        "fees_outstanding",
        "total_outstanding",
        "next_due_date",
        "days_past_due",
        "version",
    ];
    fields
        .iter()
        .map(|field| ((*field).to_owned(), body[*field].clone()))
        .collect::<serde_json::Map<_, _>>()
        .into()
}

/// Every loan, read alone and listed, shows the core's figures for `today`.
async fn assert_reads_agree(app: &TestApp, staff: &Session, loans: &[Uuid], today: NaiveDate) {
    let listed: Value = app
        .get("/api/v1/loans?limit=100", Some(&staff.access_token))
        .await
        .json()
        .await
        .unwrap();
    for loan in loans {
        let read: Value = app
            .get(&format!("/api/v1/loans/{loan}"), Some(&staff.access_token))
            .await
            .json()
            .await
            .unwrap();
        let expected = core_figures(app, *loan, today).await;
        assert_eq!(shown_figures(&read), expected, "GET {loan} on {today}");
        let item = listed["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|item| item["id"] == loan.to_string())
            .expect("the loan is listed");
        assert_eq!(item, &read, "the list shows {loan} as GET does");
    }
}

#[tokio::test]
async fn a_loan_read_from_its_row_shows_what_the_core_computes_in_every_state() {
    let app = spawn_app_at(at("2026-01-10"), &[]).await;
    let borrower = app.register("rita").await;
    let admin = app.user_with_role("ray", Role::Admin).await;
    let staff = app.user_with_role("rob", Role::Manager).await;
    let terms = json!({"principal": "1200.00", "annual_interest_rate": "9.5", "term_months": 24});
    let pending = post(&app, &borrower, "/api/v1/loans", terms.clone()).await["id"]
        .as_str()
        .unwrap()
        .parse::<Uuid>()
        .unwrap();
    let rejected = post(&app, &borrower, "/api/v1/loans", terms).await["id"]
        .as_str()
        .unwrap()
        .parse::<Uuid>()
        .unwrap();
    post(
        &app,
        &staff,
        &format!("/api/v1/loans/{rejected}/reject"),
        json!({"reason": "income not shown"}),
    )
    .await;
    let approved = approved_loans(&app, &borrower, 4, "1200.00").await;
    let (untouched, partly, late, paid_off) = (approved[0], approved[1], approved[2], approved[3]);
    let pay = |loan: Uuid, amount: &str| {
        (
            format!("/api/v1/loans/{loan}/payments"),
            json!({"amount": amount}),
        )
    };
    let (path, body) = pay(partly, "37.45");
    post(&app, &borrower, &path, body).await;
    let quote: Value = app
        .get(
            &format!("/api/v1/loans/{paid_off}/payoff"),
            Some(&borrower.access_token),
        )
        .await
        .json()
        .await
        .unwrap();
    let (path, body) = pay(paid_off, quote["total"].as_str().unwrap());
    post(&app, &borrower, &path, body).await;
    let loans = [pending, rejected, untouched, partly, late, paid_off];
    assert_reads_agree(
        &app,
        &staff,
        &loans,
        NaiveDate::from_ymd_opt(2026, 1, 10).unwrap(),
    )
    .await;

    // Past the first due date (2026-02-10), before and after the overdue job
    // charged its fees, then partly paid.
    for day in ["2026-02-10", "2026-02-11", "2026-02-25"] {
        app.clock.set(at(day));
        assert_reads_agree(&app, &staff, &loans, day.parse().unwrap()).await;
    }
    post(&app, &admin, "/api/v1/admin/jobs/overdue/run", json!({})).await;
    assert_reads_agree(&app, &staff, &loans, "2026-02-25".parse().unwrap()).await;
    let charged: Value = app
        .get(
            &format!("/api/v1/loans/{late}"),
            Some(&borrower.access_token),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_ne!(charged["fees_outstanding"], "0.00", "{charged}");
    let (path, body) = pay(late, "20.00");
    post(&app, &borrower, &path, body).await;
    app.clock.set(at("2026-04-01"));
    assert_reads_agree(&app, &staff, &loans, "2026-04-01".parse().unwrap()).await;
    let read: Value = app
        .get(
            &format!("/api/v1/loans/{late}"),
            Some(&borrower.access_token),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(read["status"], "OVERDUE", "{read}");
    assert_eq!(read["total_paid"], "20.00", "{read}");
}

#[tokio::test]
async fn a_loan_row_is_shown_to_its_owner_and_staff_only() {
    let app = spawn_app_at(at("2026-01-10"), &[]).await;
    let owner = app.register("oona").await;
    let other = app.register("otto").await;
    let staff = app.user_with_role("sue", Role::Manager).await;
    let loan = approved_loans(&app, &owner, 1, "500.00").await[0];
    let path = format!("/api/v1/loans/{loan}");
    for (who, status) in [(&owner, 200), (&staff, 200), (&other, 404)] {
        assert_eq!(
            app.get(&path, Some(&who.access_token)).await.status(),
            status
        );
    }
    let unknown = format!("/api/v1/loans/{}", Uuid::now_v7());
    assert_eq!(
        app.get(&unknown, Some(&staff.access_token)).await.status(),
        404
    );
}

/// The schedule, the payoff quote and a command's access check of a live
/// loan are answered by its actor from memory: rows changed behind the
/// actor's back in the database are not read (issue 12 item 6), while
/// another borrower still gets 404 from the same check.
#[tokio::test]
async fn a_live_loans_schedule_payoff_and_access_come_from_its_actor() {
    let app = spawn_app_at(at("2024-01-15"), &[]).await;
    let owner = app.register("live").await;
    let stranger = app.register("stranger").await;
    let loan = approved_loans(&app, &owner, 1, "1200.00").await[0];
    let schedule_path = format!("/api/v1/loans/{loan}/schedule");
    let payoff_path = format!("/api/v1/loans/{loan}/payoff");
    let read = |path: String, who: Session| {
        let app = &app;
        async move {
            let response = app.get(&path, Some(&who.access_token)).await;
            let status = response.status();
            let body: Value = response.json().await.unwrap();
            assert_eq!(status, 200, "{path}: {body}");
            body
        }
    };
    // Behind the actor's back: the row's owner becomes the stranger.
    read(schedule_path.clone(), owner.clone()).await;
    crate::helpers::execute(
        &app.db,
        &format!(
            "update loans set user_id = (select id from users where email = '{}')",
            stranger.email
        ),
    )
    .await;
    // The command's access check is the actor's: the owner may pay, the
    // stranger may not, nor see the schedule.
    let pay = json!({"amount": "1.00"});
    let payments = format!("/api/v1/loans/{loan}/payments");
    let paid = app
        .post_json(&payments, Some(&owner.access_token), &pay)
        .await;
    assert_eq!(paid.status(), 201);
    let refused = app
        .post_json(&payments, Some(&stranger.access_token), &pay)
        .await;
    assert_eq!(refused.status(), 404);
    let hidden = app.get(&schedule_path, Some(&stranger.access_token)).await;
    assert_eq!(hidden.status(), 404);
    // Behind its back again: every installment's principal grows by a cent.
    let schedule = read(schedule_path.clone(), owner.clone()).await;
    let payoff = read(payoff_path.clone(), owner.clone()).await;
    crate::helpers::execute(
        &app.db,
        "update installments set principal_minor = principal_minor + 1, \
         unpaid_minor = unpaid_minor + 1",
    )
    .await;
    assert_eq!(read(schedule_path.clone(), owner.clone()).await, schedule);
    assert_eq!(read(payoff_path, owner).await, payoff);
}

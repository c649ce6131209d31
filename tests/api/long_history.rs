//! A loan with a long history through the real stack: its actor folds the
//! older payments out of memory (issue 12 item 7) and still reverses a folded
//! payment, takes a payment dated before all of them, and answers with the
//! figures the store's whole history gives.

use loan_tracker::accounts::Role;
use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{TestApp, spawn_app_at};

/// More than twice the payments an actor keeps as records, so it folds.
const PAYMENTS: usize = 40;

fn at(day: &str) -> chrono::DateTime<chrono::Utc> {
    format!("{day}T10:00:00Z").parse().unwrap()
}

async fn loan_json(app: &TestApp, token: &str, loan: Uuid) -> Value {
    let response = app.get(&format!("/api/v1/loans/{loan}"), Some(token)).await;
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

/// The minor units of a decimal string such as `"12.34"`.
fn minor(amount: &Value) -> i64 {
    let text = amount.as_str().expect("an amount string");
    let (units, cents) = text.split_once('.').unwrap_or((text, "00"));
    units.parse::<i64>().unwrap() * 100 + cents.parse::<i64>().unwrap()
}

async fn history_loads(app: &TestApp) -> f64 {
    let text = app.get("/metrics", None).await.text().await.unwrap();
    text.lines()
        .find_map(|line| line.strip_prefix("loan_history_loads_total "))
        .map_or(0.0, |value| value.trim().parse().unwrap())
}

#[tokio::test]
async fn a_folded_payment_is_reversed_and_a_payment_dated_before_it_lands_exactly() {
    let app = spawn_app_at(at("2026-01-10"), &[]).await;
    let borrower = app.register("long").await;
    let manager = app.user_with_role("meg", Role::Manager).await;
    let admin = app.user_with_role("ada", Role::Admin).await;
    let loan = crate::helpers::approved_loans(&app, &borrower, 1, "1200.00").await[0];
    app.clock.set(at("2026-03-20"));
    let pay = format!("/api/v1/loans/{loan}/payments");
    let mut ids = Vec::new();
    for _ in 0..PAYMENTS {
        let response = app
            .post_json(
                &pay,
                Some(&borrower.access_token),
                &json!({"amount": "1.00"}),
            )
            .await;
        assert_eq!(response.status(), StatusCode::CREATED);
        let body: Value = response.json().await.unwrap();
        ids.push(body["payment"]["id"].as_str().unwrap().to_owned());
    }
    let before = loan_json(&app, &borrower.access_token, loan).await;
    assert_eq!(before["total_paid"], "40.00");
    let loads_before = history_loads(&app).await;

    // The first payment was folded out of the actor's memory long ago.
    let reversed = app
        .post_json(
            &format!("/api/v1/payments/{}/reverse", ids[0]),
            Some(&admin.access_token),
            &json!({}),
        )
        .await;
    assert_eq!(reversed.status(), StatusCode::OK);
    let after_reversal = loan_json(&app, &borrower.access_token, loan).await;
    assert_eq!(after_reversal["total_paid"], "39.00");
    assert_eq!(
        minor(&after_reversal["total_outstanding"]),
        minor(&before["total_outstanding"]) + 100,
        "the reversed 1.00 is owed again, exactly"
    );
    // Reversing it again is refused, as on a loan that never folded.
    let again = app
        .post_json(
            &format!("/api/v1/payments/{}/reverse", ids[0]),
            Some(&admin.access_token),
            &json!({}),
        )
        .await;
    assert_eq!(again.status(), StatusCode::CONFLICT);

    // Dated before every other payment: allocated first, the others move.
    let back_dated = app
        .post_json(
            &pay,
            Some(&manager.access_token),
            &json!({"amount": "5.00", "paid_on": "2026-02-01", "note": "cheque of 1 February"}),
        )
        .await;
    assert_eq!(back_dated.status(), StatusCode::CREATED);
    let back_dated: Value = back_dated.json().await.unwrap();
    assert_eq!(back_dated["payment"]["paid_on"], "2026-02-01");
    let after = loan_json(&app, &borrower.access_token, loan).await;
    assert_eq!(after["total_paid"], "44.00");
    assert_eq!(
        minor(&after["total_outstanding"]),
        minor(&after_reversal["total_outstanding"]) - 500
    );
    assert!(
        history_loads(&app).await >= loads_before + 2.0,
        "the reversal and the back-dated payment each loaded the whole history"
    );

    // A payment of today again needs no history, and the figures in memory are
    // those of the whole history as stored: the schedule's paid parts sum to
    // what the live payments' allocations say.
    let loads = history_loads(&app).await;
    let today = app
        .post_json(
            &pay,
            Some(&borrower.access_token),
            &json!({"amount": "2.00"}),
        )
        .await;
    assert_eq!(today.status(), StatusCode::CREATED);
    assert_eq!(history_loads(&app).await, loads);
    let schedule: Value = app
        .get(
            &format!("/api/v1/loans/{loan}/schedule"),
            Some(&borrower.access_token),
        )
        .await
        .json()
        .await
        .unwrap();
    let installments = schedule["installments"]
        .as_array()
        .or_else(|| schedule.as_array())
        .expect("installments");
    let paid_on_schedule: i64 = installments.iter().map(|line| minor(&line["paid"])).sum();
    let payments: Value = app
        .get(
            &format!("/api/v1/loans/{loan}/payments?limit=100"),
            Some(&borrower.access_token),
        )
        .await
        .json()
        .await
        .unwrap();
    let items = payments["items"].as_array().expect("payment items");
    assert_eq!(items.len(), PAYMENTS + 2);
    let live_allocated: i64 = items
        .iter()
        .filter(|payment| payment["reversed_on"].is_null())
        .map(|payment| {
            let allocation = &payment["allocation"];
            minor(&allocation["fee"])
                + minor(&allocation["interest"])
                + minor(&allocation["principal"])
        })
        .sum();
    assert_eq!(live_allocated, 4_600);
    assert_eq!(paid_on_schedule, 4_600);
    let last = loan_json(&app, &borrower.access_token, loan).await;
    assert_eq!(last["total_paid"], "46.00");
}

async fn json_of(app: &TestApp, token: &str, path: &str) -> Value {
    let response = app.get(path, Some(token)).await;
    assert_eq!(response.status(), StatusCode::OK, "GET {path}");
    response.json().await.unwrap()
}

/// The schedule and payoff of a loan with no live actor come from its row and
/// installments, without starting an actor or reading a payment, and equal
/// what the live actor shows (issue 12 item 6).
#[tokio::test]
async fn a_loan_without_a_live_actor_shows_the_schedule_and_payoff_its_actor_would() {
    let dir = tempfile::TempDir::new().unwrap();
    let database_url = crate::bus::shared_database(&dir).await;
    let settings = [("DATABASE_URL", database_url.as_str())];
    let live = spawn_app_at(at("2026-01-10"), &settings).await;
    let borrower = live.register("shown").await;
    let loan = crate::helpers::approved_loans(&live, &borrower, 1, "1200.00").await[0];
    live.clock.set(at("2026-02-05"));
    let paid = live
        .post_json(
            &format!("/api/v1/loans/{loan}/payments"),
            Some(&borrower.access_token),
            &json!({"amount": "150.00"}),
        )
        .await;
    assert_eq!(paid.status(), StatusCode::CREATED);
    // Past the second due date with it part paid: lateness is judged without payments too.
    live.clock.set(at("2026-04-01"));
    let other = spawn_app_at(at("2026-04-01"), &settings).await;

    let token = &borrower.access_token;
    for path in [
        format!("/api/v1/loans/{loan}/schedule"),
        format!("/api/v1/loans/{loan}/payoff"),
        format!("/api/v1/loans/{loan}/payoff?as_of=2026-03-15"),
    ] {
        let from_actor = json_of(&live, token, &path).await;
        let from_rows = json_of(&other, token, &path).await;
        assert_eq!(from_rows, from_actor, "{path}");
    }
    let schedule = json_of(&other, token, &format!("/api/v1/loans/{loan}/schedule")).await;
    let statuses: Vec<&str> = schedule["installments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|line| line["status"].as_str().unwrap())
        .collect();
    assert_eq!(&statuses[..3], ["PAID", "OVERDUE", "PENDING"]);
    assert_eq!(
        other.tree.counts().spawned,
        0,
        "no actor was started to show the loan"
    );
    // Someone else's loan stays hidden on this path as well.
    let stranger = other.register("stranger").await;
    let hidden = other
        .get(
            &format!("/api/v1/loans/{loan}/schedule"),
            Some(&stranger.access_token),
        )
        .await;
    assert_eq!(hidden.status(), StatusCode::NOT_FOUND);
}

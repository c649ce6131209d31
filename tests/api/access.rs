//! The access matrix: every route the API describes, asked by each kind of
//! caller. Fails when a route exists without an entry here.

use std::collections::BTreeSet;

use loan_tracker::accounts::Role;
use reqwest::Method;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{Session, TEST_PASSWORD, TestApp, spawn_app};

/// Who asks: anonymous, the owner (USER), another USER, a MANAGER, an ADMIN.
const CALLERS: [&str; 5] = ["anonymous", "owner", "other", "manager", "admin"];

struct Callers {
    owner: Session,
    other: Session,
    manager: Session,
    admin: Session,
    /// A user only the deactivate route targets, so the others keep working.
    victim: Session,
}

impl Callers {
    fn session(&self, index: usize) -> Option<&Session> {
        [
            None,
            Some(&self.owner),
            Some(&self.other),
            Some(&self.manager),
            Some(&self.admin),
        ][index]
    }
}

/// What a call needs created first, fresh for each call so one caller's
/// success does not change what the next one sees.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Needs {
    Nothing,
    /// A PENDING loan of the owner.
    PendingLoan,
    /// An APPROVED loan of the owner.
    ApprovedLoan,
    /// A payment on an APPROVED loan of the owner.
    Payment,
    /// An unread notification of the owner.
    Notification,
    /// An inbound dead letter (replaying it applies nothing: unknown loan).
    DeadLetter,
}

/// One route: method, path template, what it needs, and the status each caller expects.
struct Entry {
    method: Method,
    path: &'static str,
    needs: Needs,
    expected: [u16; 5],
}

fn entry(method: Method, path: &'static str, expected: [u16; 5]) -> Entry {
    on(Needs::Nothing, method, path, expected)
}

fn on(needs: Needs, method: Method, path: &'static str, expected: [u16; 5]) -> Entry {
    Entry {
        method,
        path,
        needs,
        expected,
    }
}

fn matrix() -> Vec<Entry> {
    use Needs::{ApprovedLoan, DeadLetter, Notification, Payment, PendingLoan};
    vec![
        entry(
            Method::POST,
            "/api/v1/auth/register",
            [201, 201, 201, 201, 201],
        ),
        entry(
            Method::POST,
            "/api/v1/auth/login",
            [200, 200, 200, 200, 200],
        ),
        entry(
            Method::POST,
            "/api/v1/auth/refresh-token",
            [200, 200, 200, 200, 200],
        ),
        entry(
            Method::POST,
            "/api/v1/auth/logout",
            [401, 204, 204, 204, 204],
        ),
        entry(Method::GET, "/api/v1/users", [401, 403, 403, 403, 200]),
        entry(Method::GET, "/api/v1/users/{id}", [401, 200, 404, 200, 200]),
        entry(
            Method::PATCH,
            "/api/v1/users/{id}/role",
            [401, 403, 403, 403, 200],
        ),
        entry(
            Method::POST,
            "/api/v1/users/{id}/deactivate",
            [401, 403, 403, 403, 200],
        ),
        entry(
            Method::GET,
            "/api/v1/users/{id}/loans",
            [401, 200, 404, 200, 200],
        ),
        entry(Method::GET, "/api/v1/profile", [401, 200, 404, 404, 404]),
        entry(Method::GET, "/api/v1/audit-logs", [401, 403, 403, 403, 200]),
        entry(
            Method::GET,
            "/api/v1/audit-logs/verify",
            [401, 403, 403, 403, 200],
        ),
        entry(Method::PUT, "/api/v1/profile", [401, 200, 200, 200, 200]),
        entry(
            Method::GET,
            "/api/v1/profile/{user_id}",
            [401, 200, 404, 200, 200],
        ),
        entry(Method::POST, "/api/v1/loans", [401, 201, 201, 201, 201]),
        entry(
            Method::POST,
            "/api/v1/loans/quote",
            [401, 200, 200, 200, 200],
        ),
        entry(Method::GET, "/api/v1/loans", [401, 200, 200, 200, 200]),
        on(
            PendingLoan,
            Method::GET,
            "/api/v1/loans/{loan}",
            [401, 200, 404, 200, 200],
        ),
        on(
            PendingLoan,
            Method::DELETE,
            "/api/v1/loans/{loan}",
            [401, 403, 403, 403, 204],
        ),
        on(
            ApprovedLoan,
            Method::GET,
            "/api/v1/loans/{loan}/schedule",
            [401, 200, 404, 200, 200],
        ),
        on(
            ApprovedLoan,
            Method::GET,
            "/api/v1/loans/{loan}/payoff",
            [401, 200, 404, 200, 200],
        ),
        on(
            PendingLoan,
            Method::POST,
            "/api/v1/loans/{loan}/approve",
            [401, 403, 403, 200, 200],
        ),
        on(
            PendingLoan,
            Method::POST,
            "/api/v1/loans/{loan}/reject",
            [401, 403, 403, 200, 200],
        ),
        on(
            PendingLoan,
            Method::POST,
            "/api/v1/loans/{loan}/cancel",
            [401, 200, 404, 403, 403],
        ),
        on(
            ApprovedLoan,
            Method::POST,
            "/api/v1/loans/{loan}/write-off",
            [401, 403, 403, 403, 200],
        ),
        on(
            ApprovedLoan,
            Method::GET,
            "/api/v1/loans/{loan}/payments",
            [401, 200, 404, 200, 200],
        ),
        on(
            ApprovedLoan,
            Method::POST,
            "/api/v1/loans/{loan}/payments",
            [401, 201, 404, 201, 201],
        ),
        entry(Method::GET, "/api/v1/payments", [401, 200, 200, 200, 200]),
        on(
            ApprovedLoan,
            Method::POST,
            "/api/v1/payments",
            [401, 201, 404, 201, 201],
        ),
        on(
            Payment,
            Method::GET,
            "/api/v1/payments/{payment}",
            [401, 200, 404, 200, 200],
        ),
        on(
            Payment,
            Method::POST,
            "/api/v1/payments/{payment}/reverse",
            [401, 403, 403, 403, 200],
        ),
        entry(
            Method::GET,
            "/api/v1/notifications",
            [401, 200, 200, 200, 200],
        ),
        entry(
            Method::POST,
            "/api/v1/notifications/read-all",
            [401, 200, 200, 200, 200],
        ),
        on(
            Notification,
            Method::POST,
            "/api/v1/notifications/{notification}/read",
            [401, 200, 404, 404, 404],
        ),
        entry(
            Method::GET,
            "/api/v1/admin/actors",
            [401, 403, 403, 403, 200],
        ),
        entry(
            Method::POST,
            "/api/v1/admin/jobs/{job}/run",
            [401, 403, 403, 403, 200],
        ),
        entry(
            Method::GET,
            "/api/v1/admin/inbound/dead-letters",
            [401, 403, 403, 403, 200],
        ),
        on(
            DeadLetter,
            Method::POST,
            "/api/v1/admin/inbound/dead-letters/{letter}/replay",
            [401, 403, 403, 403, 200],
        ),
    ]
}

/// Ids a call's path and body refer to.
#[derive(Default)]
struct Target {
    loan_id: Option<Uuid>,
    payment_id: Option<Uuid>,
    notification_id: Option<Uuid>,
    dead_letter_id: Option<Uuid>,
}

/// Creates what `needs` asks for, through the API as the owner and the admin.
async fn prepare(app: &TestApp, callers: &Callers, needs: Needs) -> Target {
    if needs == Needs::Nothing {
        return Target::default();
    }
    if needs == Needs::Notification {
        let new = loan_tracker::notifications::store::NewNotification {
            user_id: callers.owner.user_id,
            event_id: Uuid::now_v7(),
            kind: "loan.approved".into(),
            title: "Loan approved".into(),
            body: "Your loan was approved.".into(),
        };
        let stored =
            loan_tracker::notifications::store::insert_once(&app.db, &new, chrono::Utc::now())
                .await
                .unwrap();
        return Target {
            notification_id: stored.map(|n| n.id),
            ..Target::default()
        };
    }
    if needs == Needs::DeadLetter {
        let payload = json!({"loan_id": Uuid::now_v7(), "amount": "1.00", "currency": "USD", "external_ref": Uuid::now_v7().to_string()}).to_string();
        let now = chrono::Utc::now();
        loan_tracker::inbound::dead_letters::record(
            &app.db,
            payload.as_bytes(),
            None,
            "unknown loan",
            now,
        )
        .await
        .unwrap();
        let page = loan_tracker::store::page::PageRequest::new(Some(1), None).unwrap();
        let newest = loan_tracker::inbound::dead_letters::list(&app.db, page)
            .await
            .unwrap();
        return Target {
            dead_letter_id: Some(newest.items[0].id),
            ..Target::default()
        };
    }
    let loan = json!({"principal": "1200.00", "annual_interest_rate": "12", "term_months": 12});
    let created: Value = app
        .post_json("/api/v1/loans", Some(&callers.owner.access_token), &loan)
        .await
        .json()
        .await
        .unwrap();
    let loan_id: Uuid = created["id"].as_str().unwrap().parse().unwrap();
    if needs == Needs::PendingLoan {
        return Target {
            loan_id: Some(loan_id),
            ..Target::default()
        };
    }
    let approve_path = format!("/api/v1/loans/{loan_id}/approve");
    let approve = app
        .post_json(&approve_path, Some(&callers.admin.access_token), &json!({}))
        .await;
    assert_eq!(approve.status(), 200, "approving the matrix's loan");
    if needs == Needs::ApprovedLoan {
        return Target {
            loan_id: Some(loan_id),
            ..Target::default()
        };
    }
    let pay_path = format!("/api/v1/loans/{loan_id}/payments");
    let paid: Value = app
        .post_json(
            &pay_path,
            Some(&callers.owner.access_token),
            &json!({"amount": "5.00"}),
        )
        .await
        .json()
        .await
        .unwrap();
    Target {
        loan_id: Some(loan_id),
        payment_id: Some(paid["payment"]["id"].as_str().unwrap().parse().unwrap()),
        ..Target::default()
    }
}

/// A body that makes the request succeed for a caller entitled to it (a
/// fresh login for the session routes, so each call has its own tokens).
async fn body_for(
    app: &TestApp,
    entry: &Entry,
    caller: usize,
    callers: &Callers,
    call: usize,
    target: &Target,
) -> Option<Value> {
    let login_of = |index: usize| {
        callers
            .session(index)
            .unwrap_or(&callers.owner)
            .email
            .clone()
    };
    match entry.path {
        "/api/v1/auth/register" => Some(json!({
            "email": format!("new{caller}-{call}@example.com"),
            "username": format!("new{caller}-{call}"),
            "password": TEST_PASSWORD,
        })),
        "/api/v1/auth/login" => Some(json!({"email": login_of(caller), "password": TEST_PASSWORD})),
        "/api/v1/auth/refresh-token" | "/api/v1/auth/logout" => {
            Some(json!({"refresh_token": app.login(&login_of(caller)).await.refresh_token}))
        }
        "/api/v1/users/{id}/role" => Some(json!({"role": "USER"})),
        "/api/v1/profile" if entry.method == Method::PUT => {
            Some(json!({"first_name": "Pat", "last_name": "Doe"}))
        }
        "/api/v1/loans" | "/api/v1/loans/quote" if entry.method == Method::POST => {
            Some(json!({"principal": "1200.00", "annual_interest_rate": "12", "term_months": 12}))
        }
        "/api/v1/loans/{loan}/reject" => Some(json!({"reason": "insufficient income"})),
        "/api/v1/loans/{loan}/payments" if entry.method == Method::POST => {
            Some(json!({"amount": "1.00"}))
        }
        "/api/v1/payments" if entry.method == Method::POST => {
            Some(json!({"loan_id": target.loan_id, "amount": "1.00"}))
        }
        _ => None,
    }
}

fn concrete(path: &str, callers: &Callers, target: &Target) -> String {
    let user = if path.ends_with("/deactivate") {
        &callers.victim
    } else {
        &callers.owner
    };
    let text = |id: Option<Uuid>| id.map(|id| id.to_string()).unwrap_or_default();
    path.replace("{id}", &user.user_id.to_string())
        .replace("{user_id}", &user.user_id.to_string())
        .replace("{loan}", &text(target.loan_id))
        .replace("{payment}", &text(target.payment_id))
        .replace("{notification}", &text(target.notification_id))
        .replace("{letter}", &text(target.dead_letter_id))
        .replace("{job}", "overdue")
}

/// (METHOD, path template) of every operation `/openapi.json` describes.
pub async fn described_routes(app: &TestApp) -> BTreeSet<(String, String)> {
    let spec: Value = app.get("/openapi.json", None).await.json().await.unwrap();
    spec["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, operations)| {
            operations
                .as_object()
                .unwrap()
                .keys()
                .map(|method| (method.to_uppercase(), path.clone()))
        })
        .filter(|(_, path)| path.starts_with("/api/"))
        .collect()
}

#[tokio::test]
async fn every_route_answers_each_caller_as_the_rules_say() {
    let app = spawn_app().await;
    let callers = Callers {
        owner: app.register("owner").await,
        other: app.register("other").await,
        manager: app.user_with_role("manager", Role::Manager).await,
        admin: app.user_with_role("admin", Role::Admin).await,
        victim: app.register("victim").await,
    };
    let owner_profile = json!({"first_name": "Owen", "last_name": "Er"});
    let put = app
        .client
        .put(app.url("/api/v1/profile"))
        .bearer_auth(&callers.owner.access_token)
        .json(&owner_profile);
    assert_eq!(put.send().await.unwrap().status(), 200);

    let entries = matrix();
    let covered: BTreeSet<(String, String)> = entries
        .iter()
        .map(|e| {
            (
                e.method.to_string(),
                e.path
                    .replace("{loan}", "{id}")
                    .replace("{payment}", "{id}")
                    .replace("{notification}", "{id}")
                    .replace("{letter}", "{id}")
                    .replace("{job}", "{name}"),
            )
        })
        .collect();
    assert_eq!(
        described_routes(&app).await,
        covered,
        "routes in /openapi.json and the access matrix differ"
    );

    let mut failures = Vec::new();
    for (call, entry) in entries.iter().enumerate() {
        for (index, caller) in CALLERS.iter().enumerate() {
            let target = prepare(&app, &callers, entry.needs).await;
            let url = app.url(&concrete(entry.path, &callers, &target));
            let mut request = app.client.request(entry.method.clone(), url);
            if let Some(session) = callers.session(index) {
                request = request.bearer_auth(&session.access_token);
            }
            if let Some(body) = body_for(&app, entry, index, &callers, call, &target).await {
                request = request.json(&body);
            }
            let status = request.send().await.unwrap().status().as_u16();
            if status != entry.expected[index] {
                failures.push(format!(
                    "{} {} as {caller}: got {status}, want {}",
                    entry.method, entry.path, entry.expected[index]
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "access matrix failures:\n{}",
        failures.join("\n")
    );
}

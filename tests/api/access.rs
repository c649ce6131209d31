//! The access matrix: every route the API describes, asked by each kind of
//! caller. Fails when a route exists without an entry here.

use std::collections::BTreeSet;

use loan_tracker::accounts::Role;
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{Session, TestApp, spawn_app};

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

/// One route: method, path template, and the status each caller expects.
struct Entry {
    method: Method,
    path: &'static str,
    expected: [u16; 5],
}

const fn entry(method: Method, path: &'static str, expected: [u16; 5]) -> Entry {
    Entry {
        method,
        path,
        expected,
    }
}

fn matrix() -> Vec<Entry> {
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
        entry(Method::GET, "/api/v1/profile", [401, 200, 404, 404, 404]),
        entry(Method::PUT, "/api/v1/profile", [401, 200, 200, 200, 200]),
        entry(
            Method::GET,
            "/api/v1/profile/{user_id}",
            [401, 200, 404, 200, 200],
        ),
    ]
}

/// A body that makes the request succeed for a caller entitled to it (a
/// fresh login for the session routes, so each call has its own tokens).
async fn body_for(
    app: &TestApp,
    path: &str,
    caller: usize,
    callers: &Callers,
    call: usize,
) -> Option<Value> {
    let login_of = |index: usize| {
        callers
            .session(index)
            .map(|s| s.email.clone())
            .unwrap_or_else(|| callers.owner.email.clone())
    };
    match path {
        "/api/v1/auth/register" => Some(json!({
            "email": format!("new{caller}-{call}@example.com"),
            "username": format!("new{caller}-{call}"),
            "password": crate::helpers::TEST_PASSWORD,
        })),
        "/api/v1/auth/login" => {
            Some(json!({"email": login_of(caller), "password": crate::helpers::TEST_PASSWORD}))
        }
        "/api/v1/auth/refresh-token" | "/api/v1/auth/logout" => {
            Some(json!({"refresh_token": app.login(&login_of(caller)).await.refresh_token}))
        }
        "/api/v1/users/{id}/role" => Some(json!({"role": "USER"})),
        "/api/v1/profile" => Some(json!({"first_name": "Pat", "last_name": "Doe"})),
        _ => None,
    }
}

fn concrete(path: &str, callers: &Callers) -> String {
    let target = if path.ends_with("/deactivate") {
        &callers.victim
    } else {
        &callers.owner
    };
    path.replace("{id}", &target.user_id.to_string())
        .replace("{user_id}", &target.user_id.to_string())
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
    let response = app
        .client
        .put(app.url("/api/v1/profile"))
        .bearer_auth(&callers.owner.access_token)
        .json(&owner_profile)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    let spec: Value = app.get("/openapi.json", None).await.json().await.unwrap();
    let described: BTreeSet<(String, String)> = spec["paths"]
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
        .collect();
    let entries = matrix();
    let covered: BTreeSet<(String, String)> = entries
        .iter()
        .map(|e| (e.method.to_string(), e.path.to_owned()))
        .collect();
    assert_eq!(
        described, covered,
        "routes in /openapi.json and the access matrix differ"
    );

    let mut failures = Vec::new();
    for (call, entry) in entries.iter().enumerate() {
        for (index, caller) in CALLERS.iter().enumerate() {
            let mut request = app.client.request(
                entry.method.clone(),
                app.url(&concrete(entry.path, &callers)),
            );
            if let Some(session) = callers.session(index) {
                request = request.bearer_auth(&session.access_token);
            }
            if let Some(body) = body_for(&app, entry.path, index, &callers, call).await {
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

//! Several instances on one PostgreSQL and one NATS (issue 14, SPEC §8):
//! each loan is owned by one instance, writes arriving anywhere are
//! forwarded to its owner, and a demotion through one instance ends the old
//! token on the others within 1 s. Skipped without `TEST_DATABASE_URL` and
//! `TEST_NATS_URL` (a cluster needs both).

mod processes;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use loan_tracker::accounts::Role;
use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{TestApp, eventually, fresh_postgres_url, spawn_app_with, test_namespace};

const INSTANCES: [&str; 3] = ["alpha", "bravo", "charlie"];
const LOANS: usize = 50;
const PAYMENTS: usize = 1_000;
/// Pooled connections of each instance: the suite's apps share one server.
pub const CONNECTIONS_PER_INSTANCE: &str = "4";

/// Three instances of one cluster, each ready (holding its share); `None`
/// (with the reason printed) without PostgreSQL and NATS.
async fn cluster() -> Option<Vec<TestApp>> {
    if std::env::var("TEST_NATS_URL").is_err() {
        eprintln!("TEST_NATS_URL not set: a cluster leases loans over NATS");
        return None;
    }
    let Some(database_url) = fresh_postgres_url().await else {
        eprintln!("TEST_DATABASE_URL not set: the instances of a cluster share PostgreSQL");
        return None;
    };
    let namespace = test_namespace();
    let mut apps = Vec::new();
    for id in INSTANCES {
        let settings = [
            ("DATABASE_URL", database_url.as_str()),
            ("NATS_NAMESPACE", namespace.as_str()),
            ("CLUSTER_INSTANCE_ID", id),
            // Three apps beside the rest of the suite on one PostgreSQL (100 connections).
            ("DB_MAX_CONNECTIONS", CONNECTIONS_PER_INSTANCE),
        ];
        apps.push(spawn_app_with(&settings).await);
    }
    let admin = apps[0].user_with_role("clusterops", Role::Admin).await;
    eventually(
        "every instance to hold its share",
        Duration::from_secs(30),
        || {
            let apps = &apps;
            let token = admin.access_token.clone();
            async move {
                for app in apps {
                    if app.get("/ready", None).await.status() != StatusCode::OK {
                        return None;
                    }
                    let tree: Value = app
                        .get("/api/v1/admin/actors", Some(&token))
                        .await
                        .json()
                        .await
                        .ok()?;
                    let owned = tree["cluster"]["owned_partitions"].as_array()?.len();
                    if !(85..=86).contains(&owned)
                        || tree["cluster"]["live_instances"].as_array()?.len() != 3
                    {
                        return None;
                    }
                }
                Some(())
            }
        },
    )
    .await;
    Some(apps)
}

#[tokio::test]
async fn three_instances_take_a_thousand_round_robin_payments_each_loan_on_one_owner() {
    let _heavy = crate::helpers::HEAVY.lock().await;
    let Some(apps) = cluster().await else {
        return;
    };
    let owner = apps[1].register("spread").await;
    let admin = apps[2].user_with_role("approver", Role::Admin).await;
    // Applied and approved through all three in turn: creations land in the
    // store wherever they arrive, approvals are forwarded to the owner.
    let mut loans = Vec::new();
    for n in 0..LOANS {
        let app = &apps[n % apps.len()];
        let body = json!({"principal": "1000.00", "annual_interest_rate": "6", "term_months": 12});
        let created = app
            .post_json("/api/v1/loans", Some(&owner.access_token), &body)
            .await;
        assert_eq!(created.status(), StatusCode::CREATED);
        let loan: Uuid = created.json::<Value>().await.unwrap()["id"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        let approve = apps[(n + 1) % apps.len()]
            .post_json(
                &format!("/api/v1/loans/{loan}/approve"),
                Some(&admin.access_token),
                &json!({}),
            )
            .await;
        assert_eq!(approve.status(), StatusCode::OK, "approving {loan}");
        loans.push(loan);
    }

    let started = Instant::now();
    let mut tasks = Vec::new();
    for worker in 0..20 {
        let clients: Vec<(String, reqwest::Client)> = apps
            .iter()
            .map(|app| (app.url(""), app.client.clone()))
            .collect();
        let (loans, token) = (loans.clone(), owner.access_token.clone());
        tasks.push(tokio::spawn(async move {
            let mut statuses = HashMap::new();
            for n in (worker..PAYMENTS).step_by(20) {
                let (base, client) = &clients[n % clients.len()];
                let loan = loans[n % loans.len()];
                let status = client
                    .post(format!("{base}/api/v1/loans/{loan}/payments"))
                    .bearer_auth(&token)
                    .json(&json!({"amount": "1.00"}))
                    .send()
                    .await
                    .unwrap()
                    .status();
                *statuses.entry(status.as_u16()).or_insert(0) += 1;
            }
            statuses
        }));
    }
    let mut statuses: HashMap<u16, usize> = HashMap::new();
    for task in tasks {
        for (status, count) in task.await.unwrap() {
            *statuses.entry(status).or_default() += count;
        }
    }
    assert_eq!(
        statuses,
        HashMap::from([(201, PAYMENTS)]),
        "in steady state every payment lands"
    );
    eprintln!(
        "{PAYMENTS} payments through 3 instances in {:?}",
        started.elapsed()
    );

    // Totals exact, read on any instance.
    let per_loan = format!("{:.2}", (PAYMENTS / LOANS) as f64);
    for (n, loan) in loans.iter().enumerate() {
        let read: Value = apps[n % apps.len()]
            .get(&format!("/api/v1/loans/{loan}"), Some(&owner.access_token))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(read["total_paid"], per_loan.as_str(), "loan {loan}");
    }
    // Each loan's commands ran in one instance's actor, and the version
    // check (the safety net) never fired.
    let mut live_on: HashMap<Uuid, Vec<&str>> = HashMap::new();
    for (app, id) in apps.iter().zip(INSTANCES) {
        let snapshot = app.tree.snapshot().await.unwrap();
        for actor in &snapshot.live {
            live_on.entry(actor.loan_id.as_uuid()).or_default().push(id);
        }
        assert_eq!(
            app.tree.counts().version_conflicts,
            0,
            "{id} met a version conflict"
        );
    }
    for loan in &loans {
        assert_eq!(
            live_on.get(loan).map(Vec::len),
            Some(1),
            "loan {loan} on {:?}",
            live_on.get(loan)
        );
    }
    // Two thirds of the payments arrived at an instance that does not own the loan.
    let mut forwarded = 0.0;
    for app in &apps {
        let text = app.get("/metrics", None).await.text().await.unwrap();
        forwarded += text
            .lines()
            .filter(|line| {
                line.starts_with("cluster_forwarded_command_duration_seconds_count")
                    && line.contains("outcome=\"answered\"")
            })
            .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>();
    }
    assert!(
        forwarded >= (PAYMENTS as f64) / 2.0,
        "only {forwarded} forwarded"
    );
}

#[tokio::test]
async fn a_demotion_through_one_instance_ends_the_old_token_on_the_others_within_1_s() {
    let Some(apps) = cluster().await else {
        return;
    };
    let root = apps[0].user_with_role("root", Role::Admin).await;
    let demoted = apps[0].user_with_role("demoted", Role::Admin).await;
    for app in &apps[1..] {
        let allowed = app.get("/api/v1/users", Some(&demoted.access_token)).await;
        assert_eq!(allowed.status(), StatusCode::OK);
    }
    let changed = apps[0]
        .client
        .patch(apps[0].url(&format!("/api/v1/users/{}/role", demoted.user_id)))
        .bearer_auth(&root.access_token)
        .json(&json!({"role": "USER"}))
        .send()
        .await
        .unwrap();
    assert_eq!(changed.status(), StatusCode::OK);
    let demoted_at = Instant::now();
    for app in &apps[1..] {
        eventually(
            "the old token refused on another instance",
            Duration::from_secs(1),
            || async {
                let status = app
                    .get("/api/v1/users", Some(&demoted.access_token))
                    .await
                    .status();
                (status == StatusCode::FORBIDDEN).then_some(())
            },
        )
        .await;
    }
    assert!(
        demoted_at.elapsed() < Duration::from_secs(1),
        "took {:?}",
        demoted_at.elapsed()
    );
}

/// Sum of `cluster_forwarded_command_duration_seconds_count` answered for `kind` on `app`.
async fn forwarded(app: &TestApp, kind: &str) -> f64 {
    let text = app.get("/metrics", None).await.text().await.unwrap();
    text.lines()
        .filter(|line| {
            line.starts_with("cluster_forwarded_command_duration_seconds_count")
                && line.contains(&format!("kind=\"{kind}\""))
                && line.contains("outcome=\"answered\"")
        })
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test]
async fn inbound_payments_and_the_overdue_job_are_applied_by_each_loans_owner() {
    let Some(apps) = cluster().await else {
        return;
    };
    let owner = apps[0].register("inbound").await;
    let admin = apps[0].user_with_role("jobs", Role::Admin).await;
    let loans = crate::helpers::approved_loans(&apps[0], &owner, 12, "1000.00").await;
    // Pulled by whichever instance, applied by the owner.
    for (n, loan) in loans.iter().enumerate() {
        let message = actors::bus::OutgoingMessage {
            subject: "loans.inbound.payments".into(),
            message_id: Uuid::new_v4().to_string(),
            payload: json!({"loan_id": loan, "amount": "5.00", "currency": "USD", "external_ref": format!("bank-{n}")})
                .to_string()
                .into_bytes(),
        };
        apps[n % 3].bus.publish(message).await.expect("published");
    }
    for loan in &loans {
        let paid = eventually(
            "the inbound payment applied",
            Duration::from_secs(20),
            || async {
                crate::helpers::total_paid_if_readable(&apps[1], &owner, *loan)
                    .await
                    .filter(|paid| paid == "5.00")
            },
        )
        .await;
        assert_eq!(paid, "5.00");
    }
    let mut inbound = 0.0;
    for app in &apps {
        inbound += forwarded(app, "inbound").await;
    }
    assert!(
        inbound > 0.0,
        "no inbound payment was forwarded to its owner"
    );

    // Six weeks on, past the first due date: one run assesses every loan, on its owner.
    let later = chrono::Utc::now() + chrono::Duration::days(45);
    for app in &apps {
        app.clock.set(later);
    }
    let as_of = later.date_naive().to_string();
    let run = apps[0]
        .post_json(
            "/api/v1/admin/jobs/overdue/run",
            Some(&admin.access_token),
            &json!({"as_of": as_of}),
        )
        .await;
    assert_eq!(run.status(), StatusCode::OK);
    let run: Value = run.json().await.unwrap();
    assert_eq!(run["processed"], 12, "{run}");
    assert_eq!(run["errors"], 0, "{run}");
    for loan in &loans {
        let read: Value = apps[2]
            .get(&format!("/api/v1/loans/{loan}"), Some(&owner.access_token))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(read["status"], "OVERDUE", "{read}");
        assert_ne!(
            read["fees_outstanding"], "0.00",
            "no late fee on {loan}: {read}"
        );
    }
    assert!(
        forwarded(&apps[0], "assess").await > 0.0,
        "no assessment was forwarded"
    );
}

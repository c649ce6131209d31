//! The outbox retention: published rows past `OUTBOX_RETENTION_DAYS` are
//! deleted in bounded batches and counted; unpublished rows never are.

use std::time::Duration;

use chrono::{DateTime, Utc};
use loan_tracker::store::Db;
use loan_tracker::store::outbox::{self, OutboxEvent};
use uuid::Uuid;

use crate::helpers::{conformance, eventually, spawn_app_at};

async fn add_event(db: &Db, created_at: DateTime<Utc>) {
    let event = OutboxEvent {
        event_id: Uuid::now_v7(),
        subject: "loans.events.test.retention".into(),
        aggregate_id: Uuid::now_v7(),
        payload: serde_json::json!({"test": true}),
        created_at,
    };
    let mut tx = db.begin().await.unwrap();
    outbox::insert(&mut tx, &event).await.unwrap();
    tx.commit().await.unwrap();
}

async fn rows(db: &Db) -> Vec<(Uuid, Option<DateTime<Utc>>)> {
    with_read_pool!(db, |pool| sqlx::query_as(
        "select aggregate_id, published_at from outbox order by seq"
    )
    .fetch_all(pool)
    .await)
    .unwrap()
}

/// Five rows published 8 days ago, one published an hour ago, one never
/// published though created 30 days ago; a 7-day retention in batches of 2.
async fn purge_takes_old_published_rows_in_batches_and_never_an_unpublished_one(db: Db) {
    let now = Utc::now();
    let day = chrono::Duration::days(1);
    for _ in 0..7 {
        add_event(&db, now - day * 30).await;
    }
    let pending = outbox::unpublished(&db, 100).await.unwrap();
    let (old, rest) = pending.split_at(5);
    for row in old {
        outbox::mark_published(&db, &[row.seq], now - day * 8)
            .await
            .unwrap();
    }
    outbox::mark_published(&db, &[rest[0].seq], now - chrono::Duration::hours(1))
        .await
        .unwrap();
    let cutoff = now - day * 7;
    let batches = [
        outbox::purge_published(&db, cutoff, 2).await.unwrap(),
        outbox::purge_published(&db, cutoff, 2).await.unwrap(),
        outbox::purge_published(&db, cutoff, 2).await.unwrap(),
        outbox::purge_published(&db, cutoff, 2).await.unwrap(),
    ];
    assert_eq!(
        batches,
        [2, 2, 1, 0],
        "one statement deletes at most a batch"
    );
    let left = rows(&db).await;
    assert_eq!(left.len(), 2, "{left:?}");
    assert!(left[0].1.is_some(), "the recent published row is kept");
    assert!(left[1].1.is_none(), "the unpublished row is kept");
    assert_eq!(outbox::purged_rows(&db).await.unwrap(), 5);

    // A whole round, with the retention measured from an explicit "now":
    // nine days on, the row published an hour ago has aged out too.
    let later = now + day * 9;
    let purged =
        loan_tracker::bus::retention::purge_round(&db, later, Duration::from_secs(7 * 86_400))
            .await
            .unwrap();
    assert_eq!(purged, 1);
    let left = rows(&db).await;
    assert_eq!(left.len(), 1);
    assert!(left[0].1.is_none(), "only the unpublished row is left");
    assert_eq!(outbox::purged_rows(&db).await.unwrap(), 6);
}

conformance!(purge_takes_old_published_rows_in_batches_and_never_an_unpublished_one);

fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines().find_map(|line| {
        line.strip_prefix(name)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

#[tokio::test]
async fn the_app_purges_published_rows_past_retention_and_counts_them() {
    // The app's clock runs ten days ahead: rows the relay stamps now are past
    // a 7-day retention by that clock.
    let ahead = Utc::now() + chrono::Duration::days(10);
    let app = spawn_app_at(ahead, &[("OUTBOX_PURGE_INTERVAL_SECS", "1")]).await;
    for name in ["ann", "bob", "cat"] {
        app.register(name).await;
    }
    eventually("the outbox purged", Duration::from_secs(20), || async {
        outbox::purged_rows(&app.db)
            .await
            .ok()
            .filter(|purged| *purged == 3)
    })
    .await;
    assert!(rows(&app.db).await.is_empty());
    let metrics = app.get("/metrics", None).await.text().await.unwrap();
    assert_eq!(
        sample(&metrics, "outbox_purged_rows_total"),
        Some(3.0),
        "{metrics}"
    );
    assert_eq!(
        sample(&metrics, "events_published_total"),
        Some(3.0),
        "published counts purged rows too"
    );
}

//! Creation, passivation and graceful stop.

use std::sync::atomic::Ordering;
use std::time::Duration;

use actors::core::LoanCommand;
use actors::tree::TreeError;

use crate::support::*;

#[tokio::test(start_paused = true)]
async fn creating_twice_is_refused_and_an_unknown_loan_is_not_found() {
    let store = FakeStore::new();
    let tree = start(&store).await;
    let loan = loan_id(1);
    let created = accepted(tree.create(pending_loan(loan), now(), None).await);
    assert_eq!(created.version, 1);
    assert_eq!(created.events.len(), 1);

    let again = tree.create(pending_loan(loan), now(), None).await;
    assert!(
        matches!(again, Err(TreeError::AlreadyExists(_))),
        "{again:?}"
    );
    let unknown = tree.execute(loan_id(2), request(LoanCommand::Cancel)).await;
    assert!(
        matches!(unknown, Err(TreeError::NotFound(_))),
        "{unknown:?}"
    );
    assert_eq!(store.version(loan), 1);
}

#[tokio::test(start_paused = true)]
async fn an_actor_that_finds_no_loan_stops_at_once() {
    let store = FakeStore::new();
    let tree = start(&store).await;
    for n in 1..=50 {
        let unknown = tree.execute(loan_id(n), request(LoanCommand::Cancel)).await;
        assert!(
            matches!(unknown, Err(TreeError::NotFound(_))),
            "{unknown:?}"
        );
    }
    // Unknown ids do not fill the tree until the idle sweep: each actor
    // that found nothing is unlisted and stopped right away.
    let tree_for_poll = tree.clone();
    eventually(100, || {
        let tree = tree_for_poll.clone();
        async move { tree.snapshot().await.unwrap().live_count == 0 }
    })
    .await;
    // The loan may appear later (another instance creates it): a new actor finds it.
    accepted(tree.create(pending_loan(loan_id(1)), now(), None).await);
    let cancelled = accepted(tree.execute(loan_id(1), request(LoanCommand::Cancel)).await);
    assert_eq!(cancelled.version, 2);
}

#[tokio::test(start_paused = true)]
async fn idle_actors_are_passivated_and_reload_on_the_next_command() {
    let store = FakeStore::new();
    let tree = start(&store).await;
    for n in 1..=1_000 {
        accepted(tree.create(pending_loan(loan_id(n)), now(), None).await);
    }
    assert_eq!(tree.snapshot().await.unwrap().live_count, 1_000);

    let config = tree.config().clone();
    tokio::time::advance(config.idle_timeout + config.sweep_interval).await;
    let tree_for_poll = tree.clone();
    eventually(100, || {
        let tree = tree_for_poll.clone();
        async move {
            let snapshot = tree.snapshot().await.unwrap();
            snapshot.live_count == 0 && snapshot.stopping == 0
        }
    })
    .await;
    assert_eq!(tree.counts().passivated, 1_000);

    let loads_before = store.loads.load(Ordering::Relaxed);
    let approve = request(LoanCommand::Approve {
        disbursed_on: date(2025, 1, 1),
    });
    let applied = accepted(tree.execute(loan_id(500), approve).await);
    assert_eq!(applied.version, 2);
    assert_eq!(applied.loan.installments().len(), 12);
    assert_eq!(store.loads.load(Ordering::Relaxed), loads_before + 1);
    assert_eq!(tree.snapshot().await.unwrap().live_count, 1);
}

#[tokio::test(start_paused = true)]
async fn graceful_stop_finishes_queued_commands_first() {
    let store = FakeStore::new();
    let tree = start(&store).await;
    let loan = loan_id(1);
    approved_loan(&tree, loan).await;

    let hold = store.hold(loan);
    let mut calls = Vec::new();
    for n in 1..=10u128 {
        let tree = tree.clone();
        calls.push(tokio::spawn(async move {
            tree.execute(loan, payment(n, "1.00")).await
        }));
    }
    hold.entered.notified().await;
    store.unhold(loan);
    let tree_for_poll = tree.clone();
    eventually(100, || {
        let tree = tree_for_poll.clone();
        async move { tree.snapshot().await.unwrap().live[0].queued == 10 }
    })
    .await;

    let stopping = tokio::spawn(tree.clone().stop());
    let refused = {
        // Give the shutdown message time to reach the supervisor first.
        tokio::time::sleep(Duration::from_millis(1)).await;
        tree.execute(loan, payment(99, "1.00")).await
    };
    assert!(
        matches!(refused, Err(TreeError::ShuttingDown)),
        "{refused:?}"
    );
    hold.gate.add_permits(1);
    stopping.await.unwrap().expect("stopped in time");

    for call in calls {
        accepted(call.await.unwrap());
    }
    let row = store.row(loan).unwrap();
    assert_eq!(row.version, 12);
    assert_eq!(row.loan.payments().len(), 10);
}

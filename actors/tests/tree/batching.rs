//! One command, one transaction; several queued commands, one transaction.

use std::sync::Arc;

use actors::core::{LoanError, LoanEvent, Money};
use actors::store::ReplyRecord;
use actors::tree::{Applied, LoanRequest, LoanTree, ReplyPlan, TreeError};
use uuid::Uuid;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hundred_concurrent_payments_on_one_loan_all_apply_in_batches() {
    let store = FakeStore::new();
    let tree = start(&store).await;
    let loan = loan_id(1);
    approved_loan(&tree, loan).await;

    let mut tasks = Vec::new();
    for task in 0..20u128 {
        let tree: LoanTree = tree.clone();
        tasks.push(tokio::spawn(async move {
            for n in 0..10u128 {
                accepted(
                    tree.execute(loan, payment(task * 100 + n + 1, "1.00"))
                        .await,
                );
            }
        }));
    }
    for task in tasks {
        task.await.expect("payer task");
    }

    let row = store.row(loan).expect("stored");
    assert_eq!(row.version, 2 + 200, "version counts every command");
    assert_eq!(row.loan.payments().len(), 200);
    let total = row
        .loan
        .payments()
        .iter()
        .try_fold(Money::zero(usd("1").currency()), |sum, p| {
            sum.checked_add(p.amount)
        })
        .unwrap();
    assert_eq!(total, usd("200.00"));
    assert_eq!(row.loan.figures(today()).total_paid, usd("200.00"));
    let payment_events = row
        .events
        .iter()
        .filter(|record| matches!(record.event, LoanEvent::PaymentApplied { .. }))
        .count();
    assert_eq!(payment_events, 200);
    let sizes = store.commit_sizes.lock().unwrap().clone();
    assert_eq!(sizes.iter().sum::<u64>(), 202);
    assert!(
        sizes.iter().any(|size| *size > 1),
        "no batch formed: {sizes:?}"
    );
    assert!(tree.counts().max_batch > 1);
    tree.stop().await.expect("stops");
}

#[tokio::test(start_paused = true)]
async fn a_held_commit_on_one_loan_does_not_block_another_loan() {
    let store = FakeStore::new();
    let tree = start(&store).await;
    let (slow, fast) = (loan_id(1), loan_id(2));
    approved_loan(&tree, slow).await;
    approved_loan(&tree, fast).await;

    let hold = store.hold(slow);
    let slow_call = tokio::spawn({
        let tree = tree.clone();
        async move { tree.execute(slow, payment(1, "5.00")).await }
    });
    hold.entered.notified().await;

    let applied = accepted(tree.execute(fast, payment(2, "7.00")).await);
    assert_eq!(applied.version, 3);
    assert_eq!(store.version(slow), 2, "the slow loan is still held");

    hold.gate.add_permits(1);
    let applied = accepted(slow_call.await.unwrap());
    assert_eq!(applied.version, 3);
}

#[tokio::test(start_paused = true)]
async fn a_rejected_command_in_a_batch_does_not_fail_the_others() {
    let store = FakeStore::new();
    let tree = start(&store).await;
    let loan = loan_id(1);
    approved_loan(&tree, loan).await;

    // Hold a first payment in its commit so the next three queue up behind it.
    let hold = store.hold(loan);
    let first = tokio::spawn({
        let tree = tree.clone();
        async move { tree.execute(loan, payment(1, "1.00")).await }
    });
    hold.entered.notified().await;
    store.unhold(loan);
    let queued = tokio::spawn({
        let tree = tree.clone();
        async move {
            tokio::join!(
                tree.execute(loan, payment(2, "2.00")),
                tree.execute(loan, payment(3, "1000000.00")),
                tree.execute(loan, payment(4, "3.00")),
            )
        }
    });
    let tree_for_poll = tree.clone();
    eventually(100, || {
        let tree = tree_for_poll.clone();
        async move { tree.snapshot().await.unwrap().live[0].queued == 4 }
    })
    .await;
    hold.gate.add_permits(1);

    accepted(first.await.unwrap());
    let (two, overpaid, three) = queued.await.unwrap();
    // create 1, approve 2, first payment 3, then one commit of two commands.
    assert_eq!(accepted(two).version, 5);
    assert_eq!(accepted(three).version, 5, "one commit for the whole batch");
    let rejection = overpaid.unwrap().unwrap_err();
    assert!(
        matches!(rejection, LoanError::Overpayment { .. }),
        "{rejection:?}"
    );

    let sizes = store.commit_sizes.lock().unwrap().clone();
    assert_eq!(
        sizes.last(),
        Some(&2),
        "the rejected command is left out: {sizes:?}"
    );
    let row = store.row(loan).unwrap();
    assert_eq!(row.loan.payments().len(), 3);
    assert_eq!(row.loan.figures(today()).total_paid, usd("6.00"));
}

#[tokio::test(start_paused = true)]
async fn a_version_conflict_reloads_and_retries_without_double_applying() {
    let store = FakeStore::new();
    let tree = start(&store).await;
    let loan = loan_id(1);
    approved_loan(&tree, loan).await;

    store.bump_version_behind_the_actors_back(loan);
    let applied = accepted(tree.execute(loan, payment(1, "10.00")).await);

    assert_eq!(
        applied.version, 4,
        "create, approve, the other writer, this payment"
    );
    assert_eq!(applied.loan.payments().len(), 1);
    let row = store.row(loan).unwrap();
    assert_eq!(row.version, 4);
    assert_eq!(row.loan.payments().len(), 1);
    assert_eq!(row.loan.figures(today()).total_paid, usd("10.00"));
    assert_eq!(tree.counts().version_conflicts, 1);

    // The repeat of the same payment is a no-op: no commit, same version.
    let repeat = accepted(tree.execute(loan, payment(1, "10.00")).await);
    assert!(repeat.events.is_empty());
    assert_eq!(repeat.version, 4);
    assert_eq!(store.version(loan), 4);
}

/// A payment whose answer (`"<version>"`, status 201) is to be kept under `key`.
fn keyed_payment(n: u128, amount: &str, key: &str) -> LoanRequest {
    let mut request = payment(n, amount);
    request.reply = Some(ReplyPlan {
        record: ReplyRecord {
            user_id: Uuid::from_u128(7),
            key: key.into(),
            route: "POST /payments".into(),
            body_hash: "hash".into(),
            claimed_at: now(),
            status: 0,
            body: Vec::new(),
        },
        render: Arc::new(|applied: &Applied| Some((201, applied.version.to_string().into_bytes()))),
    });
    request
}

#[tokio::test(start_paused = true)]
async fn a_kept_answer_commits_with_its_command_and_a_taken_key_fails_alone() {
    let store = FakeStore::new();
    let tree = start(&store).await;
    let loan = loan_id(1);
    approved_loan(&tree, loan).await;

    // Hold a first payment so the next three share one batch behind it.
    let hold = store.hold(loan);
    let first = tokio::spawn({
        let tree = tree.clone();
        async move { tree.execute(loan, payment(1, "1.00")).await }
    });
    hold.entered.notified().await;
    store.unhold(loan);
    let queued = tokio::spawn({
        let tree = tree.clone();
        async move {
            tokio::join!(
                tree.execute(loan, keyed_payment(2, "2.00", "k")),
                tree.execute(loan, keyed_payment(3, "5.00", "k")),
                tree.execute(loan, payment(4, "3.00")),
            )
        }
    });
    let tree_for_poll = tree.clone();
    eventually(100, || {
        let tree = tree_for_poll.clone();
        async move { tree.snapshot().await.unwrap().live[0].queued == 4 }
    })
    .await;
    hold.gate.add_permits(1);

    assert!(!accepted(first.await.unwrap()).reply_kept);
    let (kept, taken, plain) = queued.await.unwrap();
    let kept = accepted(kept);
    assert!(
        kept.reply_kept,
        "the keyed payment's answer went with its commit"
    );
    let taken = taken.expect_err("the second use of the key is refused");
    assert!(
        matches!(taken, TreeError::ReplyTaken(id) if id == loan),
        "{taken:?}"
    );
    assert!(!taken.is_transient(), "a taken key is not worth retrying");
    assert!(!accepted(plain).reply_kept);

    let replies = store.replies.lock().unwrap().clone();
    assert_eq!(replies.len(), 1);
    let reply = &replies[&(Uuid::from_u128(7), "k".to_string())];
    assert_eq!(reply.status, 201);
    assert_eq!(
        reply.body,
        kept.version.to_string().into_bytes(),
        "rendered at the committed version"
    );
    let row = store.row(loan).unwrap();
    assert_eq!(row.loan.payments().len(), 3, "payment 3 was not applied");
    assert_eq!(row.loan.figures(today()).total_paid, usd("6.00"));
}

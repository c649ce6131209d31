//! The loan store conformance suite: the `LoanStore` seam and the edge's read
//! queries, on SQLite and (with `TEST_DATABASE_URL`) PostgreSQL.

mod support;

use std::collections::HashSet;

use actors::core::{
    Currency, LoanCommand, LoanId, LoanStatus, LoanTerms, Money, PaymentId, Rate, TermMonths,
};
use actors::store::{InstallmentWrites, LoanCommit, LoanStore, LoanStoreError};
use loan_tracker::store::Db;
use loan_tracker::store::loans::{self, LoanFilter, PaymentFilter};
use loan_tracker::store::page::PageRequest;
use uuid::Uuid;

use self::support::{
    Held, approve, count, date, new_user, noon, outbox_payloads, pay, rich_terms, terms, usd,
};
use crate::helpers::{conformance, execute};

conformance!(
    a_new_loan_loads_back_equal_at_version_one,
    a_loan_loads_back_equal_after_approval_fees_payments_and_a_reversal,
    a_stale_version_conflicts_and_writes_nothing,
    a_reused_payment_reference_is_a_duplicate_and_writes_nothing,
    a_payment_id_used_on_another_loan_is_a_duplicate,
    each_event_becomes_one_outbox_row_with_its_subject_and_payload,
    loan_lists_return_every_loan_once_across_pages_and_filter,
    payment_lists_and_lookups_carry_the_loan_and_its_owner,
    only_loans_that_never_moved_money_are_deleted,
    concurrent_commits_from_one_version_land_exactly_once,
    a_payment_writes_the_installments_it_changed_however_long_the_loan,
    commits_of_many_loans_share_a_transaction_and_fail_alone,
);

async fn a_new_loan_loads_back_equal_at_version_one(db: Db) {
    let user_id = new_user(&db, "ann").await;
    let mut held = Held::apply_for(&db, user_id, rich_terms(), date(2024, 1, 10)).await;
    assert_eq!(held.loan.terms().purpose(), Some("new roof"));
    held.assert_stored().await;
    let view = loans::get_loan(&db, held.loan.loan_id())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(view.owner(), user_id);
    assert_eq!(view.version, 1);
    assert_eq!(view.created_at, noon(date(2024, 1, 10)));
    let unknown = LoanId::new(Uuid::now_v7());
    assert!(held.store.load(unknown).await.unwrap().is_none());
    assert_eq!(
        loans::loan_owner(&db, held.loan.loan_id()).await.unwrap(),
        Some(user_id)
    );
    assert_eq!(loans::loan_owner(&db, unknown).await.unwrap(), None);
    held.run(approve(date(2024, 1, 20)), date(2024, 1, 20))
        .await;
    assert_eq!(held.loan.installments()[0].due_date, date(2024, 2, 28));
    held.assert_stored().await;
}

async fn a_loan_loads_back_equal_after_approval_fees_payments_and_a_reversal(db: Db) {
    let user_id = new_user(&db, "bo").await;
    let mut held = Held::apply_for(
        &db,
        user_id,
        terms("10000", Currency::USD),
        date(2024, 1, 15),
    )
    .await;
    held.run(approve(date(2024, 1, 15)), date(2024, 1, 15))
        .await;
    held.assert_stored().await;
    // Installment 1 fell due on 2024-02-15: a late fee and OVERDUE.
    let as_of = date(2024, 2, 20);
    held.run(LoanCommand::AssessLateFees { as_of }, as_of).await;
    assert_eq!(held.loan.status(), LoanStatus::Overdue);
    held.assert_stored().await;
    let first = pay(usd("1000"), date(2024, 2, 20), Some("bank-1"));
    let LoanCommand::ApplyPayment { payment_id, .. } = first else {
        unreachable!()
    };
    held.run(first, date(2024, 2, 20)).await;
    // Back-dated: re-allocates the later payment.
    let events = held
        .run(pay(usd("300"), date(2024, 2, 16), None), date(2024, 2, 21))
        .await;
    assert!(
        matches!(&events[0].event, actors::core::LoanEvent::PaymentApplied { reallocations, .. } if !reallocations.is_empty())
    );
    held.assert_stored().await;
    held.run(
        LoanCommand::ReversePayment { payment_id },
        date(2024, 2, 22),
    )
    .await;
    held.assert_stored().await;
    let summary = loans::list_loans(
        &db,
        LoanFilter::default(),
        PageRequest::new(None, None).unwrap(),
    )
    .await
    .unwrap()
    .items
    .remove(0);
    let figures = held.loan.figures(date(2024, 2, 22));
    assert_eq!(summary.total_paid, figures.total_paid);
    assert_eq!(summary.total_outstanding, figures.total_outstanding);
    assert_eq!(summary.fees_outstanding, figures.fees_outstanding);
    assert_eq!(summary.next_due_date, figures.next_due_date);
    assert_eq!(summary.version, 6);
}

async fn a_stale_version_conflicts_and_writes_nothing(db: Db) {
    let user_id = new_user(&db, "cy").await;
    let mut held = Held::apply_for(
        &db,
        user_id,
        terms("1000", Currency::USD),
        date(2024, 1, 15),
    )
    .await;
    held.run(approve(date(2024, 1, 15)), date(2024, 1, 15))
        .await;
    let mut stale = Held {
        store: held.store.clone(),
        loan: held.loan.clone(),
        version: 1,
    };
    let error = stale
        .try_run(pay(usd("10"), date(2024, 1, 20), None), date(2024, 1, 20))
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            LoanStoreError::VersionConflict {
                expected: Some(1),
                ..
            }
        ),
        "{error:?}"
    );
    held.assert_stored().await;
    let loan_id = held.loan.loan_id();
    assert_eq!(
        count(
            &db,
            "select count(*) from payments where loan_id = $1",
            loan_id
        )
        .await,
        0
    );
    assert_eq!(
        outbox_payloads(&db, loan_id).await.len(),
        2,
        "applied + approved only"
    );
    // Creating a loan that exists conflicts too.
    let again = LoanCommit {
        loan_id,
        expected_version: None,
        commands: 1,
        snapshot: held.loan.snapshot(),
        installments: InstallmentWrites::All,
        events: Vec::new(),
        replies: Vec::new(),
    };
    let error = held.store.commit(again).await.unwrap_err();
    assert!(
        matches!(
            error,
            LoanStoreError::VersionConflict { expected: None, .. }
        ),
        "{error:?}"
    );
    held.assert_stored().await;
}

async fn a_reused_payment_reference_is_a_duplicate_and_writes_nothing(db: Db) {
    let user_id = new_user(&db, "di").await;
    let mut held = Held::apply_for(
        &db,
        user_id,
        terms("1000", Currency::USD),
        date(2024, 1, 15),
    )
    .await;
    held.run(approve(date(2024, 1, 15)), date(2024, 1, 15))
        .await;
    // Another process that never saw the first payment but somehow holds the current version.
    let mut other = Held {
        store: held.store.clone(),
        loan: held.loan.clone(),
        version: 3,
    };
    held.run(
        pay(usd("10"), date(2024, 1, 20), Some("gw-7")),
        date(2024, 1, 20),
    )
    .await;
    let error = other
        .try_run(
            pay(usd("20"), date(2024, 1, 21), Some("gw-7")),
            date(2024, 1, 21),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(error, LoanStoreError::Duplicate { .. }),
        "{error:?}"
    );
    held.assert_stored().await;
    let loan_id = held.loan.loan_id();
    assert_eq!(
        count(
            &db,
            "select count(*) from payments where loan_id = $1",
            loan_id
        )
        .await,
        1
    );
    let subjects: Vec<String> = outbox_payloads(&db, loan_id)
        .await
        .into_iter()
        .map(|row| row.0)
        .collect();
    assert_eq!(
        subjects
            .iter()
            .filter(|subject| subject.ends_with("payment.received"))
            .count(),
        1
    );
}

async fn a_payment_id_used_on_another_loan_is_a_duplicate(db: Db) {
    let user_id = new_user(&db, "gu").await;
    let mut first = Held::apply_for(
        &db,
        user_id,
        terms("1000", Currency::USD),
        date(2024, 1, 15),
    )
    .await;
    first
        .run(approve(date(2024, 1, 15)), date(2024, 1, 15))
        .await;
    first
        .run(pay(usd("10"), date(2024, 1, 20), None), date(2024, 1, 20))
        .await;
    let mut second = Held::apply_for(
        &db,
        user_id,
        terms("1000", Currency::USD),
        date(2024, 1, 15),
    )
    .await;
    second
        .run(approve(date(2024, 1, 15)), date(2024, 1, 15))
        .await;
    let reused = LoanCommand::ApplyPayment {
        payment_id: first.loan.payments()[0].payment_id,
        amount: usd("5"),
        paid_on: date(2024, 1, 20),
        reference: None,
        note: None,
    };
    let error = second.try_run(reused, date(2024, 1, 20)).await.unwrap_err();
    assert!(
        matches!(error, LoanStoreError::Duplicate { .. }),
        "{error:?}"
    );
    second.assert_stored().await;
}

async fn each_event_becomes_one_outbox_row_with_its_subject_and_payload(db: Db) {
    let user_id = new_user(&db, "ed").await;
    let mut held = Held::apply_for(
        &db,
        user_id,
        terms("1000", Currency::KWD),
        date(2024, 1, 15),
    )
    .await;
    let mut all = held
        .run(approve(date(2024, 1, 15)), date(2024, 1, 15))
        .await;
    let amount = Money::parse("100.5", Currency::KWD).unwrap();
    all.extend(
        held.run(
            pay(amount, date(2024, 1, 20), Some("r-1")),
            date(2024, 1, 20),
        )
        .await,
    );
    let rows = outbox_payloads(&db, held.loan.loan_id()).await;
    assert_eq!(
        rows.len(),
        1 + all.len(),
        "one row per event, the application included"
    );
    let (subject, applied) = &rows[0];
    assert_eq!(subject, "loans.events.loan.applied");
    assert_eq!(applied["data"]["principal"], "1000.000");
    assert_eq!(applied["data"]["annual_interest_rate"], "12");
    for ((subject, payload), record) in rows[1..].iter().zip(&all) {
        let kind = record.event.kind_name();
        assert_eq!(subject, &format!("loans.events.{kind}"));
        assert_eq!(payload["event_id"], record.event_id.to_string());
        assert_eq!(payload["type"], kind);
        assert_eq!(payload["loan_id"], held.loan.loan_id().to_string());
        assert_eq!(payload["user_id"], user_id.to_string());
        let occurred_at = record
            .occurred_at
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        assert_eq!(payload["occurred_at"], occurred_at);
    }
    let (_, received) = rows
        .iter()
        .find(|row| row.0.ends_with("payment.received"))
        .unwrap();
    let data = &received["data"];
    assert_eq!(data["amount"], "100.500");
    assert_eq!(data["currency"], "KWD");
    assert_eq!(data["paid_on"], "2024-01-20");
    assert_eq!(data["reference"], "r-1");
    let allocation = &data["allocation"];
    let parts: i64 = ["fee", "interest", "principal"]
        .iter()
        .map(|part| {
            Money::parse(allocation[part].as_str().unwrap(), Currency::KWD)
                .unwrap()
                .minor()
        })
        .sum();
    assert_eq!(parts, amount.minor());
    let (_, approved) = rows
        .iter()
        .find(|row| row.0.ends_with("loan.approved"))
        .unwrap();
    assert_eq!(approved["data"]["disbursed_on"], "2024-01-15");
    assert_eq!(approved["data"]["installment_count"], 12);
}

async fn loan_lists_return_every_loan_once_across_pages_and_filter(db: Db) {
    let (ann, bo) = (new_user(&db, "ann").await, new_user(&db, "bo").await);
    let mut created = Vec::new();
    for n in 0..11 {
        let owner = if n % 3 == 0 { bo } else { ann };
        let mut held =
            Held::apply_for(&db, owner, terms("500", Currency::USD), date(2024, 3, 1)).await;
        if n % 4 == 0 {
            let reason = "income too low".to_owned();
            held.run(LoanCommand::Reject { reason }, date(2024, 3, 2))
                .await;
        }
        created.push((held.loan.loan_id(), owner, held.loan.status()));
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = loans::list_loans(
            &db,
            LoanFilter::default(),
            PageRequest::new(Some(4), cursor.as_deref()).unwrap(),
        )
        .await
        .unwrap();
        assert!(page.items.len() <= 4);
        seen.extend(page.items.iter().map(|item| item.loan_id));
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(seen.len(), 11, "every loan once");
    assert_eq!(seen.iter().collect::<HashSet<_>>().len(), 11);
    let mut newest_first: Vec<LoanId> = created.iter().map(|loan| loan.0).collect();
    newest_first.reverse();
    assert_eq!(seen, newest_first);
    let all = PageRequest::new(Some(100), None).unwrap();
    let of_bo = LoanFilter {
        user_id: Some(bo),
        status: None,
        as_of: None,
    };
    let page = loans::list_loans(&db, of_bo, all).await.unwrap();
    assert_eq!(
        page.items.len(),
        created.iter().filter(|loan| loan.1 == bo).count()
    );
    assert!(page.items.iter().all(|item| item.user_id == bo) && page.next_cursor.is_none());
    let rejected_of_ann = LoanFilter {
        user_id: Some(ann),
        status: Some(LoanStatus::Rejected),
        as_of: None,
    };
    let page = loans::list_loans(&db, rejected_of_ann, all).await.unwrap();
    let expected = created
        .iter()
        .filter(|loan| loan.1 == ann && loan.2 == LoanStatus::Rejected)
        .count();
    assert_eq!(page.items.len(), expected);
    assert!(
        page.items
            .iter()
            .all(|item| item.status == LoanStatus::Rejected)
    );
    assert!(PageRequest::new(None, Some("not-a-cursor")).is_err());
    assert_eq!(PageRequest::new(Some(1_000), None).unwrap().limit(), 100);
}

async fn payment_lists_and_lookups_carry_the_loan_and_its_owner(db: Db) {
    let (ann, bo) = (new_user(&db, "ann").await, new_user(&db, "bo").await);
    let mut of_ann =
        Held::apply_for(&db, ann, terms("1000", Currency::USD), date(2024, 1, 15)).await;
    let mut of_bo = Held::apply_for(&db, bo, terms("1000", Currency::USD), date(2024, 1, 15)).await;
    for held in [&mut of_ann, &mut of_bo] {
        held.run(approve(date(2024, 1, 15)), date(2024, 1, 15))
            .await;
        for day in 16..=18 {
            held.run(pay(usd("10"), date(2024, 1, day), None), date(2024, 1, day))
                .await;
        }
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = loans::list_payments(
            &db,
            PaymentFilter::default(),
            PageRequest::new(Some(4), cursor.as_deref()).unwrap(),
        )
        .await
        .unwrap();
        seen.extend(page.items);
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(seen.len(), 6);
    let by_loan = PaymentFilter {
        loan_id: Some(of_ann.loan.loan_id()),
        user_id: None,
    };
    let page = loans::list_payments(&db, by_loan, PageRequest::new(None, None).unwrap())
        .await
        .unwrap();
    assert_eq!(page.items.len(), 3);
    assert!(page.items.iter().all(|item| item.user_id == ann));
    let by_user = PaymentFilter {
        loan_id: None,
        user_id: Some(bo),
    };
    let page = loans::list_payments(&db, by_user, PageRequest::new(None, None).unwrap())
        .await
        .unwrap();
    assert_eq!(page.items.len(), 3);
    assert!(
        page.items
            .iter()
            .all(|item| item.loan_id == of_bo.loan.loan_id())
    );
    let record = &of_bo.loan.payments()[1];
    let found = loans::get_payment(&db, record.payment_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&found.record, record);
    assert_eq!((found.loan_id, found.user_id), (of_bo.loan.loan_id(), bo));
    assert_eq!(found.created_at, noon(date(2024, 1, 17)));
    let unknown = PaymentId::new(Uuid::now_v7());
    assert!(loans::get_payment(&db, unknown).await.unwrap().is_none());
}

async fn only_loans_that_never_moved_money_are_deleted(db: Db) {
    let user_id = new_user(&db, "fi").await;
    let mut pending = Held::apply_for(
        &db,
        user_id,
        terms("1000", Currency::USD),
        date(2024, 1, 15),
    )
    .await;
    let mut cancelled = Held::apply_for(
        &db,
        user_id,
        terms("1000", Currency::USD),
        date(2024, 1, 15),
    )
    .await;
    cancelled.run(LoanCommand::Cancel, date(2024, 1, 16)).await;
    let mut approved = Held::apply_for(
        &db,
        user_id,
        terms("1000", Currency::USD),
        date(2024, 1, 15),
    )
    .await;
    approved
        .run(approve(date(2024, 1, 15)), date(2024, 1, 15))
        .await;
    // A stale copy of the pending loan, as another actor would hold it.
    let mut ghost = Held {
        store: pending.store.clone(),
        loan: pending.loan.clone(),
        version: pending.version,
    };
    for held in [&mut pending, &mut cancelled] {
        let loan_id = held.loan.loan_id();
        let events = held.run(LoanCommand::Delete, date(2024, 1, 16)).await;
        assert_eq!(events.len(), 1);
        assert!(held.store.load(loan_id).await.unwrap().is_none());
        let payloads = outbox_payloads(&db, loan_id).await;
        assert_eq!(payloads.last().unwrap().0, "loans.events.loan.deleted");
    }
    let refused = approved
        .loan
        .decide(&LoanCommand::Delete, date(2024, 1, 16))
        .unwrap_err();
    assert_eq!(refused.kind(), actors::core::ErrorKind::Conflict);
    approved.assert_stored().await;
    // The actor of a deleted loan finds it gone: its next commit conflicts.
    let error = ghost
        .try_run(LoanCommand::Cancel, date(2024, 1, 17))
        .await
        .unwrap_err();
    assert!(
        matches!(error, LoanStoreError::VersionConflict { .. }),
        "{error:?}"
    );
}

async fn concurrent_commits_from_one_version_land_exactly_once(db: Db) {
    let user_id = new_user(&db, "hal").await;
    let mut held = Held::apply_for(
        &db,
        user_id,
        terms("1000", Currency::USD),
        date(2024, 1, 15),
    )
    .await;
    held.run(approve(date(2024, 1, 15)), date(2024, 1, 15))
        .await;
    let racers = (0..10).map(|_| {
        let mut racer = Held {
            store: held.store.clone(),
            loan: held.loan.clone(),
            version: held.version,
        };
        tokio::spawn(async move {
            racer
                .try_run(pay(usd("1"), date(2024, 1, 20), None), date(2024, 1, 20))
                .await
                .map(|_| racer)
        })
    });
    let mut winners = Vec::new();
    for outcome in futures::future::join_all(racers).await {
        match outcome.unwrap() {
            Ok(racer) => winners.push(racer),
            Err(error) => assert!(
                matches!(error, LoanStoreError::VersionConflict { .. }),
                "{error:?}"
            ),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one commit from version 2 lands");
    winners[0].assert_stored().await;
    let loan_id = held.loan.loan_id();
    assert_eq!(
        count(
            &db,
            "select count(*) from payments where loan_id = $1",
            loan_id
        )
        .await,
        1
    );
    assert_eq!(outbox_payloads(&db, loan_id).await.len(), 3);
}

/// Counts every insert or update of an installment row in `installment_writes`.
async fn count_installment_writes(db: &Db) {
    execute(db, "create table installment_writes (seq integer not null)").await;
    let triggers = match db {
        Db::Sqlite(_) => {
            "create trigger installment_inserted after insert on installments \
             begin insert into installment_writes values (new.seq); end; \
             create trigger installment_updated after update on installments \
             begin insert into installment_writes values (new.seq); end"
        }
        Db::Postgres(_) => {
            "create function installment_written() returns trigger language plpgsql as $$ begin \
               insert into installment_writes values (new.seq); return new; \
             end $$; \
             create trigger installment_written after insert or update on installments \
             for each row execute function installment_written()"
        }
    };
    execute(db, triggers).await;
}

async fn installment_writes(db: &Db) -> i64 {
    with_pool!(db, |pool| sqlx::query_scalar::<_, i64>(
        "select count(*) from installment_writes"
    )
    .fetch_one(pool)
    .await)
    .unwrap()
}

async fn a_payment_writes_the_installments_it_changed_however_long_the_loan(db: Db) {
    count_installment_writes(&db).await;
    let user_id = new_user(&db, "long").await;
    let long_terms = LoanTerms::new(
        usd("100000"),
        Rate::parse("12").unwrap(),
        TermMonths::new(360).unwrap(),
    )
    .unwrap();
    let applied_on = date(2024, 1, 10);
    let mut held = Held::apply_for(&db, user_id, long_terms, applied_on).await;
    held.run(approve(applied_on), applied_on).await;
    assert_eq!(
        installment_writes(&db).await,
        360,
        "the schedule is written once, whole"
    );
    for n in 0..40 {
        let before = installment_writes(&db).await;
        held.run(pay(usd("1.00"), applied_on, None), applied_on)
            .await;
        assert_eq!(
            installment_writes(&db).await - before,
            1,
            "payment {n} touched one installment and wrote one row"
        );
    }
    held.assert_stored().await;
    // A payment spanning three installments writes those three.
    let before = installment_writes(&db).await;
    held.run(pay(usd("2500.00"), applied_on, None), applied_on)
        .await;
    assert_eq!(installment_writes(&db).await - before, 3);
    held.assert_stored().await;
    // A late fee on the first unpaid installment writes that one (and the
    // payments it re-allocates, not every installment).
    let late = date(2024, 6, 1);
    let before = installment_writes(&db).await;
    held.run(LoanCommand::AssessLateFees { as_of: late }, late)
        .await;
    let written = installment_writes(&db).await - before;
    assert!(
        (1..=3).contains(&written),
        "late fees wrote {written} installments"
    );
    held.assert_stored().await;
}

/// Issue 12 item 2: the commits of many loan actors share one transaction;
/// a stale version fails only its loan inside the group, and a commit the
/// database refuses (a reused payment id) fails alone while the others land.
async fn commits_of_many_loans_share_a_transaction_and_fail_alone(db: Db) {
    const LOANS: usize = 12;
    let user_id = new_user(&db, "gc").await;
    let shared = loans::SqlLoanStore::new(db.clone());
    let mut helds = Vec::new();
    for _ in 0..LOANS {
        let mut held = Held::apply_for(
            &db,
            user_id,
            terms("1000", Currency::USD),
            date(2024, 1, 15),
        )
        .await;
        held.run(approve(date(2024, 1, 15)), date(2024, 1, 15))
            .await;
        held.store = shared.clone();
        helds.push(held);
    }
    let mut stale = Held {
        store: shared.clone(),
        loan: helds[0].loan.clone(),
        version: 1,
    };
    // Round one: every loan pays at once, and a stale writer of loan 0 too.
    let day = date(2024, 1, 20);
    let (paid, conflict) = tokio::join!(
        futures::future::join_all(
            helds
                .iter_mut()
                .map(|held| held.try_run(pay(usd("10"), day, None), day))
        ),
        stale.try_run(pay(usd("99"), day, None), day),
    );
    assert!(paid.iter().all(Result::is_ok), "{paid:?}");
    assert!(
        matches!(
            conflict,
            Err(LoanStoreError::VersionConflict {
                expected: Some(1),
                ..
            })
        ),
        "{conflict:?}"
    );
    for held in &helds {
        held.assert_stored().await;
    }
    if let Db::Postgres(pool) = &db {
        let ids: Vec<Uuid> = helds
            .iter()
            .map(|held| held.loan.loan_id().as_uuid())
            .collect();
        let transactions: i64 =
            sqlx::query_scalar("select count(distinct xmin::text) from loans where id = any($1)")
                .bind(&ids)
                .fetch_one(pool.pool())
                .await
                .unwrap();
        assert!(
            transactions < LOANS as i64,
            "{LOANS} concurrent commits took {transactions} transactions"
        );
    }
    // Round two: loan 1 reuses loan 0's payment id; it alone fails.
    let reused = helds[0].loan.payments()[0].payment_id;
    let day = date(2024, 1, 21);
    let outcomes = futures::future::join_all(helds.iter_mut().enumerate().map(|(index, held)| {
        let command = if index == 1 {
            LoanCommand::ApplyPayment {
                payment_id: reused,
                amount: usd("5"),
                paid_on: day,
                reference: None,
                note: None,
            }
        } else {
            pay(usd("10"), day, None)
        };
        held.try_run(command, day)
    }))
    .await;
    for (index, outcome) in outcomes.iter().enumerate() {
        if index == 1 {
            assert!(
                matches!(outcome, Err(LoanStoreError::Duplicate { .. })),
                "{outcome:?}"
            );
        } else {
            assert!(outcome.is_ok(), "loan {index}: {outcome:?}");
        }
    }
    for (index, held) in helds.iter().enumerate() {
        held.assert_stored().await;
        let payments = count(
            &db,
            "select count(*) from payments where loan_id = $1",
            held.loan.loan_id(),
        )
        .await;
        assert_eq!(payments, if index == 1 { 1 } else { 2 }, "loan {index}");
    }
}

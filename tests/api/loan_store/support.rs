//! The harness of the loan store suite: a loan held as an actor holds it,
//! committed through the real `SqlLoanStore`, and a few builders.

use actors::core::{
    Currency, GraceDays, Loan, LoanCommand, LoanEvent, LoanId, LoanTerms, Money, PaymentId, Rate,
    RepaymentMethod, TermMonths, UserId,
};
use actors::store::{EventRecord, InstallmentWrites, LoanCommit, LoanStore, LoanStoreError};
use chrono::{DateTime, NaiveDate, Utc};
use loan_tracker::accounts::users::{self, NewUser};
use loan_tracker::accounts::{Email, Role, Username};
use loan_tracker::store::Db;
use loan_tracker::store::loans::SqlLoanStore;
use serde_json::Value;
use sqlx::types::Json;
use uuid::Uuid;

pub fn date(year: i32, month: u32, day: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(year, month, day).unwrap()
}

pub fn noon(day: NaiveDate) -> DateTime<Utc> {
    day.and_hms_opt(12, 0, 0).unwrap().and_utc()
}

pub fn terms(principal: &str, currency: Currency) -> LoanTerms {
    LoanTerms::new(
        Money::parse(principal, currency).unwrap(),
        Rate::parse("12").unwrap(),
        TermMonths::new(12).unwrap(),
    )
    .unwrap()
    .with_method(RepaymentMethod::Annuity)
}

/// Terms with every optional field away from its default, to prove each one round-trips.
pub fn rich_terms() -> LoanTerms {
    terms("2500.50", Currency::EUR)
        .with_method(RepaymentMethod::EqualPrincipal)
        .with_late_fee_rate(Rate::parse("2.75").unwrap())
        .unwrap()
        .with_grace_days(GraceDays::new(5).unwrap())
        .with_first_due_date(Some(date(2024, 2, 28)))
        .with_purpose(Some("  new roof "))
        .unwrap()
}

pub fn usd(text: &str) -> Money {
    Money::parse(text, Currency::USD).unwrap()
}

pub async fn new_user(db: &Db, name: &str) -> UserId {
    let new_user = NewUser {
        email: Email::parse(&format!("{name}@example.com")).unwrap(),
        username: Username::parse(&format!("{name}-user")).unwrap(),
        password_hash: "$argon2id$not-a-real-hash".into(),
        role: Role::User,
    };
    UserId::new(users::create(db, new_user, Utc::now()).await.unwrap().id)
}

/// A loan as an actor holds it: the aggregate and its stored version.
pub struct Held {
    pub store: SqlLoanStore,
    pub loan: Loan,
    pub version: u64,
}

pub fn records(events: Vec<LoanEvent>, today: NaiveDate) -> Vec<EventRecord> {
    events
        .into_iter()
        .map(|event| EventRecord {
            event_id: Uuid::now_v7(),
            occurred_at: noon(today),
            actor_id: None,
            event,
        })
        .collect()
}

impl Held {
    /// Applies for a loan and commits it as a new row.
    pub async fn apply_for(db: &Db, user_id: UserId, terms: LoanTerms, on: NaiveDate) -> Held {
        let store = SqlLoanStore::new(db.clone());
        let (loan, applied) = Loan::apply_for(LoanId::new(Uuid::now_v7()), user_id, terms, on);
        let commit = LoanCommit {
            loan_id: loan.loan_id(),
            expected_version: None,
            commands: 1,
            snapshot: loan.snapshot(),
            installments: InstallmentWrites::All,
            events: records(vec![applied], on),
            replies: Vec::new(),
        };
        assert_eq!(store.commit(commit).await.unwrap(), 1);
        Held {
            store,
            loan,
            version: 1,
        }
    }

    /// Decides `command` on a copy, builds the commit, and lands it only if the store accepts it.
    pub async fn try_run(
        &mut self,
        command: LoanCommand,
        today: NaiveDate,
    ) -> Result<Vec<EventRecord>, LoanStoreError> {
        let mut next = self.loan.clone();
        let events = next.decide(&command, today).expect("command accepted");
        for event in &events {
            next.apply(event);
        }
        let events = records(events, today);
        let commit = LoanCommit {
            loan_id: next.loan_id(),
            expected_version: Some(self.version),
            commands: 1,
            snapshot: next.snapshot(),
            installments: InstallmentWrites::between(self.loan.installments(), next.installments()),
            events: events.clone(),
            replies: Vec::new(),
        };
        self.version = self.store.commit(commit).await?;
        self.loan = next;
        Ok(events)
    }

    pub async fn run(&mut self, command: LoanCommand, today: NaiveDate) -> Vec<EventRecord> {
        self.try_run(command, today).await.unwrap()
    }

    /// Asserts the stored loan equals the held one.
    pub async fn assert_stored(&self) {
        let stored = self.store.load(self.loan.loan_id()).await.unwrap().unwrap();
        assert_eq!(stored.loan, self.loan);
        assert_eq!(stored.version, self.version);
    }
}

pub fn pay(amount: Money, paid_on: NaiveDate, reference: Option<&str>) -> LoanCommand {
    LoanCommand::ApplyPayment {
        payment_id: PaymentId::new(Uuid::now_v7()),
        amount,
        paid_on,
        reference: reference.map(str::to_owned),
        note: None,
    }
}

pub fn approve(on: NaiveDate) -> LoanCommand {
    LoanCommand::Approve { disbursed_on: on }
}

pub async fn outbox_payloads(db: &Db, loan_id: LoanId) -> Vec<(String, Value)> {
    let rows: Vec<(String, Json<Value>)> = with_pool!(db, |pool| sqlx::query_as(
        "select subject, payload from outbox where aggregate_id = $1 order by seq"
    )
    .bind(loan_id.as_uuid())
    .fetch_all(pool)
    .await)
    .unwrap();
    rows.into_iter()
        .map(|(subject, payload)| (subject, payload.0))
        .collect()
}

pub async fn count(db: &Db, sql: &'static str, loan_id: LoanId) -> i64 {
    with_pool!(db, |pool| sqlx::query_scalar::<_, i64>(sql)
        .bind(loan_id.as_uuid())
        .fetch_one(pool)
        .await)
    .unwrap()
}

//! Loan commands: apply, approve, reject, cancel, write off, delete (all through the loan's actor).

use actors::core::disclosure::{UnitPeriod, disclose};
use actors::core::{
    Currency, DayCount, Frequency, GraceDays, Loan, LoanCommand, LoanId, LoanTerms, Money, Rate,
    RepaymentMethod, TermMonths, UserId,
};
use actors::tree::{Applied, CommandOutcome, LoanRequest, RenderReply, ReplyPlan, TreeError};
use salvo::prelude::*;
use uuid::Uuid;

use super::accessible_loan;
use super::errors::{rejection, tree_failure};
use super::wire::{
    ApplyRequest, ApproveRequest, InstallmentBody, LoanBody, Now, QuoteBody, QuoteRequest,
    RejectRequest, ScheduleBody,
};
use crate::accounts::users;
use crate::date::WireDate;
use crate::http::access::Principal;
use crate::http::body;
use crate::http::idempotency::IdempotencyKey;
use crate::http::pagination::path_id;
use crate::http::problem::ApiError;
use crate::http::state::{AppState, app_state};
use crate::store::loans::get_loan;

/// A new id (UUIDv7), or — for a request with an Idempotency-Key — a UUIDv7
/// whose time is the key's first claim and whose other bits hash the key, so
/// a retry whose first response was lost reuses the first request's id (and
/// the core treats the repeat as a no-op) while ids still sort by time.
pub(super) fn new_id(depot: &Depot, principal: Principal, kind: &str) -> Uuid {
    match depot.get_typed::<IdempotencyKey>() {
        Ok(IdempotencyKey {
            key,
            first_claimed_at,
            ..
        }) => {
            use sha2::Digest;
            let digest =
                sha2::Sha256::digest(format!("{kind}:{}:{key}", principal.user_id).as_bytes());
            let mut random = [0u8; 10];
            random.copy_from_slice(&digest[..10]);
            let millis = u64::try_from(first_claimed_at.timestamp_millis()).unwrap_or(0);
            uuid::Builder::from_unix_timestamp_millis(millis, &random).into_uuid()
        }
        Err(_) => Uuid::now_v7(),
    }
}

/// Runs `command` through the loan's actor; rejections and failures become problems.
pub(super) async fn execute(
    state: &AppState,
    principal: Principal,
    loan_id: LoanId,
    command: LoanCommand,
    now: Now,
) -> Result<Applied, ApiError> {
    let outcome = send(state, principal, loan_id, (command, now), None).await;
    outcome.map_err(tree_failure)?.map_err(rejection)
}

/// Runs `command` as [`execute`] does, and on a route that keeps answers
/// with their commit ([`crate::http::idempotency::idempotent_in_commit`])
/// hands the actor `render`, so the answer is kept in the command's own
/// transaction. `render` must make the bytes the handler answers with.
pub(super) async fn execute_keeping(
    depot: &Depot,
    (state, principal): (&AppState, Principal),
    loan_id: LoanId,
    (command, now): (LoanCommand, Now),
    render: RenderReply,
) -> Result<Applied, ApiError> {
    let reply = IdempotencyKey::reply_plan(depot, render);
    let outcome = send(state, principal, loan_id, (command, now), reply).await;
    IdempotencyKey::note(depot, &outcome);
    match outcome {
        Err(TreeError::ReplyTaken(_)) => Err(ApiError::Conflict(
            "another request with this Idempotency-Key was answered first".into(),
        )),
        outcome => outcome.map_err(tree_failure)?.map_err(rejection),
    }
}

async fn send(
    state: &AppState,
    principal: Principal,
    loan_id: LoanId,
    (command, now): (LoanCommand, Now),
    reply: Option<ReplyPlan>,
) -> Result<CommandOutcome, TreeError> {
    let label = crate::metrics::command_label(&command);
    let request = LoanRequest {
        command,
        today: now.today,
        now: now.at,
        actor_id: Some(UserId::new(principal.user_id)),
        reply,
    };
    let started = std::time::Instant::now();
    let outcome = state.tree.execute(loan_id, request).await;
    record_command(state, label, &outcome, started);
    outcome
}

/// Times one round trip through a loan actor into `loan_command_duration_seconds`.
fn record_command(
    state: &AppState,
    label: &'static str,
    outcome: &Result<CommandOutcome, TreeError>,
    started: std::time::Instant,
) {
    let outcome_label = match outcome {
        Ok(Ok(_)) => "committed",
        Ok(Err(_)) => "rejected",
        Err(_) => "failed",
    };
    state
        .metrics
        .loan_command(label, outcome_label, started.elapsed());
}

fn invalid(field: &str, error: impl std::fmt::Display) -> ApiError {
    ApiError::Unprocessable(format!("{field}: {error}"))
}

/// Parses an application into terms; every error names its field.
fn terms(request: &ApplyRequest) -> Result<LoanTerms, ApiError> {
    let currency = Currency::parse(request.currency.as_deref().unwrap_or("USD"))
        .map_err(|e| invalid("currency", e))?;
    let principal =
        Money::parse_positive(&request.principal, currency).map_err(|e| invalid("principal", e))?;
    let rate = Rate::parse(&request.annual_interest_rate)
        .map_err(|e| invalid("annual_interest_rate", e))?;
    let frequency: Frequency = request
        .repayment_frequency
        .as_deref()
        .map(str::parse)
        .transpose()
        .map_err(|e| invalid("repayment_frequency", e))?
        .unwrap_or_default();
    let day_count: DayCount = request
        .day_count
        .as_deref()
        .map(str::parse)
        .transpose()
        .map_err(|e| invalid("day_count", e))?
        .unwrap_or_default();
    let installments = installments(request, frequency)?;
    let one = TermMonths::new(1).map_err(rejection)?;
    let mut terms = LoanTerms::new(principal, rate, one)
        .and_then(|terms| terms.with_schedule(frequency, day_count, installments))
        .map_err(rejection)?;
    if let Some(method) = &request.repayment_method {
        terms = terms.with_method(method.parse::<RepaymentMethod>().map_err(rejection)?);
    }
    if let Some(late_fee_rate) = &request.late_fee_rate {
        let rate = Rate::parse(late_fee_rate).map_err(|e| invalid("late_fee_rate", e))?;
        terms = terms.with_late_fee_rate(rate).map_err(rejection)?;
    }
    if let Some(grace_days) = request.grace_days {
        terms = terms.with_grace_days(GraceDays::new(grace_days).map_err(rejection)?);
    }
    terms
        .with_first_due_date(request.first_due_date.map(WireDate::get))
        .with_purpose(request.purpose.as_deref())
        .map_err(rejection)
}

/// The number of installments: `number_of_installments`, or its monthly
/// synonym `term_months` (which only a monthly application may use).
fn installments(request: &ApplyRequest, frequency: Frequency) -> Result<u32, ApiError> {
    match (request.number_of_installments, request.term_months) {
        (Some(count), None) => Ok(count),
        (None, Some(months)) if frequency == Frequency::Monthly => Ok(months),
        (None, Some(_)) => Err(ApiError::Unprocessable(
            "term_months: counts months; give number_of_installments for a weekly or biweekly loan"
                .into(),
        )),
        (Some(count), Some(months)) if count == months && frequency == Frequency::Monthly => {
            Ok(count)
        }
        (Some(_), Some(_)) => Err(ApiError::Unprocessable(
            "term_months: give number_of_installments or term_months, not both".into(),
        )),
        (None, None) => Err(ApiError::Unprocessable(
            "number_of_installments: required (or term_months for a monthly loan)".into(),
        )),
    }
}

/// The borrower of an application: the caller, or (staff only) `user_id`.
async fn borrower(
    state: &AppState,
    principal: Principal,
    requested: Option<Uuid>,
) -> Result<Uuid, ApiError> {
    match requested {
        None => Ok(principal.user_id),
        Some(id) if id == principal.user_id => Ok(id),
        Some(_) if !principal.is_staff() => Err(ApiError::Forbidden(
            "only staff may apply on behalf of another user".into(),
        )),
        Some(id) => match users::find_by_id(&state.db, id)
            .await
            .map_err(ApiError::internal)?
        {
            Some(user) if user.active => Ok(id),
            _ => Err(ApiError::Unprocessable(
                "user_id: no active user with this id".into(),
            )),
        },
    }
}

/// Apply for a loan (for yourself; staff may name `user_id`). Answers the PENDING loan.
#[endpoint(tags("loans"), request_body = ApplyRequest, status_codes(201, 401, 403, 409, 413, 422, 503), responses((status_code = 201, body = LoanBody)), security(("bearer" = [])))]
pub async fn apply(
    req: &mut Request,
    depot: &mut Depot,
    res: &mut Response,
) -> Result<Json<LoanBody>, ApiError> {
    let state = app_state(depot)?;
    let principal = Principal::of(depot)?;
    let request: ApplyRequest = body::json(req).await?;
    let terms = terms(&request)?;
    let owner = borrower(&state, principal, request.user_id).await?;
    let now = Now::read(&state.clock);
    let loan_id = LoanId::new(new_id(depot, principal, "loan"));
    let (loan, _applied) = Loan::apply_for(loan_id, UserId::new(owner), terms, now.today);
    let started = std::time::Instant::now();
    let outcome = state
        .tree
        .create(loan, now.at, Some(UserId::new(principal.user_id)))
        .await;
    record_command(&state, "apply", &outcome, started);
    let applied = match outcome {
        // A retry (same key) of an application whose first attempt timed out
        // but committed: the id is the first attempt's, so answer that loan.
        Err(TreeError::AlreadyExists(_)) if depot.get_typed::<IdempotencyKey>().is_ok() => {
            let view = get_loan(&state.db, loan_id)
                .await
                .map_err(ApiError::internal)?
                .filter(|view| view.owner() == UserId::new(owner))
                .ok_or_else(|| ApiError::Conflict("a loan with this id already exists".into()))?;
            res.status_code(StatusCode::CREATED);
            return Ok(Json(LoanBody::new(&view.loan, view.version, now.today)));
        }
        outcome => outcome.map_err(tree_failure)?.map_err(rejection)?,
    };
    res.status_code(StatusCode::CREATED);
    Ok(Json(LoanBody::new(
        &applied.loan,
        applied.version,
        now.today,
    )))
}

/// Staff never decide on a loan they borrowed themselves (SPEC §4, "Who may do
/// what to money"): 403 saying so. `action` names the decision.
pub(super) fn refuse_own_loan(
    principal: Principal,
    owner: UserId,
    action: &str,
) -> Result<(), ApiError> {
    if owner == UserId::new(principal.user_id) {
        return Err(ApiError::Forbidden(format!(
            "you may not {action} a loan you borrowed yourself; another staff member must"
        )));
    }
    Ok(())
}

/// Runs a command on a loan the caller may see and answers the loan after it.
/// A `decision` (approve, reject, write off) is refused on the caller's own loan.
async fn command_on_visible(
    req: &mut Request,
    depot: &Depot,
    decision: Option<&str>,
    command: impl FnOnce(Now) -> LoanCommand,
) -> Result<Json<LoanBody>, ApiError> {
    let state = app_state(depot)?;
    let principal = Principal::of(depot)?;
    let loan_id = LoanId::new(path_id(req, "id", "loan")?);
    let (owner, _) = accessible_loan(&state, principal, loan_id).await?;
    if let Some(action) = decision {
        refuse_own_loan(principal, owner, action)?;
    }
    let now = Now::read(&state.clock);
    let applied = execute(&state, principal, loan_id, command(now), now).await?;
    Ok(Json(LoanBody::new(
        &applied.loan,
        applied.version,
        now.today,
    )))
}

/// Quote an application: its schedule and disclosure figures (amount
/// financed, finance charge, total of payments, APR); stores nothing.
#[endpoint(tags("loans"), request_body = QuoteRequest, status_codes(200, 401, 413, 422), responses((status_code = 200, body = QuoteBody)), security(("bearer" = [])))]
pub async fn quote(req: &mut Request, depot: &mut Depot) -> Result<Json<QuoteBody>, ApiError> {
    let state = app_state(depot)?;
    let principal = Principal::of(depot)?;
    let request = quote_request(body::json(req).await?)?;
    let terms = terms(&request.application)?;
    let disbursed_on = request
        .disbursed_on
        .map_or_else(|| Now::read(&state.clock).today, WireDate::get);
    // A loan applied for and approved on the disbursement day, never stored.
    let (mut loan, _) = Loan::apply_for(
        LoanId::new(Uuid::nil()),
        UserId::new(principal.user_id),
        terms.clone(),
        disbursed_on,
    );
    let approval = LoanCommand::Approve { disbursed_on };
    for event in loan.decide(&approval, disbursed_on).map_err(rejection)? {
        loan.apply(&event);
    }
    let schedule = actors::core::preview(&terms, disbursed_on).map_err(rejection)?;
    let unit = match terms.frequency() {
        Frequency::Monthly => UnitPeriod::Month,
        Frequency::Biweekly => UnitPeriod::TwoWeeks,
        Frequency::Weekly => UnitPeriod::Week,
    };
    let no_fee = Money::zero(terms.currency());
    let disclosure =
        disclose((terms.principal(), no_fee), disbursed_on, &schedule, unit).map_err(rejection)?;
    Ok(Json(QuoteBody {
        schedule: ScheduleBody {
            installments: loan
                .installment_views(disbursed_on)
                .into_iter()
                .map(InstallmentBody::from)
                .collect(),
        },
        amount_financed: disclosure.amount_financed.to_string(),
        finance_charge: disclosure.finance_charge.to_string(),
        total_of_payments: disclosure.total_of_payments.to_string(),
        apr: format!("{:.2}", disclosure.apr),
    }))
}

/// A quote's body: `disbursed_on` taken off, the rest an application (so an
/// unknown field is refused as `POST /loans` refuses it; serde's `flatten`
/// would let it through).
fn quote_request(mut body: serde_json::Value) -> Result<QuoteRequest, ApiError> {
    #[derive(serde::Deserialize)]
    struct When {
        disbursed_on: Option<WireDate>,
    }
    let when = body
        .as_object_mut()
        .and_then(|fields| fields.remove("disbursed_on"))
        .unwrap_or(serde_json::Value::Null);
    let When { disbursed_on } = body::from_value(serde_json::json!({ "disbursed_on": when }))?;
    Ok(QuoteRequest {
        application: body::from_value(body)?,
        disbursed_on,
    })
}

/// Approve a PENDING loan (staff): the schedule is created from the disbursement date.
#[endpoint(tags("loans"), parameters(("id" = Uuid, Path, description = "Loan id")), request_body = ApproveRequest, status_codes(200, 401, 403, 404, 409, 422, 503), security(("bearer" = [])))]
pub async fn approve(req: &mut Request, depot: &mut Depot) -> Result<Json<LoanBody>, ApiError> {
    let request: ApproveRequest = body::optional_json(req).await?;
    command_on_visible(req, depot, Some("approve"), |now| LoanCommand::Approve {
        disbursed_on: request.disbursed_on.map_or(now.today, WireDate::get),
    })
    .await
}

/// Reject a PENDING loan (staff).
#[endpoint(tags("loans"), parameters(("id" = Uuid, Path, description = "Loan id")), request_body = RejectRequest, status_codes(200, 401, 403, 404, 409, 422, 503), security(("bearer" = [])))]
pub async fn reject(req: &mut Request, depot: &mut Depot) -> Result<Json<LoanBody>, ApiError> {
    let request: RejectRequest = body::json(req).await?;
    command_on_visible(req, depot, Some("reject"), |_| LoanCommand::Reject {
        reason: request.reason,
    })
    .await
}

/// Cancel your own PENDING loan.
#[endpoint(tags("loans"), parameters(("id" = Uuid, Path, description = "Loan id")), status_codes(200, 401, 403, 404, 409, 503), security(("bearer" = [])))]
pub async fn cancel(req: &mut Request, depot: &mut Depot) -> Result<Json<LoanBody>, ApiError> {
    let state = app_state(depot)?;
    let principal = Principal::of(depot)?;
    let loan_id = LoanId::new(path_id(req, "id", "loan")?);
    let (owner, _) = accessible_loan(&state, principal, loan_id).await?;
    if owner != UserId::new(principal.user_id) {
        return Err(ApiError::Forbidden(
            "only the borrower may cancel an application; staff reject it".into(),
        ));
    }
    command_on_visible(req, depot, None, |_| LoanCommand::Cancel).await
}

/// Write off an APPROVED or OVERDUE loan (ADMIN).
#[endpoint(tags("loans"), parameters(("id" = Uuid, Path, description = "Loan id")), status_codes(200, 401, 403, 404, 409, 503), security(("bearer" = [])))]
pub async fn write_off(req: &mut Request, depot: &mut Depot) -> Result<Json<LoanBody>, ApiError> {
    command_on_visible(req, depot, Some("write off"), |_| LoanCommand::WriteOff).await
}

/// Delete a loan that never moved money (ADMIN): PENDING, REJECTED or CANCELLED only.
/// Decided by the loan's actor; `loan.deleted` is written with the deletion.
#[endpoint(tags("loans"), parameters(("id" = Uuid, Path, description = "Loan id")), status_codes(204, 401, 403, 404, 409, 503), responses((status_code = 204, description = "Deleted")), security(("bearer" = [])))]
pub async fn delete(
    req: &mut Request,
    depot: &mut Depot,
    res: &mut Response,
) -> Result<(), ApiError> {
    let state = app_state(depot)?;
    let principal = Principal::of(depot)?;
    let loan_id = LoanId::new(path_id(req, "id", "loan")?);
    accessible_loan(&state, principal, loan_id).await?;
    let now = Now::read(&state.clock);
    execute(&state, principal, loan_id, LoanCommand::Delete, now).await?;
    res.status_code(StatusCode::NO_CONTENT);
    Ok(())
}

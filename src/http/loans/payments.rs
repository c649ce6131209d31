//! Payments: make one, list, get, reverse.

use actors::core::{LoanCommand, LoanId, Money, PaymentId, UserId};
use std::sync::Arc;

use actors::tree::{Applied, RenderReply};
use chrono::NaiveDate;
use salvo::prelude::*;
use uuid::Uuid;

use super::commands::{execute_keeping, new_id, refuse_own_loan};
use super::wire::{LoanBody, LoanPaymentRequest, Now, PaymentBody, PaymentRequest, PaymentResult};
use super::{accessible_loan, listed_loan};
use crate::date::WireDate;
use crate::http::access::Principal;
use crate::http::body;
use crate::http::pagination::{Page, path_id, store_page};
use crate::http::problem::ApiError;
use crate::http::state::app_state;
use crate::store::loans::{self as store, PaymentFilter};

/// What a payment request asks, as both payment routes take it.
struct PaymentInput<'a> {
    amount: &'a str,
    paid_on: Option<NaiveDate>,
    note: Option<String>,
}

/// The date a payment is recorded on (SPEC §4, "Who may do what to money"):
/// never in the future (422); a borrower's payment is dated today (another
/// date → 403); staff may back-date one, and then must say why in `note` (422).
fn payment_date(
    principal: Principal,
    input: &PaymentInput<'_>,
    today: NaiveDate,
) -> Result<NaiveDate, ApiError> {
    let Some(paid_on) = input.paid_on else {
        return Ok(today);
    };
    if paid_on > today {
        return Err(ApiError::Unprocessable(format!(
            "paid_on: {paid_on} is in the future (today is {today})"
        )));
    }
    if paid_on == today {
        return Ok(today);
    }
    if !principal.is_staff() {
        return Err(ApiError::Forbidden(
            "paid_on: only staff may record a payment dated before today; a borrower's payment is dated today".into(),
        ));
    }
    if input
        .note
        .as_deref()
        .is_none_or(|note| note.trim().is_empty())
    {
        return Err(ApiError::Unprocessable(
            "note: required when paid_on is before today (say why the payment is back-dated)"
                .into(),
        ));
    }
    Ok(paid_on)
}

/// Applies a payment to a loan the caller may see; answers the payment and the loan.
async fn pay_into(
    depot: &Depot,
    loan_id: LoanId,
    input: PaymentInput<'_>,
) -> Result<PaymentResult, ApiError> {
    let state = app_state(depot)?;
    let principal = Principal::of(depot)?;
    let (_, currency) = accessible_loan(&state, principal, loan_id).await?;
    let amount = Money::parse_positive(input.amount, currency)
        .map_err(|error| ApiError::Unprocessable(format!("amount: {error}")))?;
    let now = Now::read(&state.clock);
    let paid_on = payment_date(principal, &input, now.today)?;
    let payment_id = PaymentId::new(new_id(depot, principal, "payment"));
    let command = LoanCommand::ApplyPayment {
        payment_id,
        amount,
        paid_on,
        reference: None,
        note: input.note,
    };
    let applied = execute_keeping(
        depot,
        (&state, principal),
        loan_id,
        (command, now),
        rendered(StatusCode::CREATED, payment_id, now),
    )
    .await?;
    result(&applied, payment_id, now)
}

/// Renders the answer [`result`] makes, as the handler's `Json` writes it,
/// for the idempotency record kept with the commit.
fn rendered(status: StatusCode, payment_id: PaymentId, now: Now) -> RenderReply {
    Arc::new(move |applied: &Applied| {
        let body = serde_json::to_vec(&result(applied, payment_id, now).ok()?).ok()?;
        Some((status.as_u16(), body))
    })
}

fn result(applied: &Applied, payment_id: PaymentId, now: Now) -> Result<PaymentResult, ApiError> {
    let record = applied.loan.payment(payment_id).ok_or_else(|| {
        ApiError::internal(anyhow::anyhow!(
            "payment {payment_id} missing after it was applied"
        ))
    })?;
    Ok(PaymentResult {
        payment: PaymentBody::new(applied.loan.loan_id().as_uuid(), record),
        loan: LoanBody::new(&applied.loan, applied.version, now.today),
    })
}

/// Pay a loan: allocated to the oldest installment first, fee → interest → principal.
#[endpoint(
    tags("payments"),
    parameters(("id" = Uuid, Path, description = "Loan id")),
    request_body = PaymentRequest,
    status_codes(201, 401, 403, 404, 409, 413, 422, 503),
    responses((status_code = 201, body = PaymentResult)),
    security(("bearer" = []))
)]
pub async fn pay_loan(
    req: &mut Request,
    depot: &mut Depot,
    res: &mut Response,
) -> Result<Json<PaymentResult>, ApiError> {
    let loan_id = LoanId::new(path_id(req, "id", "loan")?);
    let request: PaymentRequest = body::json(req).await?;
    let input = PaymentInput {
        amount: &request.amount,
        paid_on: request.paid_on.map(WireDate::get),
        note: request.note,
    };
    let result = pay_into(depot, loan_id, input).await?;
    res.status_code(StatusCode::CREATED);
    Ok(Json(result))
}

/// Pay a loan named in the body.
#[endpoint(
    tags("payments"),
    request_body = LoanPaymentRequest,
    status_codes(201, 401, 403, 404, 409, 413, 422, 503),
    responses((status_code = 201, body = PaymentResult)),
    security(("bearer" = []))
)]
pub async fn pay(
    req: &mut Request,
    depot: &mut Depot,
    res: &mut Response,
) -> Result<Json<PaymentResult>, ApiError> {
    let request: LoanPaymentRequest = body::json(req).await?;
    let input = PaymentInput {
        amount: &request.amount,
        paid_on: request.paid_on.map(WireDate::get),
        note: request.note,
    };
    let result = pay_into(depot, LoanId::new(request.loan_id), input).await?;
    res.status_code(StatusCode::CREATED);
    Ok(Json(result))
}

async fn list_with(
    req: &Request,
    depot: &Depot,
    filter: PaymentFilter,
) -> Result<Json<Page<PaymentBody>>, ApiError> {
    let state = app_state(depot)?;
    let page = store::list_payments(&state.db, filter, store_page(req)?)
        .await
        .map_err(ApiError::internal)?;
    let items = page
        .items
        .iter()
        .map(|stored| PaymentBody::new(stored.loan_id.as_uuid(), &stored.record))
        .collect();
    Ok(Json(Page {
        items,
        next_cursor: page.next_cursor,
    }))
}

/// Payments on one loan.
#[endpoint(
    tags("payments"),
    parameters(
        ("id" = Uuid, Path, description = "Loan id"),
        ("limit" = Option<u32>, Query, description = "Page size, 1-100 (default 50)"),
        ("cursor" = Option<String>, Query, description = "next_cursor of the previous page"),
    ),
    status_codes(200, 400, 401, 404),
    security(("bearer" = []))
)]
pub async fn list_for_loan(
    req: &mut Request,
    depot: &mut Depot,
) -> Result<Json<Page<PaymentBody>>, ApiError> {
    let state = app_state(depot)?;
    let loan_id = LoanId::new(path_id(req, "id", "loan")?);
    listed_loan(&state, Principal::of(depot)?, loan_id).await?;
    list_with(
        req,
        depot,
        PaymentFilter {
            loan_id: Some(loan_id),
            user_id: None,
        },
    )
    .await
}

/// Payments: staff see all (filter `loan_id`), a USER those on their own loans.
#[endpoint(
    tags("payments"),
    parameters(
        ("loan_id" = Option<Uuid>, Query, description = "Only payments on this loan"),
        ("limit" = Option<u32>, Query, description = "Page size, 1-100 (default 50)"),
        ("cursor" = Option<String>, Query, description = "next_cursor of the previous page"),
    ),
    status_codes(200, 400, 401),
    security(("bearer" = []))
)]
pub async fn list(
    req: &mut Request,
    depot: &mut Depot,
) -> Result<Json<Page<PaymentBody>>, ApiError> {
    let principal = Principal::of(depot)?;
    let loan_id = match req.query::<String>("loan_id") {
        None => None,
        Some(raw) => {
            Some(LoanId::new(Uuid::parse_str(&raw).map_err(|_| {
                ApiError::BadRequest("loan_id is not a UUID".into())
            })?))
        }
    };
    let user_id = (!principal.is_staff()).then(|| UserId::new(principal.user_id));
    list_with(req, depot, PaymentFilter { loan_id, user_id }).await
}

/// One payment (on your own loan, or staff).
#[endpoint(tags("payments"), parameters(("id" = Uuid, Path, description = "Payment id")), status_codes(200, 401, 404), security(("bearer" = [])))]
pub async fn get(req: &mut Request, depot: &mut Depot) -> Result<Json<PaymentBody>, ApiError> {
    let state = app_state(depot)?;
    let principal = Principal::of(depot)?;
    let payment_id = PaymentId::new(path_id(req, "id", "payment")?);
    let stored = store::get_payment(&state.db, payment_id)
        .await
        .map_err(ApiError::internal)?;
    match stored {
        Some(stored)
            if principal.is_staff() || stored.user_id == UserId::new(principal.user_id) =>
        {
            Ok(Json(PaymentBody::new(
                stored.loan_id.as_uuid(),
                &stored.record,
            )))
        }
        _ => Err(ApiError::NotFound("payment not found".into())),
    }
}

/// Reverse a payment (ADMIN): its allocation is undone, later payments re-allocated.
#[endpoint(tags("payments"), parameters(("id" = Uuid, Path, description = "Payment id")), status_codes(200, 401, 403, 404, 409, 503), security(("bearer" = [])))]
pub async fn reverse(
    req: &mut Request,
    depot: &mut Depot,
) -> Result<Json<PaymentResult>, ApiError> {
    let state = app_state(depot)?;
    let principal = Principal::of(depot)?;
    let payment_id = PaymentId::new(path_id(req, "id", "payment")?);
    let stored = store::get_payment(&state.db, payment_id)
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::NotFound("payment not found".into()))?;
    refuse_own_loan(principal, stored.user_id, "reverse a payment on")?;
    let now = Now::read(&state.clock);
    let applied = execute_keeping(
        depot,
        (&state, principal),
        stored.loan_id,
        (LoanCommand::ReversePayment { payment_id }, now),
        rendered(StatusCode::OK, payment_id, now),
    )
    .await?;
    Ok(Json(result(&applied, payment_id, now)?))
}

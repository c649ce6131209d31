//! Loan reads: list, get, schedule, payoff quote. A loan and the lists come
//! from the loan rows' figures alone (one row each, no history); the schedule
//! and the payoff quote from the live actor's memory, or from the loan row
//! and its installments when no actor is live. None reads a payment.

use actors::core::{LoanId, LoanStatus, UserId};
use salvo::prelude::*;
use uuid::Uuid;

use super::errors::rejection;
use super::shown;
use super::wire::{InstallmentBody, LoanBody, LoanListBody, Now, PayoffBody, ScheduleBody};
use crate::date::WireDate;
use crate::http::access::Principal;
use crate::http::pagination::{Page, path_id, store_page};
use crate::http::problem::ApiError;
use crate::http::state::app_state;
use crate::store::loans::{self as store, LoanFilter};

fn status_filter(req: &Request) -> Result<Option<LoanStatus>, ApiError> {
    req.query::<String>("status")
        .map(|raw| {
            raw.parse::<LoanStatus>()
                .map_err(|_| ApiError::BadRequest(format!("status {raw:?} is not a loan status")))
        })
        .transpose()
}

/// Loans: staff see all (filter `user_id`), a USER sees their own.
#[endpoint(
    tags("loans"),
    parameters(
        ("status" = Option<String>, Query, description = "Only loans in this status"),
        ("user_id" = Option<Uuid>, Query, description = "Only this borrower's loans (staff)"),
        ("limit" = Option<u32>, Query, description = "Page size, 1-100 (default 50)"),
        ("cursor" = Option<String>, Query, description = "next_cursor of the previous page"),
    ),
    status_codes(200, 400, 401),
    security(("bearer" = []))
)]
pub async fn list_loans(
    req: &mut Request,
    depot: &mut Depot,
) -> Result<Json<LoanListBody>, ApiError> {
    let principal = Principal::of(depot)?;
    let requested_user = match req.query::<String>("user_id") {
        None => None,
        Some(raw) => Some(
            Uuid::parse_str(&raw)
                .map_err(|_| ApiError::BadRequest("user_id is not a UUID".into()))?,
        ),
    };
    let user_id = if principal.is_staff() {
        requested_user
    } else {
        Some(principal.user_id)
    };
    list_for(req, depot, user_id).await
}

/// The loans of one user, as `GET /users/{id}/loans` shows them.
pub async fn list_for(
    req: &Request,
    depot: &Depot,
    user_id: Option<Uuid>,
) -> Result<Json<LoanListBody>, ApiError> {
    let state = app_state(depot)?;
    let today = Now::read(&state.clock).today;
    let filter = LoanFilter {
        user_id: user_id.map(UserId::new),
        status: status_filter(req)?,
        as_of: Some(today),
    };
    let page = store::list_loans(&state.db, filter, store_page(req)?)
        .await
        .map_err(ApiError::internal)?;
    // The list shows exactly what GET /loans/{id} shows, from the same rows.
    let items = page
        .items
        .iter()
        .map(|summary| LoanBody::from_summary(summary, today))
        .collect();
    Ok(Json(Page {
        items,
        next_cursor: page.next_cursor,
    }))
}

/// One loan with its figures as of today.
#[endpoint(tags("loans"), parameters(("id" = Uuid, Path, description = "Loan id")), status_codes(200, 401, 404, 503), security(("bearer" = [])))]
pub async fn get_loan(req: &mut Request, depot: &mut Depot) -> Result<Json<LoanBody>, ApiError> {
    let state = app_state(depot)?;
    let loan_id = LoanId::new(path_id(req, "id", "loan")?);
    let principal = Principal::of(depot)?;
    let summary = store::get_loan_summary(&state.db, loan_id)
        .await
        .map_err(ApiError::internal)?
        .filter(|summary| principal.is_staff() || summary.user_id == UserId::new(principal.user_id))
        .ok_or_else(|| ApiError::NotFound("loan not found".into()))?;
    Ok(Json(LoanBody::from_summary(
        &summary,
        Now::read(&state.clock).today,
    )))
}

/// The installments with what was paid, as of today.
#[endpoint(tags("loans"), parameters(("id" = Uuid, Path, description = "Loan id")), status_codes(200, 401, 404), security(("bearer" = [])))]
pub async fn schedule(
    req: &mut Request,
    depot: &mut Depot,
) -> Result<Json<ScheduleBody>, ApiError> {
    let state = app_state(depot)?;
    let loan_id = LoanId::new(path_id(req, "id", "loan")?);
    let today = Now::read(&state.clock).today;
    let installments = shown(&state, Principal::of(depot)?, loan_id, move |loan| {
        loan.installment_views(today)
            .into_iter()
            .map(InstallmentBody::from)
            .collect()
    })
    .await?;
    Ok(Json(ScheduleBody { installments }))
}

/// The amount that closes the loan on `as_of` (today when omitted).
#[endpoint(
    tags("loans"),
    parameters(("id" = Uuid, Path, description = "Loan id"), ("as_of" = Option<WireDate>, Query, description = "Date to quote for (YYYY-MM-DD); today when omitted")),
    status_codes(200, 401, 404, 409, 422, 503),
    security(("bearer" = []))
)]
pub async fn payoff(req: &mut Request, depot: &mut Depot) -> Result<Json<PayoffBody>, ApiError> {
    let state = app_state(depot)?;
    let loan_id = LoanId::new(path_id(req, "id", "loan")?);
    let as_of = match req.query::<String>("as_of") {
        None => Now::read(&state.clock).today,
        Some(raw) => WireDate::parse_field("as_of", &raw)
            .map_err(ApiError::Unprocessable)?
            .get(),
    };
    let quote = shown(&state, Principal::of(depot)?, loan_id, move |loan| {
        loan.payoff_quote(as_of)
    })
    .await?
    .map_err(rejection)?;
    Ok(Json(quote.into()))
}

//! `POST /admin/jobs/{name}/run`: runs a scheduled job now (ADMIN).

use chrono::{DateTime, NaiveDate, Utc};
use salvo::oapi::ToSchema;
use salvo::prelude::*;
use serde::{Deserialize, Serialize};

use super::body;
use super::problem::ApiError;
use super::state::app_state;
use crate::date::WireDate;
use crate::jobs::{JobError, JobName, RunOutcome, RunRecord};

/// The `/admin/jobs` routes (under the ADMIN-only `/admin`).
pub fn router() -> Router {
    Router::with_path("jobs/{name}/run").post(run_job)
}

/// Options of a run; all optional, so no body at all is fine too.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct RunRequest {
    /// The business date to run for; today (in `BUSINESS_TIMEZONE`) when
    /// omitted. Not in the future.
    as_of: Option<WireDate>,
}

/// A job run for one date, as recorded.
#[derive(Debug, Serialize, ToSchema)]
struct RunBody {
    /// `payment-reminders` or `overdue`.
    #[salvo(schema(example = "overdue"))]
    job: &'static str,
    /// The business date the run judged.
    #[salvo(schema(example = "2026-01-15"))]
    as_of: NaiveDate,
    /// Loans (overdue) or installments (reminders) handled.
    #[salvo(schema(example = 120))]
    processed: u64,
    /// Loans or installments that failed (the next run tries them again).
    #[salvo(schema(example = 0))]
    errors: u64,
    /// When the run started.
    started_at: DateTime<Utc>,
    /// When it finished.
    finished_at: Option<DateTime<Utc>>,
    /// False when the run for this date had already been done and nothing ran now.
    ran_now: bool,
}

fn run_body(record: &RunRecord, ran_now: bool) -> RunBody {
    RunBody {
        job: record.job.as_str(),
        as_of: record.as_of,
        processed: record.processed,
        errors: record.errors,
        started_at: record.started_at,
        finished_at: record.finished_at,
        ran_now,
    }
}

/// Run a job now (ADMIN): `payment-reminders` or `overdue`, for `as_of`
/// (default today). Each job runs once per date: if it already ran for that
/// date, the existing record is returned (200, `ran_now: false`); if another
/// instance is running it right now, 409.
#[endpoint(
    tags("admin"),
    parameters(("name" = String, Path, description = "Job name: `payment-reminders` or `overdue`")),
    request_body = RunRequest,
    status_codes(200, 401, 403, 404, 409, 422),
    responses((status_code = 200, body = RunBody)),
    security(("bearer" = []))
)]
async fn run_job(req: &mut Request, depot: &mut Depot) -> Result<Json<RunBody>, ApiError> {
    let state = app_state(depot)?;
    let name = req.param::<String>("name").unwrap_or_default();
    let job: JobName = name
        .parse()
        .map_err(|_| ApiError::NotFound(format!("no job is called {name:?}")))?;
    let request: RunRequest = body::optional_json(req).await?;
    match state.jobs.run(job, request.as_of.map(WireDate::get)).await {
        Ok(RunOutcome::Ran(record)) => Ok(Json(run_body(&record, true))),
        Ok(RunOutcome::AlreadyDone(record)) => Ok(Json(run_body(&record, false))),
        Ok(RunOutcome::InProgress(record)) => Err(ApiError::Conflict(format!(
            "{job} for {} is running on another instance ({}) since {}",
            record.as_of, record.owner, record.started_at
        ))),
        Err(error @ JobError::FutureDate { .. }) => Err(ApiError::Unprocessable(error.to_string())),
        Err(error @ (JobError::LostLease { .. } | JobError::Interrupted { .. })) => {
            Err(ApiError::Conflict(error.to_string()))
        }
        Err(error @ JobError::Store(_)) => Err(ApiError::internal(error)),
    }
}

//! `/profile`: the caller's personal details, and staff lookups.

use chrono::{DateTime, NaiveDate, Utc};
use salvo::oapi::ToSchema;
use salvo::prelude::*;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::body;
use super::pagination::path_id;
use super::problem::ApiError;
use super::state::app_state;
use crate::accounts::profiles::{self, Profile, ProfileInput};
use crate::date::WireDate;
use crate::http::access::{Principal, require_user};

/// The `/profile` routes.
pub fn router() -> Router {
    Router::with_path("profile")
        .hoop(require_user)
        .get(get_own)
        .put(put_own)
        .push(Router::with_path("{user_id}").get(get_for_user))
}

/// Personal details as sent by the user.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct ProfileRequest {
    /// Given name, 1–100 characters.
    #[salvo(schema(example = "Pat"))]
    first_name: String,
    /// Family name, 1–100 characters.
    #[salvo(schema(example = "Doe"))]
    last_name: String,
    /// Postal address.
    address: Option<String>,
    /// E.164 phone number, e.g. `+4915112345678`.
    phone_number: Option<String>,
    /// Date of birth (`YYYY-MM-DD`); the user must be an adult.
    date_of_birth: Option<WireDate>,
}

/// A profile.
#[derive(Debug, Serialize, ToSchema)]
struct ProfileBody {
    /// The user it belongs to.
    user_id: Uuid,
    /// Given name.
    first_name: String,
    /// Family name.
    last_name: String,
    /// Postal address.
    address: Option<String>,
    /// E.164 phone number.
    phone_number: Option<String>,
    /// Date of birth.
    date_of_birth: Option<NaiveDate>,
    /// Last change.
    updated_at: DateTime<Utc>,
}

impl From<Profile> for ProfileBody {
    fn from(profile: Profile) -> Self {
        Self {
            user_id: profile.user_id,
            first_name: profile.first_name,
            last_name: profile.last_name,
            address: profile.address,
            phone_number: profile.phone_number,
            date_of_birth: profile.date_of_birth,
            updated_at: profile.updated_at,
        }
    }
}

async fn load(depot: &Depot, user_id: Uuid) -> Result<Json<ProfileBody>, ApiError> {
    let state = app_state(depot)?;
    let profile = profiles::get(&state.db, user_id)
        .await
        .map_err(ApiError::internal)?;
    profile
        .map(|profile| Json(profile.into()))
        .ok_or_else(|| ApiError::NotFound("no profile yet (PUT /api/v1/profile creates it)".into()))
}

/// The caller's profile.
#[endpoint(tags("profile"), status_codes(200, 401, 404), security(("bearer" = [])))]
async fn get_own(depot: &mut Depot) -> Result<Json<ProfileBody>, ApiError> {
    let principal = Principal::of(depot)?;
    load(depot, principal.user_id).await
}

/// Create or replace the caller's profile.
#[endpoint(tags("profile"), request_body = ProfileRequest, status_codes(200, 401, 413, 422), security(("bearer" = [])))]
async fn put_own(req: &mut Request, depot: &mut Depot) -> Result<Json<ProfileBody>, ApiError> {
    let state = app_state(depot)?;
    let principal = Principal::of(depot)?;
    let request: ProfileRequest = body::json(req).await?;
    let now = Utc::now();
    let input = ProfileInput {
        first_name: request.first_name,
        last_name: request.last_name,
        address: request.address,
        phone_number: request.phone_number,
        date_of_birth: request.date_of_birth.map(WireDate::get),
    };
    let profile = input
        .validate(principal.user_id, now.date_naive(), now)
        .map_err(|error| ApiError::Unprocessable(error.to_string()))?;
    profiles::put(&state.db, &profile)
        .await
        .map_err(ApiError::internal)?;
    Ok(Json(profile.into()))
}

/// A user's profile (the user themself, or staff).
#[endpoint(tags("profile"), parameters(("user_id" = Uuid, Path, description = "User id")), status_codes(200, 401, 404), security(("bearer" = [])))]
async fn get_for_user(req: &mut Request, depot: &mut Depot) -> Result<Json<ProfileBody>, ApiError> {
    let principal = Principal::of(depot)?;
    let user_id = path_id(req, "user_id", "profile")?;
    principal.ensure_owner_or_staff(user_id, "profile")?;
    load(depot, user_id).await
}

//! The OpenAPI document: generated from the endpoint annotations, then
//! completed by rules that hold for every route, so a route added anywhere
//! is described right without repeating them (SPEC §4: limits, idempotency,
//! bodies, sessions).
//!
//! Rules, applied to every operation of the generated document:
//! - under `/api/`: `429` (rate limits are per user or IP on every route),
//!   with `Retry-After`;
//! - with a request body: `413` (64 KiB), `422` (malformed JSON, unknown
//!   field), and the body is optional when its schema requires no field
//!   (SPEC: such a route also accepts no body at all);
//! - with `security`: `401`;
//! - an authenticated `POST` under `/api/`: the `Idempotency-Key` header
//!   (the hoop honours it on each) with its `400` (bad key), `409` (first
//!   still running) and `422` (same key, other body);
//! - every `limit` query parameter: 1–100, default 50; every `cursor`: a string;
//!   the few plain-string parameters that take fixed values list them (a
//!   loan's `status`, the audit `actor_id`, a job's `name`).
//!
//! Schemas get the names users expect (`Loan`, `Payment`, `LoanPage`)
//! instead of Rust paths (`loan_tracker.http.loans.wire.LoanBody`).

use std::collections::BTreeMap;

use salvo::oapi::security::{Http, HttpAuthScheme, SecurityScheme};
use salvo::oapi::{Info, OpenApi};
use salvo::prelude::*;
use serde_json::{Map, Value, json};

use super::idempotency::IDEMPOTENCY_KEY;
use crate::audit::entry::SYSTEM_ACTOR;
use crate::jobs::JobName;
use crate::store::page::MAX_PAGE_LIMIT;

/// Where schemas live in the document.
const SCHEMA_REF_PREFIX: &str = "#/components/schemas/";
/// The problem+json schema's final name.
const PROBLEM: &str = "Problem";
/// What `?status=` of a loan list takes (`LoanStatus`).
const LOAN_STATUSES: [&str; 7] = [
    "PENDING",
    "APPROVED",
    "OVERDUE",
    "PAID",
    "REJECTED",
    "CANCELLED",
    "WRITTEN_OFF",
];
/// Methods that are operations in a path item.
const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// The complete OpenAPI 3 document of every endpoint under `router`, as JSON.
pub fn document(router: &Router) -> Value {
    let generated = OpenApi::with_info(
        Info::new("loan-tracker", env!("CARGO_PKG_VERSION"))
            .description("Loan servicing: apply, approve, repay, remind, audit. Amounts are strings in major units."),
    )
    .add_security_scheme("bearer", SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer).bearer_format("JWT")))
    .merge_router(router);
    let mut document = serde_json::to_value(generated).unwrap_or_else(|_| json!({}));
    rename_schemas(&mut document);
    complete_operations(&mut document);
    document
}

/// The document as a route: `GET /openapi.json`.
pub fn route(path: &str, document: &Value) -> Router {
    Router::with_path(path).get(ServeDocument(document.to_string()))
}

/// Answers the pre-rendered document.
struct ServeDocument(String);

#[async_trait]
impl Handler for ServeDocument {
    async fn handle(
        &self,
        _req: &mut Request,
        _depot: &mut Depot,
        res: &mut Response,
        _ctrl: &mut FlowCtrl,
    ) {
        res.render(Text::Json(self.0.clone()));
    }
}

/// A user-facing schema name: the last path segment without a `Body`
/// suffix; a generic page becomes `<Item>Page`.
fn clean_name(generated: &str) -> String {
    let short = |path: &str| {
        let last = path.rsplit('.').next().unwrap_or(path);
        last.strip_suffix("Body")
            .filter(|stem| !stem.is_empty())
            .unwrap_or(last)
            .to_owned()
    };
    match generated.split_once('<') {
        Some((outer, inner)) => {
            let inner = inner.trim_end_matches('>');
            let args: String = inner.split(',').map(|arg| short(arg.trim())).collect();
            format!("{args}{}", short(outer))
        }
        None => short(generated),
    }
}

/// Renames every schema and every reference to it; a clean name that two
/// schemas would share keeps the generated names of both.
fn rename_schemas(document: &mut Value) {
    let Some(schemas) = document
        .pointer_mut("/components/schemas")
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    let mut wanted: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for generated in schemas.keys() {
        wanted
            .entry(clean_name(generated))
            .or_default()
            .push(generated.clone());
    }
    let renames: BTreeMap<String, String> = wanted
        .into_iter()
        .filter(|(_, generated)| generated.len() == 1)
        .map(|(clean, mut generated)| (generated.remove(0), clean))
        .collect();
    let old = std::mem::take(schemas);
    for (name, schema) in old {
        let name = renames.get(&name).cloned().unwrap_or(name);
        schemas.insert(name, schema);
    }
    rewrite_refs(document, &renames);
}

fn rewrite_refs(value: &mut Value, renames: &BTreeMap<String, String>) {
    match value {
        Value::Object(object) => {
            for (key, child) in object.iter_mut() {
                if key == "$ref"
                    && let Some(target) = child
                        .as_str()
                        .and_then(|r| r.strip_prefix(SCHEMA_REF_PREFIX))
                    && let Some(clean) = renames.get(target)
                {
                    *child = Value::String(format!("{SCHEMA_REF_PREFIX}{clean}"));
                } else {
                    rewrite_refs(child, renames);
                }
            }
        }
        Value::Array(items) => items
            .iter_mut()
            .for_each(|item| rewrite_refs(item, renames)),
        _ => {}
    }
}

/// Applies the rules of the module doc to every operation.
fn complete_operations(document: &mut Value) {
    let schemas = document
        .pointer("/components/schemas")
        .cloned()
        .unwrap_or_else(|| json!({}));
    let Some(paths) = document.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    for (path, item) in paths.iter_mut() {
        let Some(item) = item.as_object_mut() else {
            continue;
        };
        for (method, operation) in item.iter_mut() {
            if !METHODS.contains(&method.as_str()) {
                continue;
            }
            if let Some(operation) = operation.as_object_mut() {
                complete(path, method, operation, &schemas);
            }
        }
    }
}

fn complete(path: &str, method: &str, operation: &mut Map<String, Value>, schemas: &Value) {
    let api = path.starts_with("/api/");
    let secured = operation
        .get("security")
        .and_then(Value::as_array)
        .is_some_and(|security| !security.is_empty());
    if api {
        add_response(
            operation,
            429,
            "Too many requests: over the rate limit; retry after `Retry-After` seconds",
            true,
        );
    }
    if let Some(body) = operation
        .get_mut("requestBody")
        .and_then(Value::as_object_mut)
    {
        if !requires_any_field(body, schemas) {
            body.insert("required".into(), Value::Bool(false));
        }
        add_response(operation, 413, "Request body larger than 64 KiB", false);
        add_response(
            operation,
            422,
            "Malformed JSON, an unknown field or an unusable value (the detail names it)",
            false,
        );
    }
    if secured {
        add_response(
            operation,
            401,
            "No token, or a token that is not (or no longer) valid",
            false,
        );
    }
    if api && secured && method == "post" {
        add_idempotency_key(operation);
    }
    if let Some(parameters) = operation
        .get_mut("parameters")
        .and_then(Value::as_array_mut)
    {
        for parameter in parameters.iter_mut() {
            constrain_parameter(path, parameter);
        }
    }
}

/// True when the body's schema (possibly a reference) lists a required field.
fn requires_any_field(body: &Map<String, Value>, schemas: &Value) -> bool {
    let Some(schema) = body.get("content").and_then(|content| {
        content
            .as_object()
            .and_then(|media| media.values().next())
            .and_then(|media| media.get("schema"))
    }) else {
        return true;
    };
    let resolved = match schema.get("$ref").and_then(Value::as_str) {
        Some(reference) => reference
            .strip_prefix(SCHEMA_REF_PREFIX)
            .and_then(|name| schemas.get(name)),
        None => Some(schema),
    };
    resolved.is_none_or(|schema| {
        schema
            .get("required")
            .and_then(Value::as_array)
            .is_some_and(|required| !required.is_empty())
    })
}

/// Adds a problem+json response for `status` unless the operation has one.
fn add_response(
    operation: &mut Map<String, Value>,
    status: u16,
    description: &str,
    retry_after: bool,
) {
    let responses = operation
        .entry("responses")
        .or_insert_with(|| json!({}))
        .as_object_mut();
    let Some(responses) = responses else {
        return;
    };
    let entry = responses.entry(status.to_string()).or_insert_with(|| {
        json!({
            "description": description,
            "content": {"application/problem+json": {"schema": {"$ref": format!("{SCHEMA_REF_PREFIX}{PROBLEM}")}}}
        })
    });
    if retry_after && let Some(entry) = entry.as_object_mut() {
        let headers = entry.entry("headers").or_insert_with(|| json!({}));
        if let Some(headers) = headers.as_object_mut() {
            headers.entry("Retry-After").or_insert_with(|| {
                json!({
                    "description": "Seconds until a request will be accepted again",
                    "schema": {"type": "integer", "minimum": 0}
                })
            });
        }
    }
}

fn add_idempotency_key(operation: &mut Map<String, Value>) {
    let parameters = operation.entry("parameters").or_insert_with(|| json!([]));
    let Some(parameters) = parameters.as_array_mut() else {
        return;
    };
    let present = parameters.iter().any(|parameter| {
        parameter
            .get("name")
            .and_then(Value::as_str)
            .is_some_and(|name| name.eq_ignore_ascii_case(IDEMPOTENCY_KEY))
    });
    if !present {
        parameters.push(json!({
            "name": "Idempotency-Key",
            "in": "header",
            "required": false,
            "description": "Makes a retry safe: a repeat with the same key and body answers the first response (`Idempotent-Replayed: true`) and changes nothing; the same key with another body is 422; a repeat while the first is still running is 409. Keys are per user, kept 24 hours.",
            // Surrounding blanks are not part of a header value (HTTP strips them).
            "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[ \t]*[!-~]+[ \t]*$"}
        }));
    }
    add_response(
        operation,
        400,
        "Idempotency-Key is not 1 to 255 visible ASCII characters",
        false,
    );
    add_response(
        operation,
        409,
        "A request with this Idempotency-Key is still in progress, or the resource's state forbids this",
        false,
    );
    add_response(
        operation,
        422,
        "Unusable content, or this Idempotency-Key was used with another body",
        false,
    );
}

/// The parameters' real bounds (SPEC §4: limit 1–100, default 50) and the
/// values a parameter typed as a plain string really takes.
fn constrain_parameter(path: &str, parameter: &mut Value) {
    let is_query = parameter.get("in") == Some(&json!("query"));
    let is_path = parameter.get("in") == Some(&json!("path"));
    match parameter.get("name").and_then(Value::as_str) {
        Some("limit") if is_query => {
            parameter["schema"] = json!({
                "type": "integer",
                "minimum": 1,
                "maximum": MAX_PAGE_LIMIT,
                "default": crate::store::page::DEFAULT_PAGE_LIMIT,
            });
        }
        Some("cursor") if is_query => {
            // What `store::page::Cursor` encodes (empty means the first page).
            parameter["schema"] = json!({"type": "string", "pattern": "^([0-9a-fA-F]{32})?$"});
        }
        Some("status") if is_query && path.contains("/loans") => {
            parameter["schema"] = json!({"type": "string", "enum": LOAN_STATUSES});
        }
        Some("actor_id") if is_query && path.ends_with("/audit-logs") => {
            parameter["schema"] = json!({"anyOf": [
                {"type": "string", "format": "uuid"},
                {"type": "string", "enum": [SYSTEM_ACTOR]},
            ]});
        }
        Some("name") if is_path && path.contains("/admin/jobs/") => {
            let names: Vec<&str> = JobName::ALL.iter().map(|job| job.as_str()).collect();
            parameter["schema"] = json!({"type": "string", "enum": names});
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_names_are_the_nouns_users_know() {
        assert_eq!(clean_name("loan_tracker.http.loans.wire.LoanBody"), "Loan");
        assert_eq!(
            clean_name("loan_tracker.http.auth.RegisterRequest"),
            "RegisterRequest"
        );
        assert_eq!(
            clean_name(
                "loan_tracker.http.pagination.Page<loan_tracker.http.loans.wire.PaymentBody>"
            ),
            "PaymentPage"
        );
        assert_eq!(clean_name("Body"), "Body");
    }

    #[test]
    fn an_operation_gets_the_responses_and_headers_every_route_has() {
        let schemas = json!({"Req": {"type": "object", "required": ["a"], "properties": {"a": {"type": "string"}}}, "Opt": {"type": "object", "properties": {"b": {"type": "string"}}}});
        let mut post = json!({
            "security": [{"bearer": []}],
            "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Opt"}}}},
            "parameters": [{"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 0}}],
            "responses": {"200": {"description": "ok"}}
        });
        complete("/api/v1/x", "post", post.as_object_mut().unwrap(), &schemas);
        for status in ["200", "400", "401", "409", "413", "422", "429"] {
            assert!(
                post["responses"].get(status).is_some(),
                "{status} missing: {post}"
            );
        }
        assert_eq!(post["requestBody"]["required"], false);
        assert_eq!(post["parameters"][0]["schema"]["minimum"], 1);
        assert_eq!(post["parameters"][1]["name"], "Idempotency-Key");
        assert!(post["responses"]["429"]["headers"]["Retry-After"].is_object());

        let mut get = json!({"responses": {}});
        complete("/health", "get", get.as_object_mut().unwrap(), &schemas);
        assert_eq!(
            get["responses"],
            json!({}),
            "outside the API nothing is added"
        );

        let mut anonymous = json!({"requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Req"}}}}, "responses": {}});
        complete(
            "/api/v1/auth/login",
            "post",
            anonymous.as_object_mut().unwrap(),
            &schemas,
        );
        assert_eq!(anonymous["requestBody"]["required"], true);
        assert!(
            anonymous.get("parameters").is_none(),
            "no key without a session: {anonymous}"
        );
        assert!(anonymous["responses"].get("401").is_none());
    }

    #[test]
    fn plain_string_parameters_list_the_values_they_take() {
        let mut job = json!({"name": "name", "in": "path", "schema": {"type": "string"}});
        constrain_parameter("/api/v1/admin/jobs/{name}/run", &mut job);
        assert_eq!(
            job["schema"]["enum"],
            json!(["overdue", "payment-reminders"])
        );
        let mut actor = json!({"name": "actor_id", "in": "query", "schema": {"type": "string"}});
        constrain_parameter("/api/v1/audit-logs", &mut actor);
        assert_eq!(actor["schema"]["anyOf"][1]["enum"], json!(["system"]));
        let mut other = json!({"name": "name", "in": "query", "schema": {"type": "string"}});
        constrain_parameter("/api/v1/admin/jobs/{name}/run", &mut other);
        assert_eq!(
            other["schema"],
            json!({"type": "string"}),
            "only the path's name"
        );
    }
}

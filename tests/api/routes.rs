//! Every route the router answers is described in `/openapi.json` (or is one
//! of the few operational routes outside the API).

use std::collections::BTreeSet;

use salvo::Router;
use salvo::routing::FilterInfo;

use crate::helpers::spawn_app;

/// Routes outside `/api/v1` that are deliberately not in the API document.
const OPERATIONAL: [&str; 4] = ["/health", "/ready", "/metrics", "/openapi.json"];

/// A path segment as OpenAPI names it: `{id|[0-9a-f-]+}` is `{id}`.
fn without_pattern(segment: &str) -> String {
    match (segment.strip_prefix('{'), segment.find('|')) {
        (Some(_), Some(bar)) if segment.ends_with('}') => format!("{}}}", &segment[..bar]),
        _ => segment.to_owned(),
    }
}

/// (METHOD, path) of every router with a handler, paths joined from the root.
fn routes(router: &Router, prefix: &str, methods: &[String], out: &mut BTreeSet<(String, String)>) {
    let mut path = prefix.to_owned();
    let mut own_methods: Vec<String> = Vec::new();
    for filter in router.filters() {
        match filter.info() {
            FilterInfo::Path(segment) if !segment.is_empty() => {
                path = format!(
                    "{}/{}",
                    path.trim_end_matches('/'),
                    without_pattern(&segment)
                )
            }
            FilterInfo::Method(method) => own_methods.push(method.to_string()),
            _ => {}
        }
    }
    let methods: Vec<String> = if own_methods.is_empty() {
        methods.to_vec()
    } else {
        own_methods
    };
    // The router's own line of its Debug tree shows " -> handler" when it has a goal.
    let has_goal = format!("{router:?}")
        .lines()
        .next()
        .is_some_and(|line| line.contains(" -> "));
    if has_goal {
        for method in &methods {
            out.insert((
                method.clone(),
                if path.is_empty() {
                    "/".into()
                } else {
                    path.clone()
                },
            ));
        }
    }
    for child in router.routers() {
        routes(child, &path, &methods, out);
    }
}

#[tokio::test]
async fn every_route_is_described_by_the_openapi_document() {
    let mut answered = BTreeSet::new();
    routes(&loan_tracker::http::router(), "", &[], &mut answered);
    assert!(
        answered.len() > 30,
        "the walk found too few routes: {answered:?}"
    );

    let app = spawn_app().await;
    let mut described = crate::access::described_routes(&app).await;
    // The few routes outside `/api/` the document describes (`/asyncapi.json`).
    let spec: serde_json::Value = app.get("/openapi.json", None).await.json().await.unwrap();
    for (path, operations) in spec["paths"].as_object().unwrap() {
        if !path.starts_with("/api/") {
            for method in operations.as_object().unwrap().keys() {
                described.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    let undescribed: Vec<&(String, String)> = answered
        .iter()
        .filter(|(_, path)| !OPERATIONAL.contains(&path.as_str()) && !path.starts_with("/docs"))
        .filter(|route| !described.contains(*route))
        .collect();
    assert!(
        undescribed.is_empty(),
        "routes missing from /openapi.json: {undescribed:?}"
    );
    // And the walk is not blind: the document's operations are all found.
    let missed: Vec<&(String, String)> = described
        .iter()
        .filter(|route| !answered.contains(*route))
        .collect();
    assert!(missed.is_empty(), "the router walk missed: {missed:?}");
}

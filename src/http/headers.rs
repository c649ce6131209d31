//! Security headers every response carries, set in one hoop: no MIME
//! sniffing, no framing, a Content-Security-Policy, and `no-store` for the
//! API (token pairs and personal data must not land in any cache).

use base64::Engine;
use salvo::http::ResBody;
use salvo::http::header::{self, HeaderName, HeaderValue};
use salvo::prelude::*;
use sha2::{Digest, Sha256};

/// Where the interactive docs page is served (Swagger UI, embedded).
pub const DOCS_PREFIX: &str = "/docs";

/// Policy of everything except the docs page: JSON and text never run
/// scripts, load anything or get framed.
const API_POLICY: &str =
    "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/// Policy of the docs page without its inline-script hashes: the embedded
/// Swagger UI bundle and stylesheet from this origin, its `data:` icons,
/// "Try it out" calls to this origin; nothing from another host.
const DOCS_POLICY: &str = "default-src 'none'; script-src 'self'{hashes}; style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/// Adds the headers after the handler (and the error catcher) has answered.
#[handler]
pub async fn security_headers(
    req: &mut Request,
    depot: &mut Depot,
    res: &mut Response,
    ctrl: &mut FlowCtrl,
) {
    ctrl.call_next(req, depot, res).await;
    let path = req.uri().path();
    let policy = if path == DOCS_PREFIX || path.starts_with("/docs/") {
        docs_policy(res)
    } else {
        API_POLICY.to_owned()
    };
    let headers = res.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if let Ok(value) = HeaderValue::from_str(&policy) {
        headers.insert(header::CONTENT_SECURITY_POLICY, value);
    }
    if path.starts_with("/api/") && !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    headers.insert(
        HeaderName::from_static("referrer-policy"),
        HeaderValue::from_static("no-referrer"),
    );
}

/// The docs policy, allowing exactly the inline scripts of this HTML page by
/// their sha-256 (Swagger UI's index page starts itself with one; hashing
/// what is actually served keeps the policy right if the template changes).
fn docs_policy(res: &Response) -> String {
    let hashes: String = match &res.body {
        ResBody::Once(bytes) if is_html(res) => inline_scripts(&String::from_utf8_lossy(bytes))
            .map(|script| {
                let digest = Sha256::digest(script.as_bytes());
                format!(
                    " 'sha256-{}'",
                    base64::engine::general_purpose::STANDARD.encode(digest)
                )
            })
            .collect(),
        _ => String::new(),
    };
    DOCS_POLICY.replace("{hashes}", &hashes)
}

fn is_html(res: &Response) -> bool {
    res.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("text/html"))
}

/// The text of each `<script>` element without a `src` (exactly as served,
/// which is what a CSP hash covers).
fn inline_scripts(html: &str) -> impl Iterator<Item = &str> {
    html.split("<script>")
        .skip(1)
        .filter_map(|rest| rest.split_once("</script>").map(|(script, _)| script))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_scripts_without_a_source_are_hashed() {
        let html = "<script src=\"a.js\"></script><script>one()</script>\n<script>two()</script>";
        let scripts: Vec<&str> = inline_scripts(html).collect();
        assert_eq!(scripts, ["one()", "two()"]);
    }
}

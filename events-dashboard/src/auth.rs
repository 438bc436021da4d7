//! Who may look: a bearer token, the cookie `?token=` sets, or the
//! application's hook. Nothing is served without one of them.

use axum::body::Body;
use axum::extract::{OriginalUri, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use events_core::auth::constant_time_eq;

use crate::{Auth, Shared};

/// The variable the dashboard's token is read from
/// ([`Dashboard::config`](crate::Dashboard::config)).
pub const TOKEN_VAR: &str = "EVENTS_DASHBOARD_TOKEN";

inventory::submit! {
    events_core::config::Var::new(
        TOKEN_VAR,
        "The token that opens the dashboard: `Authorization: Bearer <token>`, or `?token=<token>` once in a browser (it sets a cookie). Without it (or an authorization hook) the dashboard answers 401.",
    )
    .secret()
}

/// The cookie `?token=` sets.
const COOKIE: &str = "events_dashboard";

/// The header a request that changes something must carry when the
/// cookie authorizes it: a cross-site form cannot set it.
pub(crate) const CSRF_HEADER: &str = "x-events-dashboard";

/// How a request proved who it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Proof {
    Bearer,
    Cookie,
    Hook,
}

/// The middleware: lets the request through, answers 401 or 403 in words,
/// or turns `?token=` into a cookie and a redirect.
pub(crate) async fn check(State(shared): State<Shared>, request: Request, next: Next) -> Response {
    let Auth::Allow { token, hook } = &shared.auth else {
        return refuse(
            StatusCode::UNAUTHORIZED,
            "the dashboard is closed: give it a token (EVENTS_DASHBOARD_TOKEN, or Dashboard::token) or an authorization hook (Dashboard::authorize)",
        );
    };
    let (parts, body) = request.into_parts();
    if let Some(token) = token
        && let Some(given) = query_token(parts.uri.query())
    {
        if !constant_time_eq(given.as_bytes(), token.as_bytes()) {
            return refuse(
                StatusCode::FORBIDDEN,
                "the token given is not the dashboard's",
            );
        }
        let original = parts
            .extensions
            .get::<OriginalUri>()
            .map_or_else(|| parts.uri.clone(), |o| o.0.clone());
        return set_cookie_and_redirect(&original, &parts.uri, token);
    }
    let proof = match token {
        Some(token) => match bearer(&parts.headers) {
            Some(given) if constant_time_eq(given.as_bytes(), token.as_bytes()) => {
                Some(Proof::Bearer)
            }
            Some(_) => {
                return refuse(
                    StatusCode::FORBIDDEN,
                    "the bearer token is not the dashboard's",
                );
            }
            None => match cookie(&parts.headers) {
                Some(given) if constant_time_eq(given.as_bytes(), hex(token).as_bytes()) => {
                    Some(Proof::Cookie)
                }
                _ => None,
            },
        },
        None => None,
    };
    let proof = proof.or_else(|| {
        hook.as_ref()
            .and_then(|allow| allow(&parts).then_some(Proof::Hook))
    });
    let Some(proof) = proof else {
        let mut response = refuse(
            StatusCode::UNAUTHORIZED,
            "the dashboard needs authorization: `Authorization: Bearer <token>`, or open it once with ?token=<token>",
        );
        if token.is_some() {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        return response;
    };
    let changes = !matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS);
    if changes && proof != Proof::Bearer && !parts.headers.contains_key(CSRF_HEADER) {
        return refuse(
            StatusCode::FORBIDDEN,
            "a request that changes something needs the x-events-dashboard header (the page sends it; a cross-site form cannot)",
        );
    }
    next.run(Request::from_parts(parts, body)).await
}

/// A JSON error body with `status`.
pub(crate) fn refuse(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(serde_json::json!({ "error": message }))).into_response()
}

/// The `token` parameter of a query string, decoded.
fn query_token(query: Option<&str>) -> Option<String> {
    query?
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(key, _)| *key == "token")
        .map(|(_, value)| percent_decode(value))
}

/// The query without its `token` parameter.
fn without_token(query: &str) -> String {
    query
        .split('&')
        .filter(|pair| !pair.is_empty() && pair.split('=').next() != Some("token"))
        .collect::<Vec<_>>()
        .join("&")
}

/// Sets the cookie for the dashboard's own path and sends the browser to
/// the same page without the token in its address.
fn set_cookie_and_redirect(
    original: &axum::http::Uri,
    inner: &axum::http::Uri,
    token: &str,
) -> Response {
    let path = original.path();
    // The part of the path the router was mounted under: the cookie goes
    // to the dashboard only.
    let mount = crate::mount_of(path, inner.path());
    let cookie_path = if mount.is_empty() {
        "/"
    } else {
        mount.as_str()
    };
    let rest = without_token(original.query().unwrap_or(""));
    let location = if rest.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{rest}")
    };
    let cookie = format!(
        "{COOKIE}={}; Path={cookie_path}; HttpOnly; SameSite=Strict",
        hex(token)
    );
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::SEE_OTHER;
    let headers = response.headers_mut();
    if let (Ok(location), Ok(cookie)) = (
        HeaderValue::from_str(&location),
        HeaderValue::from_str(&cookie),
    ) {
        headers.insert(header::LOCATION, location);
        headers.insert(header::SET_COOKIE, cookie);
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    events_core::auth::bearer_token(headers.get(header::AUTHORIZATION)?.to_str().ok()?)
}

fn cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value)
}

/// The cookie carries the token hex-encoded: any byte survives it.
fn hex(text: &str) -> String {
    text.bytes().map(|b| format!("{b:02x}")).collect()
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex_at = |at: usize| bytes.get(at).and_then(|b| (*b as char).to_digit(16));
        match (bytes[i], hex_at(i + 1), hex_at(i + 2)) {
            (b'%', Some(high), Some(low)) => {
                out.push((high * 16 + low) as u8);
                i += 3;
            }
            (b'+', _, _) => {
                out.push(b' ');
                i += 1;
            }
            (byte, _, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_leaves_the_address() {
        assert_eq!(
            query_token(Some("a=1&token=x%2By&b=2")).as_deref(),
            Some("x+y")
        );
        assert_eq!(without_token("a=1&token=x&b=2"), "a=1&b=2");
        assert_eq!(without_token("token=x"), "");
    }
}

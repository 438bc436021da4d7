//! Who may ask: a bearer token, or the application's authenticator.
//! Nothing is answered without one of them.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use events_core::auth::constant_time_eq;

use crate::error::ApiError;

/// The variable the API's bearer token is read from
/// ([`Api::config`](crate::Api::config)).
pub const TOKEN_VAR: &str = "EVENTS_HTTP_TOKEN";

inventory::submit! {
    events_core::config::Var::new(
        TOKEN_VAR,
        "The bearer token of the event log's HTTP API (`Authorization: Bearer <token>`). Without it (or an authenticator given by the application) every route answers 401.",
    )
    .secret()
}

/// The application's decision on a request, from its method, URI and
/// headers.
pub(crate) type Authenticator = Arc<dyn Fn(&axum::http::request::Parts) -> bool + Send + Sync>;

/// Who may ask.
#[derive(Clone, Default)]
pub(crate) struct Auth {
    /// Requests bearing it are let in.
    pub(crate) token: Option<Arc<str>>,
    /// Requests it says yes to are let in.
    pub(crate) authenticator: Option<Authenticator>,
}

impl Auth {
    /// Whether anything can open it.
    pub(crate) fn is_open(&self) -> bool {
        self.token.is_some() || self.authenticator.is_some()
    }

    /// What opens it, for logs and `Debug`.
    pub(crate) fn describe(&self) -> &'static str {
        match (&self.token, &self.authenticator) {
            (None, None) => "closed",
            (Some(_), None) => "token",
            (None, Some(_)) => "authenticator",
            (Some(_), Some(_)) => "token and authenticator",
        }
    }
}

/// The middleware: the request goes on, or gets a 401 in words.
pub(crate) async fn check(State(auth): State<Arc<Auth>>, request: Request, next: Next) -> Response {
    if !auth.is_open() {
        return refuse(
            "the events API is closed: give it a token (EVENTS_HTTP_TOKEN, or Api::token) or an authenticator (Api::authorize)",
            false,
        );
    }
    let (parts, body) = request.into_parts();
    let given = bearer(&parts.headers);
    if let (Some(token), Some(given)) = (&auth.token, given)
        && constant_time_eq(given.as_bytes(), token.as_bytes())
    {
        return next.run(Request::from_parts(parts, body)).await;
    }
    if let Some(allow) = &auth.authenticator
        && allow(&parts)
    {
        return next.run(Request::from_parts(parts, body)).await;
    }
    match (given, &auth.token) {
        (Some(_), Some(_)) => refuse("the bearer token is not the events API's", true),
        (None, Some(_)) => refuse(
            "the events API needs authorization: `Authorization: Bearer <token>`",
            true,
        ),
        _ => refuse(
            "the application's authenticator refused this request",
            false,
        ),
    }
}

/// A 401 in words; with a token configured, it names the scheme.
fn refuse(message: &str, bearer_scheme: bool) -> Response {
    let mut response = ApiError::new(StatusCode::UNAUTHORIZED, message).into_response();
    if bearer_scheme {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"events\""),
        );
    }
    response
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    events_core::auth::bearer_token(headers.get(header::AUTHORIZATION)?.to_str().ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bearer_scheme_is_read_in_any_case() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("bearer  xyz "),
        );
        assert_eq!(bearer(&headers), Some("xyz"));
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic xyz"));
        assert_eq!(bearer(&headers), None);
    }
}

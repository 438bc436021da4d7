//! Every answer that is not a success: `{"error": "<in words>"}` with its
//! status. Bad input is a 4xx, axum's own rejections (a body that is not
//! JSON, a wrong content type, a query string that does not parse) take
//! the same shape, and a store that fails is a 503 with its causes.

// Only the webhook routes take bodies and path parameters.
#![cfg_attr(not(feature = "webhooks"), allow(dead_code))]

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use events_core::error::Chain;
use events_core::store::StoreError;
use serde::de::DeserializeOwned;

/// An answer that is not a success: a status and a message in words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    /// An answer with `status` saying `message`.
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
        }
    }

    /// 400: the request is wrong, in words.
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    /// 404: nothing there.
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, message)
    }

    /// The status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> ApiError {
        let status = match &error {
            StoreError::Invalid(_) => StatusCode::BAD_REQUEST,
            StoreError::Conflict { .. } => StatusCode::CONFLICT,
            StoreError::Unsupported { .. } => StatusCode::NOT_IMPLEMENTED,
            _ => StatusCode::SERVICE_UNAVAILABLE,
        };
        if status.is_server_error() {
            tracing::warn!(error = %Chain(&error), "the event store failed a request of the events HTTP API");
        }
        ApiError::new(status, Chain(&error).to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (
            self.status,
            axum::Json(serde_json::json!({ "error": self.message })),
        )
            .into_response();
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        }
        response
    }
}

/// A query string read into `T` (a struct with `deny_unknown_fields`),
/// its rejection answered as [`ApiError`].
pub(crate) struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(Query(value)),
            Err(rejection) => Err(query_rejection(&rejection)),
        }
    }
}

fn query_rejection(rejection: &QueryRejection) -> ApiError {
    let detail = rejection.body_text();
    let detail = detail
        .strip_prefix("Failed to deserialize query string: ")
        .unwrap_or(&detail);
    ApiError::bad_request(format!("bad query string: {detail}"))
}

/// A JSON body read into `T`, its rejection answered as [`ApiError`]: 415
/// without `Content-Type: application/json`, 400 for text that is not
/// JSON, 422 for JSON of the wrong shape (an unknown field, a missing
/// one, a wrong type).
pub(crate) struct Json<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        match axum::Json::<T>::from_request(request, state).await {
            Ok(axum::Json(value)) => Ok(Json(value)),
            Err(rejection) => Err(json_rejection(&rejection)),
        }
    }
}

fn json_rejection(rejection: &JsonRejection) -> ApiError {
    let message = match rejection {
        JsonRejection::MissingJsonContentType(_) => {
            "the body must be JSON, sent with `Content-Type: application/json`".to_owned()
        }
        JsonRejection::JsonSyntaxError(_) => {
            format!(
                "the body is not JSON: {}",
                strip_axum(&rejection.body_text())
            )
        }
        JsonRejection::JsonDataError(_) => format!(
            "the body does not have the fields this route takes: {}",
            strip_axum(&rejection.body_text())
        ),
        _ => format!("cannot read the body: {}", rejection.body_text()),
    };
    ApiError::new(rejection.status(), message)
}

/// axum's rejection text without its own lead-in.
fn strip_axum(text: &str) -> &str {
    for prefix in [
        "Failed to parse the request body as JSON: ",
        "Failed to deserialize the JSON body into the target type: ",
    ] {
        if let Some(rest) = text.strip_prefix(prefix) {
            return rest;
        }
    }
    text
}

/// A path parameter, its rejection answered as [`ApiError`].
pub(crate) struct Path<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(Path(value)),
            Err(rejection) => Err(path_rejection(&rejection)),
        }
    }
}

fn path_rejection(rejection: &PathRejection) -> ApiError {
    let status = if rejection.status().is_server_error() {
        StatusCode::BAD_REQUEST
    } else {
        rejection.status()
    };
    ApiError::new(status, format!("bad path: {}", rejection.body_text()))
}

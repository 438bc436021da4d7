//! Webhook subscriptions, their delivery log and the test delivery.

use axum::http::StatusCode;

use crate::Answer;
use crate::error::ApiError;

fn not_configured() -> ApiError {
    ApiError::new(
        StatusCode::NOT_IMPLEMENTED,
        "webhooks are not set up on this API",
    )
}

pub(crate) async fn list() -> Answer {
    Err(not_configured())
}
pub(crate) async fn create() -> Answer {
    Err(not_configured())
}
pub(crate) async fn update() -> Answer {
    Err(not_configured())
}
pub(crate) async fn remove() -> Answer {
    Err(not_configured())
}
pub(crate) async fn logs() -> Answer {
    Err(not_configured())
}
pub(crate) async fn test() -> Answer {
    Err(not_configured())
}

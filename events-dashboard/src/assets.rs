//! The page and its assets, embedded in the binary: no build step, no CDN.

use axum::Router;
use axum::extract::OriginalUri;
use axum::http::{HeaderValue, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::Shared;

const INDEX: &str = include_str!("../assets/index.html");
const APP_JS: &str = include_str!("../assets/app.js");
const APP_CSS: &str = include_str!("../assets/app.css");

pub(crate) fn routes() -> Router<Shared> {
    Router::new()
        .route("/", get(index))
        .route(
            "/assets/app.js",
            get(|| async { asset(APP_JS, "text/javascript; charset=utf-8") }),
        )
        .route(
            "/assets/app.css",
            get(|| async { asset(APP_CSS, "text/css; charset=utf-8") }),
        )
}

/// The page, its `<base>` set to where the router is mounted, so its
/// relative links work under any path, with or without a trailing slash.
async fn index(original: Option<axum::Extension<OriginalUri>>, uri: Uri) -> Response {
    let full = original.map_or_else(|| uri.path().to_owned(), |o| o.0.0.path().to_owned());
    // Nested at `/dashboard`, a request for `/dashboard` arrives as `/`.
    let mount = full
        .strip_suffix(uri.path())
        .or_else(|| (uri.path() == "/").then_some(full.as_str()))
        .unwrap_or("")
        .trim_end_matches('/');
    let base = format!("{mount}/");
    let page = INDEX.replace("{{base}}", &escape(&base));
    let mut response = asset_owned(page, "text/html; charset=utf-8");
    response.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'",
        ),
    );
    response
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn asset(body: &'static str, kind: &'static str) -> Response {
    let mut response = body.into_response();
    set_headers(&mut response, kind);
    response
}

fn asset_owned(body: String, kind: &'static str) -> Response {
    let mut response = body.into_response();
    set_headers(&mut response, kind);
    response
}

fn set_headers(response: &mut Response, kind: &'static str) {
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
}

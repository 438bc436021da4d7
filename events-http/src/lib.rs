//! # events-http
//!
//! The event log's HTTP API for the `events` crate, as an
//! [`axum::Router`] the application mounts (and `cli serve` exposes):
//! JSON in and out, every error `{"error": "<in words>"}` with its status,
//! and an OpenAPI 3 description served beside the routes.
//!
//! | route | what |
//! | --- | --- |
//! | `GET /events` | history: `event_name` (names or patterns, commas between), `entity_type`, `entity_id`, `actor`, `from` / `to` (RFC 3339 or epoch ms), `after` / `before` (position cursors), `limit` (1–1000), `order` (`asc`, `desc`) |
//! | `GET /events/timeline` | one entity's events: `entity_type`, `entity_id`, `related=true`, `after`, `limit`, `order` |
//! | `GET /events/stats` | counts per name per `bucket` (`minute`, `hour`, `day`), `from`, `to`, `event_name` |
//! | `GET /events/schemas` | each stored name and version, the field names seen, and a JSON Schema where the registry (feature `schemars`) or [`Api::schema_for`] knows one |
//! | `GET`, `POST /events/subscriptions` | webhook subscriptions: list; create from `{"webhook_url", "event_names", "active"}`, answered with `id` and the generated `secret` |
//! | `PUT`, `DELETE /events/subscriptions/{id}` | change or delete one |
//! | `GET /events/webhook-logs` | the delivery log: `subscription_id`, `event_id`, `failed=true`, `since`, `limit` |
//! | `POST /events/test-webhook` | send a sample event to a URL and show what came back |
//! | `GET /events/openapi.json` | the OpenAPI 3 description of these routes |
//!
//! **Never open by default.** Without a token or an authenticator every
//! route answers 401 (and [`Api::router`] logs a warning saying so). With
//! [`Api::token`] (or `EVENTS_HTTP_TOKEN` through [`Api::config`]) a request
//! is let in with `Authorization: Bearer <token>`, compared in constant
//! time; [`Api::authorize`] lets the application decide from the request
//! (its own sessions or keys).
//!
//! ```no_run
//! use events_core::store::Store;
//! use events_http::Api;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let store = Store::memory();
//! let api = Api::new(store).token("s3cret-token");
//! let app = axum::Router::new().merge(api.router());
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! axum::serve(listener, app).await?;
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

mod auth;
mod error;
mod log;
mod openapi;
mod subscriptions;
mod time;

use std::sync::Arc;

use axum::Router;
use axum::http::request::Parts;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, any, delete, get, post, put};
use events_core::Config;
use events_core::store::Store;
use serde_json::Value;

pub use auth::TOKEN_VAR;
pub use error::ApiError;

/// The `axum` this crate is built on, for mounting its router.
pub use axum;

/// What [`Api::schema_for`] is given: an event's name and version to the
/// JSON Schema of its payload, where the application knows one.
type SchemaHook = Arc<dyn Fn(&str, u32) -> Option<Value> + Send + Sync>;

/// The event log's HTTP API over one store: build it, then mount
/// [`router`](Self::router).
#[derive(Clone)]
pub struct Api {
    inner: Inner,
}

#[derive(Clone)]
struct Inner {
    store: Store,
    auth: auth::Auth,
    schema_for: Option<SchemaHook>,
    #[cfg(feature = "webhooks")]
    webhooks: Option<events_webhooks::Webhooks>,
}

impl std::fmt::Debug for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Api")
            .field("store", &self.inner.store)
            .field("auth", &self.inner.auth.describe())
            .field("schema_for", &self.inner.schema_for.is_some())
            .field("webhooks", &self.has_webhooks())
            .finish_non_exhaustive()
    }
}

impl Api {
    /// The API of `store`, closed until a [`token`](Self::token) or an
    /// [`authorize`](Self::authorize) hook opens it.
    pub fn new(store: Store) -> Api {
        Api {
            inner: Inner {
                store,
                auth: auth::Auth::default(),
                schema_for: None,
                #[cfg(feature = "webhooks")]
                webhooks: None,
            },
        }
    }

    /// Lets in requests with `Authorization: Bearer <token>`. An empty
    /// token opens nothing.
    pub fn token(mut self, token: impl Into<String>) -> Self {
        let token = token.into();
        self.inner.auth.token = (!token.is_empty()).then(|| Arc::from(token));
        self
    }

    /// Lets in the requests `allow` says yes to, from their method, URI and
    /// headers (the application's session cookie or API keys). A token, if
    /// set too, is still accepted.
    ///
    /// ```
    /// let api = events_http::Api::new(events_core::store::Store::memory())
    ///     .authorize(|request| request.headers.get("x-staff").is_some_and(|v| v == "yes"));
    /// assert!(api.is_open());
    /// ```
    pub fn authorize(mut self, allow: impl Fn(&Parts) -> bool + Send + Sync + 'static) -> Self {
        self.inner.auth.authenticator = Some(Arc::new(allow));
        self
    }

    /// Takes the token from `EVENTS_HTTP_TOKEN` in `config`, when it is set
    /// and not empty.
    pub fn config(self, config: &Config) -> Self {
        match config.get(TOKEN_VAR) {
            Some(token) if !token.value().is_empty() => self.token(token.value().to_owned()),
            _ => self,
        }
    }

    /// Gives `GET /events/schemas` the JSON Schema of an event's payload by
    /// name and version, where the application has one; when it says
    /// `None`, the route lists the field names seen only. Without a hook,
    /// the schemas come from the registry: the current version of each
    /// stored event type that derives `schemars::JsonSchema` (feature
    /// `schemars`, `events::store::json_schema`); older versions get none.
    ///
    /// ```
    /// let api = events_http::Api::new(events_core::store::Store::memory()).schema_for(
    ///     |name, version| {
    ///         (name == "appointment.created" && version == 1).then(|| {
    ///             serde_json::json!({"type": "object", "required": ["appointment_id"]})
    ///         })
    ///     },
    /// );
    /// # let _ = api;
    /// ```
    pub fn schema_for(
        mut self,
        schema: impl Fn(&str, u32) -> Option<Value> + Send + Sync + 'static,
    ) -> Self {
        self.inner.schema_for = Some(Arc::new(schema));
        self
    }

    /// Serves the subscription, delivery-log and test routes through
    /// `webhooks` (feature `webhooks`); without, they answer 501 saying so.
    /// Its URL checks (https, private addresses) apply to what the routes
    /// are given.
    ///
    /// ```
    /// use events_core::store::Store;
    ///
    /// let store = Store::memory();
    /// let webhooks = events_webhooks::Webhooks::new(store.clone());
    /// let api = events_http::Api::new(store).webhooks(webhooks).token("t");
    /// # let _ = api;
    /// ```
    #[cfg(feature = "webhooks")]
    pub fn webhooks(mut self, webhooks: events_webhooks::Webhooks) -> Self {
        self.inner.webhooks = Some(webhooks);
        self
    }

    /// Whether a token or an authenticator opens it (without, every route
    /// answers 401).
    pub fn is_open(&self) -> bool {
        self.inner.auth.is_open()
    }

    /// Whether it serves the webhook routes (see `Api::webhooks`).
    pub fn has_webhooks(&self) -> bool {
        #[cfg(feature = "webhooks")]
        return self.inner.webhooks.is_some();
        #[cfg(not(feature = "webhooks"))]
        false
    }

    /// The store it reads.
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// The router: every route under `/events` (see the [crate] docs),
    /// behind the authorization. Merge it into the application's router
    /// (`Router::new().merge(api.router())`), or nest it under a prefix
    /// (`.nest("/api", api.router())` serves `/api/events/..`; the OpenAPI
    /// description names the prefix as its server).
    pub fn router(&self) -> Router {
        if !self.is_open() {
            tracing::warn!(
                "the events HTTP API is closed: every route answers 401 until it has a token (EVENTS_HTTP_TOKEN, or Api::token) or an authenticator (Api::authorize)"
            );
        }
        let auth = Arc::new(self.inner.auth.clone());
        routes()
            .router
            .layer(axum::middleware::from_fn_with_state(auth, auth::check))
            .with_state(Arc::new(self.inner.clone()))
    }
}

/// The state every handler gets.
type Shared = Arc<Inner>;

/// What a handler answers.
type Answer = Result<axum::Json<Value>, ApiError>;

/// The routes, and what each answers to: the one list the router is built
/// from, which the OpenAPI description is checked against.
struct Routes {
    router: Router<Shared>,
    served: Vec<(&'static str, Vec<Method>)>,
}

impl Routes {
    fn add(mut self, path: &'static str, methods: &[Method], route: MethodRouter<Shared>) -> Self {
        let allow = methods
            .iter()
            .map(Method::as_str)
            .collect::<Vec<_>>()
            .join(", ");
        let route = route.fallback(move |method: Method| {
            let allow = allow.clone();
            async move { method_not_allowed(&method, path, &allow) }
        });
        self.router = self.router.route(path, route);
        self.served.push((path, methods.to_vec()));
        self
    }
}

/// Every route; unknown paths under `/events/` answer 404 in JSON.
fn routes() -> Routes {
    let routes = Routes {
        router: Router::new(),
        served: Vec::new(),
    };
    let routes = routes
        .add("/events", &[Method::GET], get(log::history))
        .add("/events/timeline", &[Method::GET], get(log::timeline))
        .add("/events/stats", &[Method::GET], get(log::stats))
        .add("/events/schemas", &[Method::GET], get(log::schemas))
        .add(
            "/events/subscriptions",
            &[Method::GET, Method::POST],
            get(subscriptions::list).post(subscriptions::create),
        )
        .add(
            "/events/subscriptions/{id}",
            &[Method::PUT, Method::DELETE],
            put(subscriptions::update).merge(delete(subscriptions::remove)),
        )
        .add(
            "/events/webhook-logs",
            &[Method::GET],
            get(subscriptions::logs),
        )
        .add(
            "/events/test-webhook",
            &[Method::POST],
            post(subscriptions::test),
        )
        .add("/events/openapi.json", &[Method::GET], get(openapi::serve));
    Routes {
        router: routes.router.route(
            "/events/{*rest}",
            any(|uri: axum::http::Uri| async move {
                ApiError::not_found(format!(
                    "no route at `{}`: see /events/openapi.json for the routes",
                    uri.path()
                ))
            }),
        ),
        served: routes.served,
    }
}

fn method_not_allowed(method: &Method, path: &str, allow: &str) -> Response {
    let mut response = ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("`{path}` does not take {method}: it takes {allow}"),
    )
    .into_response();
    if let Ok(value) = HeaderValue::from_str(allow) {
        response.headers_mut().insert(header::ALLOW, value);
    }
    response
}

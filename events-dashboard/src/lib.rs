//! # events-dashboard
//!
//! A dashboard in the browser for the `events` crate, as Horizon is for
//! Laravel's queues, on every backend (`memory://`, SQLite, Redis): the
//! workers alive on every machine, each queue's ready / delayed / reserved
//! / failed jobs with its throughput and runtimes over the last hour, each
//! listener's runs, failures and p50/p95 durations, the jobs themselves
//! (recent, pending, failed; searched by id, listener, event or payload
//! text; one job's payload, metadata and errors; **retry and forget** from
//! the page), and the registry with its graph. The page updates itself
//! (server-sent events); its assets are embedded in the binary, so it needs
//! no build step and no CDN.
//!
//! It is an [`axum::Router`] the application mounts where it likes
//! (`/dashboard` by convention); `events::cli`'s `serve` mounts it there.
//!
//! **Never open by default.** Without a token or an authorization hook
//! every request gets 401. With [`Dashboard::token`] (or
//! `EVENTS_DASHBOARD_TOKEN` through [`Dashboard::config`]), a request is let
//! in with `Authorization: Bearer <token>`, or, so a browser can open it,
//! once with `?token=<token>`, which sets an `HttpOnly`, `SameSite=Strict`
//! cookie and redirects to the same page without the token. Requests that
//! change something (retry, forget) and come with the cookie must also
//! carry the header `x-events-dashboard` (which the page sends and a
//! cross-site form cannot). [`Dashboard::authorize`] lets the application
//! decide from the request instead (its session, its users).
//!
//! ```no_run
//! use events_dashboard::Dashboard;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let queue = events_core::queue::connect("memory://").await?;
//! let dashboard = Dashboard::new(queue).token("s3cret-token");
//! let app = axum::Router::new().nest("/dashboard", dashboard.router());
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! axum::serve(listener, app).await?;
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

mod api;
mod assets;
mod auth;
mod live;
mod snapshot;
mod sync_runs;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::request::Parts;
use events_core::Config;
use events_core::RetryDefaults;
use events_core::queue::Queue;

pub use auth::TOKEN_VAR;
pub use sync_runs::SyncRuns;

/// The `axum` this crate is built on, for mounting its router.
pub use axum;

/// The dashboard of one queue: build it, then mount [`router`](Self::router).
#[derive(Clone)]
pub struct Dashboard {
    inner: Arc<Inner>,
}

/// Who may look.
#[derive(Clone, Default)]
enum Auth {
    /// Nobody: every request gets 401.
    #[default]
    Closed,
    /// A bearer token, or the cookie its `?token=` sets; and, when given,
    /// whoever the hook lets in.
    Allow {
        token: Option<String>,
        hook: Option<Hook>,
    },
}

/// The application's own decision on a request.
type Hook = Arc<dyn Fn(&Parts) -> bool + Send + Sync>;

#[derive(Clone)]
struct Inner {
    queue: Queue,
    auth: Auth,
    defaults: RetryDefaults,
    live_every: Duration,
    sync_runs: SyncRuns,
}

impl std::fmt::Debug for Dashboard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let auth = match &self.inner.auth {
            Auth::Closed => "closed",
            Auth::Allow {
                token: Some(_),
                hook: Some(_),
            } => "token and hook",
            Auth::Allow { token: Some(_), .. } => "token",
            Auth::Allow { .. } => "hook",
        };
        f.debug_struct("Dashboard")
            .field("queue", &self.inner.queue)
            .field("auth", &auth)
            .finish_non_exhaustive()
    }
}

impl Dashboard {
    /// The dashboard of `queue`, closed until a [`token`](Self::token) or
    /// an [`authorize`](Self::authorize) hook opens it.
    pub fn new(queue: Queue) -> Dashboard {
        Dashboard {
            inner: Arc::new(Inner {
                queue,
                auth: Auth::Closed,
                defaults: RetryDefaults::default(),
                live_every: Duration::from_secs(2),
                sync_runs: SyncRuns::default(),
            }),
        }
    }

    /// Its settings to change; a clone (or a router already made) keeps
    /// the settings it had.
    fn inner_mut(&mut self) -> &mut Inner {
        Arc::make_mut(&mut self.inner)
    }

    /// Lets in requests bearing `token` (`Authorization: Bearer`, or the
    /// cookie `?token=` sets). An empty token opens nothing.
    pub fn token(mut self, token: impl Into<String>) -> Self {
        let token = token.into();
        let inner = self.inner_mut();
        let hook = match std::mem::take(&mut inner.auth) {
            Auth::Allow { hook, .. } => hook,
            Auth::Closed => None,
        };
        inner.auth = if token.is_empty() && hook.is_none() {
            Auth::Closed
        } else {
            Auth::Allow {
                token: (!token.is_empty()).then_some(token),
                hook,
            }
        };
        self
    }

    /// Lets in the requests `allow` says yes to, from their method, URI and
    /// headers (the application's session cookie, say). A token, if set
    /// too, is still accepted.
    ///
    /// ```
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// let queue = events_core::queue::connect("memory://").await?;
    /// let dashboard = events_dashboard::Dashboard::new(queue).authorize(|request| {
    ///     request.headers.get("x-staff").is_some_and(|v| v == "yes")
    /// });
    /// # let _ = dashboard; Ok(()) }
    /// ```
    pub fn authorize(mut self, allow: impl Fn(&Parts) -> bool + Send + Sync + 'static) -> Self {
        let inner = self.inner_mut();
        let token = match std::mem::take(&mut inner.auth) {
            Auth::Allow { token, .. } => token,
            Auth::Closed => None,
        };
        inner.auth = Auth::Allow {
            token,
            hook: Some(Arc::new(allow)),
        };
        self
    }

    /// Takes the token from `EVENTS_DASHBOARD_TOKEN` and the retry
    /// defaults (what queued listeners that declare none get, shown on the
    /// registry screen) from `config`.
    pub fn config(mut self, config: &Config) -> Self {
        self.inner_mut().defaults = config.retry_defaults().clone();
        match config.get(TOKEN_VAR) {
            Some(token) if !token.value().is_empty() => self.token(token.value().to_owned()),
            _ => self,
        }
    }

    /// How often the page is sent fresh figures (default 2 s).
    pub fn live_every(mut self, every: Duration) -> Self {
        self.inner_mut().live_every = every.max(Duration::from_millis(100));
        self
    }

    /// An observer for the application's dispatcher that times its sync
    /// listeners for the Listeners screen. Queued listeners are timed by
    /// the workers, on any machine; sync listeners run in the dispatching
    /// process, so only a dashboard served by that process sees them.
    ///
    /// ```
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// let queue = events_core::queue::connect("memory://").await?;
    /// let dashboard = events_dashboard::Dashboard::new(queue.clone()).token("t");
    /// let dispatcher = events_core::Dispatcher::builder()
    ///     .queue(queue)
    ///     .observe(dashboard.sync_runs())
    ///     .build()?;
    /// # let _ = dispatcher; Ok(()) }
    /// ```
    pub fn sync_runs(&self) -> SyncRuns {
        self.inner.sync_runs.clone()
    }

    /// Whether a token or a hook opens it (without, it answers 401).
    pub fn is_open(&self) -> bool {
        !matches!(self.inner.auth, Auth::Closed)
    }

    /// The queue it shows.
    pub fn queue(&self) -> &Queue {
        &self.inner.queue
    }

    /// The router: the page at `/`, its assets, the JSON API under `/api`
    /// and the live feed at `/api/live`, every route behind the
    /// authorization. Mount it with `Router::nest("/dashboard", ..)`, or
    /// use [`mount`](Self::mount), which also answers `/dashboard/`.
    pub fn router(&self) -> Router {
        let state = self.inner.clone();
        let routes = Router::new()
            .merge(assets::routes())
            .merge(api::routes())
            .route("/api/live", axum::routing::get(live::stream));
        routes
            .layer(axum::middleware::from_fn_with_state(
                state.clone(),
                auth::check,
            ))
            .with_state(state)
    }
}

impl Dashboard {
    /// A router with the dashboard under `path` (such as `/dashboard`):
    /// [`router`](Self::router) nested there, and `path/` sent on to
    /// `path` (a nested router's root answers only without the slash).
    /// Merge it into the application's router.
    ///
    /// ```
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// let queue = events_core::queue::connect("memory://").await?;
    /// let app = axum::Router::new()
    ///     .route("/", axum::routing::get(|| async { "the application" }))
    ///     .merge(events_dashboard::Dashboard::new(queue).token("t").mount("/dashboard"));
    /// # let _ = app; Ok(()) }
    /// ```
    pub fn mount(&self, path: &str) -> Router {
        let path = format!("/{}", path.trim_matches('/'));
        let target = path.clone();
        Router::new().nest(&path, self.router()).route(
            &format!("{path}/"),
            axum::routing::get(move |uri: axum::http::Uri| {
                let target = match uri.query() {
                    Some(query) => format!("{target}?{query}"),
                    None => target.clone(),
                };
                async move { axum::response::Redirect::permanent(&target) }
            }),
        )
    }
}

/// The path a nested router was mounted under, from the request's
/// original path and the path the router saw (`/dashboard/api/jobs` and
/// `/api/jobs` give `/dashboard`; `/dashboard` and `/` too); empty at the
/// root.
///
/// axum hands a nested router's root route the whole path unchanged
/// (`/dashboard` as `/dashboard`): a path that is none of the router's
/// own subpaths (`/api/..`, `/assets/..`) is its root.
pub(crate) fn mount_of(original: &str, inner: &str) -> String {
    let own = inner.starts_with("/api/") || inner.starts_with("/assets/");
    let mount = if inner == "/" || (original == inner && !own) {
        original
    } else {
        original.strip_suffix(inner).unwrap_or("")
    };
    mount.trim_end_matches('/').to_owned()
}

/// The state every handler gets.
type Shared = Arc<Inner>;

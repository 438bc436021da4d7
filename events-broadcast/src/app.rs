//! Apps: the id, key and secret a server knows, and where they come from in
//! the configuration.

use events_core::Config;

/// The variable the configured app's id is read from (`REVERB_APP_ID` too).
pub const APP_ID_VAR: &str = "EVENTS_BROADCAST_APP_ID";
/// The variable the configured app's key is read from (`REVERB_APP_KEY`
/// too): clients connect to `/app/{key}`.
pub const APP_KEY_VAR: &str = "EVENTS_BROADCAST_APP_KEY";
/// The variable the configured app's secret is read from
/// (`REVERB_APP_SECRET` too): it signs private channels and API requests.
pub const APP_SECRET_VAR: &str = "EVENTS_BROADCAST_APP_SECRET";
/// The variable naming the Redis that carries broadcasts between server
/// processes: `redis://host:port/db?prefix=name` (feature `redis`).
pub const REDIS_URL_VAR: &str = "EVENTS_BROADCAST_REDIS_URL";

inventory::submit! {
    events_core::config::Var::new(
        APP_ID_VAR,
        "The broadcast app's id: the HTTP API is at /apps/{id}. With EVENTS_BROADCAST_APP_KEY and EVENTS_BROADCAST_APP_SECRET (or Laravel's REVERB_APP_*).",
    )
    .aliases(&["REVERB_APP_ID"])
}

inventory::submit! {
    events_core::config::Var::new(
        APP_KEY_VAR,
        "The broadcast app's key: pusher-js and Laravel Echo connect to /app/{key}.",
    )
    .aliases(&["REVERB_APP_KEY"])
}

inventory::submit! {
    events_core::config::Var::new(
        APP_SECRET_VAR,
        "The broadcast app's secret: it signs private and presence channels and HTTP API requests.",
    )
    .aliases(&["REVERB_APP_SECRET"])
    .secret()
}

inventory::submit! {
    events_core::config::Var::new(
        REDIS_URL_VAR,
        "The Redis that carries broadcasts between server processes, redis://host:port/db?prefix=name (default prefix `events`); unset: one process delivers to its own sockets only.",
    )
    .secret()
}

/// `config`'s value of `name`, trimmed, when set and not blank.
pub(crate) fn setting(config: &Config, name: &str) -> Option<String> {
    config
        .get(name)
        .map(|s| s.value().trim().to_owned())
        .filter(|v| !v.is_empty())
}

/// An application of the server: its id (the HTTP API's `/apps/{id}`), its
/// public key (the WebSocket's `/app/{key}`) and its secret.
#[derive(Clone, PartialEq, Eq)]
pub struct App {
    id: String,
    key: String,
    secret: String,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("id", &self.id)
            .field("key", &self.key)
            .field("secret", &"<redacted>")
            .finish()
    }
}

impl App {
    /// An app with its id, key and secret.
    ///
    /// ```
    /// let app = events_broadcast::App::new("1", "app-key", "app-secret");
    /// assert_eq!(app.key(), "app-key");
    /// ```
    pub fn new(id: impl Into<String>, key: impl Into<String>, secret: impl Into<String>) -> App {
        App {
            id: id.into(),
            key: key.into(),
            secret: secret.into(),
        }
    }

    /// The app `config` names (`EVENTS_BROADCAST_APP_ID`, `_KEY`,
    /// `_SECRET`, or `REVERB_APP_*`): `None` when none of the three is set,
    /// an error naming the missing ones when only some are.
    ///
    /// ```
    /// use events_core::Config;
    /// let config = Config::from_vars([
    ///     ("REVERB_APP_ID", "1"), ("REVERB_APP_KEY", "k"), ("REVERB_APP_SECRET", "s"),
    /// ])?;
    /// let app = events_broadcast::App::from_config(&config)?.expect("configured");
    /// assert_eq!((app.id(), app.key()), ("1", "k"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_config(config: &Config) -> Result<Option<App>, crate::BuildError> {
        let get = |name| setting(config, name);
        let (id, key, secret) = (get(APP_ID_VAR), get(APP_KEY_VAR), get(APP_SECRET_VAR));
        match (id, key, secret) {
            (None, None, None) => Ok(None),
            (Some(id), Some(key), Some(secret)) => Ok(Some(App::new(id, key, secret))),
            (id, key, secret) => {
                let missing: Vec<&str> = [
                    (id.is_none(), APP_ID_VAR),
                    (key.is_none(), APP_KEY_VAR),
                    (secret.is_none(), APP_SECRET_VAR),
                ]
                .into_iter()
                .filter_map(|(gone, name)| gone.then_some(name))
                .collect();
                Err(crate::BuildError::IncompleteApp(missing.join(", ")))
            }
        }
    }

    /// Its id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Its public key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Its secret.
    pub fn secret(&self) -> &str {
        &self.secret
    }

    /// The `auth` a client needs to join `channel` from `socket_id` (with
    /// `channel_data`, the member's JSON, on a presence channel).
    pub fn sign_channel(
        &self,
        socket_id: &str,
        channel: &str,
        channel_data: Option<&str>,
    ) -> String {
        crate::sign::channel_auth(&self.key, &self.secret, socket_id, channel, channel_data)
    }
}

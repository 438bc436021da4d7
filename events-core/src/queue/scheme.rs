//! Queue URL schemes: each backend compiled in registers the schemes it
//! opens, at link time, and [`Queue::open`] picks one by the URL's scheme.
//! `events-core` registers `memory`; `events-sqlite` registers `sqlite`.

use super::{Queue, QueueError};

/// A queue URL scheme and the function that opens its URLs. A backend
/// registers one with [`queue_scheme!`](crate::queue_scheme).
///
/// `open` gets the whole URL and must not wait on a network: a backend that
/// needs a connection makes it at its first operation.
#[derive(Debug)]
pub struct Scheme {
    scheme: &'static str,
    open: fn(&str) -> Result<Queue, QueueError>,
}

impl Scheme {
    /// The scheme `scheme` (without `://`, such as `"sqlite"`), opened by
    /// `open`.
    pub const fn new(scheme: &'static str, open: fn(&str) -> Result<Queue, QueueError>) -> Scheme {
        Scheme { scheme, open }
    }

    /// The scheme, without `://`.
    pub fn scheme(&self) -> &'static str {
        self.scheme
    }
}

inventory::collect!(Scheme);

/// Registers a queue URL scheme at link time: the scheme without `://`, and
/// a `fn(&str) -> Result<Queue, QueueError>` that opens its URLs.
///
/// ```
/// use events::queue::{Queue, QueueError, MemoryBackend};
///
/// fn open_scratch(url: &str) -> Result<Queue, QueueError> {
///     Ok(Queue::with_backend(url, MemoryBackend::default()))
/// }
/// events::queue_scheme!("scratch", open_scratch);
///
/// let queue = Queue::open("scratch://").unwrap();
/// assert_eq!(queue.url(), "scratch://");
/// assert!(events::queue::schemes().contains(&"scratch"));
/// ```
#[macro_export]
macro_rules! queue_scheme {
    ($scheme:expr, $open:path $(,)?) => {
        $crate::__private::inventory::submit! {
            $crate::queue::Scheme::new($scheme, $open)
        }
    };
}

fn open_memory(_url: &str) -> Result<Queue, QueueError> {
    Ok(Queue::memory())
}

crate::queue_scheme!("memory", open_memory);

/// Schemes this project provides behind a facade feature, and the feature.
const BEHIND_FEATURES: &[(&str, &str)] = &[
    ("sqlite", "sqlite"),
    ("redis", "redis"),
    ("rediss", "redis"),
];

/// The queue URL schemes compiled into this build, sorted, without `://`.
pub fn schemes() -> Vec<&'static str> {
    let mut names: Vec<&'static str> = inventory::iter::<Scheme>
        .into_iter()
        .map(Scheme::scheme)
        .collect();
    names.sort_unstable();
    names.dedup();
    names
}

pub(super) fn open(url: &str) -> Result<Queue, QueueError> {
    let scheme = url.split_once(':').map_or("", |(scheme, _)| scheme);
    let mut found = inventory::iter::<Scheme>
        .into_iter()
        .filter(|s| s.scheme.eq_ignore_ascii_case(scheme));
    match (found.next(), found.next()) {
        (Some(only), None) => (only.open)(url),
        (Some(_), Some(_)) => Err(QueueError::BadUrl {
            url: url.to_owned(),
            reason: format!(
                "two backends compiled into this build both register the scheme `{scheme}`"
            ),
        }),
        (None, _) => Err(not_compiled_in(url, scheme)),
    }
}

fn not_compiled_in(url: &str, scheme: &str) -> QueueError {
    let behind = BEHIND_FEATURES
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(scheme));
    match behind {
        Some(&(name, feature)) => QueueError::MissingFeature {
            url: url.to_owned(),
            scheme: name.to_owned(),
            feature,
        },
        None => QueueError::UnknownScheme {
            url: url.to_owned(),
            known: schemes(),
        },
    }
}

/// "`memory://` and `sqlite://`", for the error that lists them.
pub(super) fn describe(known: &[&str]) -> String {
    let urls: Vec<String> = known.iter().map(|s| format!("`{s}://`")).collect();
    match urls.as_slice() {
        [] => "no scheme".to_owned(),
        [one] => format!("only {one}"),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_opens_by_its_scheme_in_any_case() {
        assert_eq!(open("memory://").unwrap().url(), "memory://");
        assert_eq!(open("MEMORY://").unwrap().url(), "memory://");
        assert!(schemes().contains(&"memory"));
    }

    #[test]
    fn schemes_behind_a_feature_name_it() {
        // events-core alone never has the SQLite backend (events-sqlite
        // registers it).
        let error = open("sqlite:///tmp/jobs.db").unwrap_err().to_string();
        assert!(
            error.starts_with(
                "queue URL `sqlite:///tmp/jobs.db` needs the sqlite:// backend, which this build leaves out: turn on the `events` crate's `sqlite` feature (`events = { version = \""
            ),
            "{error}"
        );
        assert!(
            error.ends_with("\", features = [\"sqlite\"] }`)"),
            "{error}"
        );
        let error = open("SQLITE://jobs.db").unwrap_err();
        assert!(matches!(
            error,
            QueueError::MissingFeature {
                feature: "sqlite",
                ..
            }
        ));
        // events-core alone never has the Redis backend either.
        for url in ["redis://127.0.0.1:6379/0", "rediss://cache.internal:6380"] {
            assert!(matches!(
                open(url).unwrap_err(),
                QueueError::MissingFeature {
                    feature: "redis",
                    ..
                }
            ));
        }
    }

    #[test]
    fn unknown_schemes_list_what_is_compiled_in() {
        for url in ["kafka://broker", "no scheme at all", ""] {
            let error = open(url).unwrap_err();
            let QueueError::UnknownScheme { known, .. } = &error else {
                panic!("{error:?}");
            };
            assert_eq!(known, &schemes());
            let text = error.to_string();
            assert!(
                text.starts_with(&format!("unsupported queue URL `{url}`: this build opens ")),
                "{text}"
            );
            assert!(text.contains("`memory://`"), "{text}");
        }
    }

    #[test]
    fn scheme_lists_read_as_words() {
        assert_eq!(describe(&["memory"]), "only `memory://`");
        assert_eq!(describe(&["a", "b", "c"]), "`a://`, `b://` and `c://`");
    }
}

//! Queue URL schemes come from the backends compiled in. This binary uses
//! the facade only, as an application does: `sqlite://` must open although
//! nothing here names the SQLite crate.

#[cfg(not(feature = "redis"))]
use std::error::Error;

use events::queue::{Queue, QueueError};

#[tokio::test]
async fn connect_opens_sqlite_urls_through_the_facade() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("queue.sqlite").display());
    let queue = events::queue::connect(&url).await.unwrap();
    assert_eq!(queue.url(), url);
    assert_eq!(queue.size("default").await.unwrap(), 0);
    assert!(
        dir.path().join("queue.sqlite").exists(),
        "the file was created"
    );
    let mut expected = vec!["memory", "sqlite"];
    if cfg!(feature = "redis") {
        expected = vec!["memory", "redis", "rediss", "sqlite"];
    }
    assert_eq!(events::queue::schemes(), expected);
}

/// The schemes this build opens, as the error lists them.
fn compiled_in() -> &'static str {
    if cfg!(feature = "redis") {
        "`memory://`, `redis://`, `rediss://` and `sqlite://`"
    } else {
        "`memory://` and `sqlite://`"
    }
}

#[cfg(not(feature = "redis"))]
#[test]
fn a_redis_url_without_the_feature_names_the_feature() {
    let error = Queue::open("redis://127.0.0.1:6379/0?prefix=app").unwrap_err();
    assert!(
        matches!(
            &error,
            QueueError::MissingFeature {
                feature: "redis",
                ..
            }
        ),
        "{error:?}"
    );
    assert!(error.source().is_none(), "the message says it all");
}

#[cfg(feature = "redis")]
#[test]
fn a_redis_url_opens_through_the_facade_without_connecting() {
    // Opening makes no connection: nothing listens on port 1.
    let queue = events::queue::open("redis://127.0.0.1:1/0?prefix=app").unwrap();
    assert_eq!(queue.url(), "redis://127.0.0.1:1/0?prefix=app");
    let error = Queue::open("redis://127.0.0.1:6379/0?prefix=a:b").unwrap_err();
    assert!(matches!(&error, QueueError::BadUrl { .. }), "{error:?}");
}

#[test]
fn an_unknown_scheme_lists_the_schemes_compiled_in() {
    for url in [
        "kafka://broker:9092",
        "postgres://localhost/app",
        "queue.sqlite",
    ] {
        let error = events::queue::open(url).unwrap_err().to_string();
        assert_eq!(
            error,
            format!(
                "unsupported queue URL `{url}`: this build opens {}",
                compiled_in()
            )
        );
    }
}

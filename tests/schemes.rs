//! Queue URL schemes come from the backends compiled in. This binary uses
//! the facade only, as an application does: `sqlite://` must open although
//! nothing here names the SQLite crate.

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
    assert_eq!(events::queue::schemes(), ["memory", "sqlite"]);
}

#[test]
fn a_scheme_no_backend_provides_yet_is_unknown_rather_than_a_feature_that_does_not_exist() {
    let error = Queue::open("redis://127.0.0.1:6379/0?prefix=app").unwrap_err();
    assert!(
        matches!(&error, QueueError::UnknownScheme { .. }),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        "unsupported queue URL `redis://127.0.0.1:6379/0?prefix=app`: this build opens `memory://` and `sqlite://`"
    );
    assert!(error.source().is_none(), "the message says it all");
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
            format!("unsupported queue URL `{url}`: this build opens `memory://` and `sqlite://`")
        );
    }
}

//! The facade's `postgres` feature registers the PostgreSQL event store's
//! schemes: `Store::open` takes `postgres://` and `postgresql://` URLs
//! without connecting, and the first operation says in words what is
//! wrong when the database is not there. (The store's own tests, against
//! the machine's PostgreSQL, live in `events-postgres/tests`.)

use events::error::Chain;
use events::store::{Store, StoreError};

fn server() -> String {
    std::env::var("EVENTS_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

#[test]
fn postgres_urls_open_through_the_facade() {
    assert!(events::store::schemes().contains(&"postgres"));
    assert!(events::store::schemes().contains(&"postgresql"));
    let store = Store::open("postgresql://nobody@127.0.0.1:1/nowhere").unwrap();
    assert_eq!(store.url(), "postgresql://nobody@127.0.0.1:1/nowhere");
    let error = Store::open("postgres://127.0.0.1/db?sslmode=require").unwrap_err();
    assert!(matches!(error, StoreError::BadUrl { .. }), "{error:?}");
}

#[tokio::test(flavor = "current_thread")]
async fn a_missing_database_is_named_in_the_error() {
    // The real server, a database that does not exist on it.
    let url = server();
    let base = url.split('?').next().unwrap_or(&url);
    let at = base
        .rfind('/')
        .filter(|&i| i > base.find("://").map_or(0, |s| s + 2))
        .unwrap_or(base.len());
    let missing = format!("{}/events_no_such_database", &base[..at]);
    let store = Store::open(&missing).unwrap();
    let error = store.last_position().await.unwrap_err();
    let text = Chain(&error).to_string();
    assert!(text.contains("cannot connect to PostgreSQL"), "{text}");
    assert!(text.contains("events_no_such_database"), "{text}");
    assert!(text.contains("does not exist"), "{text}");
}

//! A fresh database per test on the machine's PostgreSQL
//! (`EVENTS_TEST_POSTGRES_URL`, default
//! `postgres://postgres@127.0.0.1:5432/postgres`), dropped when the test
//! ends, failed or not.

#![allow(dead_code)]

use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU32, Ordering};

use events_postgres::PostgresStore;

/// The server tests use, as an URL naming its maintenance database.
pub fn server_url() -> String {
    std::env::var("EVENTS_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// `url` with its database replaced by `db`.
pub fn with_database(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let authority = base.find("://").map_or(0, |i| i + 3);
    let host_end = base[authority..]
        .find('/')
        .map_or(base.len(), |i| authority + i);
    let mut out = format!("{}/{db}", &base[..host_end]);
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    out
}

async fn admin() -> tokio_postgres::Client {
    let url = server_url();
    let config: tokio_postgres::Config = url.parse().unwrap_or_else(|e| {
        panic!("EVENTS_TEST_POSTGRES_URL `{url}` is not a PostgreSQL URL: {e}")
    });
    match config.connect(tokio_postgres::NoTls).await {
        Ok((client, connection)) => {
            tokio::spawn(connection);
            client
        }
        Err(e) => panic!(
            "these tests need PostgreSQL at {url} (user allowed to create databases): {}.\n\
             Start it (`pg_ctlcluster 15 main start`, or `service postgresql start`), or point \
             EVENTS_TEST_POSTGRES_URL at one; `.ci/run` starts it for CI.",
            events_core::error::Chain(&e)
        ),
    }
}

/// A database made for one test; dropped (connections and all) with it.
pub struct TestDb {
    pub name: String,
    pub url: String,
}

impl TestDb {
    pub async fn create() -> TestDb {
        static N: AtomicU32 = AtomicU32::new(0);
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u32(std::process::id());
        hasher.write_u32(N.fetch_add(1, Ordering::Relaxed));
        let name = format!("events_test_{:016x}", hasher.finish());
        let client = admin().await;
        client
            .batch_execute(&format!("CREATE DATABASE {name} TEMPLATE template0"))
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "cannot create the test database {name}: {}",
                    events_core::error::Chain(&e)
                )
            });
        TestDb {
            url: with_database(&server_url(), &name),
            name,
        }
    }

    /// A store on this database.
    pub fn store(&self) -> PostgresStore {
        PostgresStore::open(&self.url).expect("the test URL opens")
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        // Drop may run on a runtime thread or while a test panics: drop
        // the database from a thread of its own, on a runtime of its own.
        let name = self.name.clone();
        let done = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime to drop the test database");
            runtime.block_on(async move {
                let client = admin().await;
                if let Err(e) = client
                    .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .await
                {
                    eprintln!(
                        "could not drop the test database {name}: {}",
                        events_core::error::Chain(&e)
                    );
                }
            });
        })
        .join();
        if done.is_err() && !std::thread::panicking() {
            panic!("dropping the test database {} failed", self.name);
        }
    }
}

/// A fresh store on a fresh database, and the database's guard.
pub async fn fresh() -> (PostgresStore, TestDb) {
    let db = TestDb::create().await;
    (db.store(), db)
}

//! What the PostgreSQL store promises beyond the conformance suite:
//! positions in commit order under concurrent appenders, one winner per
//! expected version across processes' pools, errors in words (not hangs)
//! when the server goes away, and URLs checked when opened.

mod support;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use events_core::error::Chain;
use events_core::store::{Entity, EventQuery, EventStore, NewEvent, Store, StoreError};
use events_postgres::{PostgresOptions, PostgresStore};
use support::TestDb;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Pages through the log by `after` until it reads an empty page.
async fn catch_up(store: &PostgresStore, cursor: &mut u64, seen: &mut Vec<u64>) {
    loop {
        let page = store
            .events(&EventQuery::new().after(*cursor).limit(50))
            .await
            .unwrap();
        if page.events.is_empty() {
            return;
        }
        for event in &page.events {
            seen.push(event.position);
            *cursor = event.position;
        }
    }
}

/// Eight appenders (batches of 1 to 5) race while a reader pages by
/// `after`: every position that ever appears is one the reader saw, so
/// none committed below a cursor the reader had passed.
#[test]
fn a_reader_paging_by_position_never_misses_a_concurrent_append() {
    runtime().block_on(async {
        let db = TestDb::create().await;
        let store = Arc::new(
            PostgresStore::open_with(&db.url, PostgresOptions::new().pool_size(9)).unwrap(),
        );
        store
            .append(vec![NewEvent::new("warm", "{}")])
            .await
            .unwrap();
        let done = Arc::new(AtomicBool::new(false));
        let mut writers = Vec::new();
        for writer in 0..8u32 {
            let store = store.clone();
            writers.push(tokio::spawn(async move {
                for round in 0..40u32 {
                    let batch = (0..1 + (writer + round) % 5)
                        .map(|n| {
                            NewEvent::new(
                                "tick",
                                format!("{{\"w\":{writer},\"r\":{round},\"n\":{n}}}"),
                            )
                            .entity(Entity::new("writer", writer.to_string()))
                        })
                        .collect();
                    store.append(batch).await.unwrap();
                }
            }));
        }
        let reader = {
            let (store, done) = (store.clone(), done.clone());
            tokio::spawn(async move {
                let (mut cursor, mut seen) = (0, Vec::new());
                while !done.load(Ordering::Acquire) {
                    catch_up(&store, &mut cursor, &mut seen).await;
                }
                catch_up(&store, &mut cursor, &mut seen).await;
                seen
            })
        };
        for writer in writers {
            writer.await.unwrap();
        }
        done.store(true, Ordering::Release);
        let seen = reader.await.unwrap();

        let mut all = Vec::new();
        catch_up(&store, &mut 0, &mut all).await;
        let expected: u64 = 1
            + (0..8u32)
                .flat_map(|w| (0..40u32).map(move |r| u64::from(1 + (w + r) % 5)))
                .sum::<u64>();
        assert_eq!(all.len() as u64, expected);
        assert_eq!(
            all,
            (1..=expected).collect::<Vec<_>>(),
            "positions have gaps"
        );
        let seen_set: BTreeSet<u64> = seen.iter().copied().collect();
        let missed: Vec<u64> = all
            .iter()
            .filter(|p| !seen_set.contains(p))
            .copied()
            .collect();
        assert!(missed.is_empty(), "the reader skipped positions {missed:?}");
        assert!(
            seen.windows(2).all(|w| w[0] < w[1]),
            "the reader saw positions out of order"
        );
        // Each writer's entity stream counts its own events, 1 upwards.
        for writer in 0..8u32 {
            let version = store
                .stream_version(&Entity::new("writer", writer.to_string()))
                .await
                .unwrap();
            let want: u64 = (0..40u32).map(|r| u64::from(1 + (writer + r) % 5)).sum();
            assert_eq!(version, want, "writer {writer}");
        }
    });
}

/// The control for the test above: with positions from a bare sequence,
/// a transaction that took a lower position but commits later is skipped
/// by a reader that already moved past a higher one. This is why the
/// store serializes appends on its head row.
#[test]
fn a_bare_sequence_would_let_a_reader_skip_a_late_commit() {
    runtime().block_on(async {
        let db = TestDb::create().await;
        let connect = || async {
            let (client, connection) = db
                .url
                .parse::<tokio_postgres::Config>()
                .unwrap()
                .connect(tokio_postgres::NoTls)
                .await
                .unwrap();
            tokio::spawn(connection);
            client
        };
        let (slow, fast, reader) = (connect().await, connect().await, connect().await);
        slow.batch_execute("CREATE TABLE log (position BIGSERIAL PRIMARY KEY, body TEXT)")
            .await
            .unwrap();
        slow.batch_execute("BEGIN; INSERT INTO log (body) VALUES ('slow')")
            .await
            .unwrap();
        fast.batch_execute("INSERT INTO log (body) VALUES ('fast')")
            .await
            .unwrap();
        let max: i64 = reader
            .query_one("SELECT max(position) FROM log", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(max, 2, "the later position committed first");
        slow.batch_execute("COMMIT").await.unwrap();
        let below: i64 = reader
            .query_one("SELECT count(*) FROM log WHERE position < $1", &[&max])
            .await
            .unwrap()
            .get(0);
        assert_eq!(below, 1, "position 1 appeared below the reader's cursor");
    });
}

/// Two pools (as two processes would have) race to append to one stream,
/// each expecting the same version: exactly one wins each round.
#[test]
fn appenders_in_separate_pools_get_one_winner_per_version() {
    runtime().block_on(async {
        let db = TestDb::create().await;
        let stores: Vec<Arc<PostgresStore>> = (0..3).map(|_| Arc::new(db.store())).collect();
        let entity = Entity::new("account", "1");
        for version in 0..5u64 {
            let mut tasks = Vec::new();
            for (i, store) in stores.iter().enumerate() {
                for j in 0..3 {
                    let (store, entity) = (store.clone(), entity.clone());
                    tasks.push(tokio::spawn(async move {
                        store
                            .append_expecting(
                                &entity,
                                version,
                                vec![
                                    NewEvent::new("deposited", format!("{{\"by\":{}}}", i * 3 + j))
                                        .entity(entity.clone()),
                                ],
                            )
                            .await
                    }));
                }
            }
            let mut wins = 0;
            for task in tasks {
                match task.await.unwrap() {
                    Ok(_) => wins += 1,
                    Err(error @ StoreError::Conflict { .. }) => {
                        assert!(
                            error
                                .to_string()
                                .contains(&format!("at version {}", version + 1)),
                            "{error}"
                        );
                    }
                    Err(other) => panic!("{}", Chain(&other)),
                }
            }
            assert_eq!(wins, 1, "version {version}");
        }
        assert_eq!(stores[0].stream_version(&entity).await.unwrap(), 5);
    });
}

/// Several stores opening one empty database at once all make (or find)
/// the tables; none fails on the race.
#[test]
fn stores_starting_together_make_the_tables_once() {
    runtime().block_on(async {
        let db = TestDb::create().await;
        let mut tasks = Vec::new();
        for n in 0..6 {
            let store = db.store();
            tasks.push(tokio::spawn(async move {
                store
                    .append(vec![NewEvent::new("started", format!("{{\"n\":{n}}}"))])
                    .await
            }));
        }
        for task in tasks {
            task.await
                .unwrap()
                .unwrap_or_else(|e| panic!("{}", Chain(&e)));
        }
        assert_eq!(db.store().last_position().await.unwrap(), 6);
    });
}

/// Tables left by a newer build are refused in words.
#[test]
fn a_newer_layout_is_refused_in_words() {
    runtime().block_on(async {
        let db = TestDb::create().await;
        db.store().last_position().await.unwrap();
        let (client, connection) = db
            .url
            .parse::<tokio_postgres::Config>()
            .unwrap()
            .connect(tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        client
            .batch_execute("UPDATE events_log_schema SET version = 99")
            .await
            .unwrap();
        let error = db.store().last_position().await.unwrap_err();
        let text = Chain(&error).to_string();
        assert!(
            text.contains("schema version 99, newer than the 1"),
            "{text}"
        );
    });
}

/// Opening never touches the network; URLs are checked as they are opened.
#[test]
fn urls_are_checked_when_opened_and_nothing_connects_yet() {
    // Nothing listens on port 1: opening still succeeds.
    let store = Store::open("postgresql://nobody@127.0.0.1:1/nowhere").unwrap();
    assert_eq!(store.url(), "postgresql://nobody@127.0.0.1:1/nowhere");
    assert!(Store::open("postgres://nobody@127.0.0.1:1/nowhere?pool_size=2&timeout=2s").is_ok());

    let error = Store::open("postgres://ada:hunter2@127.0.0.1:notaport/db").unwrap_err();
    assert!(matches!(error, StoreError::BadUrl { .. }), "{error:?}");
    let text = error.to_string();
    assert!(
        text.contains("postgres://user:password@host:port/database"),
        "{text}"
    );
    assert!(!text.contains("hunter2"), "the password shows: {text}");

    let error = Store::open("postgres://127.0.0.1/db?sslmode=require").unwrap_err();
    assert!(
        error.to_string().contains("`sslmode=require` asks for TLS"),
        "{error}"
    );
    let error = Store::open("postgres://127.0.0.1/db?pool_size=none").unwrap_err();
    assert!(error.to_string().contains("pool_size=none"), "{error}");
    let error = Store::open("postgres:///db").unwrap_err();
    assert!(error.to_string().contains("names no host"), "{error}");
}

/// A server that refuses connections is an error naming where it
/// connected, at once.
#[test]
fn a_server_that_is_not_there_is_an_error_in_words() {
    runtime().block_on(async {
        let store = PostgresStore::open("postgres://postgres@127.0.0.1:1/nowhere").unwrap();
        let started = Instant::now();
        let error = store.last_position().await.unwrap_err();
        let text = Chain(&error).to_string();
        assert!(
            text.contains("cannot connect to PostgreSQL at 127.0.0.1:1/nowhere as postgres"),
            "{text}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{:?}",
            started.elapsed()
        );
    });
}

/// A TCP proxy to PostgreSQL that can go silent (keeping its sockets
/// open, as a dead network path does) or cut every connection.
struct Proxy {
    addr: std::net::SocketAddr,
    silent: Arc<AtomicBool>,
    cut: tokio::sync::watch::Sender<u32>,
}

impl Proxy {
    async fn start(upstream: std::net::SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let silent = Arc::new(AtomicBool::new(false));
        let (cut, cuts) = tokio::sync::watch::channel(0u32);
        let flag = silent.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(upstream).await else {
                    continue;
                };
                let (cr, cw) = client.into_split();
                let (sr, sw) = server.into_split();
                for (from, to) in [
                    (
                        Box::new(cr) as Box<dyn tokio::io::AsyncRead + Unpin + Send>,
                        Box::new(sw) as Box<dyn tokio::io::AsyncWrite + Unpin + Send>,
                    ),
                    (Box::new(sr), Box::new(cw)),
                ] {
                    let (flag, mut cuts) = (flag.clone(), cuts.clone());
                    // Only cuts after this connection began end it.
                    cuts.borrow_and_update();
                    tokio::spawn(async move {
                        let (mut from, mut to) = (from, to);
                        let mut buf = vec![0u8; 16 * 1024];
                        loop {
                            let n = tokio::select! {
                                read = from.read(&mut buf) => match read { Ok(0) | Err(_) => return, Ok(n) => n },
                                _ = cuts.changed() => return,
                            };
                            while flag.load(Ordering::Acquire) {
                                // Silent: hold the bytes, keep the socket.
                                tokio::select! {
                                    _ = tokio::time::sleep(Duration::from_millis(20)) => {}
                                    _ = cuts.changed() => return,
                                }
                            }
                            if to.write_all(&buf[..n]).await.is_err() {
                                return;
                            }
                        }
                    });
                }
            }
        });
        Proxy { addr, silent, cut }
    }

    fn url(&self, db: &str, extra: &str) -> String {
        format!("postgres://postgres@{}/{db}?{extra}", self.addr)
    }
}

fn upstream() -> std::net::SocketAddr {
    let config: tokio_postgres::Config = support::server_url().parse().unwrap();
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        _ => "127.0.0.1".to_owned(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    std::net::ToSocketAddrs::to_socket_addrs(&(host.as_str(), port))
        .unwrap()
        .next()
        .unwrap()
}

/// The network path dies mid-use (bytes stop flowing, sockets stay): the
/// operation fails after the timeout, in words, instead of hanging; once
/// the path is back, the next operation connects again and works.
#[test]
fn a_silent_connection_is_a_timeout_in_words_not_a_hang() {
    runtime().block_on(async {
        let db = TestDb::create().await;
        let proxy = Proxy::start(upstream()).await;
        let store =
            PostgresStore::open(&proxy.url(&db.name, "timeout=1500ms&connect_timeout=1")).unwrap();
        store
            .append(vec![NewEvent::new("before", "{}")])
            .await
            .unwrap();

        proxy.silent.store(true, Ordering::Release);
        let started = Instant::now();
        let error = store
            .append(vec![NewEvent::new("during", "{}")])
            .await
            .unwrap_err();
        let waited = started.elapsed();
        let text = Chain(&error).to_string();
        assert!(
            text.contains("did not finish appending events within 1.5s"),
            "{text}"
        );
        assert!(waited < Duration::from_secs(5), "waited {waited:?}");

        // The dropped connection's transaction never committed.
        proxy.silent.store(false, Ordering::Release);
        let _ = proxy.cut.send(1);
        let direct = db.store();
        let names: Vec<String> = direct
            .events(&EventQuery::new())
            .await
            .unwrap()
            .events
            .into_iter()
            .map(|e| e.name)
            .collect();
        assert_eq!(names, vec!["before"]);
        store
            .append(vec![NewEvent::new("after", "{}")])
            .await
            .unwrap_or_else(|e| panic!("{}", Chain(&e)));
        assert_eq!(direct.last_position().await.unwrap(), 2);
    });
}

/// The server ends the store's connections (a restart, an operator's
/// `pg_terminate_backend`): an operation either fails saying the
/// connection was lost or reconnects, and the one after works.
#[test]
fn connections_the_server_ends_are_replaced() {
    runtime().block_on(async {
        let db = TestDb::create().await;
        let store = db.store();
        store
            .append(vec![NewEvent::new("before", "{}")])
            .await
            .unwrap();
        let (admin, connection) = support::server_url()
            .parse::<tokio_postgres::Config>()
            .unwrap()
            .connect(tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        let ended: i64 = admin
            .query_one(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = $1",
                &[&db.name],
            )
            .await
            .unwrap()
            .get(0);
        assert!(ended >= 1, "the store held no connection");
        match store.append(vec![NewEvent::new("next", "{}")]).await {
            Ok(_) => {}
            Err(error) => {
                let text = Chain(&error).to_string();
                assert!(text.contains("was lost while appending events"), "{text}");
            }
        }
        store
            .append(vec![NewEvent::new("after", "{}")])
            .await
            .unwrap_or_else(|e| panic!("{}", Chain(&e)));
        assert!(store.last_position().await.unwrap() >= 2);
    });
}

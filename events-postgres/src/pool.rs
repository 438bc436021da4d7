//! A small pool of connections, made on demand: opening a store connects
//! to nothing, its first operation connects (and makes the tables), and a
//! connection that broke or was left inside a transaction is never reused.

use std::future::Future;
use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use events_core::store::StoreError;
use tokio::sync::{OnceCell, Semaphore, SemaphorePermit};
use tokio_postgres::{Client, Config, NoTls};

use crate::error::PostgresError;
use crate::schema::{self, Statements};

/// One connection and the statements prepared on it.
pub(crate) struct Conn {
    pub(crate) client: Client,
    pub(crate) statements: Statements,
    /// `BEGIN` was sent and neither `COMMIT` nor `ROLLBACK` came back: the
    /// connection goes when its lease ends.
    pub(crate) in_transaction: bool,
    target: Arc<str>,
}

impl Conn {
    /// Maps a driver error met while doing `operation`.
    pub(crate) fn fail(
        &self,
        operation: &'static str,
    ) -> impl Fn(tokio_postgres::Error) -> StoreError + '_ {
        move |source| failure(&self.target, operation, source)
    }

    /// Sends `BEGIN`.
    pub(crate) async fn begin(&mut self, operation: &'static str) -> Result<(), StoreError> {
        self.in_transaction = true;
        self.client
            .batch_execute("BEGIN")
            .await
            .map_err(self.fail(operation))
    }

    /// Sends `COMMIT`.
    pub(crate) async fn commit(&mut self, operation: &'static str) -> Result<(), StoreError> {
        self.client
            .batch_execute("COMMIT")
            .await
            .map_err(self.fail(operation))?;
        self.in_transaction = false;
        Ok(())
    }

    /// Sends `ROLLBACK`; when that fails too, the connection is dropped at
    /// the end of its lease (the server rolls back then).
    pub(crate) async fn rollback(&mut self) {
        if self.client.batch_execute("ROLLBACK").await.is_ok() {
            self.in_transaction = false;
        }
    }
}

/// The error for a driver error: lost connection or refusal.
pub(crate) fn failure(
    target: &str,
    operation: &'static str,
    source: tokio_postgres::Error,
) -> StoreError {
    let target = target.to_owned();
    // The server ending the session (an operator, a shutdown, a restart)
    // or the link breaking: SQLSTATE classes 57P and 08, or any FATAL.
    let ended = source.as_db_error().is_some_and(|db| {
        let code = db.code().code();
        code.starts_with("57P") || code.starts_with("08") || db.severity() == "FATAL"
    });
    if source.is_closed() || ended {
        PostgresError::Lost {
            target,
            operation,
            source,
        }
    } else {
        PostgresError::Query {
            target,
            operation,
            source,
        }
    }
    .into()
}

pub(crate) struct Pool {
    config: Config,
    target: Arc<str>,
    idle: Mutex<Vec<Conn>>,
    permits: Semaphore,
    schema: OnceCell<()>,
    timeout: Duration,
}

impl Pool {
    pub(crate) fn new(config: Config, target: String, size: usize, timeout: Duration) -> Pool {
        Pool {
            config,
            target: target.into(),
            idle: Mutex::new(Vec::new()),
            permits: Semaphore::new(size.max(1)),
            schema: OnceCell::new(),
            timeout,
        }
    }

    pub(crate) fn target(&self) -> &str {
        &self.target
    }

    fn idle(&self) -> std::sync::MutexGuard<'_, Vec<Conn>> {
        // The vector is whole whatever a panicking holder did.
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `work` within the operation timeout; past it, the error says
    /// what was being done (and `work`, with the connection it held, is
    /// dropped).
    pub(crate) async fn timed<T>(
        &self,
        operation: &'static str,
        work: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        match tokio::time::timeout(self.timeout, work).await {
            Ok(result) => result,
            Err(_) => Err(PostgresError::Timeout {
                target: self.target.to_string(),
                operation,
                after: self.timeout,
            }
            .into()),
        }
    }

    /// A connection: an idle one still open, or a new one.
    pub(crate) async fn get(&self) -> Result<Lease<'_>, StoreError> {
        let permit = self
            .permits
            .acquire()
            .await
            .map_err(|e| StoreError::backend(crate::STORE, e))?;
        loop {
            let Some(conn) = self.idle().pop() else { break };
            if !conn.client.is_closed() {
                return Ok(Lease {
                    pool: self,
                    conn: Some(conn),
                    _permit: permit,
                });
            }
        }
        let conn = self.connect().await?;
        Ok(Lease {
            pool: self,
            conn: Some(conn),
            _permit: permit,
        })
    }

    async fn connect(&self) -> Result<Conn, StoreError> {
        let (client, connection) =
            self.config
                .connect(NoTls)
                .await
                .map_err(|source| PostgresError::Connect {
                    target: self.target.to_string(),
                    source,
                })?;
        let target = self.target.clone();
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%target, error = %events_core::error::Chain(&error), "a PostgreSQL connection of the event store ended");
            }
        });
        self.schema
            .get_or_try_init(|| schema::ensure(&client, &self.target))
            .await?;
        let statements = Statements::prepare(&client)
            .await
            .map_err(|e| failure(&self.target, "preparing the event store's statements", e))?;
        Ok(Conn {
            client,
            statements,
            in_transaction: false,
            target: self.target.clone(),
        })
    }
}

/// A connection lent out; dropped, it is closed, unless
/// [`finish`](Lease::finish) finds it fit to go back to the pool.
pub(crate) struct Lease<'p> {
    pool: &'p Pool,
    conn: Option<Conn>,
    _permit: SemaphorePermit<'p>,
}

impl Lease<'_> {
    /// Puts the connection back when it is open and outside a
    /// transaction, and hands `result` on.
    pub(crate) fn finish<T>(mut self, result: Result<T, StoreError>) -> Result<T, StoreError> {
        if let Some(conn) = self.conn.take()
            && !conn.in_transaction
            && !conn.client.is_closed()
        {
            self.pool.idle().push(conn);
        }
        result
    }
}

impl Deref for Lease<'_> {
    type Target = Conn;

    fn deref(&self) -> &Conn {
        // `conn` is `None` only inside `finish`, which consumes the lease.
        self.conn
            .as_ref()
            .expect("a lease holds its connection until it ends")
    }
}

impl DerefMut for Lease<'_> {
    fn deref_mut(&mut self) -> &mut Conn {
        self.conn
            .as_mut()
            .expect("a lease holds its connection until it ends")
    }
}

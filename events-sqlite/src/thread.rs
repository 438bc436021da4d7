//! The threads SQLite runs on, so that no call into it ever blocks an async
//! runtime: one writer thread owns the connection that writes, one reader
//! thread a second connection for reads (WAL lets readers run beside the
//! writer). Callers send an operation down a channel and await its reply on
//! a `tokio::sync::oneshot`.
//!
//! **Group commit.** The writer takes every operation waiting in its
//! channel and runs them in one `BEGIN IMMEDIATE` .. `COMMIT`: under load,
//! many enqueues, claims and acks share one commit (one WAL sync, one lock
//! round), so throughput rises with load. Each operation still gets its own
//! result, and only after the commit (a reply never announces a write that
//! could still be lost). One failing operation fails only itself: the group
//! is rolled back and its operations are run again one transaction each.
//!
//! **A full disk** (`SQLITE_FULL`): the transaction is rolled back, the WAL
//! checkpointed and truncated (`PRAGMA wal_checkpoint(TRUNCATE)`), and the
//! transaction tried once more. When the writer has been idle for
//! [`IDLE`], it checkpoints and truncates the WAL too, so a queue at rest
//! does not hold on to a large log.
//!
//! **Checkpoints while writing** run on a third connection and thread,
//! the checkpointer (`Db::nudge` in `crate::backend`): after a write, at
//! most every 25 ms, it runs `PRAGMA wal_checkpoint(PASSIVE)`, which waits
//! for no one and which no one waits for. Left to SQLite's autocheckpoint,
//! the commit that took the WAL past 1,000 pages checkpointed it, syncing
//! the WAL and the database while every write queued behind it waited: at
//! 1,000 events per commit the event log checkpointed at nearly every
//! commit. The writer still checkpoints by itself past 8,192 pages, should
//! the checkpointer fall behind.

use std::sync::mpsc;
use std::time::Duration;

use rusqlite::{Connection, ErrorCode};
use tokio::sync::oneshot;

/// A connection's thread and the channel to it. Dropping it lets the
/// thread finish what it was sent, close its connection and end, and waits
/// for that: once a queue handle is dropped, its file is closed.
pub(crate) struct Thread {
    sender: mpsc::Sender<Box<dyn Op>>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl Thread {
    pub(crate) fn new(
        sender: mpsc::Sender<Box<dyn Op>>,
        handle: std::thread::JoinHandle<()>,
    ) -> Thread {
        Thread {
            sender,
            handle: Some(handle),
        }
    }

    /// Sends it an operation; `Err` when the thread is gone.
    pub(crate) fn send(&self, op: Box<dyn Op>) -> Result<(), ()> {
        self.sender.send(op).map_err(drop)
    }
}

impl Drop for Thread {
    fn drop(&mut self) {
        // Hang up (the thread ends when its channel is empty and closed),
        // then wait for it to close its connection.
        let (closed, _) = mpsc::channel();
        drop(std::mem::replace(&mut self.sender, closed));
        if let Some(handle) = self.handle.take()
            && handle.thread().id() != std::thread::current().id()
        {
            let _ = handle.join();
        }
    }
}

/// How long the writer waits without work before checkpointing the WAL.
pub(crate) const IDLE: Duration = Duration::from_millis(500);

/// The most operations one transaction groups: bounds how long one commit
/// holds the write lock against other processes.
const GROUP: usize = 512;

/// One operation sent to a connection's thread.
pub(crate) trait Op: Send {
    /// Runs it (inside the group's transaction, on the writer), keeping its
    /// own result for [`Op::finish`]; on failure, also returns a copy of
    /// the error for the one running the group.
    fn run(&mut self, connection: &Connection) -> Result<(), rusqlite::Error>;

    /// Sends the reply: `error` when the transaction it ran in did not
    /// commit, else its own result.
    fn finish(self: Box<Self>, error: Option<rusqlite::Error>);
}

/// An [`Op`] made of a closure and the channel its result goes back on.
struct Call<T, F> {
    f: F,
    result: Option<rusqlite::Result<T>>,
    reply: oneshot::Sender<rusqlite::Result<T>>,
}

impl<T, F> Op for Call<T, F>
where
    T: Send,
    F: FnMut(&Connection) -> rusqlite::Result<T> + Send,
{
    fn run(&mut self, connection: &Connection) -> Result<(), rusqlite::Error> {
        let result = (self.f)(connection);
        let copy = result.as_ref().err().map(duplicate);
        self.result = Some(result);
        copy.map_or(Ok(()), Err)
    }

    fn finish(self: Box<Self>, error: Option<rusqlite::Error>) {
        let Call { f, result, reply } = *self;
        // Dropped before replying: what the caller shares with it (an
        // `Arc` of the jobs to store) is freed by the caller, on its own
        // thread, not here (freeing another thread's memory is slow).
        drop(f);
        let result = match (error, result) {
            (Some(error), _) => Err(error),
            (None, Some(result)) => result,
            // Never run: its group could not even begin.
            (None, None) => Err(rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ABORT),
                Some("the operation was not run".to_owned()),
            )),
        };
        // The caller may have gone away (its future dropped): nothing to do.
        let _ = reply.send(result);
    }
}

/// An operation for a connection thread and the receiver of its result.
pub(crate) fn call<T, F>(f: F) -> (Box<dyn Op>, oneshot::Receiver<rusqlite::Result<T>>)
where
    T: Send + 'static,
    F: FnMut(&Connection) -> rusqlite::Result<T> + Send + 'static,
{
    let (reply, receiver) = oneshot::channel();
    let op = Call {
        f,
        result: None,
        reply,
    };
    (Box::new(op), receiver)
}

/// A copy of SQLite's error, for each operation of a group that failed as
/// a whole (rusqlite's error is not `Clone`).
fn duplicate(error: &rusqlite::Error) -> rusqlite::Error {
    match error {
        rusqlite::Error::SqliteFailure(code, message) => {
            rusqlite::Error::SqliteFailure(*code, message.clone())
        }
        other => rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ERROR),
            Some(other.to_string()),
        ),
    }
}

fn is_full(error: &rusqlite::Error) -> bool {
    error.sqlite_error_code() == Some(ErrorCode::DiskFull)
}

/// Where a transaction failed.
enum Failed {
    /// `BEGIN IMMEDIATE` or `COMMIT`: every operation of it failed.
    Transaction(rusqlite::Error),
    /// An operation (which keeps its own error).
    Op(rusqlite::Error),
}

impl Failed {
    fn error(&self) -> &rusqlite::Error {
        match self {
            Failed::Transaction(error) | Failed::Op(error) => error,
        }
    }
}

/// Runs `ops` in one `BEGIN IMMEDIATE` .. `COMMIT`, stopping at the first
/// that fails; rolls back unless it committed.
fn transaction(connection: &Connection, ops: &mut [Box<dyn Op>]) -> Result<(), Failed> {
    let result = (|| {
        connection
            .prepare_cached("BEGIN IMMEDIATE")
            .and_then(|mut s| s.execute([]))
            .map_err(Failed::Transaction)?;
        for op in ops.iter_mut() {
            op.run(connection).map_err(Failed::Op)?;
        }
        connection
            .prepare_cached("COMMIT")
            .and_then(|mut s| s.execute([]))
            .map_err(Failed::Transaction)?;
        Ok(())
    })();
    if result.is_err() && !connection.is_autocommit() {
        // Nothing more to do if it fails: the next BEGIN reports it.
        let _ = connection.execute_batch("ROLLBACK");
    }
    result
}

/// Checkpoints the whole WAL into the database and truncates it to zero
/// bytes, when no reader stands in the way (`busy` bounds the wait for
/// one). What a full disk needs. Returns whether it did; failing is not an
/// error here (the transaction tried next reports what is still wrong).
pub(crate) fn checkpoint(connection: &Connection, busy: Duration) -> bool {
    let _ = connection.busy_timeout(busy);
    // Its first column is 1 when a reader or writer stood in the way.
    let result = connection.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |row| {
        row.get::<_, i64>(0)
    });
    let _ = connection.busy_timeout(crate::backend::BUSY_TIMEOUT);
    match result {
        Ok(blocked) => blocked == 0,
        Err(error) => {
            tracing::debug!(%error, "the WAL could not be checkpointed now");
            false
        }
    }
}

/// The writer's connection and what it remembers between groups.
struct Writer {
    connection: Connection,
    /// The last write failed for a full disk, and the WAL has not been
    /// truncated since: truncate it before writing more. (Writing first
    /// would fill space freed meanwhile with WAL frames again, leaving none
    /// for the checkpoint, which needs room in the database file for the
    /// pages it copies.)
    full: bool,
}

impl Writer {
    /// Runs a group of writes: together when they all succeed, else each in
    /// a transaction of its own. Replies to every one.
    fn run(&mut self, mut ops: Vec<Box<dyn Op>>) {
        if self.full && checkpoint(&self.connection, Duration::from_millis(200)) {
            tracing::info!("the WAL was checkpointed and truncated after a full disk");
            self.full = false;
        }
        let mut result = transaction(&self.connection, &mut ops);
        if let Err(failed) = &result
            && is_full(failed.error())
        {
            tracing::warn!("the disk is full: checkpointing the WAL and trying once more");
            checkpoint(&self.connection, Duration::from_millis(200));
            result = transaction(&self.connection, &mut ops);
        }
        self.full = matches!(&result, Err(failed) if is_full(failed.error()));
        match result {
            Ok(()) => ops.into_iter().for_each(|op| op.finish(None)),
            Err(Failed::Transaction(error)) => {
                for op in ops {
                    op.finish(Some(duplicate(&error)));
                }
            }
            Err(Failed::Op(_)) if ops.len() == 1 => {
                ops.into_iter().for_each(|op| op.finish(None));
            }
            // One operation failed: the others must not fail with it.
            Err(Failed::Op(_)) => {
                for op in ops {
                    self.run(vec![op]);
                }
            }
        }
    }
}

/// The writer thread's loop: groups what is waiting, commits, replies;
/// checkpoints when idle; ends when every sender is dropped.
pub(crate) fn writer(connection: Connection, ops: mpsc::Receiver<Box<dyn Op>>) {
    let mut writer = Writer {
        connection,
        full: false,
    };
    let mut wrote = false;
    loop {
        let first = if let Some(op) = spin(&ops) {
            op
        } else if wrote || writer.full {
            match ops.recv_timeout(IDLE) {
                Ok(op) => op,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    // Idle: fold the WAL into the database and truncate it,
                    // without waiting on another process's readers. After a
                    // full disk, keep trying until it works.
                    if checkpoint(&writer.connection, Duration::ZERO) {
                        writer.full = false;
                    }
                    wrote = false;
                    continue;
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        } else {
            match ops.recv() {
                Ok(op) => op,
                Err(mpsc::RecvError) => break,
            }
        };
        let mut group = vec![first];
        while group.len() < GROUP {
            match ops.try_recv() {
                Ok(op) => group.push(op),
                Err(_) => break,
            }
        }
        writer.run(group);
        wrote = true;
    }
}

/// Waits a few microseconds for the next operation without sleeping: a
/// caller that sends one operation after another (an enqueue per dispatch,
/// an ack then a claim) sends its next one about as soon as it has its
/// reply, and waking a sleeping thread costs more than the wait.
fn spin(ops: &mpsc::Receiver<Box<dyn Op>>) -> Option<Box<dyn Op>> {
    let until = std::time::Instant::now() + SPIN;
    loop {
        match ops.try_recv() {
            Ok(op) => return Some(op),
            Err(mpsc::TryRecvError::Disconnected) => return None,
            Err(mpsc::TryRecvError::Empty) if std::time::Instant::now() >= until => return None,
            Err(mpsc::TryRecvError::Empty) => std::thread::yield_now(),
        }
    }
}

/// How long [`spin`] waits.
const SPIN: Duration = Duration::from_micros(50);

/// The reader thread's loop: runs each read as it comes, outside any
/// explicit transaction.
pub(crate) fn reader(connection: Connection, ops: mpsc::Receiver<Box<dyn Op>>) {
    while let Ok(mut op) = ops.recv() {
        // Its result stays in it; the copy is for groups only.
        let _ = op.run(&connection);
        op.finish(None);
    }
}

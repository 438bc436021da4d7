//! The threads plain `fn` queued listeners run on.
//!
//! A synchronous listener blocks while it runs, so it cannot run on the
//! runtime's threads; and a try that outlives its timeout cannot be
//! cancelled, only abandoned. Tokio's blocking pool is the wrong home for
//! it: dropping a runtime waits for every blocking task, so one listener
//! stuck past its timeout would keep the worker's process from ever exiting
//! (and, with Tokio's signal handlers installed, from dying of SIGTERM).
//!
//! These threads are the process's own, detached: nothing waits for them,
//! and they end with the process. Idle ones wait [`KEEP_IDLE`] for the next
//! try, then exit; at most [`MAX_THREADS`] run at once. Each run is listed while it runs, under its job's id and
//! attempt, so a worker can say at the end which tries it abandoned.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use crate::context::lock;

/// How long an idle thread waits for another run before it exits.
const KEEP_IDLE: Duration = Duration::from_secs(10);

/// The most threads at once (as Tokio's blocking pool): runs beyond it wait
/// for a thread to come free. Threads abandoned past a timeout count until
/// their run ends.
const MAX_THREADS: usize = 512;

type Task = Box<dyn FnOnce() + Send>;

/// The threads, and the runs waiting for one.
struct Pool {
    /// Idle threads, each with the sender it waits on, under its number.
    idle: Vec<(u64, Sender<Task>)>,
    /// Runs waiting for a thread (only when `MAX_THREADS` are busy).
    waiting: VecDeque<Task>,
    /// Threads alive.
    threads: usize,
}

static POOL: Mutex<Pool> = Mutex::new(Pool {
    idle: Vec::new(),
    waiting: VecDeque::new(),
    threads: 0,
});

/// Runs in progress: (job id, attempt) -> (listener, started at).
type Runs = HashMap<(String, u32), (String, Instant)>;

static RUNNING: Mutex<Option<Runs>> = Mutex::new(None);

/// What a run's future completes with: its result, or its panic.
pub(crate) type Done<T> = tokio::sync::oneshot::Receiver<std::thread::Result<T>>;

/// A try running on one of these threads, as [`running`] describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Running {
    /// The listener.
    pub(crate) listener: String,
    /// How long it has run (or waited for a thread).
    pub(crate) elapsed: Duration,
}

/// Whether the try `attempt` of job `id` still runs on one of these
/// threads, or waits for one (a try whose future was dropped, at its
/// timeout or at shutdown, may go on running here).
pub(crate) fn running(id: &str, attempt: u32) -> Option<Running> {
    let running = lock(&RUNNING);
    let (listener, since) = running.as_ref()?.get(&(id.to_owned(), attempt))?;
    Some(Running {
        listener: listener.clone(),
        elapsed: since.elapsed(),
    })
}

/// Runs `f` (try `attempt` of job `id`, for `listener`) on a detached
/// thread; the future completes with its result, or with its panic. Nothing
/// waits for the thread when the future is dropped.
pub(crate) fn run<T: Send + 'static>(
    id: &str,
    attempt: u32,
    listener: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<Done<T>, std::io::Error> {
    let key = (id.to_owned(), attempt);
    lock(&RUNNING)
        .get_or_insert_with(HashMap::new)
        .insert(key.clone(), (listener.to_owned(), Instant::now()));
    let (done, result) = tokio::sync::oneshot::channel();
    let task: Task = Box::new(move || {
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
        if let Some(running) = lock(&RUNNING).as_mut() {
            running.remove(&key);
        }
        // The receiver is gone when the try was abandoned: nobody to tell.
        let _ = done.send(outcome);
    });
    submit(task).map(|()| result).inspect_err(|_| {
        // The run never started: it is not running.
        if let Some(running) = lock(&RUNNING).as_mut() {
            running.remove(&(id.to_owned(), attempt));
        }
    })
}

/// Hands `task` to an idle thread, to a new one, or (with `MAX_THREADS`
/// busy) to the first that comes free.
fn submit(task: Task) -> Result<(), std::io::Error> {
    let mut task = task;
    let mut pool = lock(&POOL);
    while let Some((_, thread)) = pool.idle.pop() {
        match thread.send(task) {
            Ok(()) => return Ok(()),
            // That thread is gone (it cannot be, see `serve`; but no task
            // is lost if it were): try the next one.
            Err(mpsc::SendError(back)) => task = back,
        }
    }
    if pool.threads >= MAX_THREADS {
        pool.waiting.push_back(task);
        return Ok(());
    }
    pool.threads += 1;
    drop(pool);
    std::thread::Builder::new()
        .name("events-listener".to_owned())
        .spawn(move || serve(task))
        .map(drop)
        .inspect_err(|_| lock(&POOL).threads -= 1)
}

/// A thread's life: run a task, take the next waiting one or wait idle for
/// one, exit when none comes for [`KEEP_IDLE`].
fn serve(first: Task) {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let me = NEXT.fetch_add(1, Ordering::Relaxed);
    let mut task = first;
    loop {
        task();
        let mut pool = lock(&POOL);
        if let Some(next) = pool.waiting.pop_front() {
            task = next;
            continue;
        }
        let (sender, receiver) = mpsc::channel();
        pool.idle.push((me, sender));
        drop(pool);
        task = match receiver.recv_timeout(KEEP_IDLE) {
            Ok(task) => task,
            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => {
                let mut pool = lock(&POOL);
                match pool.idle.iter().position(|(n, _)| *n == me) {
                    // Still listed: nobody holds this thread's sender, so
                    // no task can arrive once it is removed.
                    Some(at) => {
                        pool.idle.swap_remove(at);
                        pool.threads -= 1;
                        return;
                    }
                    // A caller took the sender a moment ago: its task is
                    // on the way.
                    None => {
                        drop(pool);
                        match receiver.recv() {
                            Ok(task) => task,
                            Err(_) => {
                                lock(&POOL).threads -= 1;
                                return;
                            }
                        }
                    }
                }
            }
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn runs_report_their_result_their_panic_and_while_they_run() {
        let result = run("job-a", 1, "app::a", || 40 + 2).unwrap().await;
        assert_eq!(result.unwrap().unwrap(), 42);
        let panicked = run("job-b", 1, "app::b", || panic!("on purpose"))
            .unwrap()
            .await;
        assert!(panicked.unwrap().is_err(), "the panic comes back");

        let (release, wait) = std::sync::mpsc::channel::<()>();
        let blocked = run("job-c", 2, "app::c", move || wait.recv().is_ok()).unwrap();
        assert_eq!(running("job-c", 2).unwrap().listener, "app::c");
        assert!(running("job-c", 1).is_none(), "another attempt");
        release.send(()).unwrap();
        assert!(blocked.await.unwrap().unwrap());
        assert!(running("job-c", 2).is_none(), "done: no longer running");
    }

    #[tokio::test]
    async fn a_dropped_run_goes_on_without_anyone_waiting() {
        let (release, wait) = std::sync::mpsc::channel::<()>();
        let (finished, done) = std::sync::mpsc::channel::<()>();
        drop(
            run("job-d", 1, "app::d", move || {
                let _ = wait.recv();
                let _ = finished.send(());
            })
            .unwrap(),
        );
        assert!(running("job-d", 1).is_some(), "abandoned, still running");
        release.send(()).unwrap();
        done.recv_timeout(Duration::from_secs(10)).unwrap();
    }
}

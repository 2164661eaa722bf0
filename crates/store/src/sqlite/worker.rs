//! The SQLite connection lives on one thread of its own; every store call is
//! a job sent to it, and jobs that queue up while a batch runs are committed
//! together (group commit).
//!
//! Why not a connection pool driven from the async runtime: each statement
//! would cross threads twice (runtime → driver thread → runtime), each
//! commit would append its own WAL frames and take and drop SQLite's file
//! locks, and concurrent writers on one file only queue or sleep in the busy
//! handler. Profiles of the token endpoint showed almost half the server's
//! time in the kernel for exactly those reasons (docs/benchmarks.md). Here a
//! whole store call runs synchronously on the connection's thread, and one
//! `COMMIT` covers every job of a batch.
//!
//! Durability is unchanged: a job's caller hears its result only after the
//! batch's `COMMIT` has returned, so nothing is acknowledged that a crash
//! could take back. Isolation is serial: jobs run one after another, each
//! write job inside its own savepoint, so a job that fails is rolled back
//! alone and the others in the batch still commit. If `BEGIN` or `COMMIT`
//! itself fails, every job of the batch is answered with that error and
//! nothing of the batch is kept.
//!
//! The queue is bounded (issue 11 item 14): a caller first takes one of
//! [`QUEUE_CAPACITY`] slots, waiting asynchronously while all are taken, and
//! gives it back when its answer is delivered. A flood of requests then
//! waits in the runtime (where the connection caps and request timeouts
//! bound it) instead of growing an unbounded queue of boxed jobs in memory.

use crate::StoreError;
use crate::error::DriverError;
use rusqlite::Connection;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc;
use tokio::sync::oneshot;

/// Most jobs queued or running at once; further callers wait for a slot.
/// Far above what one batch takes ([`MAX_BATCH`]), so the bound only bites
/// when the database cannot keep up.
pub(super) const QUEUE_CAPACITY: usize = 4096;

/// Most jobs per transaction: bounds how long one batch holds the write
/// lock against other processes (the CLI) and the latency of its first job.
const MAX_BATCH: usize = 128;

/// Whether a job may write. A batch of reads only takes no write lock.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Access {
    Read,
    Write,
}

/// Delivers a job's result once the fate of its batch is known: `Ok` when
/// the batch committed, otherwise the batch's failure.
type Deliver = Box<dyn FnOnce(Result<(), &str>) + Send>;

/// `run(Some(batch))` executes the job; `run(None)` only readies its answer
/// (the batch could not begin, so the job must not touch the database).
type Run = Box<dyn FnOnce(Option<&Batch<'_>>) -> Deliver + Send>;

/// What a job runs in: the connection, and the batch's poison flag, set
/// when a failed job could not be undone (its savepoint would not roll
/// back). A poisoned batch is rolled back whole instead of committed.
struct Batch<'c> {
    conn: &'c Connection,
    poisoned: std::cell::Cell<bool>,
}

struct Job {
    access: Access,
    run: Run,
}

/// The sending half; cloning it is cheap. When the last one is dropped the
/// thread finishes its batch and closes the connection.
#[derive(Clone, Debug)]
pub(super) struct Worker {
    jobs: mpsc::Sender<Job>,
    slots: std::sync::Arc<tokio::sync::Semaphore>,
}

impl Worker {
    /// Starts the thread; `open` runs on it and makes the connection.
    /// `before_batch` runs on the thread before each batch's transaction.
    pub(super) async fn start(
        open: impl FnOnce() -> Result<Connection, StoreError> + Send + 'static,
        before_batch: impl FnMut(&Connection) + Send + 'static,
    ) -> Result<Self, StoreError> {
        Self::start_bounded(open, before_batch, QUEUE_CAPACITY).await
    }

    /// [`Worker::start`] with a queue of `capacity` jobs.
    pub(super) async fn start_bounded(
        open: impl FnOnce() -> Result<Connection, StoreError> + Send + 'static,
        before_batch: impl FnMut(&Connection) + Send + 'static,
        capacity: usize,
    ) -> Result<Self, StoreError> {
        let (jobs, queue) = mpsc::channel::<Job>();
        let (opened, opened_rx) = oneshot::channel();
        std::thread::Builder::new()
            .name("steward-sqlite".into())
            .spawn(move || match open() {
                Ok(conn) => {
                    let _ = opened.send(Ok(()));
                    run(&conn, &queue, before_batch);
                }
                Err(e) => {
                    let _ = opened.send(Err(e));
                }
            })
            .map_err(StoreError::Io)?;
        opened_rx.await.map_err(|_| closed())??;
        Ok(Self {
            jobs,
            slots: std::sync::Arc::new(tokio::sync::Semaphore::new(capacity.max(1))),
        })
    }

    /// Slots free in the queue.
    #[cfg(test)]
    pub(super) fn free_slots(&self) -> usize {
        self.slots.available_permits()
    }

    /// Runs `f` on the connection, inside the current batch's transaction,
    /// and returns its result once that transaction has committed.
    pub(super) async fn call<T, F>(&self, access: Access, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let slot = match self.slots.clone().try_acquire_owned() {
            Ok(slot) => slot,
            Err(_) => {
                metrics::counter!("steward_store_queue_full_total").increment(1);
                self.slots.clone().acquire_owned().await.map_err(|_| closed())?
            }
        };
        let (tx, rx) = oneshot::channel::<Result<T, StoreError>>();
        let run = Box::new(move |batch: Option<&Batch<'_>>| -> Deliver {
            let result = batch.map(|batch| run_job(batch, access, f));
            Box::new(move |batch: Result<(), &str>| {
                // The slot is free once the answer is on its way.
                drop(slot);
                let answer = match (batch, result) {
                    (Ok(()), Some(result)) => result,
                    (Ok(()), None) => Err(closed()),
                    (Err(why), _) => Err(batch_failed(why)),
                };
                let _ = tx.send(answer);
            })
        });
        self.jobs.send(Job { access, run }).map_err(|_| closed())?;
        rx.await.map_err(|_| closed())?
    }
}

/// One job: a savepoint around a write, so its failure undoes only itself.
/// A panic in a job is caught and answered as an error; the thread lives on.
fn run_job<T>(
    batch: &Batch<'_>,
    access: Access,
    f: impl FnOnce(&Connection) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    let conn = batch.conn;
    if access == Access::Write {
        exec(conn, "SAVEPOINT job")?;
    }
    let result = catch_unwind(AssertUnwindSafe(|| f(conn))).unwrap_or_else(|_| {
        Err(StoreError::Database {
            reason: "store job panicked",
            source: "store job panicked".into(),
        })
    });
    if access == Access::Write {
        let undone = match &result {
            Err(_) => exec(conn, "ROLLBACK TO job"),
            Ok(_) => Ok(()),
        }
        .and_then(|()| exec(conn, "RELEASE job"));
        if let Err(e) = undone {
            // Whatever this job wrote may still be in the transaction.
            batch.poisoned.set(true);
            return Err(e);
        }
    }
    result
}

fn exec(conn: &Connection, sql: &str) -> Result<(), StoreError> {
    conn.prepare_cached(sql)?.execute([])?;
    Ok(())
}

/// The thread's loop: wait for a job, take every job already queued behind
/// it (up to [`MAX_BATCH`]), run them in one transaction, commit, answer.
fn run(conn: &Connection, queue: &mpsc::Receiver<Job>, mut before_batch: impl FnMut(&Connection)) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut delivered = Vec::with_capacity(MAX_BATCH);
    while let Ok(first) = queue.recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        metrics::histogram!("steward_store_batch_jobs").record(batch.len() as f64);
        before_batch(conn);
        // BEGIN IMMEDIATE takes the write lock up front, so no statement of
        // the batch ever has to upgrade a read snapshot (which SQLite refuses
        // with SQLITE_BUSY instead of waiting on the busy timeout).
        let begin = if batch.iter().any(|j| j.access == Access::Write) {
            "BEGIN IMMEDIATE"
        } else {
            "BEGIN"
        };
        if let Err(e) = exec(conn, begin) {
            let why = e.to_string();
            for job in batch.drain(..) {
                (job.run)(None)(Err(&why));
            }
            let _ = exec(conn, "ROLLBACK");
            continue;
        }
        let running = Batch {
            conn,
            poisoned: std::cell::Cell::new(false),
        };
        for job in batch.drain(..) {
            delivered.push((job.run)(Some(&running)));
        }
        let end = if running.poisoned.get() {
            Err(StoreError::Database {
                reason: "a failed store call could not be undone",
                source: "savepoint rollback failed".into(),
            })
        } else {
            exec(conn, "COMMIT")
        };
        match end {
            Ok(()) => {
                for deliver in delivered.drain(..) {
                    deliver(Ok(()));
                }
            }
            Err(e) => {
                let _ = exec(conn, "ROLLBACK");
                let why = e.to_string();
                for deliver in delivered.drain(..) {
                    deliver(Err(&why));
                }
            }
        }
    }
}

fn closed() -> StoreError {
    StoreError::Database {
        reason: "database thread stopped",
        source: "database thread stopped".into(),
    }
}

fn batch_failed(why: &str) -> StoreError {
    StoreError::Database {
        reason: "transaction failed",
        source: DriverError::from(why.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    async fn worker() -> Worker {
        Worker::start(
            || {
                let c = Connection::open_in_memory()?;
                c.execute_batch("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT NOT NULL)")?;
                Ok(c)
            },
            |_| {},
        )
        .await
        .unwrap()
    }

    async fn count(w: &Worker) -> i64 {
        w.call(Access::Read, |c| {
            Ok(c.query_row("SELECT count(*) FROM t", [], |r| r.get(0))?)
        })
        .await
        .unwrap()
    }

    /// Jobs queued together share a transaction, yet a job that fails after
    /// writing is undone alone: its savepoint rolls back, the rest commit.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_failing_job_is_rolled_back_alone_within_its_batch() {
        let w = Arc::new(worker().await);
        let mut tasks = Vec::new();
        for k in 0..400_i64 {
            let w = w.clone();
            tasks.push(tokio::spawn(async move {
                w.call(Access::Write, move |c| {
                    c.execute("INSERT INTO t (k, v) VALUES (?1, 'x')", [k])?;
                    if k % 4 == 0 {
                        // Wrote a row, then fails: the row must not survive.
                        c.execute("INSERT INTO t (k, v) VALUES (?1, 'dup')", [k])?;
                    }
                    Ok(k)
                })
                .await
            }));
        }
        let mut failed = 0;
        for (k, task) in tasks.into_iter().enumerate() {
            match task.await.unwrap() {
                Ok(v) => assert_eq!(v, i64::try_from(k).unwrap()),
                Err(StoreError::Conflict) => {
                    assert_eq!(k % 4, 0);
                    failed += 1;
                }
                Err(e) => panic!("unexpected {e}"),
            }
        }
        assert_eq!(failed, 100);
        assert_eq!(count(&w).await, 300);
        let survivors_of_failures: i64 = w
            .call(Access::Read, |c| {
                Ok(c.query_row("SELECT count(*) FROM t WHERE k % 4 = 0", [], |r| r.get(0))?)
            })
            .await
            .unwrap();
        assert_eq!(survivors_of_failures, 0);
    }

    /// A job whose savepoint cannot be rolled back (here it released it
    /// itself) must not have its write committed: the batch is rolled back.
    #[tokio::test]
    async fn a_failed_job_that_cannot_be_undone_rolls_the_batch_back() {
        let w = worker().await;
        let r: Result<(), StoreError> = w
            .call(Access::Write, |c| {
                c.execute_batch("RELEASE job")?;
                c.execute("INSERT INTO t (k, v) VALUES (1, 'x')", [])?;
                Err(StoreError::Conflict)
            })
            .await;
        assert!(r.is_err());
        assert_eq!(count(&w).await, 0, "the write must not be committed");
    }

    /// Callers beyond the queue's capacity wait for a slot (backpressure)
    /// rather than adding to an unbounded queue; all finish once it drains.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite_worker_queue_is_bounded_and_callers_wait() {
        let w = Arc::new(
            Worker::start_bounded(
                || {
                    let c = Connection::open_in_memory()?;
                    c.execute_batch("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT NOT NULL)")?;
                    Ok(c)
                },
                |_| {},
                4,
            )
            .await
            .unwrap(),
        );
        // Hold the database thread inside one job until released.
        let (release, held) = std::sync::mpsc::channel::<()>();
        let blocker = {
            let w = w.clone();
            tokio::spawn(async move {
                w.call(Access::Write, move |_| {
                    let _ = held.recv();
                    Ok(())
                })
                .await
            })
        };
        let mut waiting = Vec::new();
        for k in 0..20_i64 {
            let w = w.clone();
            waiting.push(tokio::spawn(async move {
                w.call(Access::Write, move |c| {
                    Ok(c.execute("INSERT INTO t (k, v) VALUES (?1, 'x')", [k])?)
                })
                .await
            }));
        }
        // Every slot is taken and sixteen callers are still waiting for one.
        for _ in 0..500 {
            if w.free_slots() == 0 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert_eq!(w.free_slots(), 0);
        assert!(waiting.iter().all(|t| !t.is_finished()));
        release.send(()).unwrap();
        blocker.await.unwrap().unwrap();
        for t in waiting {
            assert_eq!(t.await.unwrap().unwrap(), 1);
        }
        assert_eq!(count(&w).await, 20);
        assert_eq!(w.free_slots(), 4);
    }

    #[tokio::test]
    async fn a_panicking_job_is_an_error_and_the_thread_lives_on() {
        let w = worker().await;
        let r: Result<(), StoreError> = w
            .call(Access::Write, |c| {
                c.execute("INSERT INTO t (k, v) VALUES (1, 'x')", [])?;
                panic!("boom")
            })
            .await;
        assert!(matches!(r, Err(StoreError::Database { .. })));
        assert_eq!(count(&w).await, 0, "the panicking job's write was rolled back");
        w.call(Access::Write, |c| {
            Ok(c.execute("INSERT INTO t (k, v) VALUES (2, 'y')", [])?)
        })
        .await
        .unwrap();
        assert_eq!(count(&w).await, 1);
    }

    /// A result is delivered only after COMMIT: when the commit fails, the
    /// caller hears the failure and nothing of the batch is kept.
    #[tokio::test]
    async fn a_failed_commit_fails_every_job_of_the_batch() {
        let w = Worker::start(
            || {
                let c = Connection::open_in_memory()?;
                c.execute_batch(
                    "PRAGMA foreign_keys = ON;
                 CREATE TABLE p (id INTEGER PRIMARY KEY);
                 CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT NOT NULL,
                   p INTEGER REFERENCES p (id) DEFERRABLE INITIALLY DEFERRED);",
                )?;
                Ok(c)
            },
            |_| {},
        )
        .await
        .unwrap();
        // A deferred foreign key is checked at COMMIT, after the job returned Ok.
        let r = w
            .call(Access::Write, |c| {
                Ok(c.execute("INSERT INTO t (k, v, p) VALUES (1, 'x', 99)", [])?)
            })
            .await;
        assert!(r.is_err(), "the job must not be acknowledged: {r:?}");
        assert_eq!(count(&w).await, 0);
    }
}

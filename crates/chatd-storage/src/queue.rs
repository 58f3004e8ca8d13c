//! The queue in front of a store's single writer thread, and the parts of
//! group commit that do not depend on the engine: taking a batch, answering
//! its callers once the batch is committed, and the metrics.

use crate::{Result, StorageError};
use std::sync::Mutex;
use std::time::Instant;
use tokio::sync::{mpsc, oneshot};

/// Where a writer sends one request's outcome.
pub(crate) type Reply<T> = oneshot::Sender<Result<T>>;

/// Answers one request once its batch is committed; given the commit's
/// error, if any, which replaces the request's own result.
pub(crate) type Answer = Box<dyn FnOnce(Option<&str>) + Send>;

pub(crate) fn answer<T: Send + 'static>(reply: Reply<T>, result: Result<T>) -> Answer {
    Box::new(move |commit_error| {
        let outcome = match commit_error {
            Some(e) => Err(StorageError::Corrupt(format!("commit failed: {e}"))),
            None => result,
        };
        let _ = reply.send(outcome);
    })
}

/// The callers' side: a bounded channel to the writer thread.
pub(crate) struct WriteQueue<Op> {
    tx: mpsc::Sender<Op>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl<Op: Send + 'static> WriteQueue<Op> {
    /// Starts the writer thread `name` running `writer` over a queue of
    /// `capacity` requests.
    pub(crate) fn start(
        name: &str,
        capacity: usize,
        writer: impl FnOnce(mpsc::Receiver<Op>) + Send + 'static,
    ) -> Result<Self> {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let handle = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || writer(rx))?;
        Ok(Self {
            tx,
            thread: Mutex::new(Some(handle)),
        })
    }

    /// Queues a request and waits for its answer.
    pub(crate) async fn call<T>(&self, make: impl FnOnce(Reply<T>) -> Op) -> Result<T> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(make(tx))
            .await
            .map_err(|_| StorageError::Closed)?;
        rx.await.map_err(|_| StorageError::Closed)?
    }

    /// Asks the writer to finish what is queued and stop, and waits for its
    /// thread.
    pub(crate) async fn close(&self, make: impl FnOnce(oneshot::Sender<()>) -> Op) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(make(tx)).await.is_ok() {
            let _ = rx.await;
        }
        let handle = self.thread.lock().ok().and_then(|mut h| h.take());
        if let Some(h) = handle {
            let _ = tokio::task::spawn_blocking(move || h.join()).await;
        }
    }
}

/// The writer's side: waits for a request, then takes every one already
/// queued, up to `max`. None once every sender is gone.
pub(crate) fn next_batch<Op>(rx: &mut mpsc::Receiver<Op>, max: usize) -> Option<Vec<Op>> {
    let first = rx.blocking_recv()?;
    let mut batch = vec![first];
    while batch.len() < max.max(1) {
        match rx.try_recv() {
            Ok(op) => batch.push(op),
            Err(_) => break,
        }
    }
    Some(batch)
}

/// After the writer stopped: refuses what is still queued (dropping a
/// request's reply answers its caller `Closed`), acknowledging close
/// requests.
pub(crate) fn refuse_rest<Op>(
    rx: &mut mpsc::Receiver<Op>,
    close_of: impl Fn(Op) -> Option<oneshot::Sender<()>>,
) {
    rx.close();
    while let Ok(op) = rx.try_recv() {
        if let Some(tx) = close_of(op) {
            let _ = tx.send(());
        }
    }
}

/// Records one committed batch in the storage metrics.
pub(crate) fn record_batch(size: usize, started: Instant) {
    metrics::histogram!("chatd_storage_batch_size").record(size as f64);
    metrics::histogram!("chatd_storage_commit_seconds").record(started.elapsed().as_secs_f64());
}

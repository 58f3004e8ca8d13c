//! The dispatcher: takes notifications from the send path without making it
//! wait, and feeds them to the provider from a background task.
//!
//! Two bounds keep a slow or dead provider from hurting the server: the
//! queue (most notifications waiting; past it new ones are dropped, not
//! buffered) and the concurrency (most provider calls in flight). A push is
//! a hint that a message is waiting, not the message itself, which is
//! stored before any push is made, so dropping one under overload costs a
//! notification, never a message.

use crate::{PushNotification, PushProvider};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{mpsc, Semaphore};
use tokio::task::{JoinHandle, JoinSet};

/// Never blocks the send path: a bounded queue drained by a background task.
///
/// Clones share one queue and one worker, so the pipeline can hold one and
/// the server's shutdown code another. Shutting down through any clone stops
/// all of them; if every clone is dropped without a shutdown, the worker
/// still finishes what is queued and then exits.
#[derive(Clone)]
pub struct PushDispatcher {
    shared: Arc<Shared>,
}

struct Shared {
    provider: &'static str,
    /// `None` once shutdown has begun: dropping the only sender is what
    /// tells the worker to drain and stop.
    tx: RwLock<Option<mpsc::Sender<PushNotification>>>,
    worker: Mutex<Option<JoinHandle<()>>>,
    /// Accepted by `submit` and not finished yet (queued or in flight), to
    /// report what a shutdown abandons. The worker and its tasks get only
    /// this counter, never `Shared`: if they held the sender the channel
    /// could never close.
    pending: Arc<AtomicUsize>,
    /// Notifications dropped so far, to throttle the warning.
    dropped: AtomicU64,
}

impl PushDispatcher {
    /// Spawns the worker on the current tokio runtime; `queue` = most pending
    /// notifications; `concurrency` = most pushes in flight. Both are raised
    /// to at least 1.
    ///
    /// # Panics
    /// Outside a tokio runtime.
    pub fn start(provider: Arc<dyn PushProvider>, queue: usize, concurrency: usize) -> Self {
        let (tx, rx) = mpsc::channel(queue.max(1));
        let pending = Arc::new(AtomicUsize::new(0));
        let name = provider.name();
        let worker = tokio::spawn(run(provider, rx, concurrency.max(1), pending.clone()));
        PushDispatcher {
            shared: Arc::new(Shared {
                provider: name,
                tx: RwLock::new(Some(tx)),
                worker: Mutex::new(Some(worker)),
                pending,
                dropped: AtomicU64::new(0),
            }),
        }
    }

    /// Enqueues without waiting; when the queue is full the notification is
    /// dropped and counted (metric `chatd_push_dropped_total`), returns
    /// false. Also false, and counted, once shutdown has begun.
    pub fn submit(&self, n: PushNotification) -> bool {
        let shared = &self.shared;
        // Counted before the send so the worker can never finish it first
        // and take the counter below zero.
        shared.pending.fetch_add(1, Ordering::Relaxed);
        let refused = match &*shared.tx.read().unwrap_or_else(PoisonError::into_inner) {
            Some(tx) => match tx.try_send(n) {
                Ok(()) => None,
                Err(TrySendError::Full(n)) => Some(("queue full", n)),
                Err(TrySendError::Closed(n)) => Some(("shutting down", n)),
            },
            None => Some(("shutting down", n)),
        };
        let Some((reason, n)) = refused else {
            return true;
        };
        shared.pending.fetch_sub(1, Ordering::Relaxed);
        metrics::counter!("chatd_push_dropped_total").increment(1);
        let total = shared.dropped.fetch_add(1, Ordering::Relaxed) + 1;
        // One line for the first drop and then one per thousand: under
        // overload a line per drop would add to the overload.
        if total == 1 || total % 1000 == 0 {
            tracing::warn!(
                provider = shared.provider,
                reason,
                dropped_total = total,
                "push notification dropped"
            );
        } else {
            tracing::debug!(reason, to = %n.to, msg_id = %n.msg_id, "push notification dropped");
        }
        false
    }

    /// Stops taking new work and waits (up to `grace`) for queued pushes to
    /// finish; used at shutdown. What is still queued or in flight when
    /// `grace` runs out is abandoned and counted as dropped. A second
    /// shutdown (through another clone) returns at once.
    pub async fn shutdown(self, grace: Duration) {
        let shared = &self.shared;
        drop(
            shared
                .tx
                .write()
                .unwrap_or_else(PoisonError::into_inner)
                .take(),
        );
        let worker = shared
            .worker
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let Some(mut worker) = worker else {
            return;
        };
        match tokio::time::timeout(grace, &mut worker).await {
            Ok(_) => tracing::debug!(provider = shared.provider, "push queue drained"),
            Err(_) => {
                // Aborting the worker drops its task set, which aborts the
                // pushes in flight.
                worker.abort();
                let abandoned = shared.pending.load(Ordering::Relaxed);
                metrics::counter!("chatd_push_dropped_total").increment(abandoned as u64);
                tracing::warn!(
                    provider = shared.provider,
                    abandoned,
                    "push shutdown grace elapsed; pending notifications abandoned"
                );
            }
        }
    }
}

/// The worker: takes a concurrency slot, then a notification, and runs the
/// push in its own task. Taking the slot first leaves notifications in the
/// bounded queue while the provider is saturated, so `queue` really is the
/// most that waits.
async fn run(
    provider: Arc<dyn PushProvider>,
    mut rx: mpsc::Receiver<PushNotification>,
    concurrency: usize,
    pending: Arc<AtomicUsize>,
) {
    let name = provider.name();
    let slots = Arc::new(Semaphore::new(concurrency));
    let mut tasks = JoinSet::new();
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            break; // never closed
        };
        let Some(n) = rx.recv().await else {
            break; // every sender gone and the queue empty
        };
        let provider = provider.clone();
        let done = Finished(pending.clone());
        tasks.spawn(async move {
            let _slot = slot;
            let _done = done;
            deliver(&*provider, &n).await;
        });
        while let Some(joined) = tasks.try_join_next() {
            report_panic(name, joined);
        }
    }
    while let Some(joined) = tasks.join_next().await {
        report_panic(name, joined);
    }
}

async fn deliver(provider: &dyn PushProvider, n: &PushNotification) {
    let name = provider.name();
    match provider.push(n).await {
        Ok(()) => metrics::counter!("chatd_push_sent_total", "provider" => name).increment(1),
        Err(e) => {
            metrics::counter!("chatd_push_failed_total", "provider" => name).increment(1);
            tracing::warn!(
                provider = name,
                app_id = %n.app_id,
                to = %n.to,
                msg_id = %n.msg_id,
                error = %e,
                "offline push failed"
            );
        }
    }
}

/// A provider that panics loses that one notification, not the worker.
fn report_panic(provider: &'static str, joined: Result<(), tokio::task::JoinError>) {
    if let Err(e) = joined {
        if e.is_panic() {
            metrics::counter!("chatd_push_failed_total", "provider" => provider).increment(1);
            tracing::error!(provider, "push provider panicked");
        }
    }
}

/// Takes a notification off the pending count when its task ends, however
/// it ends (success, failure, panic or abort).
struct Finished(Arc<AtomicUsize>);

impl Drop for Finished {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

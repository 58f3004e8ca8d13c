//! When a connection saves its device's acknowledged position.

use crate::session::SAVE_INTERVAL;
use std::pin::Pin;
use tokio::time::{Instant, Sleep};

/// A deadline [`SAVE_INTERVAL`] after the first acknowledgement that is not
/// saved yet, and no deadline while there is none.
///
/// A connection's loop used to tick a `SAVE_INTERVAL` interval whether or
/// not anything had been acknowledged, so an idle connection woke every
/// 5 s for nothing: 20 000 wake-ups a second for 100 000 idle clients, most
/// of an idle server's CPU (docs/benchmarks.md, "What changed"). Armed only
/// while there is something to save, an idle connection's one timer is its
/// ping.
pub struct SaveTimer {
    sleep: Pin<Box<Sleep>>,
    armed: bool,
}

impl Default for SaveTimer {
    fn default() -> Self {
        Self::new()
    }
}

impl SaveTimer {
    pub fn new() -> Self {
        Self {
            sleep: Box::pin(tokio::time::sleep(SAVE_INTERVAL)),
            armed: false,
        }
    }

    /// Starts the deadline if `unsaved` acknowledgements wait and none is
    /// running; a running one is left alone, so that a steady stream of
    /// acknowledgements is saved every interval, not postponed.
    pub fn arm_if(&mut self, unsaved: bool) {
        if unsaved && !self.armed {
            self.sleep.as_mut().reset(Instant::now() + SAVE_INTERVAL);
            self.armed = true;
        }
    }

    pub fn is_armed(&self) -> bool {
        self.armed
    }

    /// Completes when the deadline passes (then disarmed); never while
    /// disarmed. Cancel-safe: dropped before the deadline, it stays armed.
    pub async fn expired(&mut self) {
        if !self.armed {
            std::future::pending::<()>().await;
        }
        self.sleep.as_mut().await;
        self.armed = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn only_unsaved_acknowledgements_start_the_clock() {
        let mut t = SaveTimer::new();
        t.arm_if(false);
        assert!(!t.is_armed());
        // Disarmed, it never fires, however long the connection idles.
        let idle = tokio::time::timeout(SAVE_INTERVAL * 10, t.expired()).await;
        assert!(idle.is_err(), "a disarmed timer fired");

        let start = Instant::now();
        t.arm_if(true);
        tokio::time::advance(Duration::from_secs(2)).await;
        // More acknowledgements do not push the deadline back.
        t.arm_if(true);
        t.expired().await;
        assert_eq!(start.elapsed(), SAVE_INTERVAL);
        assert!(!t.is_armed());

        // Re-armed from the next acknowledgement, not from the last deadline.
        tokio::time::advance(Duration::from_secs(30)).await;
        let again = Instant::now();
        t.arm_if(true);
        t.expired().await;
        assert_eq!(again.elapsed(), SAVE_INTERVAL);
    }
}

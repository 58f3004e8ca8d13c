//! The envelope around successful answers (`action`, `path`, `uri`,
//! `timestamp`, `duration`), and the request clock behind `duration`.

use std::time::Instant;

tokio::task_local! {
    static REQUEST_START: Instant;
}

/// Runs `fut` with the request clock started now.
pub async fn timed<F: std::future::Future>(fut: F) -> F::Output {
    REQUEST_START.scope(Instant::now(), fut).await
}

/// Milliseconds since the current request arrived (0 outside a request).
pub fn elapsed_ms() -> u64 {
    REQUEST_START
        .try_with(|s| s.elapsed().as_millis() as u64)
        .unwrap_or(0)
}

//! `chatd serve`: wire the layers together and run until a signal.

use crate::bootstrap::{describe_app, ensure_default_app, open_store};
use anyhow::Context;
use chatd_api::state::ClientSettings;
use chatd_api::{ApiState, AppRegistry};
use chatd_auth::Authenticator;
use chatd_config::Config;
use chatd_core::MessageIdGenerator;
use chatd_delivery::{Delivery, InProcessDelivery};
use chatd_files::{FileStore, LocalFileStore, LocalOptions};
use chatd_pipeline::Pipeline;
use chatd_storage::Store;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;
use tracing_subscriber::EnvFilter;

fn init_logging(config: &Config) {
    let filter = EnvFilter::try_from_env("CHATD_LOG")
        .or_else(|_| EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if config.log_format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn init_metrics() -> anyhow::Result<metrics_exporter_prometheus::PrometheusHandle> {
    const LATENCY: &[f64] = &[
        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    ];
    const SIZES: &[f64] = &[
        1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0,
    ];
    Ok(PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY)?
        .set_buckets_for_metric(Matcher::Full("chatd_storage_batch_size".into()), SIZES)?
        .install_recorder()?)
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

/// The chat file store in `<data_dir>/files`, cleaned of whatever an
/// interrupted upload left.
async fn open_files(config: &Config) -> anyhow::Result<Arc<dyn FileStore>> {
    let opts = LocalOptions {
        dir: config.data_dir.join("files"),
        retention: Duration::from_secs(config.file_retention_secs),
        thumbnail_size: config.thumbnail_size,
    };
    let dir = opts.dir.clone();
    let store = tokio::task::spawn_blocking(move || LocalFileStore::open(opts))
        .await?
        .with_context(|| format!("opening the file store {}", dir.display()))?;
    Ok(Arc::new(store))
}

/// Raises the soft limit on open files to the hard limit: every client
/// connection is a file descriptor, and the usual soft limit (1024) would
/// cap a server at about a thousand clients.
#[cfg(unix)]
fn raise_nofile_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct given.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            let want = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &want) != 0 {
                tracing::warn!(
                    soft = lim.rlim_cur,
                    hard = lim.rlim_max,
                    "could not raise the open-file limit"
                );
            }
        }
    }
}

#[cfg(not(unix))]
fn raise_nofile_limit() {}

pub async fn serve(config: Config) -> anyhow::Result<()> {
    init_logging(&config);
    raise_nofile_limit();
    let metrics = init_metrics()?;
    let store = open_store(&config)?;
    let default_app = ensure_default_app(store.as_ref(), &config).await?;
    let listener = tokio::net::TcpListener::bind(&config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    let addr = listener.local_addr()?;
    // With no public URL configured, URLs name the address actually bound
    // (which differs from `listen` when it asks for port 0).
    let base_url = if config.public_url.is_empty() {
        format!("http://{addr}")
    } else {
        config.public_base_url()
    };
    if default_app.generated {
        println!(
            "Generated the default app (saved in {}; shown only this once):\n{}",
            config.data_dir.display(),
            describe_app(&default_app.app, &base_url)
        );
    }
    let floor = store.max_message_id().await?;
    let store_dyn: Arc<dyn Store> = store.clone();
    let push_provider = chatd_push::provider_from_config(
        &config.push_provider,
        config.push_webhook_url.as_deref(),
        Duration::from_millis(config.push_webhook_timeout_ms),
        config.push_webhook_retries,
    )?;
    let push = chatd_push::PushDispatcher::start(
        push_provider,
        config.push_queue.max(1),
        config.push_concurrency.max(1),
    );
    let delivery = Arc::new(InProcessDelivery::new());
    let pipeline = Pipeline::new(
        store_dyn.clone(),
        delivery.clone(),
        MessageIdGenerator::new(config.node_id, floor),
    )
    .with_offline_sink(Arc::new(crate::push::PushSink {
        dispatcher: push.clone(),
    }));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let files = open_files(&config).await?;
    tokio::spawn(chatd_files::run_sweeper(files.clone()));
    let state = Arc::new(ApiState {
        apps: AppRegistry::load(store_dyn.clone()).await?,
        pipeline,
        auth: Authenticator::new(100_000),
        public_url: base_url,
        max_request_bytes: config.max_request_bytes,
        token_ttl_secs: config.token_ttl_secs,
        metrics: Some(metrics),
        files,
        clients: ClientSettings {
            max_devices: config.max_devices_per_user.max(1),
            window: config.delivery_window.max(1),
            ping_secs: config.client_ping_secs.max(1),
            idle_secs: config.client_idle_secs.max(1),
            write_secs: config.client_write_secs.max(1),
            ..ClientSettings::default()
        },
        shutdown: stop_rx.clone(),
    });
    // A machine-readable line on stdout: tests and scripts wait for it.
    println!("chatd listening on http://{addr}");
    std::io::stdout().flush()?;
    tracing::info!(%addr, data_dir = %config.data_dir.display(), "chatd started");

    let web = chatd_api::DefaultAppInfo {
        org_name: default_app.app.org_name.clone(),
        app_name: default_app.app.app_name.clone(),
        app_id: default_app.app.app_id.clone(),
    };
    let options = crate::http_server::HttpOptions {
        idle: (config.http_idle_secs > 0).then(|| Duration::from_secs(config.http_idle_secs)),
    };
    let server = crate::http_server::serve(
        listener,
        chatd_api::service(state, web),
        options,
        async move {
            shutdown_signal().await;
            let _ = stop_tx.send(true);
        },
    );
    let grace = Duration::from_secs(config.shutdown_grace_secs);
    let mut stopping = stop_rx;
    tokio::select! {
        () = server => {}
        _ = async {
            let _ = stopping.wait_for(|s| *s).await;
            tokio::time::sleep(grace).await;
        } => tracing::warn!("shutdown grace period over; closing remaining connections"),
    }
    // Client connections close on the same signal; give them a moment to
    // save their acknowledged positions before storage closes.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    while delivery.connections().total() > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    push.shutdown(Duration::from_secs(2)).await;
    tracing::info!("flushing storage");
    store.close().await;
    tracing::info!("chatd stopped");
    Ok(())
}

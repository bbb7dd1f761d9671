//! `repute serve`: the reputation service (hashlookup, native and Safe Browsing APIs), a
//! caching proxy in front of upstream services, or both.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use repute_service::{Backend, Config, Service};

use crate::Outcome;

/// Serve lookups over HTTP: the hashlookup API, the native API, a Safe Browsing subset.
///
/// With a snapshot and no upstream, the service is authoritative (a private reputation
/// service). With `--upstream`, misses go to the upstreams in order, and their answers are
/// cached; without a snapshot it is a pure caching proxy. Listens on 127.0.0.1:13111 by
/// default (loopback only: pass `--listen 0.0.0.0:13111` to serve the network).
///
/// SIGHUP re-reads the snapshot, keys and policy files; SIGTERM or Ctrl-C stop accepting
/// connections and let in-flight requests finish. The keys file is re-read when it changes,
/// and the snapshot when `repute update` installs a new one in the state directory (or a
/// new file is renamed over the snapshot file).
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  repute serve bad.snap
  repute serve bad.snap --listen 0.0.0.0:13111 --keys /etc/repute/keys
  repute serve --upstream http://ksn.internal:13111 --upstream hashlookup+https://hashlookup.circl.lu
  repute serve --config /etc/repute/serve.toml")]
pub struct ServeArgs {
    /// Snapshot file or update state directory to answer from (default: none, or the
    /// config file's `snapshot`).
    snapshot: Option<PathBuf>,
    /// Address to listen on (default 127.0.0.1:13111; 127.0.0.1:17111 with TLS).
    #[arg(long)]
    listen: Option<std::net::SocketAddr>,
    /// Upstream service, repeatable, tried in order: http(s)://HOST:PORT for another repute
    /// service, hashlookup+https://HOST for a hashlookup server.
    #[arg(long = "upstream", value_name = "URL")]
    upstream: Vec<String>,
    /// Keys file: every request except /healthz then needs a key (see `repute apikey`).
    #[arg(long, value_name = "FILE")]
    keys: Option<PathBuf>,
    /// Policy file (TOML or JSON) restricting upstream traffic.
    #[arg(long, value_name = "FILE")]
    policy: Option<PathBuf>,
    /// TOML configuration file; flags override it.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// TLS certificate chain (PEM).
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// TLS private key (PEM).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Accept anonymous statistics (`POST /v1/statistics`) into this SQLite database of
    /// per-day aggregates (created if missing). Without it the intake answers 404.
    #[arg(long, value_name = "FILE")]
    stats_db: Option<PathBuf>,
    /// Accept wanted samples (`POST /v1/samples/SHA256`) into this directory (needs
    /// `--stats-db`); files are stored by digest, never executed or unpacked.
    #[arg(long, value_name = "DIR", requires = "stats_db")]
    samples_dir: Option<PathBuf>,
    /// Largest sample accepted.
    #[arg(long, value_name = "BYTES", default_value_t = 32 << 20)]
    sample_max_bytes: u64,
    /// Total bytes of samples kept.
    #[arg(long, value_name = "BYTES", default_value_t = 4 << 30)]
    samples_quota: u64,
    /// Also want samples of unknown SHA-256 digests reported by at least K distinct
    /// reporters on one day (besides the publisher's list in the database).
    #[arg(long, value_name = "K", requires = "samples_dir")]
    wanted_min_reporters: Option<u32>,
    /// Relay closed days' statistics aggregates to this service's `POST /v1/statistics`
    /// (needs `--stats-db`); agents' addresses and tokens stay here.
    #[arg(long, value_name = "URL", requires = "stats_db")]
    stats_upstream: Option<String>,
    /// Mirror an update channel at /v1/updates/: a directory (what `repute publish --dir`
    /// writes) or an http(s):// channel, fetched on demand into --updates-cache.
    #[arg(long, value_name = "DIR|URL")]
    updates: Option<String>,
    /// Where a mirrored http(s):// channel's files are kept.
    #[arg(long, value_name = "DIR")]
    updates_cache: Option<PathBuf>,
    /// How often to check the snapshot file or state directory for a new snapshot, in
    /// milliseconds (0: only on SIGHUP; default 1000 or the config file's
    /// `watch_interval_ms`).
    #[arg(long, value_name = "MS")]
    watch_interval_ms: Option<u64>,
    /// Load the snapshot into 2 MiB pages instead of mapping it (or the config file's
    /// `huge_pages = true`): a private copy the size of the files, read at start and at each
    /// reload, that makes known-key lookups on snapshots of hundreds of MB faster.
    #[arg(long)]
    huge_pages: bool,
}

pub fn run(args: ServeArgs) -> Result<Outcome> {
    let mut config = match &args.config {
        Some(path) => Config::from_file(path)?,
        None => Config::default(),
    };
    if args.snapshot.is_some() {
        config.snapshot = args.snapshot;
    }
    if args.listen.is_some() {
        config.listen = args.listen;
    }
    if !args.upstream.is_empty() {
        config.upstream = args.upstream;
    }
    config.keys = args.keys.or(config.keys);
    config.policy = args.policy.or(config.policy);
    config.tls_cert = args.tls_cert.or(config.tls_cert);
    config.tls_key = args.tls_key.or(config.tls_key);
    config.statistics_upstream = args.stats_upstream.or(config.statistics_upstream);
    config.updates = args.updates.or(config.updates);
    config.updates_cache = args.updates_cache.or(config.updates_cache);
    config.huge_pages |= args.huge_pages;
    if let Some(ms) = args.watch_interval_ms {
        config.watch_interval_ms = ms;
    }
    config.validate()?;
    if let Some(db) = &args.stats_db {
        let store = repute_stats::StatsStore::open(db)
            .with_context(|| format!("cannot open the statistics database {}", db.display()))?;
        let samples = match &args.samples_dir {
            Some(dir) => Some(std::sync::Mutex::new(
                repute_stats::SampleStore::open(dir, args.sample_max_bytes, args.samples_quota)
                    .with_context(|| {
                        format!("cannot open the samples directory {}", dir.display())
                    })?,
            )),
            None => None,
        };
        repute_service::statistics::install(repute_service::statistics::StatisticsIntake {
            store: std::sync::Mutex::new(store),
            samples,
            limits: repute_stats::Limits::default(),
            wanted_min_reporters: args.wanted_min_reporters,
        });
    }
    anyhow::ensure!(
        config.snapshot.is_some() || !config.upstream.is_empty() || config.updates.is_some(),
        "nothing to serve: give a snapshot, an --upstream, or both (or --updates to mirror a channel)"
    );

    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("REPUTE_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .try_init();

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(serve(config))?;
    Ok(Outcome::Clean)
}

async fn serve(config: Config) -> Result<()> {
    let backend = match &config.snapshot {
        Some(path) => Backend::open_with(
            path,
            repute::EngineOptions::default().with_huge_pages(config.huge_pages),
        )?,
        None => Backend::empty(),
    };
    let tls = match (&config.tls_cert, &config.tls_key) {
        (Some(c), Some(k)) => Some(repute_service::server::tls_acceptor(c, k)?),
        _ => None,
    };
    let addr = config.listen_addr();
    let service = Service::new(config, backend)?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    let local = listener.local_addr()?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    // The one line scripts wait for (tests read the port from it).
    eprintln!("repute serve: listening on {scheme}://{local}");
    tracing::info!(mode = %service.status()["mode"], "serving");

    // A new snapshot in the state directory (or a renamed-in file) is picked up by the
    // watch; SIGHUP reloads everything at once; the keys file is also watched.
    let _watch = service.spawn_watch();
    let _relay = repute_service::statistics::spawn_relay(&service);
    {
        let service = service.clone();
        tokio::spawn(async move {
            let Ok(mut hup) =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
            else {
                return;
            };
            while hup.recv().await.is_some() {
                match service.reload() {
                    Ok(()) => tracing::info!("reloaded"),
                    Err(e) => {
                        tracing::error!(error = %format!("{e:#}"), "reload failed; still serving the old state")
                    }
                }
            }
        });
    }
    if service.keys.is_some() {
        let service = service.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(2));
            loop {
                tick.tick().await;
                if let Some(keys) = &service.keys {
                    match keys.reload_if_changed() {
                        Ok(true) => tracing::info!(keys = keys.len(), "keys file reloaded"),
                        Ok(false) => {}
                        Err(e) => {
                            tracing::error!(error = %format!("{e:#}"), "keys file invalid; keeping the old keys")
                        }
                    }
                }
            }
        });
    }
    let shutdown = async {
        let term = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            () = term => {}
        }
        tracing::info!("shutting down: finishing in-flight requests");
    };
    repute_service::server::serve(listener, service, tls, shutdown, Duration::from_secs(30)).await
}

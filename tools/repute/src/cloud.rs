//! `repute cloud`: taking part in the reputation cloud; and the cloud options `lookup` and
//! `scan` share.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use repute_client::participation::{config_dir, consent_text, Queue, Settings};
use repute_client::{CloudClient, CloudOptions};
use repute_stats::{Day, DigestType, ReportedVerdict};

use crate::Outcome;

/// Cloud lookups: what the snapshot does not know is asked of a `repute serve` service.
#[derive(Debug, Clone, Args)]
pub struct CloudLookupArgs {
    /// Ask this service about what the snapshot does not know (repeatable: tried in order;
    /// default: the services in the configuration file).
    #[arg(long = "cloud", value_name = "URL")]
    pub cloud: Vec<String>,
    /// Ask by range (the first 5 hex digits) instead of by digest, so the service never
    /// learns which digests this machine has. URLs and domains are then not asked.
    #[arg(long)]
    pub private_lookups: bool,
    /// Do not ask the cloud, whatever the configuration file says.
    #[arg(long, conflicts_with = "cloud")]
    pub no_cloud: bool,
    /// Timeout of one cloud request, milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 3000)]
    pub cloud_timeout: u64,
    /// Time the whole command may spend on the cloud, milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 10_000)]
    pub cloud_budget: u64,
}

/// The settings file's directory and contents (defaults when there is none).
pub fn settings() -> Result<(Option<PathBuf>, Settings)> {
    let Some(dir) = config_dir() else {
        return Ok((None, Settings::default()));
    };
    let settings = Settings::load(&dir).context("cannot read the repute configuration")?;
    Ok((Some(dir), settings))
}

/// The cloud client these options and the configuration ask for, if any.
pub fn client(args: &CloudLookupArgs, settings: &Settings) -> Option<CloudClient> {
    if args.no_cloud {
        return None;
    }
    let services = if args.cloud.is_empty() {
        settings.cloud.services.clone()
    } else {
        args.cloud.clone()
    };
    if services.is_empty() {
        return None;
    }
    let mut options = CloudOptions::new(services);
    options.private_lookups = args.private_lookups || settings.cloud.private_lookups;
    options.api_key = settings.cloud.api_key.clone();
    options.timeout = Duration::from_millis(args.cloud_timeout.max(1));
    options.budget.max_time = Duration::from_millis(args.cloud_budget.max(1));
    Some(CloudClient::new(options))
}

/// Prints the cloud's one-line status on standard error when it is not plainly enabled.
pub fn print_status(client: &CloudClient) {
    if let Some(line) = client.status().line() {
        let _ = writeln!(std::io::stderr(), "{line}");
    }
}

pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// An agent's participation during one command: sightings are queued, and sent when due.
pub struct Participation {
    dir: PathBuf,
    settings: Settings,
    queue: Queue,
    today: Day,
    sequence: u64,
}

impl Participation {
    /// Participation if the user joined.
    pub fn load(dir: Option<&PathBuf>, settings: &Settings, sequence: u64) -> Option<Self> {
        let dir = dir?;
        if !settings.participation.enabled {
            return None;
        }
        Some(Participation {
            dir: dir.clone(),
            settings: settings.clone(),
            queue: Queue::load(dir),
            today: Day::from_unix(now()),
            sequence,
        })
    }

    /// Whether samples the service asks for may be uploaded, and their cap.
    pub fn samples(&self) -> Option<u64> {
        self.settings
            .participation
            .samples
            .then_some(self.settings.participation.max_sample_bytes)
    }

    /// Queues one sighting of a file the snapshot detected or did not know.
    pub fn record(&mut self, sha256: &str, verdict: repute::Verdict) {
        let verdict = match verdict {
            repute::Verdict::Malicious => ReportedVerdict::Malicious,
            repute::Verdict::Suspicious => ReportedVerdict::Suspicious,
            repute::Verdict::Unknown => ReportedVerdict::Unknown,
            _ => return,
        };
        let _ = self.queue.record(
            self.today,
            self.sequence,
            DigestType::Sha256,
            sha256,
            verdict,
        );
    }

    /// Saves the queue and sends it if due. Problems are one line on standard error.
    pub fn finish(mut self) {
        let due = self
            .queue
            .due(now(), self.settings.participation.interval_minutes);
        if due {
            if let Some(service) = self.settings.statistics_service() {
                let mut options = CloudOptions::new(vec![service.to_string()]);
                options.api_key = self.settings.cloud.api_key.clone();
                options.timeout = Duration::from_secs(3);
                options.budget.max_requests = 4;
                options.budget.max_time = Duration::from_secs(5);
                let client = CloudClient::new(options);
                let outcome = self.queue.send(&client, self.today, now());
                if let Some(e) = outcome.errors.first() {
                    let _ = writeln!(std::io::stderr(), "cloud: statistics not sent ({e})");
                }
            }
        }
        if let Err(e) = self.queue.save(&self.dir) {
            let _ = writeln!(std::io::stderr(), "cloud: cannot queue statistics ({e})");
        }
    }
}

/// Take part in the reputation cloud: share anonymous statistics (off by default).
///
/// `join` shows exactly what is shared and asks for consent (non-interactively it needs
/// --yes); `leave` stops and deletes the reports not yet sent; `status` shows the
/// settings. With --dry-run, nothing changes and the JSON reports that would be sent now
/// are printed, one per line, exactly as sent (before compression).
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  repute cloud join --service http://proxy.lan:13111
  repute cloud join --service http://proxy.lan:13111 --samples --yes
  repute cloud status --dry-run
  repute cloud leave")]
pub struct CloudArgs {
    #[command(subcommand)]
    action: CloudAction,
}

#[derive(Debug, Subcommand)]
enum CloudAction {
    /// Start sharing statistics (and, with --samples, the files the service asks for).
    Join(JoinArgs),
    /// Stop sharing; delete the reports not yet sent.
    Leave(CommonArgs),
    /// Show the settings and what is queued.
    Status(CommonArgs),
}

#[derive(Debug, Args)]
struct CommonArgs {
    /// Print the JSON reports that would be sent now; change nothing.
    #[arg(long)]
    dry_run: bool,
}

#[derive(Debug, Args)]
struct JoinArgs {
    /// The service statistics go to (default: the first cloud service configured).
    #[arg(long, value_name = "URL")]
    service: Option<String>,
    /// Also upload the files the service asks for ("repute:wanted"), up to the size cap.
    #[arg(long)]
    samples: bool,
    /// Consent without asking (needed when standard input is not a terminal).
    #[arg(long)]
    yes: bool,
    /// Show what would be shared and the reports that would be sent; change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Minutes between two sends.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=10_080))]
    interval: Option<u32>,
}

fn print_pending(queue: &mut Queue) -> Result<()> {
    let mut out = std::io::stdout().lock();
    for report in queue.pending(Day::from_unix(now())) {
        serde_json::to_writer(&mut out, &report)?;
        writeln!(out)?;
    }
    out.flush()?;
    Ok(())
}

pub fn run(args: CloudArgs) -> Result<Outcome> {
    let Some(dir) = config_dir() else {
        bail!("no configuration directory: set XDG_CONFIG_HOME or HOME");
    };
    let mut settings = Settings::load(&dir)?;
    let mut queue = Queue::load(&dir);
    match args.action {
        CloudAction::Join(a) => {
            let service = a
                .service
                .clone()
                .or_else(|| settings.statistics_service().map(str::to_string));
            let Some(service) = service else {
                bail!(
                    "no service: give --service URL (or a [cloud] services entry in {})",
                    Settings::path(&dir).display()
                );
            };
            let interval = a
                .interval
                .unwrap_or(settings.participation.interval_minutes);
            let mut err = std::io::stderr().lock();
            write!(err, "{}", consent_text(&service, a.samples, interval))?;
            if a.dry_run {
                drop(err);
                return print_pending(&mut queue).map(|()| Outcome::Clean);
            }
            if !a.yes {
                if !std::io::stdin().is_terminal() {
                    bail!("consent needed: run interactively, or add --yes to agree non-interactively");
                }
                write!(err, "Share this? [y/N] ")?;
                err.flush()?;
                let mut answer = String::new();
                std::io::stdin().lock().read_line(&mut answer)?;
                if !matches!(answer.trim(), "y" | "Y" | "yes" | "YES" | "Yes") {
                    writeln!(err, "Not joined.")?;
                    return Ok(Outcome::Clean);
                }
            }
            settings.participation.enabled = true;
            settings.participation.service = Some(service.clone());
            settings.participation.samples = a.samples;
            settings.participation.interval_minutes = interval;
            settings.save(&dir)?;
            writeln!(
                err,
                "Joined: statistics go to {service} (settings in {}).",
                Settings::path(&dir).display()
            )?;
        }
        CloudAction::Leave(a) => {
            if a.dry_run {
                return print_pending(&mut queue).map(|()| Outcome::Clean);
            }
            settings.participation.enabled = false;
            settings.participation.samples = false;
            settings.save(&dir)?;
            let deleted = Queue::delete(&dir)?;
            eprintln!(
                "Left the reputation cloud{}.",
                if deleted {
                    "; unsent reports deleted"
                } else {
                    ""
                }
            );
        }
        CloudAction::Status(a) => {
            if a.dry_run {
                return print_pending(&mut queue).map(|()| Outcome::Clean);
            }
            let p = &settings.participation;
            let pending = queue.pending(Day::from_unix(now()));
            let items: usize = pending.iter().map(|r| r.items.len()).sum();
            let mut out = std::io::stdout().lock();
            writeln!(
                out,
                "participation: {}",
                if p.enabled { "on" } else { "off" }
            )?;
            writeln!(
                out,
                "service: {}",
                settings.statistics_service().unwrap_or("-")
            )?;
            writeln!(
                out,
                "samples: {}",
                if p.enabled && p.samples { "on" } else { "off" }
            )?;
            writeln!(out, "interval: {} minutes", p.interval_minutes)?;
            writeln!(
                out,
                "queued: {} reports, {items} items, {} dropped",
                pending.len(),
                queue.dropped()
            )?;
            writeln!(
                out,
                "cloud lookups: {}",
                if settings.cloud.services.is_empty() {
                    "-".to_string()
                } else {
                    settings.cloud.services.join(", ")
                }
            )?;
            writeln!(out, "settings: {}", Settings::path(&dir).display())?;
        }
    }
    Ok(Outcome::Clean)
}

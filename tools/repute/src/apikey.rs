//! `repute apikey`: make an API key for `repute serve --keys`.

use std::io::Write;

use anyhow::Result;
use clap::Args;

use crate::Outcome;

/// Print a new API key and the line to add to the keys file.
///
/// The key itself is printed once, on the first line: give it to the client. The second
/// line holds only its SHA-256, with the name and optional rate: append it to the keys file
/// (the service re-reads the file when it changes).
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  repute apikey soc-proxy
  repute apikey branch-office --rate 100/s | tail -1 >> /etc/repute/keys")]
pub struct ApikeyArgs {
    /// Who the key is for (one word: letters, digits, - _ .).
    name: String,
    /// Request rate for this key: N/s, N/min or N/h (default: unlimited).
    #[arg(long)]
    rate: Option<String>,
}

pub fn run(args: ApikeyArgs) -> Result<Outcome> {
    anyhow::ensure!(
        !args.name.is_empty()
            && args
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)),
        "key name {:?}: use letters, digits, '-', '_' and '.'",
        args.name
    );
    if let Some(r) = &args.rate {
        repute_service::keys::Rate::parse(r)?;
    }
    let key = repute_service::keys::generate_key()?;
    let line = repute_service::keys::key_line(&args.name, &key, args.rate.as_deref());
    let mut out = std::io::stdout().lock();
    writeln!(out, "{key}")?;
    writeln!(out, "{line}")?;
    Ok(Outcome::Clean)
}

//! `repute completions SHELL` and `repute man`: shell completion scripts and man pages,
//! generated from the same clap definitions that parse the command line.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, CommandFactory};
use clap_complete::Shell;

use crate::Outcome;

/// Print a shell completion script for bash, zsh, fish, elvish or powershell.
///
/// Install it where the shell looks, for example:
///   repute completions bash > /etc/bash_completion.d/repute
///   repute completions zsh > ~/.zfunc/_repute    (with ~/.zfunc in $fpath)
///   repute completions fish > ~/.config/fish/completions/repute.fish
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct CompletionsArgs {
    /// The shell.
    #[arg(value_enum)]
    shell: Shell,
}

/// Print the man page, or write one page per subcommand into a directory.
///
/// `repute man > repute.1` gives the main page; `repute man --dir man1` writes repute.1 and
/// repute-SUBCOMMAND.1 for every subcommand (then `man -l man1/repute-scan.1`).
#[derive(Debug, Args)]
pub struct ManArgs {
    /// Write repute.1 and one repute-SUBCOMMAND.1 per subcommand into this directory.
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
}

pub fn run_completions<C: CommandFactory>(args: CompletionsArgs) -> Result<Outcome> {
    let mut command = C::command();
    let name = command.get_name().to_string();
    let mut out = std::io::stdout().lock();
    clap_complete::generate(args.shell, &mut command, name, &mut out);
    out.flush()?;
    Ok(Outcome::Clean)
}

pub fn run_man<C: CommandFactory>(args: ManArgs) -> Result<Outcome> {
    let command = C::command();
    match args.dir {
        None => {
            let mut out = std::io::stdout().lock();
            clap_mangen::Man::new(command).render(&mut out)?;
            out.flush()?;
        }
        Some(dir) => {
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            clap_mangen::generate_to(command, &dir)
                .with_context(|| format!("cannot write man pages into {}", dir.display()))?;
        }
    }
    Ok(Outcome::Clean)
}

//! `repute-gen`: writes a deterministic, realistic feed to standard output or a file.
//!
//! ```text
//! repute-gen FORMAT --lines N [--seed S] [-o FILE]
//! ```
//!
//! Exit status: 0 on success (a closed pipe included), 1 when the output cannot be written,
//! 2 on bad arguments.

use std::fs::File;
use std::io::{self, Write};
use std::process::ExitCode;

use repute_gen::{write_feed, Format};

const USAGE: &str = "usage: repute-gen FORMAT --lines N [--seed S] [-o FILE]";

fn help() -> String {
    let names: Vec<&str> = Format::ALL.iter().map(|f| f.name()).collect();
    format!(
        "repute-gen {version}: writes a deterministic, realistic threat feed

{USAGE}

The same FORMAT, N and S always write the same bytes.

FORMAT is one of: {formats}

Options:
  -n, --lines N        number of records (key-bearing lines) to write; required
  -s, --seed S         seed, decimal or 0x-prefixed hex [default: 1]
  -o, --output FILE    write to FILE instead of standard output
  -h, --help           print this help
  -V, --version        print the version

Exit status: 0 on success, 1 when the output cannot be written, 2 on bad arguments.",
        version = env!("CARGO_PKG_VERSION"),
        formats = names.join(", "),
    )
}

/// What the command line asks for.
#[derive(Debug, PartialEq, Eq)]
enum Command {
    Help,
    Version,
    Generate {
        format: Format,
        lines: u64,
        seed: u64,
        output: Option<String>,
    },
}

fn parse_number(option: &str, value: &str) -> Result<u64, String> {
    let digits: String = value.chars().filter(|&c| c != '_').collect();
    let parsed = match digits
        .strip_prefix("0x")
        .or_else(|| digits.strip_prefix("0X"))
    {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => digits.parse::<u64>(),
    };
    parsed.map_err(|_| {
        format!(
            "{option} expects a non-negative integer up to {}, found {value:?}",
            u64::MAX
        )
    })
}

fn parse_args(args: &[String]) -> Result<Command, String> {
    let mut format = None;
    let mut lines = None;
    let mut seed = None;
    let mut output = None;
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n, Some(v.to_string())),
            _ => (arg.as_str(), None),
        };
        let mut value = |slot_name: &str| -> Result<String, String> {
            match &inline {
                Some(v) => Ok(v.clone()),
                None => rest
                    .next()
                    .cloned()
                    .ok_or_else(|| format!("{slot_name} needs a value")),
            }
        };
        match name {
            "-h" | "--help" => return Ok(Command::Help),
            "-V" | "--version" => return Ok(Command::Version),
            "-n" | "--lines" => {
                let v = value(name)?;
                if lines.replace(parse_number(name, &v)?).is_some() {
                    return Err(format!("{name} given more than once"));
                }
            }
            "-s" | "--seed" => {
                let v = value(name)?;
                if seed.replace(parse_number(name, &v)?).is_some() {
                    return Err(format!("{name} given more than once"));
                }
            }
            "-o" | "--output" => {
                let v = value(name)?;
                if v.is_empty() {
                    return Err(format!("{name} needs a file name"));
                }
                if output.replace(v).is_some() {
                    return Err(format!("{name} given more than once"));
                }
            }
            _ if name.starts_with('-') && name != "-" => {
                return Err(format!("unknown option {name:?}"));
            }
            _ => {
                if inline.is_some() {
                    return Err(format!("unexpected argument {arg:?}"));
                }
                let parsed = arg.parse::<Format>().map_err(|e| e.to_string())?;
                if format.replace(parsed).is_some() {
                    return Err(format!("unexpected argument {arg:?}: FORMAT given already"));
                }
            }
        }
    }
    Ok(Command::Generate {
        format: format.ok_or("missing FORMAT")?,
        lines: lines.ok_or("missing --lines N")?,
        seed: seed.unwrap_or(1),
        output,
    })
}

fn run(format: Format, lines: u64, seed: u64, output: Option<&str>) -> Result<(), String> {
    match output {
        None => {
            let stdout = io::stdout();
            let mut lock = stdout.lock();
            match write_feed(&mut lock, format, lines, seed) {
                Ok(()) => Ok(()),
                // A reader that stops early (`| head`) is not a failure.
                Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
                Err(e) => Err(format!("cannot write to standard output: {e}")),
            }
        }
        Some(path) => {
            let mut file =
                File::create(path).map_err(|e| format!("cannot create {path:?}: {e}"))?;
            write_feed(&mut file, format, lines, seed)
                .and_then(|()| file.sync_all())
                .map_err(|e| format!("cannot write {path:?}: {e}"))
        }
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = match std::env::args_os()
        .skip(1)
        .map(|a| a.into_string())
        .collect::<Result<_, _>>()
    {
        Ok(args) => args,
        Err(bad) => {
            eprintln!("repute-gen: argument {bad:?} is not valid UTF-8\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match parse_args(&args) {
        Ok(Command::Help) => {
            let _ = writeln!(io::stdout(), "{}", help());
            ExitCode::SUCCESS
        }
        Ok(Command::Version) => {
            let _ = writeln!(io::stdout(), "repute-gen {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Ok(Command::Generate {
            format,
            lines,
            seed,
            output,
        }) => match run(format, lines, seed, output.as_deref()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("repute-gen: error: {e}");
                ExitCode::from(1)
            }
        },
        Err(e) => {
            eprintln!("repute-gen: error: {e}\n{USAGE}\nTry 'repute-gen --help' for more.");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Command, String> {
        parse_args(&args.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn accepts_the_documented_forms() {
        let expected = Command::Generate {
            format: Format::Urls,
            lines: 1000,
            seed: 255,
            output: Some("out.txt".into()),
        };
        assert_eq!(
            parse(&["urls", "--lines", "1000", "--seed", "0xff", "-o", "out.txt"]),
            Ok(expected)
        );
        assert_eq!(
            parse(&["--lines=1_000", "-s", "255", "--output=out.txt", "urls"]),
            parse(&["urls", "-n", "1000", "--seed", "255", "-o", "out.txt"])
        );
        assert_eq!(
            parse(&["hosts", "-n", "5"]),
            Ok(Command::Generate {
                format: Format::Hosts,
                lines: 5,
                seed: 1,
                output: None
            })
        );
        assert_eq!(parse(&["--help"]), Ok(Command::Help));
        assert_eq!(parse(&["hosts", "-V"]), Ok(Command::Version));
    }

    #[test]
    fn rejects_bad_arguments_with_a_reason() {
        for (args, reason) in [
            (&["--lines", "5"][..], "missing FORMAT"),
            (&["hashes"][..], "missing --lines"),
            (&["csv", "--lines", "5"][..], "unknown feed format"),
            (&["hashes", "--lines"][..], "needs a value"),
            (&["hashes", "--lines", "-3"][..], "non-negative integer"),
            (&["hashes", "--lines", "ten"][..], "non-negative integer"),
            (
                &["hashes", "-n", "99999999999999999999"][..],
                "non-negative",
            ),
            (&["hashes", "-n", "1", "-n", "2"][..], "more than once"),
            (&["hashes", "urls", "-n", "1"][..], "FORMAT given already"),
            (&["hashes", "-n", "1", "--colour"][..], "unknown option"),
            (&["hashes", "-n", "1", "-o", ""][..], "needs a file name"),
            (&["hashes", "-n", "1", "--seed", "0xzz"][..], "--seed"),
        ] {
            let err = parse(args).unwrap_err();
            assert!(err.contains(reason), "{args:?}: {err}");
        }
    }
}

//! Deterministic generator of realistic threat feeds, for repute's tests, benches and sample
//! data.
//!
//! Everything derives from one `u64` seed through a PRNG written out in this crate
//! (xoshiro256** seeded by SplitMix64), and the crate has no dependencies: the same seed gives
//! the same bytes on every platform, with every version of every other crate.
//!
//! - [`Generator`] draws single values: digests (`[u8; N]` or hex), domains, IPv4 addresses,
//!   URLs, threat names, categories, distribution file paths.
//! - [`Format`] names the feed formats repute reads (`hashes`, `md5sum`, `sha1sum`,
//!   `sha256sum`, `domains`, `urls`, `hosts`).
//! - [`lines`] generates a feed line by line, each [`FeedLine`] with the key it carries;
//!   [`write_feed`] writes those lines and [`keys`] yields exactly their keys, in order, as
//!   an oracle for what a snapshot built from the feed must contain.
//!
//! The output for a given seed is part of this crate's contract: the committed sample feeds
//! and other crates' tests depend on it. Changing any generation rule changes it.
//!
//! ```
//! use repute_gen::{keys, write_feed, Format};
//!
//! let mut feed = Vec::new();
//! write_feed(&mut feed, Format::Hashes, 100, 7)?;
//! let digests: Vec<String> = keys(Format::Hashes, 100, 7).collect();
//! assert_eq!(digests.len(), 100);
//! let text = String::from_utf8(feed).unwrap();
//! assert!(text.contains(&digests[0]));
//! # Ok::<(), std::io::Error>(())
//! ```

#![deny(unsafe_code)]
#![warn(missing_docs)]

mod feed;
mod generator;
mod random;

pub use feed::{keys, lines, write_feed, FeedLine, FeedLines, Format, Keys, UnknownFormat};
pub use generator::{to_hex, Generator, CATEGORIES};

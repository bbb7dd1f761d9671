//! Scanning files: hash every regular file under some paths and look its digests up.
//!
//! [`hash_reader`] computes a file's MD5, SHA-1 and SHA-256 in one pass over its bytes and
//! returns them as [`FileDigests`] ([`hash_reader_kinds`] only the [`DigestKinds`] asked
//! for). [`lookup_file`] asks a [`Snapshot`] about the digests computed and keeps the
//! strongest answer (malicious > suspicious > trusted > known) as a [`DigestHit`].
//! [`Scanner`] puts both to work: configured once (symlinks, file systems, size limit,
//! exclusions, threads), its [`Scanner::scan`] walks paths recursively, hashes the regular
//! files on worker threads and hands one [`ScanEvent`] per file to a callback, then returns a
//! [`ScanSummary`].
//!
//! What the scanner guarantees:
//!
//! - **Files are read, never mapped.** A file truncated while mapped would kill the process
//!   with `SIGBUS`; a scanner reads files it does not control, so it uses buffered reads.
//! - **Bounded memory.** One read buffer per worker thread (256 KiB by default), and a
//!   bounded queue of paths between the walking thread and the workers.
//! - **Special files are never opened.** FIFOs, sockets and devices are skipped and counted
//!   (opening a FIFO blocks until a writer appears). Files are opened non-blocking and checked
//!   again after opening, so one swapped for a FIFO mid-scan does not hang the scan either.
//! - **A file that changes while read is an error**, not a digest of bytes that never
//!   existed together: its size and modification time are compared before and after, and no
//!   more than its size plus one byte is read.
//! - **The scan goes on.** Unreadable files and directories, and files that vanish, are
//!   reported as [`ScanEvent::Error`] and counted in [`ScanSummary::errors`].
//! - **A file is read as the walk saw it.** Without following symlinks, a file is opened
//!   with `O_NOFOLLOW`, and what was opened must be a regular file with the device and
//!   inode the walk saw: a file swapped for a symlink (or another file) between the walk and
//!   the read is reported as changed during the scan, an error, never read through the link.
//! - **Symlink loops end.** Symlinks are not followed unless asked; when they are, a link back
//!   to one of its own ancestors (or an ancestor of the scanned path, which would walk it
//!   again) is reported as [`SkipReason::SymlinkLoop`] and not entered.
//!
//! - **Only the digests that can answer are computed.** A scan hashes each file with the
//!   kinds its source lists ([`DigestSource::digest_kinds`]: a SHA-256-only snapshot costs
//!   one SHA-256 per file, not MD5 and SHA-1 too), plus those asked for with
//!   [`Scanner::also_compute`]. A digest not computed is absent from [`FileDigests`]
//!   ([`FileDigests::get`] is `None`): it could not have matched anything.
//!
//! The library never prints: what to show is the callback's business.
//!
//! ```no_run
//! use std::sync::atomic::{AtomicU64, Ordering};
//! use repute::scan::{ScanEvent, Scanner};
//! use repute::{Snapshot, Verdict};
//!
//! let snapshot = Snapshot::read("bad.snap")?;
//! let scanner = Scanner::new().exclude(["*.iso", "node_modules"])?.threads(2);
//! let malicious = AtomicU64::new(0);
//! let summary = scanner.scan(&snapshot, &["/srv/uploads"], |event| {
//!     if let ScanEvent::File(file) = event {
//!         if file.verdict() == Verdict::Malicious {
//!             malicious.fetch_add(1, Ordering::Relaxed);
//!         }
//!     }
//! });
//! assert_eq!(summary.malicious, malicious.into_inner());
//! # Ok::<(), repute::Error>(())
//! ```

pub mod archive;
pub mod bench;
mod hash;

use std::fs::{File, FileType};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use walkdir::WalkDir;

pub use archive::{ArchiveKind, ArchiveLimits};
pub use hash::{hash_reader, hash_reader_kinds, hash_slice, DigestKinds, FileDigests};

use crate::{DigestKind, Error, Record, Result, Snapshot, Verdict};

/// The read buffer of each worker thread, unless [`Scanner::buffer_size`] says otherwise.
pub const DEFAULT_BUFFER_SIZE: usize = 256 * 1024;

/// Paths queued per worker thread between the walk and the workers.
const QUEUE_PER_THREAD: usize = 4;

/// Anything that answers digest lookups: a [`Snapshot`], or an engine's [`crate::View`]
/// (base and deltas).
pub trait DigestSource {
    /// The record of one digest, when listed.
    fn lookup_digest(&self, digest: &crate::Digest) -> Option<Record<'_>>;

    /// The digest kinds that can have an answer: a scan computes only these (and those
    /// asked for with [`Scanner::also_compute`]). All three unless the source says better.
    fn digest_kinds(&self) -> DigestKinds {
        DigestKinds::ALL
    }
}

/// The kinds whose digest table in `snapshot` is not empty.
fn listed_kinds<D: AsRef<[u8]>>(snapshot: &Snapshot<D>) -> DigestKinds {
    DigestKind::ALL
        .into_iter()
        .filter(|kind| !snapshot.digest_table(*kind).is_empty())
        .collect()
}

impl<D: AsRef<[u8]>> DigestSource for Snapshot<D> {
    #[inline]
    fn lookup_digest(&self, digest: &crate::Digest) -> Option<Record<'_>> {
        Snapshot::lookup_digest(self, digest)
    }

    /// The kinds with a non-empty digest table.
    fn digest_kinds(&self) -> DigestKinds {
        listed_kinds(self)
    }
}

impl DigestSource for crate::View {
    #[inline]
    fn lookup_digest(&self, digest: &crate::Digest) -> Option<Record<'_>> {
        crate::View::lookup_digest(self, digest)
    }

    /// The kinds with a non-empty digest table in any layer (base or delta).
    fn digest_kinds(&self) -> DigestKinds {
        self.layers()
            .iter()
            .fold(DigestKinds::NONE, |kinds, layer| {
                kinds.union(listed_kinds(layer.snapshot()))
            })
    }
}

/// A digest of a file found in a snapshot: the record and which digest matched.
#[derive(Debug, Clone, Copy)]
pub struct DigestHit<'s> {
    /// The matching record.
    pub record: Record<'s>,
    /// Which of the file's digests matched.
    pub matched: DigestKind,
}

/// Looks up a file's digests (those computed) and returns the strongest answer. A record from an
/// override (allowlist) feed wins over every non-override record, whichever digest either
/// matched: an override on a file's SHA-256 beats a malicious MD5 of the same file. Otherwise
/// malicious > suspicious > trusted > known. When two digests give answers of equal
/// precedence, the longer digest (SHA-256, then SHA-1, then MD5) is reported as the match.
/// Never allocates.
pub fn lookup_file<'s, S: DigestSource + ?Sized>(
    snapshot: &'s S,
    digests: &FileDigests,
) -> Option<DigestHit<'s>> {
    let mut best: Option<DigestHit<'s>> = None;
    for kind in [DigestKind::Sha256, DigestKind::Sha1, DigestKind::Md5] {
        let Some(digest) = digests.get(kind) else {
            continue;
        };
        if let Some(record) = snapshot.lookup_digest(&digest) {
            // Lower ranks win: overrides first, then by verdict precedence.
            let rank = |r: &Record<'_>| (!r.is_override(), r.verdict().precedence());
            let stronger = best
                .as_ref()
                .is_none_or(|b| rank(&record) < rank(&b.record));
            if stronger {
                best = Some(DigestHit {
                    record,
                    matched: digest.kind(),
                });
            }
        }
    }
    best
}

/// A regular file (or a member of an archive) that was read and looked up.
#[derive(Debug, Clone)]
pub struct ScannedFile<'s> {
    /// The path as walked (relative when the scanned path was); for a member of an archive,
    /// `archive!member` (see [`archive`]).
    pub path: PathBuf,
    /// The file's digests; `digests.size` is its length.
    pub digests: FileDigests,
    /// What the snapshot says about it, when anything.
    pub hit: Option<DigestHit<'s>>,
    /// For an archive: the strongest hit among its members, nested ones included, rolled up
    /// onto the archive (see [`ScannedFile::verdict`]).
    pub contained: Option<ContainedHit<'s>>,
}

/// The strongest hit inside an archive, and the member it came from.
#[derive(Debug, Clone)]
pub struct ContainedHit<'s> {
    /// The member's hit.
    pub hit: DigestHit<'s>,
    /// The member's path (`archive!member`).
    pub member: PathBuf,
}

impl ScannedFile<'_> {
    /// The file's length in bytes.
    pub fn size(&self) -> u64 {
        self.digests.size
    }

    /// The verdict of the strongest hit, `Unknown` when there is none. For an archive the
    /// strongest of its own hit and its members' wins (malicious > suspicious > trusted >
    /// known), unless its own hit comes from an override feed: an override on the archive
    /// covers what it holds.
    pub fn verdict(&self) -> Verdict {
        let own = self.hit.as_ref().map(|h| h.record);
        if own.is_some_and(|r| r.is_override()) {
            return own.map_or(Verdict::Unknown, |r| r.verdict());
        }
        let inside = self.contained.as_ref().map(|c| c.hit.record.verdict());
        [own.map(|r| r.verdict()), inside]
            .into_iter()
            .flatten()
            .min_by_key(|v| v.precedence())
            .unwrap_or(Verdict::Unknown)
    }

    /// Whether the verdict comes from a member of the archive rather than the file itself.
    pub fn verdict_from_member(&self) -> bool {
        match (&self.hit, &self.contained) {
            (_, None) => false,
            (None, Some(_)) => true,
            (Some(own), Some(c)) => {
                !own.record.is_override()
                    && c.hit.record.verdict().precedence() < own.record.verdict().precedence()
            }
        }
    }
}

/// Why something the walk found was not read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SkipReason {
    /// A named pipe.
    Fifo,
    /// A Unix domain socket.
    Socket,
    /// A block device.
    BlockDevice,
    /// A character device.
    CharDevice,
    /// A symbolic link, not followed.
    Symlink,
    /// A symbolic link whose target does not exist (when following symlinks).
    BrokenSymlink,
    /// A symbolic link to one of its own ancestor directories, or to an ancestor of the
    /// scanned path (when following symlinks).
    SymlinkLoop,
    /// A file larger than the configured maximum.
    TooLarge {
        /// Its length in bytes.
        size: u64,
    },
    /// A path matching an exclusion glob (a directory is not entered).
    Excluded,
}

impl SkipReason {
    /// A short lower-case description.
    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::Fifo => "fifo",
            SkipReason::Socket => "socket",
            SkipReason::BlockDevice => "block device",
            SkipReason::CharDevice => "character device",
            SkipReason::Symlink => "symlink",
            SkipReason::BrokenSymlink => "broken symlink",
            SkipReason::SymlinkLoop => "symlink loop",
            SkipReason::TooLarge { .. } => "too large",
            SkipReason::Excluded => "excluded",
        }
    }

    /// Whether this is a special file: a FIFO, socket or device.
    pub fn is_special(self) -> bool {
        matches!(
            self,
            SkipReason::Fifo
                | SkipReason::Socket
                | SkipReason::BlockDevice
                | SkipReason::CharDevice
        )
    }
}

/// What the scan found at one path. Each regular file gives exactly one `File` or `Error`.
#[derive(Debug)]
#[non_exhaustive]
pub enum ScanEvent<'s> {
    /// A regular file was read and looked up.
    File(ScannedFile<'s>),
    /// Something was deliberately not read.
    Skipped {
        /// Its path.
        path: PathBuf,
        /// Why.
        reason: SkipReason,
    },
    /// A member of an archive was read and looked up (only with [`Scanner::archives`]).
    /// Every member comes before the archive's own [`ScanEvent::File`], which carries the
    /// strongest member's hit in [`ScannedFile::contained`].
    Member(ScannedFile<'s>),
    /// A limit stopped the look inside an archive here: a decompression bomb, too many
    /// members or bytes, or nesting too deep. Nothing past the limit was expanded.
    ArchiveLimit {
        /// The member or archive.
        path: PathBuf,
        /// Which limit, with the figures.
        reason: String,
    },
    /// An archive (or a member inside one) could not be read inside; the file's own digests
    /// were still taken and looked up.
    ArchiveDamaged {
        /// The archive or member.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },
    /// A file or directory could not be read, vanished, or changed while being read. The scan
    /// went on without it.
    Error {
        /// Its path.
        path: PathBuf,
        /// What went wrong. A file that changed while being read has kind
        /// [`io::ErrorKind::Other`] and says so in its message.
        error: io::Error,
    },
}

/// Counts for a whole scan.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScanSummary {
    /// Regular files read and looked up.
    pub files: u64,
    /// Bytes read from them.
    pub bytes: u64,
    /// Files whose strongest verdict was malicious.
    pub malicious: u64,
    /// Files whose strongest verdict was suspicious.
    pub suspicious: u64,
    /// Files whose strongest verdict was trusted.
    pub trusted: u64,
    /// Files whose strongest verdict was known.
    pub known: u64,
    /// Files not in the snapshot.
    pub unknown: u64,
    /// FIFOs, sockets and devices skipped.
    pub special: u64,
    /// Symbolic links not followed, broken, or looping.
    pub symlinks: u64,
    /// Files over the size limit.
    pub too_large: u64,
    /// Paths matching an exclusion glob.
    pub excluded: u64,
    /// Files and directories that could not be read (see [`ScanEvent::Error`]).
    pub errors: u64,
    /// Archive members read and looked up (not counted in `files` or the verdicts: an
    /// archive's rolled-up verdict is).
    pub members: u64,
    /// Archive members whose own verdict was malicious.
    pub malicious_members: u64,
    /// Limits reached inside archives (decompression bombs among them).
    pub archive_limits: u64,
    /// Archives that could not be read inside.
    pub archive_damaged: u64,
    /// Time from the start of the scan to its end.
    pub elapsed: Duration,
}

impl ScanSummary {
    /// The number of files with this verdict.
    pub fn verdict_count(&self, verdict: Verdict) -> u64 {
        match verdict {
            Verdict::Malicious => self.malicious,
            Verdict::Suspicious => self.suspicious,
            Verdict::Trusted => self.trusted,
            Verdict::Known => self.known,
            Verdict::Unknown => self.unknown,
        }
    }

    /// Whether every file the walk found was either read or deliberately skipped.
    pub fn is_complete(&self) -> bool {
        self.errors == 0
    }

    fn count(&mut self, event: &ScanEvent<'_>) {
        match event {
            ScanEvent::File(file) => {
                self.files += 1;
                self.bytes = self.bytes.saturating_add(file.size());
                match file.verdict() {
                    Verdict::Malicious => self.malicious += 1,
                    Verdict::Suspicious => self.suspicious += 1,
                    Verdict::Trusted => self.trusted += 1,
                    Verdict::Known => self.known += 1,
                    Verdict::Unknown => self.unknown += 1,
                }
            }
            ScanEvent::Skipped { reason, .. } => match reason {
                r if r.is_special() => self.special += 1,
                SkipReason::TooLarge { .. } => self.too_large += 1,
                SkipReason::Excluded => self.excluded += 1,
                _ => self.symlinks += 1,
            },
            ScanEvent::Error { .. } => self.errors += 1,
            ScanEvent::Member(member) => {
                self.members += 1;
                if member.verdict() == Verdict::Malicious {
                    self.malicious_members += 1;
                }
            }
            ScanEvent::ArchiveLimit { .. } => self.archive_limits += 1,
            ScanEvent::ArchiveDamaged { .. } => self.archive_damaged += 1,
        }
    }

    fn merge(&mut self, other: &ScanSummary) {
        self.files += other.files;
        self.bytes = self.bytes.saturating_add(other.bytes);
        self.malicious += other.malicious;
        self.suspicious += other.suspicious;
        self.trusted += other.trusted;
        self.known += other.known;
        self.unknown += other.unknown;
        self.special += other.special;
        self.symlinks += other.symlinks;
        self.too_large += other.too_large;
        self.excluded += other.excluded;
        self.errors += other.errors;
        self.members += other.members;
        self.malicious_members += other.malicious_members;
        self.archive_limits += other.archive_limits;
        self.archive_damaged += other.archive_damaged;
    }
}

/// Walks paths, hashes every regular file and looks it up; see the [module docs](self).
///
/// Configure with the builder methods, then call [`Scanner::scan`] as often as needed; a
/// `Scanner` holds only its options and is `Send + Sync`.
#[derive(Debug, Clone)]
pub struct Scanner {
    follow_symlinks: bool,
    one_file_system: bool,
    max_file_size: Option<u64>,
    exclude: GlobSet,
    threads: usize,
    buffer_size: usize,
    archives: Option<ArchiveLimits>,
    also_compute: DigestKinds,
}

impl Default for Scanner {
    fn default() -> Self {
        Scanner::new()
    }
}

impl Scanner {
    /// A scanner that does not follow symlinks, crosses file systems, reads files of any
    /// size, excludes nothing, and uses one thread per CPU.
    pub fn new() -> Self {
        Scanner {
            follow_symlinks: false,
            one_file_system: false,
            max_file_size: None,
            exclude: GlobSet::empty(),
            threads: 0,
            buffer_size: DEFAULT_BUFFER_SIZE,
            archives: None,
            also_compute: DigestKinds::NONE,
        }
    }

    /// Looks inside archives (zip, tar, gzip, zstd; nested ones too) within these limits,
    /// reporting each member as a [`ScanEvent::Member`] and rolling the strongest member's
    /// hit onto the archive; `None` (the default) treats archives as plain files. See
    /// [`archive`] for what the limits bound.
    pub fn archives(mut self, limits: Option<ArchiveLimits>) -> Self {
        self.archives = limits;
        self
    }

    /// Follows symbolic links to files and directories (loops are detected and skipped).
    /// The paths given to [`Scanner::scan`] are followed either way.
    pub fn follow_symlinks(mut self, yes: bool) -> Self {
        self.follow_symlinks = yes;
        self
    }

    /// Does not descend into directories on another file system than their scanned path.
    pub fn one_file_system(mut self, yes: bool) -> Self {
        self.one_file_system = yes;
        self
    }

    /// Skips files larger than this many bytes (`None`: no limit).
    pub fn max_file_size(mut self, bytes: Option<u64>) -> Self {
        self.max_file_size = bytes;
        self
    }

    /// Skips paths matching any of these globs (replacing earlier ones). A glob matches
    /// either the whole path as walked or its last component, so `*.iso` and `node_modules`
    /// exclude at any depth and `/proc/**` excludes one tree; `*` also matches `/`. A matching
    /// directory is not entered.
    ///
    /// # Errors
    ///
    /// [`Error::Query`] naming the first glob that does not parse.
    pub fn exclude<S: AsRef<str>>(mut self, globs: impl IntoIterator<Item = S>) -> Result<Self> {
        let mut set = GlobSetBuilder::new();
        for glob in globs {
            let glob = glob.as_ref();
            let parsed = GlobBuilder::new(glob)
                .backslash_escape(true)
                .build()
                .map_err(|e| Error::query(glob, format!("not an exclusion glob: {e}")))?;
            set.add(parsed);
        }
        self.exclude = set
            .build()
            .map_err(|e| Error::query("--exclude", e.to_string()))?;
        Ok(self)
    }

    /// Worker threads reading and hashing files (0: one per CPU).
    pub fn threads(mut self, threads: usize) -> Self {
        self.threads = threads;
        self
    }

    /// Each worker's read buffer in bytes (at least 4 KiB is used).
    pub fn buffer_size(mut self, bytes: usize) -> Self {
        self.buffer_size = bytes.max(4096);
        self
    }

    /// Computes these digest kinds of every file too, besides those the scanned source
    /// lists (the default: none more). A caller that reports digests, or sends them on to a
    /// service, asks here for the kinds it needs; [`DigestKinds::ALL`] gives all three.
    pub fn also_compute(mut self, kinds: DigestKinds) -> Self {
        self.also_compute = kinds;
        self
    }

    /// The digest kinds a scan of `source` computes.
    pub fn kinds_for<S: DigestSource + ?Sized>(&self, source: &S) -> DigestKinds {
        source.digest_kinds().union(self.also_compute)
    }

    fn worker_count(&self) -> usize {
        match self.threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        }
    }

    fn is_excluded(&self, path: &Path) -> bool {
        !self.exclude.is_empty()
            && (self.exclude.is_match(path)
                || path.file_name().is_some_and(|n| self.exclude.is_match(n)))
    }

    /// Scans each path (a file or a directory, walked recursively), calling `on_event` once
    /// for every regular file (read or failed) and every skipped entry, from several threads
    /// and in no particular order. Returns the counts when every worker is done.
    ///
    /// Errors about single files and directories are events, not a failed scan: check
    /// [`ScanSummary::is_complete`]. A path that does not exist is one such error.
    ///
    /// # Panics
    ///
    /// Only when `on_event` panics: the panic is passed on once the other threads have
    /// stopped.
    pub fn scan<'s, S, P, F>(&self, snapshot: &'s S, paths: &[P], on_event: F) -> ScanSummary
    where
        S: DigestSource + Sync + ?Sized,
        P: AsRef<Path>,
        F: Fn(ScanEvent<'s>) + Sync,
    {
        let start = Instant::now();
        let kinds = self.kinds_for(snapshot);
        let workers = self.worker_count();
        let (queue, jobs) = sync_channel::<Job>(workers.saturating_mul(QUEUE_PER_THREAD));
        let jobs = Mutex::new(jobs);
        let mut summary = std::thread::scope(|scope| {
            let mut handles = Vec::with_capacity(workers);
            for i in 0..workers {
                let spawned = std::thread::Builder::new()
                    .name(format!("repute-scan-{i}"))
                    .spawn_scoped(scope, || self.work(snapshot, kinds, &jobs, &on_event));
                match spawned {
                    Ok(handle) => handles.push(handle),
                    Err(_) => break,
                }
            }
            let mut reader = if handles.is_empty() {
                // No thread could be started: read files on this one.
                Dispatch::Inline(vec![0u8; self.buffer_size])
            } else {
                Dispatch::Queue(queue)
            };
            let mut summary = ScanSummary::default();
            for path in paths {
                self.walk(
                    path.as_ref(),
                    (snapshot, kinds),
                    &mut reader,
                    &on_event,
                    &mut summary,
                );
            }
            drop(reader);
            for handle in handles {
                match handle.join() {
                    Ok(part) => summary.merge(&part),
                    Err(panic) => std::panic::resume_unwind(panic),
                }
            }
            summary
        });
        summary.elapsed = start.elapsed();
        summary
    }

    /// Walks one scanned path on the calling thread, queueing regular files.
    fn walk<'s, S, F>(
        &self,
        root: &Path,
        (snapshot, kinds): (&'s S, DigestKinds),
        dispatch: &mut Dispatch,
        on_event: &F,
        summary: &mut ScanSummary,
    ) where
        S: DigestSource + ?Sized,
        F: Fn(ScanEvent<'s>),
    {
        let emit = |summary: &mut ScanSummary, event: ScanEvent<'s>| {
            summary.count(&event);
            on_event(event);
        };
        let mut entries = WalkDir::new(root)
            .follow_links(self.follow_symlinks)
            .same_file_system(self.one_file_system)
            .into_iter();
        while let Some(entry) = entries.next() {
            let entry = match entry {
                Ok(entry) => entry,
                Err(e) => {
                    let path = e.path().unwrap_or(root).to_path_buf();
                    let event = if e.loop_ancestor().is_some() {
                        ScanEvent::Skipped {
                            path,
                            reason: SkipReason::SymlinkLoop,
                        }
                    } else if is_broken_symlink(&path, &e) {
                        ScanEvent::Skipped {
                            path,
                            reason: SkipReason::BrokenSymlink,
                        }
                    } else {
                        ScanEvent::Error {
                            path,
                            error: io::Error::from(e),
                        }
                    };
                    emit(summary, event);
                    continue;
                }
            };
            let file_type = entry.file_type();
            if self.is_excluded(entry.path()) {
                if file_type.is_dir() {
                    entries.skip_current_dir();
                }
                let path = entry.into_path();
                emit(
                    summary,
                    ScanEvent::Skipped {
                        path,
                        reason: SkipReason::Excluded,
                    },
                );
                continue;
            }
            if file_type.is_dir() {
                continue;
            }
            if file_type.is_file() {
                // What the walk saw: the read must find the same file. The paths given to
                // `scan` are followed either way; below them, links only when asked.
                let seen = match entry.metadata() {
                    Ok(m) => FileIdentity::of(&m),
                    Err(e) => {
                        let path = entry.into_path();
                        emit(
                            summary,
                            ScanEvent::Error {
                                path,
                                error: io::Error::from(e),
                            },
                        );
                        continue;
                    }
                };
                let no_follow = !self.follow_symlinks && entry.depth() > 0;
                let job = Job {
                    path: entry.into_path(),
                    seen,
                    no_follow,
                };
                match dispatch {
                    Dispatch::Queue(queue) => {
                        if let Err(unsent) = queue.send(job) {
                            // Every worker has gone (only when one panicked): report the
                            // file rather than lose it; the panic is passed on at the join.
                            emit(
                                summary,
                                ScanEvent::Error {
                                    path: unsent.0.path,
                                    error: io::Error::other("scan worker stopped"),
                                },
                            );
                        }
                    }
                    Dispatch::Inline(buf) => {
                        self.scan_file((snapshot, kinds), job, buf, &mut |event| {
                            emit(summary, event)
                        });
                    }
                }
                continue;
            }
            let reason = special_kind(file_type).unwrap_or(SkipReason::Symlink);
            emit(
                summary,
                ScanEvent::Skipped {
                    path: entry.into_path(),
                    reason,
                },
            );
        }
    }

    /// A worker: takes paths from the queue until it closes.
    fn work<'s, S, F>(
        &self,
        snapshot: &'s S,
        kinds: DigestKinds,
        jobs: &Mutex<Receiver<Job>>,
        on_event: &F,
    ) -> ScanSummary
    where
        S: DigestSource + ?Sized,
        F: Fn(ScanEvent<'s>),
    {
        let mut buf = vec![0u8; self.buffer_size];
        let mut summary = ScanSummary::default();
        loop {
            let next = match jobs.lock() {
                Ok(receiver) => receiver.recv(),
                // Another worker panicked while holding the lock (it never does: the lock
                // is held only around `recv`); stop, and let the join report it.
                Err(_) => break,
            };
            let Ok(job) = next else { break };
            self.scan_file((snapshot, kinds), job, &mut buf, &mut |event| {
                summary.count(&event);
                on_event(event);
            });
        }
        summary
    }

    /// Reads, hashes and looks up one file the walk saw as regular: one `File`, `Skipped` or
    /// `Error` event, after the events of its members when it is an archive.
    fn scan_file<'s, S: DigestSource + ?Sized>(
        &self,
        (snapshot, kinds): (&'s S, DigestKinds),
        job: Job,
        buf: &mut [u8],
        emit: &mut dyn FnMut(ScanEvent<'s>),
    ) {
        let mut head = Head::default();
        let path = job.path;
        let event = match self.read_file(&path, (job.seen, job.no_follow), kinds, buf, &mut head) {
            Ok(FileRead::Digests(digests, identity)) => {
                let hit = lookup_file(snapshot, &digests);
                let contained = match (&self.archives, archive::archive_kind(head.bytes())) {
                    (Some(limits), Some(kind)) => self.scan_archive(
                        (snapshot, kinds),
                        &path,
                        (identity, job.no_follow),
                        kind,
                        digests.size,
                        limits,
                        buf,
                        emit,
                    ),
                    _ => None,
                };
                ScanEvent::File(ScannedFile {
                    path,
                    digests,
                    hit,
                    contained,
                })
            }
            Ok(FileRead::Skipped(reason)) => ScanEvent::Skipped { path, reason },
            Err(error) => ScanEvent::Error { path, error },
        };
        emit(event);
    }

    /// Walks the members of an archive on disk, emitting their events, and returns the
    /// strongest member hit (by verdict: an override on a member covers that member only).
    #[allow(clippy::too_many_arguments)]
    fn scan_archive<'s, S: DigestSource + ?Sized>(
        &self,
        (snapshot, kinds): (&'s S, DigestKinds),
        path: &Path,
        (seen, no_follow): (Option<FileIdentity>, bool),
        kind: ArchiveKind,
        size: u64,
        limits: &ArchiveLimits,
        buf: &mut [u8],
        emit: &mut dyn FnMut(ScanEvent<'s>),
    ) -> Option<ContainedHit<'s>> {
        let file = match open_as_walked(path, seen, no_follow) {
            Ok((f, _)) => f,
            Err(e) => {
                emit(ScanEvent::ArchiveDamaged {
                    path: path.to_path_buf(),
                    reason: format!("cannot open again to look inside: {e}"),
                });
                return None;
            }
        };
        let mut best: Option<ContainedHit<'s>> = None;
        let reader = io::BufReader::with_capacity(64 * 1024, file);
        let target = archive::Target { kinds, buf };
        archive::walk_archive(path, kind, reader, size, limits, target, &mut |event| {
            let event = match event {
                archive::MemberEvent::Member { path, digests } => {
                    let hit = lookup_file(snapshot, &digests);
                    if let Some(h) = &hit {
                        let stronger = best.as_ref().is_none_or(|b| {
                            h.record.verdict().precedence() < b.hit.record.verdict().precedence()
                        });
                        if stronger {
                            best = Some(ContainedHit {
                                hit: *h,
                                member: path.clone(),
                            });
                        }
                    }
                    ScanEvent::Member(ScannedFile {
                        path,
                        digests,
                        hit,
                        contained: None,
                    })
                }
                archive::MemberEvent::Limit { path, reason } => {
                    ScanEvent::ArchiveLimit { path, reason }
                }
                archive::MemberEvent::Damaged { path, reason } => {
                    ScanEvent::ArchiveDamaged { path, reason }
                }
            };
            emit(event);
        });
        best
    }

    fn read_file(
        &self,
        path: &Path,
        (seen, no_follow): (Option<FileIdentity>, bool),
        kinds: DigestKinds,
        buf: &mut [u8],
        head: &mut Head,
    ) -> io::Result<FileRead> {
        let (file, before) = open_as_walked(path, seen, no_follow)?;
        if !before.is_file() {
            // Replaced by something else since the walk saw it.
            return match special_kind(before.file_type()) {
                Some(special) if special.is_special() => Ok(FileRead::Skipped(special)),
                _ => Err(io::Error::other("no longer a regular file")),
            };
        }
        let size = before.len();
        if self.max_file_size.is_some_and(|max| size > max) {
            return Ok(FileRead::Skipped(SkipReason::TooLarge { size }));
        }
        // One byte past the size shows that the file grew, without following it forever.
        let reader = HeadCapture {
            inner: (&file).take(size.saturating_add(1)),
            head,
        };
        let digests = hash_reader_kinds(reader, buf, kinds)?;
        let after = file.metadata()?;
        let modified = |m: &std::fs::Metadata| m.modified().ok();
        if digests.size != size || after.len() != size || modified(&after) != modified(&before) {
            return Err(io::Error::other(format!(
                "file changed while being read (size {size} before, {} read, {} after)",
                digests.size,
                after.len()
            )));
        }
        Ok(FileRead::Digests(digests, FileIdentity::of(&before)))
    }
}

/// A file the walk queued for reading.
#[derive(Debug)]
struct Job {
    path: PathBuf,
    /// What the walk saw there.
    seen: Option<FileIdentity>,
    /// Whether the file must not be opened through a symlink.
    no_follow: bool,
}

/// The device and inode of a file (none where the platform has no such thing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileIdentity {
    device: u64,
    inode: u64,
}

impl FileIdentity {
    fn of(meta: &std::fs::Metadata) -> Option<FileIdentity> {
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            Some(FileIdentity {
                device: meta.dev(),
                inode: meta.ino(),
            })
        }
        #[cfg(not(unix))]
        {
            let _ = meta;
            None
        }
    }
}

/// The error of a file that is not what the walk saw.
fn changed(path: &Path, what: &str) -> io::Error {
    io::Error::other(format!(
        "changed during the scan: {} {what} since the walk saw it; not read",
        crate::text::escape_path(path)
    ))
}

/// Opens a file the walk saw as `seen` (without blocking on FIFOs), with `O_NOFOLLOW` when
/// `no_follow`, and checks what was opened: a regular file must have the device and inode
/// the walk saw. Returns the file with its metadata (`fstat` of what was opened); the caller
/// decides about a file that is no longer regular.
///
/// # Errors
///
/// When the file cannot be opened, was replaced by a symlink (with `no_follow`) or by
/// another file.
fn open_as_walked(
    path: &Path,
    seen: Option<FileIdentity>,
    no_follow: bool,
) -> io::Result<(File, std::fs::Metadata)> {
    let file = match open_nonblocking(path, no_follow) {
        Ok(f) => f,
        #[cfg(unix)]
        Err(e) if no_follow && e.raw_os_error() == Some(libc::ELOOP) => {
            return Err(changed(path, "was replaced by a symbolic link"));
        }
        Err(e) => return Err(e),
    };
    let meta = file.metadata()?;
    if meta.is_file() && seen.is_some() && FileIdentity::of(&meta) != seen {
        return Err(changed(path, "is another file (device and inode differ)"));
    }
    Ok((file, meta))
}

/// The first bytes of a file, kept while hashing it to tell an archive by its magic.
struct Head {
    bytes: [u8; archive::HEAD_LEN],
    len: usize,
}

impl Default for Head {
    fn default() -> Self {
        Head {
            bytes: [0; archive::HEAD_LEN],
            len: 0,
        }
    }
}

impl Head {
    fn bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// A reader that copies the first [`archive::HEAD_LEN`] bytes through it into a [`Head`].
struct HeadCapture<'h, R> {
    inner: R,
    head: &'h mut Head,
}

impl<R: Read> Read for HeadCapture<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let room = archive::HEAD_LEN - self.head.len;
        if room > 0 {
            let take = room.min(n);
            if let (Some(dst), Some(src)) = (
                self.head.bytes.get_mut(self.head.len..self.head.len + take),
                buf.get(..take),
            ) {
                dst.copy_from_slice(src);
                self.head.len += take;
            }
        }
        Ok(n)
    }
}

/// What reading one path gave.
enum FileRead {
    Digests(FileDigests, Option<FileIdentity>),
    Skipped(SkipReason),
}

/// Where the walk sends regular files.
enum Dispatch {
    /// To the worker threads.
    Queue(SyncSender<Job>),
    /// Read on the walking thread, with this buffer.
    Inline(Vec<u8>),
}

fn special_kind(file_type: FileType) -> Option<SkipReason> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if file_type.is_fifo() {
            return Some(SkipReason::Fifo);
        }
        if file_type.is_socket() {
            return Some(SkipReason::Socket);
        }
        if file_type.is_block_device() {
            return Some(SkipReason::BlockDevice);
        }
        if file_type.is_char_device() {
            return Some(SkipReason::CharDevice);
        }
    }
    if file_type.is_symlink() {
        return Some(SkipReason::Symlink);
    }
    None
}

/// Whether a walk error is a symlink whose target is missing.
fn is_broken_symlink(path: &Path, error: &walkdir::Error) -> bool {
    error
        .io_error()
        .is_some_and(|e| e.kind() == io::ErrorKind::NotFound)
        && std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink())
}

/// Opens a file for reading without blocking on FIFOs or acquiring a terminal.
/// With `no_follow`, a symlink as the last component is not followed (`O_NOFOLLOW`).
fn open_nonblocking(path: &Path, no_follow: bool) -> io::Result<File> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        let nofollow = if no_follow { libc::O_NOFOLLOW } else { 0 };
        options.custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY | nofollow);
    }
    #[cfg(not(unix))]
    let _ = no_follow;
    options.open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file replaced by a symlink to an outside file between the walk and the read is
    /// reported as changed, not read through the link; one replaced by another file too.
    #[cfg(unix)]
    #[test]
    fn a_file_swapped_after_the_walk_is_not_read() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let secret = outside.path().join("secret");
        std::fs::write(&secret, "outside").unwrap();
        let path = dir.path().join("a.txt");
        std::fs::write(&path, "inside").unwrap();
        let walked = std::fs::symlink_metadata(&path).unwrap();
        let seen = FileIdentity::of(&walked);
        assert!(open_as_walked(&path, seen, true).is_ok());

        // The walked file stays (so its inode is not reused); a link takes its name.
        std::fs::rename(&path, dir.path().join("kept")).unwrap();
        std::os::unix::fs::symlink(&secret, &path).unwrap();
        let err = open_as_walked(&path, seen, true).unwrap_err();
        assert!(err.to_string().contains("changed during the scan"), "{err}");
        assert!(err.to_string().contains("symbolic link"), "{err}");
        // Followed (as asked for with --follow-symlinks), the link leads to another inode.
        let err = open_as_walked(&path, seen, false).unwrap_err();
        assert!(err.to_string().contains("another file"), "{err}");

        std::fs::remove_file(&path).unwrap();
        std::fs::write(dir.path().join("b.txt"), "other").unwrap();
        std::fs::rename(dir.path().join("b.txt"), &path).unwrap();
        let err = open_as_walked(&path, seen, true).unwrap_err();
        assert!(err.to_string().contains("another file"), "{err}");

        // Through a scanner: the read reports an error event, never a verdict.
        let scanner = Scanner::new();
        let mut head = Head::default();
        let mut buf = vec![0u8; 4096];
        std::fs::remove_file(&path).unwrap();
        std::os::unix::fs::symlink(&secret, &path).unwrap();
        assert!(scanner
            .read_file(&path, (seen, true), DigestKinds::ALL, &mut buf, &mut head)
            .is_err());
    }
}

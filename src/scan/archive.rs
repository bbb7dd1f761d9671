//! Looking inside archives: the members of zip, tar, gzip (tar.gz, .tgz) and zstd files,
//! each hashed like a file of its own, nested archives included, within [`ArchiveLimits`].
//!
//! [`archive_kind`] tells an archive from its first bytes (never from its name).
//! [`walk_archive`] reads one and reports every member as a [`MemberEvent`]: its path inside
//! (`outer.zip!dir/inner.tar.gz!file`) and its digests, or why it was not read. Nothing is
//! ever written to disk, and nothing is expanded past the limits:
//!
//! - **Depth**: an archive inside an archive is opened down to `max_depth` levels; deeper
//!   ones are hashed as they are and reported as [`MemberEvent::Limit`].
//! - **Members and bytes**: at most `max_members` members and `max_total_bytes` expanded bytes
//!   per archive on disk, nested members included.
//! - **Compression ratio**: a member whose expanded size is more than `max_ratio` times its
//!   compressed size (and more than 1 MiB) is a decompression bomb. A zip member that
//!   declares such sizes is refused before a byte is expanded; a stream that turns out to be
//!   one (a zip whose header lies, a gzip or zstd stream) is cut off at the limit. Either way
//!   it is reported as a [`MemberEvent::Limit`], and its digests are never reported (they
//!   would be those of a prefix).
//! - **Memory**: a member is held in memory only to look inside it (at most
//!   `max_nested_bytes`); everything else streams through one read buffer.
//!
//! A damaged archive (or a file that only starts like one) is a [`MemberEvent::Damaged`]:
//! its own digests were already taken, so the scan loses nothing but the look inside.

use std::ffi::OsString;
use std::io::{self, Cursor, Read, Seek};
use std::path::{Path, PathBuf};

use super::hash::{hash_reader_kinds, DigestKinds, FileDigests};

/// Bytes of a file's start that [`archive_kind`] needs (a tar header's magic sits at 257).
pub const HEAD_LEN: usize = 512;

/// Expanded bytes a member may always reach, whatever its compression ratio.
const RATIO_FLOOR: u64 = 1 << 20;

/// How far [`walk_archive`] goes. The defaults follow ClamAV's order of magnitude.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArchiveLimits {
    /// Archive nesting opened: 1 looks inside the file on disk only (default 3).
    pub max_depth: u32,
    /// Members read per archive on disk, nested ones included (default 10,000).
    pub max_members: u64,
    /// Expanded bytes read per archive on disk (default 1 GiB).
    pub max_total_bytes: u64,
    /// The largest expanded:compressed ratio of one member beyond 1 MiB (default 250).
    pub max_ratio: u64,
    /// The largest member held in memory to look inside it (default 16 MiB); larger ones are
    /// hashed but not opened.
    pub max_nested_bytes: u64,
}

impl Default for ArchiveLimits {
    fn default() -> Self {
        ArchiveLimits {
            max_depth: 3,
            max_members: 10_000,
            max_total_bytes: 1 << 30,
            max_ratio: 250,
            max_nested_bytes: 16 << 20,
        }
    }
}

/// The archive formats looked inside.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchiveKind {
    /// A zip file (also jar, apk, docx and other zip containers).
    Zip,
    /// A POSIX or GNU tar file.
    Tar,
    /// A gzip stream (a tar inside it is walked as a tar).
    Gzip,
    /// A zstd stream (a tar inside it is walked as a tar).
    Zstd,
}

/// The archive format of a file, from its first bytes (up to [`HEAD_LEN`] of them).
pub fn archive_kind(head: &[u8]) -> Option<ArchiveKind> {
    if head.starts_with(b"PK\x03\x04") || head.starts_with(b"PK\x05\x06") {
        Some(ArchiveKind::Zip)
    } else if head.starts_with(&[0x1f, 0x8b]) {
        Some(ArchiveKind::Gzip)
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Some(ArchiveKind::Zstd)
    } else if head.get(257..262) == Some(b"ustar") {
        Some(ArchiveKind::Tar)
    } else {
        None
    }
}

/// What [`walk_archive`] found inside an archive.
#[derive(Debug)]
pub enum MemberEvent {
    /// A member was read whole and hashed.
    Member {
        /// `archive!member`, nested members as `archive!inner.zip!member`.
        path: PathBuf,
        /// Its digests; `digests.size` is its expanded length.
        digests: FileDigests,
    },
    /// A limit stopped the walk at this path: a decompression bomb, too many members or
    /// bytes, or nesting too deep. Nothing past the limit was expanded.
    Limit {
        /// The member (or the archive) where the limit was reached.
        path: PathBuf,
        /// Which limit, with the figures.
        reason: String,
    },
    /// The archive (or a nested one) could not be read past this point.
    Damaged {
        /// The archive or member.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },
}

/// What [`walk_archive`] computes of each member, and with which read buffer.
#[derive(Debug)]
pub struct Target<'b> {
    /// The digest kinds computed of each member.
    pub kinds: DigestKinds,
    /// The read buffer.
    pub buf: &'b mut [u8],
}

/// Reads the archive `reader` (of `kind`, `compressed_len` bytes on disk, shown as `path`) and
/// reports each member to `on_event`, with the digests of `target.kinds`, reading through
/// `target.buf`. See the [module docs](self) for the limits. Never panics, whatever the
/// bytes.
pub fn walk_archive<R: Read + Seek>(
    path: &Path,
    kind: ArchiveKind,
    reader: R,
    compressed_len: u64,
    limits: &ArchiveLimits,
    target: Target<'_>,
    on_event: &mut dyn FnMut(MemberEvent),
) {
    let mut walk = Walk {
        limits,
        members: 0,
        total: 0,
        stopped: false,
        kinds: target.kinds,
        buf: target.buf,
        on_event,
    };
    let path = path.as_os_str().to_owned();
    walk.archive(&path, kind, reader, compressed_len, 1);
}

struct Walk<'a> {
    limits: &'a ArchiveLimits,
    members: u64,
    total: u64,
    /// A members or bytes limit was reached: nothing more is read.
    stopped: bool,
    kinds: DigestKinds,
    buf: &'a mut [u8],
    on_event: &'a mut dyn FnMut(MemberEvent),
}

/// `archive!member`.
fn member_path(archive: &OsString, member: &[u8]) -> OsString {
    let mut p = archive.clone();
    p.push("!");
    p.push(os_from_bytes(member));
    p
}

#[cfg(unix)]
fn os_from_bytes(bytes: &[u8]) -> OsString {
    use std::os::unix::ffi::OsStrExt;
    std::ffi::OsStr::from_bytes(bytes).to_owned()
}

#[cfg(not(unix))]
fn os_from_bytes(bytes: &[u8]) -> OsString {
    OsString::from(String::from_utf8_lossy(bytes).into_owned())
}

/// The name of the one member of a gzip or zstd stream: the stream's own name without its
/// extension (`x.tar.gz` holds `x.tar`, `x.tgz` holds `x.tar`).
fn stream_member_name(archive: &OsString) -> Vec<u8> {
    let text = archive.to_string_lossy();
    let last = text.rsplit(['/', '!']).next().unwrap_or("");
    let lower = last.to_ascii_lowercase();
    let name = if let Some(stem) = lower
        .strip_suffix(".tgz")
        .or_else(|| lower.strip_suffix(".tzst"))
    {
        format!("{}.tar", &last[..stem.len()])
    } else if let Some(stem) = lower
        .strip_suffix(".gz")
        .or_else(|| lower.strip_suffix(".zst"))
    {
        last[..stem.len()].to_string()
    } else {
        String::new()
    };
    if name.is_empty() {
        b"data".to_vec()
    } else {
        name.into_bytes()
    }
}

/// Why a bounded read stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cut {
    Ratio,
    Total,
}

/// Fails a read once more than `allowed` bytes came through, remembering why.
struct Bounded<R> {
    inner: R,
    read: u64,
    allowed: u64,
    cut: Cut,
}

impl<R: Read> Read for Bounded<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read = self.read.saturating_add(n as u64);
        if self.read > self.allowed {
            return Err(io::Error::other(BoundExceeded(self.cut)));
        }
        Ok(n)
    }
}

#[derive(Debug)]
struct BoundExceeded(Cut);

impl std::fmt::Display for BoundExceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("archive limit reached")
    }
}

impl std::error::Error for BoundExceeded {}

fn bound_exceeded(e: &io::Error) -> Option<Cut> {
    e.get_ref()
        .and_then(|inner| inner.downcast_ref::<BoundExceeded>())
        .map(|b| b.0)
}

/// How one member ended.
enum Read1 {
    Done,
    Stop,
}

impl Walk<'_> {
    fn emit(&mut self, event: MemberEvent) {
        (self.on_event)(event);
    }

    fn limit(&mut self, path: &OsString, reason: String) {
        self.emit(MemberEvent::Limit {
            path: PathBuf::from(path),
            reason,
        });
    }

    fn damaged(&mut self, path: &OsString, reason: impl std::fmt::Display) {
        self.emit(MemberEvent::Damaged {
            path: PathBuf::from(path),
            reason: reason.to_string(),
        });
    }

    /// Walks one archive at nesting `depth` (1 for the file on disk).
    fn archive<R: Read + Seek>(
        &mut self,
        path: &OsString,
        kind: ArchiveKind,
        reader: R,
        compressed_len: u64,
        depth: u32,
    ) {
        match kind {
            ArchiveKind::Zip => self.zip(path, reader, depth),
            ArchiveKind::Tar => self.tar(path, Box::new(reader), depth),
            ArchiveKind::Gzip => {
                let decoder = flate2::read::MultiGzDecoder::new(reader);
                self.stream(path, Box::new(decoder), compressed_len, depth);
            }
            ArchiveKind::Zstd => match zstd::stream::read::Decoder::new(reader) {
                Ok(decoder) => self.stream(path, Box::new(decoder), compressed_len, depth),
                Err(e) => self.damaged(path, e),
            },
        }
    }

    fn zip<R: Read + Seek>(&mut self, path: &OsString, reader: R, depth: u32) {
        let mut archive = match zip::ZipArchive::new(reader) {
            Ok(a) => a,
            Err(e) => return self.damaged(path, e),
        };
        for i in 0..archive.len() {
            if self.stopped {
                return;
            }
            let name = archive
                .name_for_index(i)
                .map(|n| n.as_bytes().to_vec())
                .unwrap_or_else(|| format!("#{i}").into_bytes());
            let mut file = match archive.by_index(i) {
                Ok(f) => f,
                Err(e) => {
                    self.damaged(&member_path(path, &name), e);
                    continue;
                }
            };
            if file.is_dir() {
                continue;
            }
            let member = member_path(path, file.name_raw());
            if file.encrypted() {
                self.damaged(&member, "encrypted: not read");
                continue;
            }
            let declared = file.size();
            let compressed = file.compressed_size();
            if let Read1::Stop = self.member(&member, &mut file, Some(declared), compressed, depth)
            {
                return;
            }
        }
    }

    fn tar<'r>(&mut self, path: &OsString, reader: Box<dyn Read + 'r>, depth: u32) {
        let mut archive = tar::Archive::new(reader);
        let entries = match archive.entries() {
            Ok(e) => e,
            Err(e) => return self.damaged(path, e),
        };
        for entry in entries {
            if self.stopped {
                return;
            }
            let mut entry = match entry {
                Ok(e) => e,
                // A tar cannot be read past a bad header.
                Err(e) => return self.damaged(path, e),
            };
            let kind = entry.header().entry_type();
            if !(kind.is_file() || kind.is_contiguous()) {
                continue;
            }
            let member = member_path(path, &entry.path_bytes());
            let size = entry.size();
            // Stored, not compressed: the ratio does not apply.
            if let Read1::Stop = self.member(&member, &mut entry, Some(size), size, depth) {
                return;
            }
        }
    }

    /// A gzip or zstd stream: a tar inside is walked as a tar, anything else is one member.
    fn stream<'r>(
        &mut self,
        path: &OsString,
        decoder: Box<dyn Read + 'r>,
        compressed_len: u64,
        depth: u32,
    ) {
        let allowed = self
            .ratio_allowance(compressed_len)
            .min(self.remaining_bytes());
        let mut bounded = Bounded {
            inner: decoder,
            read: 0,
            allowed,
            cut: if allowed == self.remaining_bytes() {
                Cut::Total
            } else {
                Cut::Ratio
            },
        };
        let mut head = Vec::with_capacity(HEAD_LEN);
        if let Err(e) = (&mut bounded).take(HEAD_LEN as u64).read_to_end(&mut head) {
            return self.stream_error(path, &e, compressed_len);
        }
        if archive_kind(&head) == Some(ArchiveKind::Tar) {
            let rest = Cursor::new(head).chain(bounded);
            // The tar's members count the bytes they read; the bound above still caps the
            // stream as a whole.
            self.tar(path, Box::new(rest), depth);
            return;
        }
        let name = member_path(path, &stream_member_name(path));
        let mut rest = Cursor::new(head).chain(bounded);
        // The member's bound is the stream's: the same ratio over the same compressed bytes.
        let _ = self.member(&name, &mut rest, None, compressed_len, depth);
    }

    fn stream_error(&mut self, path: &OsString, e: &io::Error, compressed_len: u64) {
        match bound_exceeded(e) {
            Some(Cut::Ratio) => self.limit(
                path,
                format!(
                    "decompression bomb: expands more than {}:1 from {compressed_len} bytes; \
                     not expanded further",
                    self.limits.max_ratio
                ),
            ),
            Some(Cut::Total) => self.total_limit(path),
            None => self.damaged(path, e),
        }
    }

    fn remaining_bytes(&self) -> u64 {
        self.limits.max_total_bytes.saturating_sub(self.total)
    }

    fn ratio_allowance(&self, compressed: u64) -> u64 {
        compressed
            .saturating_mul(self.limits.max_ratio)
            .max(RATIO_FLOOR)
    }

    fn total_limit(&mut self, path: &OsString) {
        self.stopped = true;
        let max = self.limits.max_total_bytes;
        self.limit(
            path,
            format!("more than {max} expanded bytes in one archive; the rest is not scanned"),
        );
    }

    /// Hashes one member (`declared` bytes when the archive says, `compressed` on disk) and
    /// looks inside it when it is an archive and the depth allows.
    fn member(
        &mut self,
        path: &OsString,
        reader: &mut dyn Read,
        declared: Option<u64>,
        compressed: u64,
        depth: u32,
    ) -> Read1 {
        if self.members >= self.limits.max_members {
            self.stopped = true;
            let max = self.limits.max_members;
            self.limit(
                path,
                format!("more than {max} members in one archive; the rest is not scanned"),
            );
            return Read1::Stop;
        }
        self.members += 1;
        let ratio_allowed = self.ratio_allowance(compressed);
        if let Some(size) = declared {
            if size > ratio_allowed {
                let ratio = size / compressed.max(1);
                self.limit(
                    path,
                    format!(
                        "decompression bomb: {size} bytes from {compressed} ({ratio}:1, over \
                         the {}:1 limit); not expanded",
                        self.limits.max_ratio
                    ),
                );
                return Read1::Done;
            }
            if size > self.remaining_bytes() {
                self.total_limit(path);
                return Read1::Stop;
            }
        }
        let remaining = self.remaining_bytes();
        let (allowed, cut) = if ratio_allowed < remaining {
            (ratio_allowed, Cut::Ratio)
        } else {
            (remaining, Cut::Total)
        };
        let mut bounded = Bounded {
            inner: reader,
            read: 0,
            allowed,
            cut,
        };
        let open_inside = depth < self.limits.max_depth;
        let keep = if open_inside || declared.is_none() {
            self.limits.max_nested_bytes
        } else {
            HEAD_LEN as u64
        };
        // Hold up to `keep` bytes to look inside; hash them and whatever follows.
        let mut held = Vec::new();
        let result = match (&mut bounded)
            .take(keep.saturating_add(1))
            .read_to_end(&mut held)
        {
            Ok(_) => {
                hash_reader_kinds(Cursor::new(&held).chain(&mut bounded), self.buf, self.kinds)
            }
            Err(e) => Err(e),
        };
        self.total = self.total.saturating_add(bounded.read);
        let digests = match result {
            Ok(d) => d,
            Err(e) => {
                match bound_exceeded(&e) {
                    Some(Cut::Ratio) => self.limit(
                        path,
                        format!(
                            "decompression bomb: expands more than {}:1 from {compressed} \
                             bytes; not expanded further",
                            self.limits.max_ratio
                        ),
                    ),
                    Some(Cut::Total) => {
                        self.total_limit(path);
                        return Read1::Stop;
                    }
                    None => self.damaged(path, e),
                }
                return Read1::Done;
            }
        };
        if let Some(size) = declared {
            if size != digests.size {
                self.damaged(
                    path,
                    format!("declared {size} bytes but holds {}", digests.size),
                );
                return Read1::Done;
            }
        }
        self.emit(MemberEvent::Member {
            path: PathBuf::from(path),
            digests,
        });
        let whole = held.len() as u64 == digests.size;
        if let Some(kind) = archive_kind(&held) {
            if !open_inside {
                let max = self.limits.max_depth;
                self.limit(
                    path,
                    format!("an archive nested deeper than {max} levels: not opened"),
                );
            } else if !whole {
                let max = self.limits.max_nested_bytes;
                self.limit(
                    path,
                    format!("a nested archive larger than {max} bytes: hashed, not opened"),
                );
            } else {
                let len = held.len() as u64;
                self.archive(path, kind, Cursor::new(held), len, depth + 1);
                if self.stopped {
                    return Read1::Stop;
                }
            }
        }
        Read1::Done
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_from_magic() {
        assert_eq!(archive_kind(b"PK\x03\x04rest"), Some(ArchiveKind::Zip));
        assert_eq!(archive_kind(&[0x1f, 0x8b, 8]), Some(ArchiveKind::Gzip));
        assert_eq!(
            archive_kind(&[0x28, 0xb5, 0x2f, 0xfd, 0]),
            Some(ArchiveKind::Zstd)
        );
        let mut tar = vec![0u8; 512];
        tar[257..262].copy_from_slice(b"ustar");
        assert_eq!(archive_kind(&tar), Some(ArchiveKind::Tar));
        assert_eq!(archive_kind(b"plain text"), None);
        assert_eq!(archive_kind(b""), None);
    }

    #[test]
    fn stream_member_names() {
        let name = |s: &str| String::from_utf8(stream_member_name(&OsString::from(s))).unwrap();
        assert_eq!(name("dir/x.tar.gz"), "x.tar");
        assert_eq!(name("a.zip!b.TGZ"), "b.tar");
        assert_eq!(name("log.zst"), "log");
        assert_eq!(name("weird"), "data");
        assert_eq!(name(".gz"), "data");
    }

    /// Random bytes behind each archive magic never panic.
    #[test]
    fn garbage_after_a_magic_is_damage_not_a_panic() {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let magics: [&[u8]; 3] = [
            b"PK\x03\x04",
            &[0x1f, 0x8b, 8, 0],
            &[0x28, 0xb5, 0x2f, 0xfd],
        ];
        let mut buf = vec![0u8; 4096];
        for magic in magics {
            for len in [0usize, 1, 10, 100, 1000, 5000] {
                let mut bytes = magic.to_vec();
                bytes.extend((0..len).map(|_| next() as u8));
                let kind = archive_kind(&bytes).unwrap();
                let n = bytes.len() as u64;
                walk_archive(
                    Path::new("x"),
                    kind,
                    Cursor::new(bytes),
                    n,
                    &ArchiveLimits::default(),
                    Target {
                        kinds: DigestKinds::ALL,
                        buf: &mut buf,
                    },
                    &mut |_| {},
                );
            }
        }
    }
}

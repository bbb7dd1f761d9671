//! Publishing an output file atomically, without leaving temporary files behind when the
//! build is killed.
//!
//! On Linux the output is written to an unnamed file (`O_TMPFILE`) in the output's
//! directory: until it is published it has no name, so a killed build (even by `SIGKILL`)
//! leaves nothing; the kernel frees it. Publishing links it under a temporary name
//! (`.repute-PID-N.tmp`, through `/proc/self/fd`) and renames that over the output at once.
//! Where `O_TMPFILE` is missing (other systems, some file systems) the file is created under
//! that temporary name from the start.
//!
//! Either way a named temporary file is locked (`flock`) by the build that owns it, and is
//! removed by [`remove_on_signals`]'s handler on `SIGINT`/`SIGTERM`. What a `SIGKILL` still
//! leaves behind in the fallback is removed by the next build in that directory
//! ([`remove_stale`]): a `.repute-*.tmp` file that no live process holds locked.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Prefix and suffix of every temporary file name.
const PREFIX: &str = ".repute-";
const SUFFIX: &str = ".tmp";

/// A file being written, published by [`TempOutput::persist`].
#[derive(Debug)]
pub(crate) struct TempOutput {
    file: File,
    dir: PathBuf,
    /// The temporary name, when the file has one (the fallback).
    named: Option<PathBuf>,
}

fn temp_name(dir: &Path) -> PathBuf {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    dir.join(format!(
        "{PREFIX}{}-{n}-{nanos:08x}{SUFFIX}",
        std::process::id()
    ))
}

impl TempOutput {
    /// A new, empty, private file in `dir` (removing stale temporary files there first).
    pub(crate) fn create(dir: &Path) -> io::Result<TempOutput> {
        let _ = remove_stale(dir);
        #[cfg(target_os = "linux")]
        if let Some(file) = unnamed(dir) {
            return Ok(TempOutput {
                file,
                dir: dir.to_path_buf(),
                named: None,
            });
        }
        let path = temp_name(dir);
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)?;
        lock(&file);
        signals::register(&path);
        Ok(TempOutput {
            file,
            dir: dir.to_path_buf(),
            named: Some(path),
        })
    }

    /// The file, to write through.
    pub(crate) fn file(&self) -> &File {
        &self.file
    }

    /// Fsyncs the file, gives it `path`'s name atomically (replacing what was there) and
    /// fsyncs the directory.
    pub(crate) fn persist(mut self, path: &Path) -> io::Result<()> {
        self.file.sync_all()?;
        let named = match self.named.take() {
            Some(p) => p,
            None => self.link()?,
        };
        let renamed = std::fs::rename(&named, path);
        if renamed.is_err() {
            let _ = std::fs::remove_file(&named);
        }
        signals::unregister(&named);
        renamed?;
        if let Ok(d) = File::open(&self.dir) {
            let _ = d.sync_all();
        }
        Ok(())
    }

    #[cfg(target_os = "linux")]
    fn link(&self) -> io::Result<PathBuf> {
        use std::ffi::CString;
        use std::os::unix::ffi::OsStrExt;
        use std::os::unix::io::AsRawFd;
        let target = temp_name(&self.dir);
        let c_target = CString::new(target.as_os_str().as_bytes())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in a path"))?;
        let proc_path = CString::new(format!("/proc/self/fd/{}", self.file.as_raw_fd()))
            .map_err(|_| io::Error::other("NUL in a path"))?;
        signals::register(&target);
        #[allow(unsafe_code)]
        // SAFETY: both paths are valid NUL-terminated strings that outlive the call.
        let r = unsafe {
            libc::linkat(
                libc::AT_FDCWD,
                proc_path.as_ptr(),
                libc::AT_FDCWD,
                c_target.as_ptr(),
                libc::AT_SYMLINK_FOLLOW,
            )
        };
        if r == 0 {
            return Ok(target);
        }
        let first = io::Error::last_os_error();
        // Without /proc: AT_EMPTY_PATH on the descriptor itself (needs CAP_DAC_READ_SEARCH).
        let empty = CString::default();
        #[allow(unsafe_code)]
        // SAFETY: as above; the descriptor is open for the duration of the call.
        let r = unsafe {
            libc::linkat(
                self.file.as_raw_fd(),
                empty.as_ptr(),
                libc::AT_FDCWD,
                c_target.as_ptr(),
                libc::AT_EMPTY_PATH,
            )
        };
        if r == 0 {
            return Ok(target);
        }
        signals::unregister(&target);
        Err(first)
    }

    #[cfg(not(target_os = "linux"))]
    fn link(&self) -> io::Result<PathBuf> {
        Err(io::Error::other("an unnamed file cannot be linked here"))
    }
}

impl Drop for TempOutput {
    fn drop(&mut self) {
        if let Some(p) = self.named.take() {
            let _ = std::fs::remove_file(&p);
            signals::unregister(&p);
        }
    }
}

/// An unnamed file in `dir`, where the system and file system offer `O_TMPFILE`.
#[cfg(target_os = "linux")]
fn unnamed(dir: &Path) -> Option<File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_TMPFILE)
        .mode(0o600)
        .open(dir)
        .ok()
}

#[cfg(unix)]
fn lock(file: &File) {
    use std::os::unix::io::AsRawFd;
    #[allow(unsafe_code)]
    // SAFETY: flock on a descriptor this process owns; no memory is involved.
    let _ = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
}

#[cfg(not(unix))]
fn lock(_: &File) {}

/// Whether no live process holds `file` locked.
#[cfg(unix)]
fn unlocked(file: &File) -> bool {
    use std::os::unix::io::AsRawFd;
    #[allow(unsafe_code)]
    // SAFETY: as in `lock`.
    let r = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    r == 0
}

#[cfg(not(unix))]
fn unlocked(_: &File) -> bool {
    false
}

/// Whether the process that named a temporary file `.repute-PID-...` is alive (or the name
/// carries no pid).
#[cfg(unix)]
fn owner_alive(name: &str) -> bool {
    let Some(pid) = name
        .strip_prefix(PREFIX)
        .and_then(|r| r.split('-').next())
        .and_then(|p| p.parse::<libc::pid_t>().ok())
        .filter(|p| *p > 0)
    else {
        return false;
    };
    if pid as u32 == std::process::id() {
        return true;
    }
    #[allow(unsafe_code)]
    // SAFETY: signal 0 only checks that the process exists.
    let r = unsafe { libc::kill(pid, 0) };
    r == 0 || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

#[cfg(not(unix))]
fn owner_alive(_: &str) -> bool {
    true
}

/// Removes `.repute-*.tmp` files in `dir` that a killed build left: regular files whose
/// owner (by the pid in the name) is gone and that no process holds locked. Returns how
/// many were removed.
///
/// # Errors
///
/// When the directory cannot be listed.
pub fn remove_stale(dir: &Path) -> io::Result<usize> {
    let mut removed = 0;
    for entry in std::fs::read_dir(dir)? {
        let Ok(entry) = entry else { continue };
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if !name.starts_with(PREFIX) || !name.ends_with(SUFFIX) {
            continue;
        }
        if !entry.file_type().is_ok_and(|t| t.is_file()) || owner_alive(name) {
            continue;
        }
        let path = entry.path();
        let Ok(file) = File::open(&path) else {
            continue;
        };
        if unlocked(&file) && std::fs::remove_file(&path).is_ok() {
            removed += 1;
        }
    }
    Ok(removed)
}

/// Installs `SIGINT` and `SIGTERM` handlers that remove this process's named temporary
/// files, then die of the signal as before. For programs (the CLI) that build snapshots; the
/// library never installs them itself.
pub fn remove_on_signals() {
    signals::install();
}

mod signals {
    //! The paths a signal handler removes: a fixed table of leaked C strings, so that the
    //! handler only reads atomics and calls `unlink` (async-signal-safe).

    use std::path::Path;
    use std::sync::atomic::{AtomicPtr, Ordering};

    const SLOTS: usize = 16;
    static PATHS: [AtomicPtr<libc::c_char>; SLOTS] =
        [const { AtomicPtr::new(std::ptr::null_mut()) }; SLOTS];

    #[cfg(unix)]
    fn c_path(path: &Path) -> Option<std::ffi::CString> {
        use std::os::unix::ffi::OsStrExt;
        std::ffi::CString::new(path.as_os_str().as_bytes()).ok()
    }

    #[cfg(unix)]
    pub(super) fn register(path: &Path) {
        let Some(c) = c_path(path) else { return };
        let raw = c.into_raw();
        for slot in &PATHS {
            if slot
                .compare_exchange(
                    std::ptr::null_mut(),
                    raw,
                    Ordering::SeqCst,
                    Ordering::SeqCst,
                )
                .is_ok()
            {
                return;
            }
        }
        // Table full: the next build's stale-file sweep removes it instead.
        // SAFETY: `raw` came from `CString::into_raw` just above and was not shared.
        #[allow(unsafe_code)]
        drop(unsafe { std::ffi::CString::from_raw(raw) });
    }

    #[cfg(unix)]
    pub(super) fn unregister(path: &Path) {
        let Some(c) = c_path(path) else { return };
        for slot in &PATHS {
            let p = slot.load(Ordering::SeqCst);
            if p.is_null() {
                continue;
            }
            // SAFETY: non-null slots hold strings from `CString::into_raw`, freed only here
            // after being swapped out.
            #[allow(unsafe_code)]
            let same = unsafe { std::ffi::CStr::from_ptr(p) } == c.as_c_str();
            if same
                && slot
                    .compare_exchange(p, std::ptr::null_mut(), Ordering::SeqCst, Ordering::SeqCst)
                    .is_ok()
            {
                // The string is leaked rather than freed: a signal handler running on another
                // thread may still be reading it. A few bytes per published file.
                return;
            }
        }
    }

    #[cfg(unix)]
    extern "C" fn handler(sig: libc::c_int) {
        for slot in &PATHS {
            let p = slot.load(Ordering::SeqCst);
            if !p.is_null() {
                // SAFETY: `p` is a NUL-terminated string that is never freed; unlink is
                // async-signal-safe.
                #[allow(unsafe_code)]
                unsafe {
                    libc::unlink(p);
                }
            }
        }
        // SAFETY: restoring the default action and re-raising are async-signal-safe.
        #[allow(unsafe_code)]
        unsafe {
            libc::signal(sig, libc::SIG_DFL);
            libc::raise(sig);
        }
    }

    #[cfg(unix)]
    pub(super) fn install() {
        for sig in [libc::SIGINT, libc::SIGTERM] {
            // SAFETY: the handler only performs async-signal-safe operations.
            #[allow(unsafe_code)]
            unsafe {
                libc::signal(
                    sig,
                    handler as extern "C" fn(libc::c_int) as libc::sighandler_t,
                );
            }
        }
    }

    #[cfg(not(unix))]
    pub(super) fn register(_: &Path) {}
    #[cfg(not(unix))]
    pub(super) fn unregister(_: &Path) {}
    #[cfg(not(unix))]
    pub(super) fn install() {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publishes_and_leaves_nothing_else() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("a.snap");
        let t = TempOutput::create(dir.path()).unwrap();
        t.file().write_all(b"hello").unwrap();
        t.persist(&out).unwrap();
        assert_eq!(std::fs::read(&out).unwrap(), b"hello");
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1);
        // Dropped unpublished: nothing.
        let t = TempOutput::create(dir.path()).unwrap();
        drop(t);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[cfg(unix)]
    #[test]
    fn stale_files_go_and_locked_or_live_ones_stay() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path();
        // A dead owner (no such pid), no lock: removed. An old name without a pid, unlocked:
        // removed.
        std::fs::write(p.join(".repute-999999999-0-0.tmp"), b"x").unwrap();
        std::fs::write(p.join(".repute-abc.tmp"), b"x").unwrap();
        // Our own pid (a live build): kept. A locked one of a dead pid: kept.
        std::fs::write(
            p.join(format!(".repute-{}-7-0.tmp", std::process::id())),
            b"x",
        )
        .unwrap();
        let locked_path = p.join(".repute-999999998-0-0.tmp");
        std::fs::write(&locked_path, b"x").unwrap();
        let held = File::open(&locked_path).unwrap();
        lock(&held);
        // Not ours: kept.
        std::fs::write(p.join("other.tmp"), b"x").unwrap();
        assert_eq!(remove_stale(p).unwrap(), 2);
        let mut left: Vec<String> = std::fs::read_dir(p)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(left.len(), 3, "{left:?}");
        drop(held);
        assert_eq!(remove_stale(p).unwrap(), 1);
    }
}

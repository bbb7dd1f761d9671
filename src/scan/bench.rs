//! The hashing limit: what one core hashes per second with the scan's own digest code, to
//! set beside a scan's rate ([`hashing_limit`]), and the CPU time that both are measured in.
//!
//! Rates are per second of CPU time, as `openssl speed` gives them, so other work on a busy
//! machine slows the wall clock but not the figure.

use std::time::{Duration, Instant};

use super::hash::{hash_slice, DigestKinds};

/// What [`hashing_limit`] measured.
#[derive(Debug, Clone, PartialEq)]
pub struct HashingLimit {
    /// The digest kinds hashed together.
    pub kinds: DigestKinds,
    /// Megabytes (10^6 bytes) hashed per second of CPU time, one repetition each, sorted.
    pub mb_per_cpu_second: Vec<f64>,
    /// Whether the rates are per CPU second (`false`: per wall-clock second, where the
    /// platform does not tell a thread's CPU time).
    pub cpu_time: bool,
}

impl HashingLimit {
    /// The median repetition, in MB per CPU second (0 when nothing was measured).
    pub fn median(&self) -> f64 {
        let r = &self.mb_per_cpu_second;
        match r.len() {
            0 => 0.0,
            n if n % 2 == 1 => r[n / 2],
            n => (r[n / 2 - 1] + r[n / 2]) / 2.0,
        }
    }

    /// The spread of the repetitions: (slowest, fastest).
    pub fn spread(&self) -> (f64, f64) {
        let r = &self.mb_per_cpu_second;
        (
            r.first().copied().unwrap_or(0.0),
            r.last().copied().unwrap_or(0.0),
        )
    }
}

/// Measures how fast the calling thread hashes `kinds` together: `repetitions` runs of
/// about `per_run` each, hashing one `buffer_size`-byte buffer in memory over and over with
/// the code a scan uses ([`hash_slice`]), one digest per buffer as a scan has one per file
/// read. Nothing is read from disk.
pub fn hashing_limit(
    kinds: DigestKinds,
    buffer_size: usize,
    repetitions: usize,
    per_run: Duration,
) -> HashingLimit {
    let size = buffer_size.max(4096);
    let data: Vec<u8> = (0..size)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[3])
        .collect();
    let cpu_time = thread_cpu_time().is_some();
    let clock = || {
        if cpu_time {
            thread_cpu_time().unwrap_or_default()
        } else {
            Instant::now().duration_since(*START.get_or_init(Instant::now))
        }
    };
    let mut rates = Vec::with_capacity(repetitions);
    let mut sink = 0u8;
    for _ in 0..repetitions.max(1) {
        let start = clock();
        let mut bytes = 0u64;
        let mut elapsed;
        loop {
            let d = hash_slice(&data, kinds);
            sink ^= d.md5[0] ^ d.sha1[0] ^ d.sha256[0];
            bytes += data.len() as u64;
            elapsed = clock().saturating_sub(start);
            if elapsed >= per_run {
                break;
            }
        }
        rates.push(bytes as f64 / 1e6 / elapsed.as_secs_f64().max(1e-9));
    }
    std::hint::black_box(sink);
    rates.sort_by(f64::total_cmp);
    HashingLimit {
        kinds,
        mb_per_cpu_second: rates,
        cpu_time,
    }
}

static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();

/// The CPU time the calling thread has used, where the platform tells it.
pub fn thread_cpu_time() -> Option<Duration> {
    #[cfg(unix)]
    {
        clock(libc::CLOCK_THREAD_CPUTIME_ID)
    }
    #[cfg(not(unix))]
    {
        None
    }
}

/// The CPU time the whole process has used (every thread), where the platform tells it.
pub fn process_cpu_time() -> Option<Duration> {
    #[cfg(unix)]
    {
        clock(libc::CLOCK_PROCESS_CPUTIME_ID)
    }
    #[cfg(not(unix))]
    {
        None
    }
}

#[cfg(unix)]
#[allow(unsafe_code)]
fn clock(id: libc::clockid_t) -> Option<Duration> {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `t` is a valid, writable timespec for the duration of the call, and
    // `clock_gettime` writes nothing else.
    let rc = unsafe { libc::clock_gettime(id, &mut t) };
    if rc != 0 {
        return None;
    }
    Some(Duration::new(
        u64::try_from(t.tv_sec).ok()?,
        u32::try_from(t.tv_nsec).ok()?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DigestKind;

    #[test]
    fn a_limit_is_measured_for_every_set() {
        for kinds in [
            DigestKinds::NONE,
            DigestKinds::of(DigestKind::Md5),
            DigestKinds::ALL,
        ] {
            let l = hashing_limit(kinds, 4096, 3, Duration::from_millis(1));
            assert_eq!(l.mb_per_cpu_second.len(), 3);
            assert!(l
                .mb_per_cpu_second
                .iter()
                .all(|r| r.is_finite() && *r > 0.0));
            let (lo, hi) = l.spread();
            assert!(lo <= l.median() && l.median() <= hi);
            assert_eq!(l.kinds, kinds);
        }
    }

    #[test]
    fn cpu_clocks_move_forward() {
        if let (Some(a), Some(p)) = (thread_cpu_time(), process_cpu_time()) {
            let _ = hashing_limit(DigestKinds::ALL, 1 << 16, 1, Duration::from_millis(2));
            assert!(thread_cpu_time().unwrap() > a);
            assert!(process_cpu_time().unwrap() > p);
        }
    }
}

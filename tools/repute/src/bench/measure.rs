//! Timing on several threads (CPU and wall-clock rates, medians of runs) and the memory probe.

use super::*;

/// Seconds this thread has run on a CPU, when the platform tells (the clock the scan's
/// hashing limit is measured with).
pub(super) fn thread_cpu_seconds() -> Option<f64> {
    repute::scan::bench::thread_cpu_time()
        .map(|t| t.as_secs_f64())
        .filter(|s| *s > 0.0)
}

/// One measurement: rates in millions per second, summed over threads.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Rate {
    /// Operations per second of CPU time each thread actually ran (robust to other load on
    /// the machine; falls back to wall-clock time where the kernel does not report it).
    pub(super) cpu: f64,
    /// Operations per second of wall-clock time.
    pub(super) wall: f64,
}

/// Runs on `threads` threads at once, each for about `seconds`, `reps` times; returns the
/// median rates. `make(thread)` gives each thread its worker, which is called with a round
/// number, does one chunk, and returns how many operations it did.
pub(super) fn measure<F, W>(threads: usize, seconds: f64, reps: usize, make: F) -> Rate
where
    F: Fn(usize) -> W + Sync,
    W: FnMut(usize) -> usize,
{
    let runs: Vec<Rate> = (0..reps.max(1))
        .map(|_| {
            let barrier = Barrier::new(threads);
            let per_thread: Vec<Rate> = std::thread::scope(|s| {
                let handles: Vec<_> = (0..threads)
                    .map(|t| {
                        let (barrier, make) = (&barrier, &make);
                        s.spawn(move || {
                            let mut work = make(t);
                            barrier.wait();
                            let cpu_start = thread_cpu_seconds();
                            let start = Instant::now();
                            let mut ops = 0usize;
                            let mut round = 0usize;
                            loop {
                                ops += work(round);
                                round += 1;
                                let elapsed = start.elapsed().as_secs_f64();
                                if elapsed >= seconds {
                                    let cpu = match (cpu_start, thread_cpu_seconds()) {
                                        (Some(a), Some(b)) if b > a => b - a,
                                        _ => elapsed,
                                    };
                                    return Rate {
                                        cpu: ops as f64 / cpu / 1e6,
                                        wall: ops as f64 / elapsed / 1e6,
                                    };
                                }
                            }
                        })
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|h| h.join().unwrap_or_default())
                    .collect()
            });
            Rate {
                cpu: per_thread.iter().map(|r| r.cpu).sum(),
                wall: per_thread.iter().map(|r| r.wall).sum(),
            }
        })
        .collect();
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    Rate {
        cpu: median(runs.iter().map(|r| r.cpu).collect()),
        wall: median(runs.iter().map(|r| r.wall).collect()),
    }
}

/// A chunk of `items` for thread `t` in round `r`: threads start at different offsets.
pub(super) fn chunk_of<T>(items: &[T], t: usize, threads: usize, r: usize, size: usize) -> &[T] {
    if items.is_empty() {
        return items;
    }
    let chunks = items.len().div_ceil(size);
    let c = (t * chunks / threads.max(1) + r) % chunks;
    &items[c * size..items.len().min(c * size + size)]
}

/// The memory probe's buffer: 1 GiB of random words, in 4 KiB or huge pages.
pub(super) fn probe_buffer(seed: u64, huge: bool) -> Result<memmap2::MmapMut> {
    let mut map = memmap2::MmapMut::map_anon(PROBE_BYTES).context("cannot map probe buffer")?;
    #[cfg(target_os = "linux")]
    {
        let advice = if huge {
            memmap2::Advice::HugePage
        } else {
            memmap2::Advice::NoHugePage
        };
        let _ = map.advise(advice);
    }
    #[cfg(not(target_os = "linux"))]
    let _ = huge;
    let mut rng = Rng::new(seed, PROBE);
    for word in map.chunks_exact_mut(8) {
        word.copy_from_slice(&rng.next().to_le_bytes());
    }
    Ok(map)
}

/// Independent random 8-byte reads, 16 at a time with prefetch: `n` reads.
#[inline(never)]
pub(super) fn probe_reads(buf: &[u8], rng: &mut Rng, n: usize) -> u64 {
    let words = (buf.len() / 8) as u64;
    let mut sum = 0u64;
    for _ in 0..n / 16 {
        let mut at = [0usize; 16];
        for a in at.iter_mut() {
            *a = rng.below(words) as usize * 8;
            prefetch(buf[*a..].as_ptr());
        }
        for a in at {
            sum = sum.wrapping_add(u64::from_le_bytes(
                buf[a..a + 8].try_into().unwrap_or([0; 8]),
            ));
        }
    }
    sum
}

/// `AnonHugePages` of `/proc/meminfo`, in bytes: how much anonymous memory the kernel
/// backs with huge pages right now.
pub(super) fn anon_huge_pages() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = meminfo.lines().find(|l| l.starts_with("AnonHugePages:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

pub(super) fn probe_rates(buf: &[u8], args: &BenchArgs) -> Vec<Rate> {
    args.threads
        .iter()
        .map(|&n| {
            measure(n, args.seconds, args.reps, |t| {
                let mut rng = Rng::new(args.seed ^ t as u64, PROBE + 1);
                move |_| {
                    black_box(probe_reads(buf, &mut rng, CHUNK));
                    CHUNK
                }
            })
        })
        .collect()
}

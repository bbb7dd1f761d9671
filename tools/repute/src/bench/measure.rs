//! Timing on several threads, repetitions with their median and spread, and the memory
//! probes.
//!
//! A figure on one thread is its operations per second of the CPU time that thread ran:
//! robust to other load on a shared machine. A figure on N threads is their total operations
//! over the wall-clock time from a barrier that releases them together to the last thread's
//! end: only that shows whether the threads ran at the same time. (Summing each thread's own
//! per-CPU-second rate cannot: N threads that took turns on one core would still add up to
//! N times one thread.)

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::*;

/// Seconds this thread has run on a CPU, when the platform tells (the clock the scan's
/// hashing limit is measured with).
pub(super) fn thread_cpu_seconds() -> Option<f64> {
    repute::scan::bench::thread_cpu_time()
        .map(|t| t.as_secs_f64())
        .filter(|s| *s > 0.0)
}

/// One repetition of one figure: every thread started together, each ran about the same time.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(super) struct Sample {
    /// Operations done by all threads.
    pub(super) ops: u64,
    /// Seconds from the barrier's release to the last thread's end.
    pub(super) wall: f64,
    /// Seconds the threads ran on a CPU, summed over threads.
    pub(super) cpu: f64,
    /// Each thread's operations per second of its own CPU time, summed over threads (M/s).
    pub(super) cpu_rate_sum: f64,
}

impl Sample {
    /// Total operations over wall-clock time, M/s.
    pub(super) fn wall_rate(&self) -> f64 {
        if self.wall > 0.0 {
            self.ops as f64 / self.wall / 1e6
        } else {
            0.0
        }
    }
}

/// Median, minimum and maximum of some repetitions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub(super) struct Spread {
    pub(super) median: f64,
    pub(super) min: f64,
    pub(super) max: f64,
}

/// The median (the mean of the middle two of an even count) and the extremes; all zero for
/// no values. Values that are not numbers are left out.
pub(super) fn spread(values: &[f64]) -> Spread {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| !x.is_nan()).collect();
    if v.is_empty() {
        return Spread::default();
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    let median = if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    };
    Spread {
        median,
        min: v[0],
        max: v[v.len() - 1],
    }
}

/// The repetitions of one figure at one thread count.
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct Rate {
    pub(super) threads: usize,
    pub(super) samples: Vec<Sample>,
}

impl Rate {
    /// The figure reported: per CPU-second on one thread, total over wall time on several.
    pub(super) fn figure(&self) -> Spread {
        if self.threads <= 1 {
            self.cpu()
        } else {
            self.wall()
        }
    }

    /// Total operations over wall-clock time, M/s.
    pub(super) fn wall(&self) -> Spread {
        spread(
            &self
                .samples
                .iter()
                .map(Sample::wall_rate)
                .collect::<Vec<_>>(),
        )
    }

    /// Each thread's operations per second of its own CPU time, summed over threads, M/s.
    pub(super) fn cpu(&self) -> Spread {
        spread(
            &self
                .samples
                .iter()
                .map(|s| s.cpu_rate_sum)
                .collect::<Vec<_>>(),
        )
    }

    /// The share of the wall time the threads were on a CPU (1.0: all of them, all the
    /// time), median over repetitions.
    pub(super) fn cpu_share(&self) -> f64 {
        let shares: Vec<f64> = self
            .samples
            .iter()
            .filter(|s| s.wall > 0.0)
            .map(|s| s.cpu / (s.wall * self.threads.max(1) as f64))
            .collect();
        spread(&shares).median
    }
}

/// Measures one figure on each of `threads` thread counts, `reps` times, the counts
/// interleaved within each repetition (so that a change in the machine's load hits every
/// count alike). `make(thread, threads)` gives each thread its worker, which is called with
/// a round number, does one chunk, and returns how many operations it did; each thread runs
/// about `seconds`.
pub(super) fn measure<F, W>(threads: &[usize], seconds: f64, reps: usize, make: F) -> Vec<Rate>
where
    F: Fn(usize, usize) -> W + Sync,
    W: FnMut(usize) -> usize,
{
    let mut rates: Vec<Rate> = threads
        .iter()
        .map(|&n| Rate {
            threads: n,
            samples: Vec::new(),
        })
        .collect();
    for _ in 0..reps.max(1) {
        for rate in rates.iter_mut() {
            let sample = run_once(rate.threads, seconds, &make);
            rate.samples.push(sample);
        }
    }
    rates
}

/// One repetition on `n` threads released together by a barrier and stopped together
/// `seconds` later; the wall clock runs from the release to the last join. A thread the
/// machine did not run meanwhile simply does less (at least one chunk), so the total over the
/// wall time is what the threads really did together.
fn run_once<F, W>(n: usize, seconds: f64, make: &F) -> Sample
where
    F: Fn(usize, usize) -> W + Sync,
    W: FnMut(usize) -> usize,
{
    let n = n.max(1);
    let barrier = Barrier::new(n + 1);
    let stop = AtomicBool::new(false);
    let (per_thread, wall) = std::thread::scope(|s| {
        let handles: Vec<_> = (0..n)
            .map(|t| {
                let (barrier, stop) = (&barrier, &stop);
                s.spawn(move || {
                    let mut work = make(t, n);
                    barrier.wait();
                    let cpu_start = thread_cpu_seconds();
                    let start = Instant::now();
                    let mut ops = 0usize;
                    let mut round = 0usize;
                    // At least one chunk, so that every thread has a rate.
                    loop {
                        ops += work(round);
                        round += 1;
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                    }
                    let cpu = match (cpu_start, thread_cpu_seconds()) {
                        (Some(a), Some(b)) if b > a => b - a,
                        _ => start.elapsed().as_secs_f64(),
                    };
                    (ops as u64, cpu)
                })
            })
            .collect();
        barrier.wait();
        let start = Instant::now();
        std::thread::sleep(Duration::from_secs_f64(seconds));
        stop.store(true, Ordering::Relaxed);
        let per_thread: Vec<(u64, f64)> = handles
            .into_iter()
            .map(|h| h.join().unwrap_or((0, 0.0)))
            .collect();
        (per_thread, start.elapsed().as_secs_f64())
    });
    Sample {
        ops: per_thread.iter().map(|(ops, _)| ops).sum(),
        wall,
        cpu: per_thread.iter().map(|(_, cpu)| cpu).sum(),
        cpu_rate_sum: per_thread
            .iter()
            .filter(|(_, cpu)| *cpu > 0.0)
            .map(|(ops, cpu)| *ops as f64 / cpu / 1e6)
            .sum(),
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

/// A memory probe's buffer: `bytes` (rounded up to whole pages) of random words, in 4 KiB
/// or huge pages.
pub(super) fn probe_buffer(bytes: u64, seed: u64, huge: bool) -> Result<memmap2::MmapMut> {
    let page: u64 = if huge { 2 << 20 } else { 4096 };
    let len = usize::try_from(bytes.max(page).div_ceil(page) * page)
        .context("the probe buffer does not fit in memory")?;
    let mut map = memmap2::MmapMut::map_anon(len)
        .with_context(|| format!("cannot map a probe buffer of {len} bytes"))?;
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

/// The probe's rates over `buf` on each thread count.
pub(super) fn probe_rates(buf: &[u8], args: &BenchArgs) -> Vec<Rate> {
    measure(&args.threads, args.seconds, args.reps as usize, |t, _| {
        let mut rng = Rng::new(args.seed ^ t as u64, PROBE + 1);
        move |_| {
            black_box(probe_reads(buf, &mut rng, CHUNK));
            CHUNK
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_of_odd_and_even_counts() {
        let s = spread(&[3.0, 1.0, 2.0]);
        assert_eq!((s.median, s.min, s.max), (2.0, 1.0, 3.0));
        let s = spread(&[4.0, 1.0, 3.0, 2.0]);
        assert_eq!((s.median, s.min, s.max), (2.5, 1.0, 4.0));
        assert_eq!(spread(&[7.0]).median, 7.0);
        assert_eq!(spread(&[]), Spread::default());
        let s = spread(&[f64::NAN, 5.0, 1.0]);
        assert_eq!((s.median, s.min, s.max), (3.0, 1.0, 5.0));
    }

    /// Against an oracle that counts: the median has as many values at or below it as at or
    /// above it, and the extremes are the extremes.
    #[test]
    fn spread_agrees_with_a_counting_oracle() {
        let mut rng = Rng::new(7, 99);
        for case in 0..500 {
            let len = 1 + (case % 17);
            let values: Vec<f64> = (0..len).map(|_| rng.below(20) as f64 / 4.0).collect();
            let s = spread(&values);
            let below = values.iter().filter(|v| **v <= s.median).count();
            let above = values.iter().filter(|v| **v >= s.median).count();
            assert!(below * 2 >= len && above * 2 >= len, "{values:?} -> {s:?}");
            assert!(values.iter().all(|v| s.min <= *v && *v <= s.max));
            assert!(values.contains(&s.min) && values.contains(&s.max));
            assert!(s.min <= s.median && s.median <= s.max);
        }
    }

    fn sample(ops: u64, wall: f64, cpu: f64, cpu_rate_sum: f64) -> Sample {
        Sample {
            ops,
            wall,
            cpu,
            cpu_rate_sum,
        }
    }

    #[test]
    fn one_thread_reports_cpu_time_and_several_wall_time() {
        // Two threads that took turns on one core: each did 1 M ops in 1 s of CPU time, over
        // 2 s of wall time. Their CPU rates add up to 2 M/s; the honest figure is 1 M/s.
        let turns = Rate {
            threads: 2,
            samples: vec![sample(2_000_000, 2.0, 2.0, 2.0); 3],
        };
        assert_eq!(turns.figure().median, 1.0);
        assert_eq!(turns.cpu().median, 2.0);
        assert_eq!(turns.cpu_share(), 0.5);
        let one = Rate {
            threads: 1,
            samples: vec![sample(1_000_000, 2.0, 0.5, 2.0)],
        };
        assert_eq!(one.figure().median, 2.0);
        assert_eq!(one.wall().median, 0.5);
        assert_eq!(one.cpu_share(), 0.25);
    }

    #[test]
    fn measure_runs_every_count_every_repetition() {
        let rates = measure(&[1, 3], 0.001, 4, |t, n| {
            assert!(t < n);
            move |_| 10
        });
        assert_eq!(rates.len(), 2);
        assert_eq!((rates[0].threads, rates[1].threads), (1, 3));
        for r in &rates {
            assert_eq!(r.samples.len(), 4);
            for s in &r.samples {
                assert_eq!(s.ops % 10, 0);
                assert!(s.ops >= 10 * r.threads as u64);
                assert!(s.wall > 0.0 && s.cpu > 0.0);
            }
        }
    }

    #[test]
    fn chunks_cover_the_items() {
        let items: Vec<u32> = (0..10).collect();
        let mut seen = vec![0; 10];
        for r in 0..4 {
            for x in chunk_of(&items, 0, 1, r, 3) {
                seen[*x as usize] += 1;
            }
        }
        assert_eq!(seen, vec![1; 10]);
        assert!(chunk_of::<u32>(&[], 0, 1, 0, 3).is_empty());
    }

    #[test]
    fn probe_buffers_round_up_to_pages() {
        let buf = probe_buffer(5000, 1, false).unwrap();
        assert_eq!(buf.len(), 8192);
        let mut rng = Rng::new(1, 2);
        black_box(probe_reads(&buf, &mut rng, 64));
    }
}

//! The thread pool a build parses and sorts with, made on first use.

use std::sync::{Arc, OnceLock};

/// How many threads a build uses, and their pool once one is needed. Clones share the pool.
#[derive(Debug, Clone)]
pub(crate) struct Workers(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    threads: usize,
    pool: OnceLock<Option<rayon::ThreadPool>>,
}

impl Workers {
    /// `threads` threads; 0 for the available cores.
    pub fn new(threads: usize) -> Self {
        let threads = match threads {
            0 => std::thread::available_parallelism().map_or(1, usize::from),
            n => n,
        };
        Workers(Arc::new(Inner {
            threads,
            pool: OnceLock::new(),
        }))
    }

    /// The pool, or `None` for a single thread (or when no thread could be started: the
    /// build then runs on the caller's thread alone, with the same result).
    pub fn pool(&self) -> Option<&rayon::ThreadPool> {
        if self.0.threads <= 1 {
            return None;
        }
        self.0
            .pool
            .get_or_init(|| {
                rayon::ThreadPoolBuilder::new()
                    .num_threads(self.0.threads)
                    .thread_name(|i| format!("repute-build-{i}"))
                    .build()
                    .ok()
            })
            .as_ref()
    }
}

//! CPU-bound work on large batches (signature checks, decoding) split across the cores, on the
//! one process-wide `rayon` pool (pure, no I/O).

use rayon::prelude::*;

/// Items from which work is split across the cores: below that, one core is faster than the
/// hand-offs.
pub const PARALLEL_FROM: usize = 256;

/// Batches below this many items do their CPU-bound work on the calling thread: for a few
/// entries (a live message is one) the hand-off to a blocking thread and back costs more than
/// the work itself, and adds two thread wake-ups to the message's latency.
pub const INLINE_BELOW: usize = 8;

/// Runs CPU-bound `work` on a batch of `items` items: on a blocking thread (so an async
/// thread stays free for the time it takes), or on the calling thread for a batch below
/// [`INLINE_BELOW`]. `Err` when the blocking task panicked or was cancelled.
pub async fn off_async_threads<R: Send + 'static>(
    items: usize,
    work: impl FnOnce() -> R + Send + 'static,
) -> Result<R, tokio::task::JoinError> {
    if items < INLINE_BELOW {
        return Ok(work());
    }
    tokio::task::spawn_blocking(work).await
}

/// Runs `work` on consecutive chunks of `items`, one chunk per thread of the pool when there are
/// at least [`PARALLEL_FROM`] items and more than one thread (on the calling thread otherwise),
/// and returns the chunks' results in order. The caller waits for the pool: run it off the
/// actors' threads (a blocking task).
pub fn in_parallel<T: Sync, R: Send>(items: &[T], work: impl Fn(&[T]) -> R + Sync) -> Vec<R> {
    let threads = rayon::current_num_threads();
    if threads < 2 || items.len() < PARALLEL_FROM {
        return vec![work(items)];
    }
    let chunk = items.len().div_ceil(threads);
    items.par_chunks(chunk).map(&work).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_batches_run_whole_on_the_calling_thread() {
        let items: Vec<u32> = (0..10).collect();
        let caller = std::thread::current().id();
        let out = in_parallel(&items, |chunk| (chunk.len(), std::thread::current().id()));
        assert_eq!(out, vec![(10, caller)]);
        assert_eq!(in_parallel(&[] as &[u32], <[u32]>::len), vec![0]);
    }

    #[tokio::test]
    async fn small_batches_stay_on_the_async_thread_and_large_ones_leave_it() {
        let caller = std::thread::current().id();
        let small = off_async_threads(INLINE_BELOW - 1, || std::thread::current().id()).await;
        assert_eq!(small.ok(), Some(caller));
        let large = off_async_threads(INLINE_BELOW, || std::thread::current().id()).await;
        assert!(large.is_ok_and(|thread| thread != caller));
    }

    #[test]
    fn large_batches_keep_their_order() {
        let items: Vec<u32> = (0..10_000).collect();
        let out: Vec<u32> = in_parallel(&items, <[u32]>::to_vec)
            .into_iter()
            .flatten()
            .collect();
        assert_eq!(out, items);
    }
}

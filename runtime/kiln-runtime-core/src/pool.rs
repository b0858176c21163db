//! A small thread pool behind `kiln_exec_ctx.parallel_for`.
//!
//! Invariants:
//! - Every `parallel_for(n)` call covers each index of `[0, n)` exactly once
//!   and returns only after every chunk has finished, so the caller's `data`
//!   outlives all uses of it.
//! - The calling thread works on its own loop too. A waiting caller therefore
//!   only waits for chunks that other threads are already executing, which
//!   makes concurrent calls (several runs on one model) and nested calls
//!   (a body calling `parallel_for`) deadlock-free.
//! - Queue entries are reference-counted jobs: a worker that picks up an entry
//!   after the job finished finds no chunk left and never touches `data`.
//! - Chunks are dealt out in contiguous ranges, one per participant: the
//!   caller owns the first range, and helpers take the next ones in the order
//!   they join. A participant claims its own range from the front and, once
//!   it is empty, steals from the back of the others'. So on an idle machine
//!   thread `i` computes the `i`-th part of every loop, and the part of a
//!   tensor one kernel wrote is mostly read by the same thread in the next
//!   (row-split kernels keep data in that core's caches instead of moving
//!   half of every intermediate between cores), while a descheduled or slow
//!   thread's chunks are still taken by the others.
//! - Waiting spins briefly before sleeping ([`SPIN_ITERS`]): a worker that just
//!   finished a job watches the queue, and a caller watches its job's
//!   unfinished chunks, so the back-to-back loops of one run (a model's
//!   layers) hand over without a futex wake-up each (tens of microseconds
//!   on a virtual machine, more than a batch-1 layer takes). Correctness
//!   never depends on the spin: every sleep re-checks its condition under
//!   the mutex that the notifier holds.

use crate::abi::ParallelBody;
use crate::sys::{self, Condvar, Mutex, Thread};
use alloc::boxed::Box;
use alloc::collections::VecDeque;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::ffi::c_void;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// Most threads a pool will start; more would only add overhead.
const MAX_THREADS: u32 = 256;
/// Chunks per thread: a few per thread balance uneven chunk costs.
const CHUNKS_PER_THREAD: u64 = 4;
/// Stack size of worker threads; compiled kernels may keep large buffers on
/// the stack, so give them as much as a main thread usually has.
const WORKER_STACK_BYTES: usize = 8 << 20;
/// Spin-loop hints a waiting thread issues before it sleeps: about 50-150 µs
/// (a `pause` is 40-140 cycles on current x86 cores). None when the pool has
/// more threads than the machine has cores: a spinning thread would then
/// take a core from one with work.
const SPIN_ITERS: u32 = 4096;

/// Spins until `ready()` or `iters` hints have passed; whether it became ready.
fn spin_until(iters: u32, ready: impl Fn() -> bool) -> bool {
    for _ in 0..iters {
        if ready() {
            return true;
        }
        core::hint::spin_loop();
    }
    ready()
}

/// Threads to use when nothing was requested: `KILN_NUM_THREADS` when set,
/// otherwise the available cores. A malformed `KILN_NUM_THREADS` is an
/// error naming it (see [`crate::env`]).
pub fn default_num_threads() -> Result<u32, crate::Error> {
    let n = crate::env::num_threads()?.unwrap_or_else(sys::available_parallelism);
    Ok(n.clamp(1, MAX_THREADS))
}

/// Chunk ranges of a job: [`MAX_RANGES`] at most, so a job stays one small
/// allocation; threads beyond it share ranges (they only steal).
const MAX_RANGES: usize = 8;

/// One `parallel_for` call.
struct Job {
    body: ParallelBody,
    data: *mut c_void,
    n: i64,
    chunk: i64,
    /// Unclaimed chunks `[begin, end)` of each participant's range, packed as
    /// `begin | end << 32` so the owner (front) and thieves (back) claim with
    /// one compare-and-swap.
    ranges: [AtomicU64; MAX_RANGES],
    num_ranges: usize,
    /// Participants so far: the caller is participant 0 from the start, so
    /// a helper that picks the job up before the caller works on it still
    /// takes the second range.
    joined: AtomicU32,
    /// Chunks not finished yet (the waiter spins on it). Whoever brings it
    /// to zero then notifies under `finished_lock`, so a waiter that checks
    /// it under that lock and then sleeps is always woken.
    unfinished: AtomicU64,
    finished_lock: Mutex<()>,
    finished: Condvar,
    /// Spin-loop hints before the waiter sleeps (the pool's `spin`).
    spin: u32,
}

// SAFETY: `data` is only dereferenced by `body` while the submitting thread
// waits in `parallel_for`; the compiled code that passes it promises that
// `body` may run on any thread (that is the purpose of parallel_for).
unsafe impl Send for Job {}
// SAFETY: as above; all other fields are immutable or synchronized.
unsafe impl Sync for Job {}

/// The range of participant `i` of `parts` over `num_chunks` chunks, packed.
fn packed_range(num_chunks: u64, parts: u64, i: u64) -> u64 {
    let begin = num_chunks * i / parts;
    let end = num_chunks * (i + 1) / parts;
    begin | end << 32
}

/// Claims one chunk of a packed range: from the front, or from the back.
fn claim(range: &AtomicU64, front: bool) -> Option<u64> {
    let mut cur = range.load(Ordering::Relaxed);
    loop {
        let (begin, end) = (cur & 0xffff_ffff, cur >> 32);
        if begin >= end {
            return None;
        }
        let (next, index) = if front {
            (cur + 1, begin)
        } else {
            (begin | (end - 1) << 32, end - 1)
        };
        match range.compare_exchange_weak(cur, next, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return Some(index),
            Err(seen) => cur = seen,
        }
    }
}

impl Job {
    fn new(body: ParallelBody, data: *mut c_void, n: i64, threads: u32, spin: u32) -> Job {
        let (chunk, num_chunks) = split(n, threads);
        let num_ranges = (threads as usize)
            .clamp(1, MAX_RANGES)
            .min(num_chunks as usize);
        let ranges = core::array::from_fn(|i| {
            AtomicU64::new(if i < num_ranges {
                packed_range(num_chunks, num_ranges as u64, i as u64)
            } else {
                0
            })
        });
        Job {
            body,
            data,
            n,
            chunk,
            ranges,
            num_ranges,
            joined: AtomicU32::new(1),
            unfinished: AtomicU64::new(num_chunks),
            finished_lock: Mutex::new(()),
            finished: Condvar::new(),
            spin,
        }
    }

    /// The next chunk for participant `me`: its own range's front, else the
    /// back of another range (nearest first).
    fn next_chunk(&self, me: usize) -> Option<u64> {
        let own = me % self.num_ranges;
        if me < self.num_ranges {
            if let Some(index) = claim(&self.ranges[own], true) {
                return Some(index);
            }
        }
        (1..=self.num_ranges).find_map(|d| claim(&self.ranges[(own + d) % self.num_ranges], false))
    }

    /// Joins the job as the next helper and runs chunks until none are left.
    fn help(&self) {
        self.work(self.joined.fetch_add(1, Ordering::Relaxed) as usize);
    }

    /// Runs chunks as participant `me` until none are left.
    fn work(&self, me: usize) {
        while let Some(index) = self.next_chunk(me) {
            // index < num_chunks, so begin < n and the product cannot overflow.
            let begin = index as i64 * self.chunk;
            let end = begin.saturating_add(self.chunk).min(self.n);
            // SAFETY: the caller of parallel_for guarantees that body/data are
            // valid for every [begin, end) inside [0, n) until it returns, and
            // it does not return before `unfinished` reaches zero.
            unsafe { (self.body)(self.data, begin, end) };
            if self.unfinished.fetch_sub(1, Ordering::AcqRel) == 1 {
                // Under the lock: a waiter checks `unfinished` under it before sleeping.
                let _guard = self.finished_lock.lock();
                self.finished.notify_all();
            }
        }
    }

    fn wait(&self) {
        if spin_until(self.spin, || self.unfinished.load(Ordering::Acquire) == 0) {
            return;
        }
        let mut guard = self.finished_lock.lock();
        while self.unfinished.load(Ordering::Acquire) > 0 {
            guard = self.finished.wait(guard);
        }
    }
}

struct Queue {
    jobs: VecDeque<Arc<Job>>,
    shutdown: bool,
}

/// State shared between the pool owner, the workers and `parallel_for`.
pub(crate) struct Shared {
    queue: Mutex<Queue>,
    /// Entries in `queue.jobs` (or shutdown), readable without the lock by spinning workers.
    queued: AtomicU64,
    wake: Condvar,
    /// Threads per loop, the caller included; fixed once the pool is built.
    num_threads: AtomicU32,
    /// Spin-loop hints before a waiting thread sleeps ([`SPIN_ITERS`], or 0).
    spin: u32,
}

/// A fixed set of worker threads; the thread calling `parallel_for` is the
/// last of `num_threads`.
pub(crate) struct Pool {
    shared: Arc<Shared>,
    workers: Vec<Thread>,
}

impl Pool {
    /// Starts `num_threads - 1` workers. If the system refuses to start some,
    /// the pool runs with the ones it got.
    pub fn new(num_threads: u32) -> Pool {
        let wanted = num_threads.clamp(1, MAX_THREADS);
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue {
                jobs: VecDeque::new(),
                shutdown: false,
            }),
            queued: AtomicU64::new(0),
            wake: Condvar::new(),
            num_threads: AtomicU32::new(1),
            spin: if wanted <= sys::available_parallelism() {
                SPIN_ITERS
            } else {
                0
            },
        });
        let mut workers = Vec::new();
        for _ in 1..wanted {
            let worker_shared = Arc::clone(&shared);
            let main = Box::new(move || worker_loop(&worker_shared));
            match Thread::spawn(WORKER_STACK_BYTES, main) {
                Some(thread) => workers.push(thread),
                None => break,
            }
        }
        // Published before the pool is handed out, so Relaxed suffices.
        let started = u32::try_from(workers.len() + 1).unwrap_or(MAX_THREADS);
        shared.num_threads.store(started, Ordering::Relaxed);
        Pool { shared, workers }
    }

    /// Threads working on each loop, the caller included.
    pub fn num_threads(&self) -> u32 {
        self.shared.num_threads.load(Ordering::Relaxed)
    }

    /// The opaque `pool` pointer for [`pool_parallel_for`]; valid while `self` lives.
    pub fn as_ctx_pointer(&self) -> *mut c_void {
        Arc::as_ptr(&self.shared) as *mut c_void
    }
}

fn shutdown(shared: &Shared) {
    shared.queue.lock().shutdown = true;
    shared.queued.fetch_add(1, Ordering::Release);
    shared.wake.notify_all();
}

impl Drop for Pool {
    fn drop(&mut self) {
        shutdown(&self.shared);
        for thread in self.workers.drain(..) {
            thread.join();
        }
    }
}

fn worker_loop(shared: &Shared) {
    loop {
        // Watch for the next job a while before sleeping on the condition variable.
        spin_until(shared.spin, || shared.queued.load(Ordering::Acquire) > 0);
        let job = {
            let mut queue = shared.queue.lock();
            loop {
                if queue.shutdown {
                    return;
                }
                if let Some(job) = queue.jobs.pop_front() {
                    shared.queued.fetch_sub(1, Ordering::AcqRel);
                    break job;
                }
                queue = shared.wake.wait(queue);
            }
        };
        job.help();
    }
}

/// Chunk size and count for `n` indices on `threads` threads.
fn split(n: i64, threads: u32) -> (i64, u64) {
    let n_u = n as u64;
    let wanted = (u64::from(threads) * CHUNKS_PER_THREAD).clamp(1, n_u);
    let chunk = n_u.div_ceil(wanted);
    (chunk as i64, n_u.div_ceil(chunk))
}

/// `parallel_for` when the model runs single-threaded: one inline call.
///
/// # Safety
/// `body` must be safe to call with `data` over `[0, n)`.
pub(crate) unsafe extern "C" fn inline_parallel_for(
    _pool: *mut c_void,
    n: i64,
    body: Option<ParallelBody>,
    data: *mut c_void,
) {
    if let (Some(body), true) = (body, n > 0) {
        // SAFETY: guaranteed by the caller.
        unsafe { body(data, 0, n) };
    }
}

/// `parallel_for` backed by a [`Pool`].
///
/// # Safety
/// `pool` must come from [`Pool::as_ctx_pointer`] of a live pool, and `body`
/// must be safe to call with `data` over any sub-range of `[0, n)` from any
/// thread, concurrently.
pub(crate) unsafe extern "C" fn pool_parallel_for(
    pool: *mut c_void,
    n: i64,
    body: Option<ParallelBody>,
    data: *mut c_void,
) {
    let Some(body) = body else { return };
    if n <= 0 {
        return;
    }
    if pool.is_null() {
        // SAFETY: guaranteed by the caller.
        unsafe { body(data, 0, n) };
        return;
    }
    // SAFETY: `pool` points to the `Shared` of a live pool (caller contract).
    let shared = unsafe { &*(pool as *const Shared) };
    let num_threads = shared.num_threads.load(Ordering::Relaxed);
    let (_, num_chunks) = split(n, num_threads);
    if num_chunks <= 1 || num_threads <= 1 {
        // SAFETY: guaranteed by the caller.
        unsafe { body(data, 0, n) };
        return;
    }
    let job = Arc::new(Job::new(body, data, n, num_threads, shared.spin));
    let helpers = (u64::from(num_threads) - 1).min(num_chunks - 1);
    {
        let mut queue = shared.queue.lock();
        for _ in 0..helpers {
            queue.jobs.push_back(Arc::clone(&job));
        }
        shared.queued.fetch_add(helpers, Ordering::Release);
    }
    for _ in 0..helpers {
        shared.wake.notify_one();
    }
    job.work(0);
    job.wait();
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    struct Coverage {
        hits: Vec<AtomicU32>,
        calls: AtomicU32,
    }

    unsafe extern "C" fn mark(data: *mut c_void, begin: i64, end: i64) {
        // SAFETY: the tests pass a live `Coverage`.
        let coverage = unsafe { &*(data as *const Coverage) };
        coverage.calls.fetch_add(1, Ordering::Relaxed);
        for i in begin..end {
            coverage.hits[i as usize].fetch_add(1, Ordering::Relaxed);
        }
    }

    fn run_coverage(pool: &Pool, n: usize) -> Coverage {
        let coverage = Coverage {
            hits: (0..n).map(|_| AtomicU32::new(0)).collect(),
            calls: AtomicU32::new(0),
        };
        // SAFETY: `pool` is live and `mark` handles any sub-range of [0, n).
        unsafe {
            pool_parallel_for(
                pool.as_ctx_pointer(),
                n as i64,
                Some(mark),
                &coverage as *const Coverage as *mut c_void,
            )
        };
        coverage
    }

    fn assert_each_index_once(coverage: &Coverage) {
        for (i, hit) in coverage.hits.iter().enumerate() {
            assert_eq!(hit.load(Ordering::Relaxed), 1, "index {i}");
        }
    }

    #[test]
    fn covers_every_index_exactly_once() {
        for threads in [1, 2, 3, 8, 11] {
            let pool = Pool::new(threads);
            assert_eq!(pool.num_threads(), threads);
            for n in [0, 1, 2, 7, 31, 1000, 4097] {
                let coverage = run_coverage(&pool, n);
                assert_each_index_once(&coverage);
                if n == 0 {
                    assert_eq!(coverage.calls.load(Ordering::Relaxed), 0);
                }
            }
        }
    }

    #[test]
    fn splits_into_several_chunks_with_several_threads() {
        let pool = Pool::new(4);
        let coverage = run_coverage(&pool, 1000);
        assert_eq!(coverage.calls.load(Ordering::Relaxed), 16);
        assert_eq!(split(10, 4), (1, 10));
        assert_eq!(split(i64::MAX, 4), (i64::MAX / 16 + 1, 16));
    }

    unsafe extern "C" fn nothing(_: *mut c_void, _: i64, _: i64) {}

    #[test]
    fn participants_own_contiguous_ranges_and_steal_from_the_back() {
        // 3 threads, 12 chunks: ranges [0, 4), [4, 8), [8, 12).
        let job = Job::new(nothing, core::ptr::null_mut(), 12, 3, 0);
        assert_eq!(job.num_ranges, 3);
        let mut order = Vec::new();
        while let Some(i) = job.next_chunk(1) {
            order.push(i);
        }
        // Its own range front to back, then the next range's back, then the first's.
        assert_eq!(order, [4, 5, 6, 7, 11, 10, 9, 8, 3, 2, 1, 0]);
        assert_eq!(job.next_chunk(0), None);
    }

    #[test]
    fn every_chunk_is_claimed_once_by_any_mix_of_participants() {
        for (n, threads) in [
            (1, 2),
            (2, 2),
            (7, 3),
            (13, 4),
            (31, 2),
            (97, 12),
            (1000, 300),
        ] {
            let job = Job::new(nothing, core::ptr::null_mut(), n, threads, 0);
            let (_, num_chunks) = split(n, threads);
            assert!(job.num_ranges >= 1 && job.num_ranges <= MAX_RANGES);
            let claimed: Vec<AtomicU32> = (0..num_chunks).map(|_| AtomicU32::new(0)).collect();
            std::thread::scope(|scope| {
                for me in 0..threads as usize + 2 {
                    let (job, claimed) = (&job, &claimed);
                    scope.spawn(move || {
                        while let Some(i) = job.next_chunk(me) {
                            claimed[i as usize].fetch_add(1, Ordering::Relaxed);
                        }
                    });
                }
            });
            for (i, c) in claimed.iter().enumerate() {
                assert_eq!(
                    c.load(Ordering::Relaxed),
                    1,
                    "n {n} threads {threads} chunk {i}"
                );
            }
        }
    }

    #[test]
    fn concurrent_callers_share_one_pool() {
        let pool = Pool::new(3);
        std::thread::scope(|scope| {
            for t in 0..6 {
                let pool = &pool;
                scope.spawn(move || {
                    for round in 0..50 {
                        let coverage = run_coverage(pool, 100 + t * 17 + round);
                        assert_each_index_once(&coverage);
                    }
                });
            }
        });
    }

    struct Nested {
        pool: *mut c_void,
        inner: Coverage,
    }

    unsafe extern "C" fn nested_body(data: *mut c_void, begin: i64, end: i64) {
        // SAFETY: the test passes a live `Nested`.
        let nested = unsafe { &*(data as *const Nested) };
        for row in begin..end {
            let base = row as usize * 10;
            let row_cov = Coverage {
                hits: (0..10).map(|_| AtomicU32::new(0)).collect(),
                calls: AtomicU32::new(0),
            };
            // SAFETY: the pool outlives the outer call.
            unsafe {
                pool_parallel_for(
                    nested.pool,
                    10,
                    Some(mark),
                    &row_cov as *const Coverage as *mut c_void,
                )
            };
            for (i, hit) in row_cov.hits.iter().enumerate() {
                nested.inner.hits[base + i]
                    .fetch_add(hit.load(Ordering::Relaxed), Ordering::Relaxed);
            }
        }
    }

    #[test]
    fn nested_calls_do_not_deadlock() {
        let pool = Pool::new(4);
        let nested = Nested {
            pool: pool.as_ctx_pointer(),
            inner: Coverage {
                hits: (0..200).map(|_| AtomicU32::new(0)).collect(),
                calls: AtomicU32::new(0),
            },
        };
        // SAFETY: the pool is live and nested_body handles any sub-range of [0, 20).
        unsafe {
            pool_parallel_for(
                pool.as_ctx_pointer(),
                20,
                Some(nested_body),
                &nested as *const Nested as *mut c_void,
            )
        };
        assert_each_index_once(&nested.inner);
    }

    #[test]
    fn inline_version_makes_one_call() {
        let coverage = Coverage {
            hits: (0..5).map(|_| AtomicU32::new(0)).collect(),
            calls: AtomicU32::new(0),
        };
        // SAFETY: `mark` handles [0, 5).
        unsafe {
            inline_parallel_for(
                core::ptr::null_mut(),
                5,
                Some(mark),
                &coverage as *const Coverage as *mut c_void,
            )
        };
        assert_each_index_once(&coverage);
        assert_eq!(coverage.calls.load(Ordering::Relaxed), 1);
    }
}

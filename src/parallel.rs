//! Running row blocks: on the calling thread, on scoped threads, or on the
//! caller's pool; partial sums are always combined in block order, so the
//! result does not depend on which thread ran which block.

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicU8, Ordering};

use crate::error::{Error, ErrorKind, Result};

/// A pool that runs `n_tasks` tasks, each index exactly once, and returns when
/// all are done. Implemented by the C API for a caller's `parallel_for`.
pub trait ParallelFor: Sync {
    /// Runs `task(i)` for every `i` in `0..n_tasks`, in any order and on any threads.
    fn run(&self, n_tasks: usize, task: &(dyn Fn(usize) + Sync));
}

/// Logits per block of rows; blocks depend only on the shape, never on the
/// number of threads.
const BLOCK_ELEMS: usize = 1 << 14;
/// Below this many logits a call stays on the calling thread.
#[cfg(feature = "std")]
const PARALLEL_MIN_ELEMS: usize = 1 << 18;
/// Upper bound on built-in threads per call.
#[cfg(feature = "std")]
const MAX_THREADS: usize = 256;
/// Without std, blocks handed to a caller's pool per `parallel_for` call:
/// their slots live on the stack, so a call with more blocks makes one call
/// per round.
#[cfg(not(feature = "std"))]
const ROUND: usize = 64;

/// Rows per block for rows of `cols` classes: a multiple of 16 when rows are
/// short, so the short-row batches of 16 tile every block exactly.
pub(crate) fn block_rows(cols: usize) -> usize {
    let r = (BLOCK_ELEMS / cols.max(1)).max(1);
    if r >= 16 { r - r % 16 } else { r }
}

/// Who may run a call's blocks: the caller's pool, or up to `num_threads`
/// of xent's own threads (0 = all cores for large calls).
#[derive(Clone, Copy)]
pub(crate) struct Workers<'a> {
    pub pool: Option<&'a dyn ParallelFor>,
    pub num_threads: u32,
}

/// How a call runs its blocks.
#[derive(Clone, Copy)]
pub(crate) enum Exec<'a> {
    Inline,
    #[cfg(feature = "std")]
    Threads(usize),
    Pool(&'a dyn ParallelFor),
}

impl<'a> Exec<'a> {
    /// The execution a call on `rows × cols` logits gets.
    pub(crate) fn choose(w: Workers<'a>, rows: usize, cols: usize) -> Exec<'a> {
        Exec::for_tasks(w, rows.div_ceil(block_rows(cols)), rows.saturating_mul(cols))
    }

    /// The execution of `blocks` independent tasks whose total work is about
    /// `work` logits' worth (for a matrix product, its multiply-adds).
    pub(crate) fn for_tasks(w: Workers<'a>, blocks: usize, work: usize) -> Exec<'a> {
        if blocks <= 1 {
            return Exec::Inline;
        }
        if let Some(pool) = w.pool {
            return Exec::Pool(pool);
        }
        Exec::threads(w.num_threads, blocks, work)
    }

    #[cfg(feature = "std")]
    fn threads(num_threads: u32, blocks: usize, work: usize) -> Exec<'a> {
        if work < PARALLEL_MIN_ELEMS {
            return Exec::Inline;
        }
        let want = match num_threads {
            0 => std::thread::available_parallelism().map_or(1, usize::from),
            n => n as usize,
        };
        match want.min(blocks).min(MAX_THREADS) {
            0 | 1 => Exec::Inline,
            n => Exec::Threads(n),
        }
    }

    /// Without std xent starts no threads: `num_threads` is ignored.
    #[cfg(not(feature = "std"))]
    fn threads(_: u32, _: usize, _: usize) -> Exec<'a> {
        Exec::Inline
    }
}

/// Sums two partials; the only way partials are combined.
fn add(a: (f64, f64), b: (f64, f64)) -> (f64, f64) {
    (a.0 + b.0, a.1 + b.1)
}

/// A block waiting to run, and its result once it has. Whichever thread
/// moves `state` from WAITING to TAKEN owns `block` and `sum` until it stores
/// DONE (Release); the caller reads `sum` only after loading DONE (Acquire).
struct Slot<B> {
    state: AtomicU8,
    block: UnsafeCell<Option<B>>,
    sum: UnsafeCell<(f64, f64)>,
}

const WAITING: u8 = 0;
const TAKEN: u8 = 1;
const DONE: u8 = 2;

// SAFETY: the state machine above gives one thread at a time access to
// `block` and `sum`; a block (`B: Send`) moves to the thread that takes it.
unsafe impl<B: Send> Sync for Slot<B> {}

impl<B> Slot<B> {
    fn new(block: Option<B>) -> Self {
        Slot { state: AtomicU8::new(WAITING), block: UnsafeCell::new(block), sum: UnsafeCell::new((0.0, 0.0)) }
    }

    /// Runs the block unless another call of this task index took it.
    fn run(&self, work: &impl Fn(B) -> (f64, f64)) {
        if self.state.compare_exchange(WAITING, TAKEN, Ordering::Acquire, Ordering::Relaxed).is_err() {
            return;
        }
        // SAFETY: the exchange above made this thread the only one to touch
        // `block` and `sum` until it stores DONE.
        let block = unsafe { (*self.block.get()).take() };
        if let Some(b) = block {
            let r = work(b);
            // SAFETY: as above; DONE (Release) publishes the write.
            unsafe { *self.sum.get() = r };
            self.state.store(DONE, Ordering::Release);
        }
    }

    /// The block's sums if it ran to the end; else whether it was taken
    /// (its task started and panicked) or never run.
    fn result(&self) -> core::result::Result<(f64, f64), u8> {
        match self.state.load(Ordering::Acquire) {
            // SAFETY: DONE (Acquire) means the writer finished with `sum`
            // and nobody writes it again.
            DONE => Ok(unsafe { *self.sum.get() }),
            other => Err(other),
        }
    }
}

/// Runs `work` on every block and returns the block-ordered sum of results.
pub(crate) fn run<B: Send>(
    exec: Exec<'_>,
    blocks: impl ExactSizeIterator<Item = B>,
    work: impl Fn(B) -> (f64, f64) + Sync,
) -> Result<(f64, f64)> {
    match exec {
        Exec::Inline => Ok(blocks.fold((0.0, 0.0), |acc, b| add(acc, work(b)))),
        Exec::Pool(pool) => run_pool(pool, blocks, work),
        #[cfg(feature = "std")]
        Exec::Threads(n) => run_threads(n, blocks, work),
    }
}

/// Adds the results of `slots` (blocks `first..`) to `total`, in order.
fn collect<B>(slots: &[Slot<B>], first: usize, total: &mut (f64, f64)) -> Result<()> {
    for (i, slot) in slots.iter().enumerate() {
        match slot.result() {
            Ok(r) => *total = add(*total, r),
            Err(TAKEN) => {
                return Err(Error::new(
                    ErrorKind::Internal,
                    format_args!("internal error (panic): block {} started but did not finish", first + i),
                ));
            }
            Err(_) => {
                return Err(Error::new(
                    ErrorKind::Internal,
                    format_args!("block {} was not run (parallel_for must run every task index once)", first + i),
                ));
            }
        }
    }
    Ok(())
}

/// The caller's pool, invoked once for all the blocks: their slots are a
/// table allocated for the call (as xent's own threads use), so a caller's
/// fork/join happens once per pass however many blocks there are.
#[cfg(feature = "std")]
fn run_pool<B: Send>(
    pool: &dyn ParallelFor,
    blocks: impl ExactSizeIterator<Item = B>,
    work: impl Fn(B) -> (f64, f64) + Sync,
) -> Result<(f64, f64)> {
    let slots = slot_table(blocks)?;
    // A task index out of range is ignored, one run twice finds its block taken.
    pool.run(slots.len(), &|i: usize| {
        if let Some(slot) = slots.get(i) {
            slot.run(&work);
        }
    });
    let mut total = (0.0, 0.0);
    collect(&slots, 0, &mut total)?;
    Ok(total)
}

/// The slots of every block, in order.
#[cfg(feature = "std")]
fn slot_table<B>(blocks: impl ExactSizeIterator<Item = B>) -> Result<Vec<Slot<B>>> {
    let mut slots: Vec<Slot<B>> = Vec::new();
    slots
        .try_reserve_exact(blocks.len())
        .map_err(|_| Error::new(ErrorKind::AllocationFailed, "cannot allocate the block table"))?;
    slots.extend(blocks.map(|b| Slot::new(Some(b))));
    Ok(slots)
}

/// Without std (no allocator) the caller's pool runs in rounds of up to
/// [`ROUND`] blocks whose slots are on the stack.
#[cfg(not(feature = "std"))]
fn run_pool<B: Send>(
    pool: &dyn ParallelFor,
    mut blocks: impl ExactSizeIterator<Item = B>,
    work: impl Fn(B) -> (f64, f64) + Sync,
) -> Result<(f64, f64)> {
    let mut total = (0.0, 0.0);
    let mut first = 0;
    while blocks.len() > 0 {
        let n = blocks.len().min(ROUND);
        let slots: [Slot<B>; ROUND] = core::array::from_fn(|i| Slot::new(if i < n { blocks.next() } else { None }));
        let slots = &slots[..n];
        // A task index out of range is ignored, one run twice finds its
        // block taken.
        pool.run(n, &|i: usize| {
            if let Some(slot) = slots.get(i) {
                slot.run(&work);
            }
        });
        collect(slots, first, &mut total)?;
        first += n;
    }
    Ok(total)
}

/// xent's own scoped threads, taking blocks in order from one table.
#[cfg(feature = "std")]
fn run_threads<B: Send>(
    n: usize,
    blocks: impl ExactSizeIterator<Item = B>,
    work: impl Fn(B) -> (f64, f64) + Sync,
) -> Result<(f64, f64)> {
    let slots = slot_table(blocks)?;
    let next = core::sync::atomic::AtomicUsize::new(0);
    let worker = || {
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            match slots.get(i) {
                Some(slot) => slot.run(&work),
                None => break,
            }
        }
    };
    std::thread::scope(|sc| {
        for _ in 1..n {
            // A thread that cannot start leaves its share to the others.
            let _ = std::thread::Builder::new().spawn_scoped(sc, worker);
        }
        worker();
    });
    let mut total = (0.0, 0.0);
    collect(&slots, 0, &mut total)?;
    Ok(total)
}

#[cfg(all(test, feature = "std"))]
mod tests {
    use super::*;

    /// A pool that runs every task, catching panics as the C boundary's
    /// trampoline does, or skips the last task.
    struct Pool {
        skip_last: bool,
    }

    impl ParallelFor for Pool {
        fn run(&self, n_tasks: usize, task: &(dyn Fn(usize) + Sync)) {
            let n = if self.skip_last { n_tasks - 1 } else { n_tasks };
            for i in 0..n {
                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| task(i)));
            }
        }
    }

    #[test]
    fn a_panicking_task_is_reported_as_a_panic_and_a_skipped_one_as_the_pools() {
        let panics = Pool { skip_last: false };
        let work = |b: usize| {
            assert!(b != 1, "block 1 fails");
            (1.0, 0.0)
        };
        let e = run(Exec::Pool(&panics), 0..3usize, work).expect_err("a task panicked");
        assert!(e.message.contains("panic") && e.message.contains("block 1"), "{}", e.message);
        let skips = Pool { skip_last: true };
        let e = run(Exec::Pool(&skips), 0..3usize, |_| (1.0, 0.0)).expect_err("a task was skipped");
        assert!(e.message.contains("block 2 was not run"), "{}", e.message);
        assert_eq!(run(Exec::Pool(&panics), 0..3usize, |_| (1.0, 2.0)).expect("all ran"), (3.0, 6.0));
    }
}

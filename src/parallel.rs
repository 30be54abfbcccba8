//! Running row blocks: on the calling thread, on scoped threads, or on the
//! caller's pool; partial sums are always combined in block order, so the
//! result does not depend on which thread ran which block.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::loss::{Error, ErrorKind, Options, ParallelFor, Result};

/// Logits per block of rows; blocks depend only on the shape, never on the
/// number of threads.
const BLOCK_ELEMS: usize = 1 << 14;
/// Below this many logits a call stays on the calling thread.
const PARALLEL_MIN_ELEMS: usize = 1 << 18;
/// Upper bound on built-in threads per call.
const MAX_THREADS: usize = 256;

/// Rows per block for rows of `cols` classes: a multiple of 16 when rows are
/// short, so the short-row batches of 16 tile every block exactly.
pub(crate) fn block_rows(cols: usize) -> usize {
    let r = (BLOCK_ELEMS / cols.max(1)).max(1);
    if r >= 16 { r - r % 16 } else { r }
}

/// How a call runs its blocks.
#[derive(Clone, Copy)]
pub(crate) enum Exec<'a> {
    Inline,
    Threads(usize),
    Pool(&'a dyn ParallelFor),
}

impl<'a> Exec<'a> {
    /// The execution a call on `rows × cols` logits gets under `o`.
    pub(crate) fn choose(o: &Options<'a>, rows: usize, cols: usize) -> Exec<'a> {
        Exec::for_tasks(o, rows.div_ceil(block_rows(cols)), rows.saturating_mul(cols))
    }

    /// The execution of `blocks` independent tasks whose total work is about
    /// `work` logits' worth (for a matrix product, its multiply-adds).
    pub(crate) fn for_tasks(o: &Options<'a>, blocks: usize, work: usize) -> Exec<'a> {
        if blocks <= 1 {
            return Exec::Inline;
        }
        if let Some(pool) = o.parallel_for {
            return Exec::Pool(pool);
        }
        if work < PARALLEL_MIN_ELEMS {
            return Exec::Inline;
        }
        let want = match o.num_threads {
            0 => std::thread::available_parallelism().map_or(1, usize::from),
            n => n as usize,
        };
        match want.min(blocks).min(MAX_THREADS) {
            0 | 1 => Exec::Inline,
            n => Exec::Threads(n),
        }
    }
}

/// Sums two partials; the only way partials are combined.
fn add(a: (f64, f64), b: (f64, f64)) -> (f64, f64) {
    (a.0 + b.0, a.1 + b.1)
}

/// A block waiting to run, and its result once it has.
type Slot<B> = (Option<B>, Option<(f64, f64)>);

/// Runs `work` on every block and returns the block-ordered sum of results.
pub(crate) fn run<B: Send>(
    exec: Exec<'_>,
    blocks: impl ExactSizeIterator<Item = B>,
    work: impl Fn(B) -> (f64, f64) + Sync,
) -> Result<(f64, f64)> {
    if let Exec::Inline = exec {
        return Ok(blocks.fold((0.0, 0.0), |acc, b| add(acc, work(b))));
    }
    let mut slots: Vec<Mutex<Slot<B>>> = Vec::new();
    slots
        .try_reserve_exact(blocks.len())
        .map_err(|_| Error::new(ErrorKind::AllocationFailed, "cannot allocate the block table"))?;
    slots.extend(blocks.map(|b| Mutex::new((Some(b), None))));
    let task = |i: usize| {
        let Some(slot) = slots.get(i) else { return };
        // A task index run twice finds its block taken and does nothing.
        let block = slot.lock().map(|mut s| s.0.take()).ok().flatten();
        if let Some(b) = block {
            let r = work(b);
            if let Ok(mut s) = slot.lock() {
                s.1 = Some(r);
            }
        }
    };
    match exec {
        Exec::Pool(pool) => pool.run(slots.len(), &task),
        Exec::Threads(n) => {
            let next = AtomicUsize::new(0);
            let worker = || {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= slots.len() {
                        break;
                    }
                    task(i);
                }
            };
            std::thread::scope(|sc| {
                for _ in 1..n {
                    // A thread that cannot start leaves its share to the others.
                    let _ = std::thread::Builder::new().spawn_scoped(sc, worker);
                }
                worker();
            });
        }
        Exec::Inline => unreachable!("handled above"),
    }
    let mut total = (0.0, 0.0);
    for (i, slot) in slots.into_iter().enumerate() {
        match slot.into_inner().ok().and_then(|s| s.1) {
            Some(r) => total = add(total, r),
            None => {
                return Err(Error::new(
                    ErrorKind::Internal,
                    format!("block {i} was not run (parallel_for must run every task index once)"),
                ));
            }
        }
    }
    Ok(total)
}

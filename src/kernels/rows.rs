//! The per-row passes, generic over [`Simd`]. Each walks a row in 16-lane
//! chunks in index order with a masked tail, so the lane each element lands in
//! (and thus every rounding) is the same on every path. Sums are kept in f32
//! lanes for 64 chunks (1024 elements) at a time, reduced by the fixed tree and
//! added to an f64 total, which keeps long rows accurate.
//!
//! One job, over 500 lines: every pass a row goes through shares the
//! chunk walker (`for_chunks!`), the writer and the sums, which splitting
//! would only scatter.

use super::math::{exp, exp_nonpositive, log, tanh};
use super::simd::{LANES, Simd};

/// What a pass reads and writes.
pub(crate) enum Io<'a> {
    /// Read a row.
    Read(&'a [f32]),
    /// Read a row, write results into another of the same length.
    Map(&'a [f32], &'a mut [f32]),
    /// Read a row and overwrite it.
    InPlace(&'a mut [f32]),
    /// As `Map`, with streaming stores ([`Simd::store_stream`]): for an
    /// output that will not be read again soon.
    Stream(&'a [f32], &'a mut [f32]),
}

/// How the stored values become the logits `z'` the loss sees.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Logit {
    /// Raw logits: `z' = x`.
    Raw,
    /// Raw logits under a softcap: `z' = cap·tanh(x / cap)`.
    Softcap(f32),
    /// The stored value is already `t = tanh(z / cap)`: `z' = cap·t`.
    Tanh(f32),
}

/// Per-class coefficients `c_j = w_j · (k1·y_j + k0)`, where a missing `w`
/// counts as ones and a missing `y` as zeros.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Coef<'a> {
    pub w: Option<&'a [f32]>,
    pub y: Option<&'a [f32]>,
    pub k1: f32,
    pub k0: f32,
}

/// The gradient pass: `grad_j = (a·p_j − c_j) · f_j`, where `p_j` is
/// `exp(z'_j − shift)` or, when `stored_exp`, the value already in the row,
/// and `f_j = 1 − t_j²` under a softcap, else 1. `bounded` promises
/// `z'_j ≤ shift` (the shift is the row max), which allows the cheaper exp.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Grad<'a> {
    pub logit: Logit,
    pub stored_exp: bool,
    pub shift: f32,
    pub bounded: bool,
    pub a: f32,
    pub coef: Coef<'a>,
}

impl<'a> Coef<'a> {
    /// The coefficients of classes `r`.
    pub(crate) fn slice(&self, r: core::ops::Range<usize>) -> Coef<'a> {
        Coef { w: self.w.map(|w| &w[r.clone()]), y: self.y.map(|y| &y[r]), ..*self }
    }
}

/// Each lane's index.
pub(crate) const IOTA: [f32; LANES] =
    [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0, 12.0, 13.0, 14.0, 15.0];
const FLUSH_CHUNKS: u32 = 64;

#[inline(always)]
fn lanes_below<S: Simd>(s: S, n: usize) -> S::M {
    s.lt(s.load(&IOTA), s.splat(n as f32))
}

/// `v[off..off + n]` (`n ≤ 16`) as lanes, 0 past them.
#[inline(always)]
pub(crate) fn load_at<S: Simd>(s: S, v: &[f32], off: usize, n: usize) -> S::V {
    if n == LANES {
        s.load(v[off..off + LANES].try_into().expect("16 lanes"))
    } else {
        s.load_tail(&v[off..off + n], 0.0)
    }
}

/// Evaluates `body` on each chunk in order, with `x` the loaded lanes, `off`
/// the chunk's first index and `n` its valid lanes (16 except in the tail,
/// whose other lanes hold `fill`); for `Map`, `Stream` and `InPlace` the
/// body's value is stored back. A macro rather than a closure so the body is expanded
/// inside the `#[target_feature]` shell and its intrinsics inline.
macro_rules! for_chunks {
    ($s:expr, $io:expr, $fill:expr, |$x:ident, $off:pat_param, $n:pat_param| $body:expr) => {{
        let s = $s;
        let io = $io;
        let stream = matches!(io, Io::Stream(..));
        match io {
            Io::Read(src) => {
                let mut it = src.chunks_exact(LANES);
                for (k, c) in it.by_ref().enumerate() {
                    let ($x, $off, $n) = (s.load(c.try_into().expect("16 lanes")), k * LANES, LANES);
                    let _ = $body;
                }
                let r = it.remainder();
                if !r.is_empty() {
                    let ($x, $off, $n) = (s.load_tail(r, $fill), src.len() - r.len(), r.len());
                    let _ = $body;
                }
            }
            Io::Map(src, dst) | Io::Stream(src, dst) => {
                assert_eq!(src.len(), dst.len());
                let len = src.len();
                let full = len - len % LANES;
                let mut w = Writer::new(s, &mut dst[..full], stream);
                for (k, a) in src.chunks_exact(LANES).enumerate() {
                    let ($x, $off, $n) = (s.load(a.try_into().expect("16 lanes")), k * LANES, LANES);
                    let y = $body;
                    w.put(k, y);
                }
                w.finish();
                let a = &src[full..];
                if !a.is_empty() {
                    let ($x, $off, $n) = (s.load_tail(a, $fill), full, a.len());
                    let y = $body;
                    s.store_tail(&mut dst[full..], y);
                }
            }
            Io::InPlace(dst) => {
                let len = dst.len();
                let mut di = dst.chunks_exact_mut(LANES);
                for (k, b) in di.by_ref().enumerate() {
                    let b: &mut [f32; LANES] = b.try_into().expect("16 lanes");
                    let ($x, $off, $n) = (s.load(b), k * LANES, LANES);
                    let y = $body;
                    s.store(b, y);
                }
                let b = di.into_remainder();
                if !b.is_empty() {
                    let ($x, $off, $n) = (s.load_tail(b, $fill), len - b.len(), b.len());
                    let y = $body;
                    s.store_tail(b, y);
                }
            }
        }
    }};
}

/// Stores a row's consecutive 16-lane results (`put(0, ..)`, `put(1, ..)`,
/// …, then `finish`) into `dst`, a multiple of 16 long: plainly, or, when
/// streaming on an ISA that can ([`Simd::stream_offset`]), as whole
/// aligned lines with streaming stores. A misaligned row's vectors are
/// joined across their boundary into aligned lines, and its partial first
/// and last lines stored plainly; the values stored are the same either way.
struct Writer<'d, S: Simd> {
    s: S,
    dst: &'d mut [f32],
    /// Elements before the first aligned line, when streaming.
    head: Option<usize>,
    prev: S::V,
}

impl<'d, S: Simd> Writer<'d, S> {
    #[inline(always)]
    fn new(s: S, dst: &'d mut [f32], stream: bool) -> Self {
        let head = if stream && !dst.is_empty() { s.stream_offset(dst) } else { None };
        Writer { s, dst, head, prev: s.splat(0.0) }
    }
    #[inline(always)]
    fn put(&mut self, k: usize, y: S::V) {
        let s = self.s;
        match self.head {
            None => s.store((&mut self.dst[k * LANES..][..LANES]).try_into().expect("16 lanes"), y),
            Some(h) => {
                if k == 0 {
                    s.store_tail(&mut self.dst[..h], y);
                } else {
                    let line = s.shift_join(self.prev, y, h);
                    s.store_stream((&mut self.dst[h + (k - 1) * LANES..][..LANES]).try_into().expect("16 lanes"), line);
                }
                self.prev = y;
            }
        }
    }
    /// Stores what is left of the last vector and orders the streaming stores.
    #[inline(always)]
    fn finish(self) {
        let s = self.s;
        if let Some(h) = self.head {
            let last = self.dst.len() - LANES;
            if h == 0 {
                s.store_stream((&mut self.dst[last..]).try_into().expect("16 lanes"), self.prev);
            } else {
                s.store_tail(&mut self.dst[last + h..], s.shift_join(self.prev, self.prev, h));
            }
            s.stream_fence();
        }
    }
}

/// An f64 total fed by f32 lane sums flushed every 1024 elements.
struct Sum<S: Simd> {
    s: S,
    acc: S::V,
    chunks: u32,
    total: f64,
}

impl<S: Simd> Sum<S> {
    #[inline(always)]
    fn new(s: S) -> Self {
        Sum { s, acc: s.splat(0.0), chunks: 0, total: 0.0 }
    }
    #[inline(always)]
    fn add(&mut self, v: S::V) {
        self.acc = self.s.add(self.acc, v);
        self.chunks += 1;
        if self.chunks == FLUSH_CHUNKS {
            self.flush();
        }
    }
    #[inline(always)]
    fn flush(&mut self) {
        self.total += f64::from(self.s.reduce_add(self.acc));
        self.acc = self.s.splat(0.0);
        self.chunks = 0;
    }
    #[inline(always)]
    fn finish(mut self) -> f64 {
        if self.chunks > 0 {
            self.flush();
        }
        self.total
    }
}

/// `(z', t)` for stored values `x`; `t` is only meaningful under a softcap.
#[inline(always)]
pub(crate) fn logit<S: Simd>(s: S, how: Logit, x: S::V) -> (S::V, S::V) {
    match how {
        Logit::Raw => (x, x),
        Logit::Softcap(cap) => {
            let c = s.splat(cap);
            let t = tanh(s, s.div(x, c));
            (s.mul(c, t), t)
        }
        Logit::Tanh(cap) => (s.mul(s.splat(cap), x), x),
    }
}

#[inline(always)]
fn coef_at<S: Simd>(s: S, c: &Coef<'_>, off: usize, n: usize) -> S::V {
    let k0 = s.splat(c.k0);
    let inner = match c.y {
        Some(y) => s.fma(s.splat(c.k1), load_at(s, y, off, n), k0),
        None => k0,
    };
    let v = match c.w {
        Some(w) => s.mul(load_at(s, w, off, n), inner),
        None => inner,
    };
    if n == LANES { v } else { s.select(lanes_below(s, n), v, s.splat(0.0)) }
}

/// Largest `z'` of the row; NaN values are skipped (the sum pass sees them).
#[inline(always)]
pub(crate) fn max<S: Simd>(s: S, row: &[f32], how: Logit) -> f32 {
    let mut acc = s.splat(f32::NEG_INFINITY);
    for_chunks!(s, Io::Read(row), f32::NEG_INFINITY, |x, _, n| {
        let (z, _) = logit(s, how, x);
        let z = if n == LANES { z } else { s.select(lanes_below(s, n), z, s.splat(f32::NEG_INFINITY)) };
        acc = s.max(z, acc);
        x
    });
    s.reduce_max(acc)
}

/// Index of the first NaN if the row has one, else of the first maximum.
#[inline(always)]
pub(crate) fn argmax<S: Simd>(s: S, row: &[f32]) -> usize {
    let mut acc = s.splat(f32::NEG_INFINITY);
    let mut nan = false;
    for_chunks!(s, Io::Read(row), f32::NEG_INFINITY, |x, _, _| {
        nan |= s.first_set(s.is_nan(x)).is_some();
        acc = s.max(x, acc);
        x
    });
    let target = s.reduce_max(acc);
    let mut found = None;
    for_chunks!(s, Io::Read(row), 0.0, |x, off, _| {
        if found.is_none() {
            let hit = if nan { s.is_nan(x) } else { s.eq(x, s.splat(target)) };
            found = s.first_set(hit).map(|i| off + i);
        }
        x
    });
    found.unwrap_or(0)
}

/// Writes `t = tanh(x / cap)` for each raw logit and returns the largest `t`.
#[inline(always)]
pub(crate) fn tanh_store_max<S: Simd>(s: S, io: Io<'_>, cap: f32) -> f32 {
    let mut acc = s.splat(f32::NEG_INFINITY);
    for_chunks!(s, io, f32::NEG_INFINITY, |x, _, n| {
        let (_, t) = logit(s, Logit::Softcap(cap), x);
        let m = if n == LANES { t } else { s.select(lanes_below(s, n), t, s.splat(f32::NEG_INFINITY)) };
        acc = s.max(m, acc);
        t
    });
    s.reduce_max(acc)
}

/// A row that a pass prefetches as it goes, named by address only: a
/// prefetch reads nothing the program can observe, so this may be a row that
/// another block (on another thread) owns, such as the next row of a
/// gradient this block does not hold.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Ahead {
    at: *const f32,
    len: usize,
}

impl Ahead {
    /// Nothing to prefetch.
    pub(crate) const NONE: Ahead = Ahead { at: core::ptr::null(), len: 0 };

    /// The floats of `row`.
    pub(crate) fn of(row: &[f32]) -> Ahead {
        Ahead { at: row.as_ptr(), len: row.len() }
    }

    /// `len` floats starting `offset` floats past the start of `base`, which
    /// need not lie inside `base` (the address is computed, never read).
    pub(crate) fn past(base: &[f32], offset: usize, len: usize) -> Ahead {
        Ahead { at: base.as_ptr().wrapping_add(offset), len }
    }

    /// Floats `r` of this row (as far as it goes).
    pub(crate) fn range(self, r: core::ops::Range<usize>) -> Ahead {
        let start = r.start.min(self.len);
        Ahead { at: self.at.wrapping_add(start), len: r.end.min(self.len) - start }
    }
}

/// Prefetches float `off` of `next` (the next row, as far as it goes) into
/// L2: the passes that read a row from memory call it once per 16 elements,
/// so the next row streams in while this one computes.
#[inline(always)]
pub(crate) fn prefetch_at<S: Simd>(s: S, next: Ahead, off: usize) {
    if off < next.len {
        s.prefetch(next.at.wrapping_add(off));
    }
}

/// `Σ exp(z'_j − shift)`; with `Map`/`InPlace` each `exp(z'_j − shift)` is
/// also stored. `next` (the next row, or empty) is prefetched into L2 along
/// the way, so this compute-bound pass also streams the next row from DRAM.
#[inline(always)]
pub(crate) fn sum_exp<S: Simd>(s: S, io: Io<'_>, how: Logit, shift: f32, next: &[f32]) -> f64 {
    sum_exp_with(s, io, how, shift, next, true)
}

/// [`sum_exp`] for a shift that need not bound the row (such as a caller's
/// log-sum-exp): the exp is exact for any argument, +inf where it overflows.
#[inline(always)]
pub(crate) fn sum_exp_any<S: Simd>(s: S, io: Io<'_>, how: Logit, shift: f32, next: &[f32]) -> f64 {
    sum_exp_with(s, io, how, shift, next, false)
}

#[inline(always)]
fn sum_exp_with<S: Simd>(s: S, io: Io<'_>, how: Logit, shift: f32, next: &[f32], bounded: bool) -> f64 {
    let next = Ahead::of(next);
    let mut sum = Sum::new(s);
    let sh = s.splat(shift);
    for_chunks!(s, io, f32::NEG_INFINITY, |x, off, n| {
        prefetch_at(s, next, off);
        let (z, _) = logit(s, how, x);
        let e = if bounded { exp_nonpositive(s, s.sub(z, sh)) } else { exp(s, s.sub(z, sh)) };
        let e = if n == LANES { e } else { s.select(lanes_below(s, n), e, s.splat(0.0)) };
        sum.add(e);
        e
    });
    sum.finish()
}

/// [`sum_exp`] on raw logits, also taking the max of `ahead` (the row's
/// next chunk, at most as long as this one) in the same loop, so its loads
/// overlap this chunk's arithmetic. The max is exactly [`max`]'s; `next`
/// is prefetched as in [`sum_exp`].
#[inline(always)]
pub(crate) fn sum_exp_max_ahead<S: Simd>(s: S, io: Io<'_>, shift: f32, ahead: &[f32], next: &[f32]) -> (f64, f32) {
    let next = Ahead::of(next);
    let mut sum = Sum::new(s);
    let sh = s.splat(shift);
    let mut acc = s.splat(f32::NEG_INFINITY);
    let full = ahead.len() - ahead.len() % LANES;
    for_chunks!(s, io, f32::NEG_INFINITY, |x, off, n| {
        prefetch_at(s, next, off);
        if off + LANES <= full {
            acc = s.max(s.load(ahead[off..off + LANES].try_into().expect("16 lanes")), acc);
        }
        let e = exp_nonpositive(s, s.sub(x, sh));
        let e = if n == LANES { e } else { s.select(lanes_below(s, n), e, s.splat(0.0)) };
        sum.add(e);
        e
    });
    if full < ahead.len() {
        let n = ahead.len() - full;
        let z = s.select(lanes_below(s, n), s.load_tail(&ahead[full..], f32::NEG_INFINITY), s.splat(f32::NEG_INFINITY));
        acc = s.max(z, acc);
    }
    (sum.finish(), s.reduce_max(acc))
}

/// `(Σ c_j, Σ c_j·(z'_j − shift))`, where a zero `c_j` contributes exactly 0
/// even when `z'_j` is −inf.
#[inline(always)]
pub(crate) fn coef_dot<S: Simd>(s: S, row: &[f32], how: Logit, shift: f32, coef: Coef<'_>) -> (f64, f64) {
    let mut total = Sum::new(s);
    let mut dot = Sum::new(s);
    let sh = s.splat(shift);
    let zero = s.splat(0.0);
    for_chunks!(s, Io::Read(row), 0.0, |x, off, n| {
        let c = coef_at(s, &coef, off, n);
        let (z, _) = logit(s, how, x);
        let term = s.mul(c, s.sub(z, sh));
        total.add(c);
        dot.add(s.select(s.eq(c, zero), zero, term));
        x
    });
    (total.finish(), dot.finish())
}

/// Writes the gradient of one row; see [`Grad`]. The common shapes of
/// [`Grad`] get loops of their own (same operations, fewer branches).
/// Prefetches `next` as [`sum_exp`] does: the next row to read,
/// for a gradient pass that reads its row from memory, or the next row to
/// be written, so that its stores find it in the caches.
#[inline(always)]
pub(crate) fn grad_ahead<S: Simd>(s: S, io: Io<'_>, g: Grad<'_>, next: Ahead) {
    let a = s.splat(g.a);
    let zero = s.splat(0.0);
    let tiny = tiny_below(s, g.a);
    match (g.logit, g.stored_exp, g.coef.y) {
        // Fused call, class-index targets: a·e − w·k0 over the stored exps.
        (Logit::Raw, true, None) => match g.coef.w {
            None => {
                let c = s.sub(zero, s.splat(g.coef.k0));
                for_chunks!(s, io, 0.0, |x, off, _| {
                    prefetch_at(s, next, off);
                    s.fma_unless_tiny(a, x, c, tiny)
                });
            }
            Some(w) => {
                let k0 = s.splat(g.coef.k0);
                for_chunks!(s, io, 0.0, |x, off, n| {
                    prefetch_at(s, next, off);
                    s.fma_unless_tiny(a, x, s.sub(zero, s.mul(load_at(s, w, off, n), k0)), tiny)
                });
            }
        },
        // Backward on raw logits with class-index targets.
        (Logit::Raw, false, None) if g.coef.w.is_none() => {
            let sh = s.splat(g.shift);
            let c = s.sub(zero, s.splat(g.coef.k0));
            if g.bounded {
                for_chunks!(s, io, 0.0, |x, off, _| {
                    prefetch_at(s, next, off);
                    s.fma_unless_tiny(a, exp_nonpositive(s, s.sub(x, sh)), c, tiny)
                });
            } else {
                for_chunks!(s, io, 0.0, |x, off, _| {
                    prefetch_at(s, next, off);
                    s.fma_unless_tiny(a, exp(s, s.sub(x, sh)), c, tiny)
                });
            }
        }
        _ => grad_general(s, io, g, (tiny, next)),
    }
}

/// The `p` below which `|a|·p` would be subnormal (+inf when every product
/// would be, as for `a = 0`, where flushing changes nothing). Such terms are
/// 0 rather than subnormal ([`Simd::fma_unless_tiny`]): x86 makes
/// subnormal results through microcode assists costing hundreds of cycles,
/// so a row whose logits span about 90 would otherwise run several times
/// slower.
#[inline(always)]
fn tiny_below<S: Simd>(s: S, a: f32) -> S::V {
    s.splat(f32::MIN_POSITIVE / a.abs())
}

#[inline(always)]
fn grad_general<S: Simd>(s: S, io: Io<'_>, g: Grad<'_>, (tiny, next): (S::V, Ahead)) {
    let a = s.splat(g.a);
    let sh = s.splat(g.shift);
    let one = s.splat(1.0);
    for_chunks!(s, io, 0.0, |x, off, n| {
        prefetch_at(s, next, off);
        let (z, t) = logit(s, g.logit, x);
        let p = if g.stored_exp {
            x
        } else {
            let x = s.sub(z, sh);
            if g.bounded { exp_nonpositive(s, x) } else { exp(s, x) }
        };
        let c = coef_at(s, &g.coef, off, n);
        let v = s.fma_unless_tiny(a, p, s.sub(s.splat(0.0), c), tiny);
        match g.logit {
            Logit::Raw => v,
            Logit::Softcap(_) | Logit::Tanh(_) => s.mul(v, s.fma(s.sub(s.splat(0.0), t), t, one)),
        }
    });
}

/// Stores `exp(x)` for each element (for testing the exp kernel).
#[inline(always)]
pub(crate) fn exp_slice<S: Simd>(s: S, io: Io<'_>) {
    for_chunks!(s, io, 0.0, |x, _, _| exp(s, x));
}

/// Stores `x·b + c` (one rounding) for each element `x` (for testing each
/// path's fused multiply-add).
#[inline(always)]
pub(crate) fn fma_slice<S: Simd>(s: S, io: Io<'_>, b: &[f32], c: &[f32]) {
    for_chunks!(s, io, 0.0, |x, off, n| s.fma(x, load_at(s, b, off, n), load_at(s, c, off, n)));
}

/// Stores `ln x` for each element (positive normal inputs).
#[inline(always)]
pub(crate) fn log_slice<S: Simd>(s: S, io: Io<'_>) {
    for_chunks!(s, io, 1.0, |x, _, _| log(s, x));
}

//! The 16-lane vector abstraction every kernel is written against.
//!
//! Each instruction set implements [`Simd`] for a zero-sized token. The row
//! passes in `rows.rs` and the math in `math.rs` are generic over it, so every
//! path executes the same IEEE operations in the same order on the same lanes:
//! that is what makes the results bit-identical across scalar, AVX2 and
//! AVX-512. A vector always holds 16 lanes (AVX2 uses a pair of registers, the
//! scalar path an array), horizontal reductions use one fixed tree, and fused
//! multiply-add is a single rounding everywhere.

/// Lanes per vector on every path.
pub(crate) const LANES: usize = 16;

/// A set of 16-lane `f32` operations with one exact semantics on every ISA.
///
/// Tokens implementing this trait are only constructed when the CPU supports
/// the instructions they use, so the methods are safe to call.
pub(crate) trait Simd: Copy {
    /// 16 `f32` lanes.
    type V: Copy;
    /// One flag per lane.
    type M: Copy;

    /// All lanes set to `x`.
    fn splat(self, x: f32) -> Self::V;
    /// Loads 16 consecutive values.
    fn load(self, src: &[f32; LANES]) -> Self::V;
    /// Loads `src.len() < 16` values; the remaining lanes hold `fill`.
    fn load_tail(self, src: &[f32], fill: f32) -> Self::V;
    /// Stores 16 lanes.
    fn store(self, dst: &mut [f32; LANES], v: Self::V);
    /// Stores the first `dst.len() < 16` lanes; nothing past them is touched.
    fn store_tail(self, dst: &mut [f32], v: Self::V);
    /// Where streaming stores into `dst` (not empty) can start: the number
    /// of elements before its first cache line, or `None` if this ISA does
    /// not stream (then [`Simd::store_stream`] is never called).
    #[inline(always)]
    fn stream_offset(self, dst: &[f32]) -> Option<usize> {
        let _ = dst;
        None
    }
    /// Lanes `h..16` of `a` followed by lanes `0..h` of `b` (`h < 16`).
    #[inline(always)]
    fn shift_join(self, a: Self::V, b: Self::V, h: usize) -> Self::V {
        let (mut x, mut y) = ([0.0f32; LANES], [0.0f32; LANES]);
        self.store(&mut x, a);
        self.store(&mut y, b);
        self.load(&core::array::from_fn(|k| if k + h < LANES { x[k + h] } else { y[k + h - LANES] }))
    }
    /// Stores 16 lanes as [`Simd::store`] does, bypassing the caches (into a
    /// cache line that [`Simd::stream_offset`] found).
    #[inline(always)]
    fn store_stream(self, dst: &mut [f32; LANES], v: Self::V) {
        self.store(dst, v)
    }
    /// Orders earlier streaming stores before this thread's later stores.
    #[inline(always)]
    fn stream_fence(self) {}

    /// `a + b`.
    fn add(self, a: Self::V, b: Self::V) -> Self::V;
    /// `a - b`.
    fn sub(self, a: Self::V, b: Self::V) -> Self::V;
    /// `a * b`.
    fn mul(self, a: Self::V, b: Self::V) -> Self::V;
    /// `a / b`, correctly rounded.
    fn div(self, a: Self::V, b: Self::V) -> Self::V;
    /// `a * b + c` with one rounding.
    fn fma(self, a: Self::V, b: Self::V, c: Self::V) -> Self::V;
    /// `if a > b { a } else { b }` per lane (so a NaN in `a` yields `b`).
    fn max(self, a: Self::V, b: Self::V) -> Self::V;
    /// `|a|` (clears the sign bit).
    fn abs(self, a: Self::V) -> Self::V;
    /// The float with bits `table[b & 15]` per lane, where `b` is the bits
    /// of the lane of `idx` as `u32`.
    fn lut16(self, table: &[u32; LANES], idx: Self::V) -> Self::V;
    /// Per lane, as `u32` bits: `a + (b << 19)`, wrapping.
    fn add_shl19(self, a: Self::V, b: Self::V) -> Self::V;
    /// `a·p + c` with one rounding where `p ≥ tiny` (or NaN), and `c` where
    /// `p < tiny` (as `a·0 + c`, with `c` never −0 there): the gradient's
    /// `a·p − c_j` without subnormal products (see `rows::tiny_below`).
    #[inline(always)]
    fn fma_unless_tiny(self, a: Self::V, p: Self::V, c: Self::V, tiny: Self::V) -> Self::V {
        self.fma(a, self.select(self.lt(p, tiny), self.splat(0.0), p), c)
    }
    /// exp's argument as its reduction sees it: `x` itself, or, on a path
    /// where lanes below `EXP_MIN_X` would make subnormal intermediates
    /// (microcode assists costing hundreds of cycles on x86), `x` raised to
    /// `EXP_MIN_X` (NaN kept); [`Simd::exp_scale`] zeroes those lanes.
    #[inline(always)]
    fn exp_clamp(self, x: Self::V) -> Self::V {
        x
    }
    /// exp's last step: `2^n·(1 + p)` (one rounding; the results are
    /// normal) where `x ≥ EXP_MIN_X` or `x` is NaN, and 0 where
    /// `x < EXP_MIN_X`. `n = m + k/16` with `m = ⌊n⌋` and `k` in 0..16, and
    /// `biased` holds `k` in its mantissa bits 0..4 and `m + 127` in bits
    /// 4..12 (see `exp_table::MAGIC_BIAS`). Here `s = 2^n` is built exactly from a
    /// table and the bits of `biased`, then `s + s·p` rounded once.
    #[inline(always)]
    fn exp_scale(self, p: Self::V, (biased, n): (Self::V, Self::V), x: Self::V) -> Self::V {
        let _ = n;
        let s = self.add_shl19(self.lut16(&super::exp_table::EXP2_16THS_LESS_BIAS, biased), biased);
        let y = self.fma(s, p, s);
        self.select(self.lt(x, self.splat(super::exp_table::EXP_MIN_X)), self.splat(0.0), y)
    }
    /// For positive normal lanes `x = m·2^e` with `m` in [1, 2): returns
    /// `(e, m)`, `e` as a float (exact bit manipulation).
    fn split_exponent(self, x: Self::V) -> (Self::V, Self::V);
    /// Copies the sign bit of `sign` onto the non-negative `mag`.
    fn or_sign(self, mag: Self::V, sign: Self::V) -> Self::V;

    /// `a < b` per lane (false when either is NaN).
    fn lt(self, a: Self::V, b: Self::V) -> Self::M;
    /// `a == b` per lane (false when either is NaN).
    fn eq(self, a: Self::V, b: Self::V) -> Self::M;
    /// `a != a` per lane.
    fn is_nan(self, a: Self::V) -> Self::M;
    /// `if m { a } else { b }` per lane.
    fn select(self, m: Self::M, a: Self::V, b: Self::V) -> Self::V;
    /// Index of the first set lane, if any.
    fn first_set(self, m: Self::M) -> Option<usize>;

    /// Rows into lanes: `buf[j]`'s lane `k` is `src[k·stride + j]` for rows
    /// `k < n` and columns `j < buf.len()`, and 0 for `k ≥ n`. Panics unless
    /// `n ≤ 16` and those rows are inside `src` (see [`check_block`]).
    #[inline(always)]
    fn transpose_in(self, src: &[f32], stride: usize, n: usize, buf: &mut [[f32; LANES]]) {
        transpose_in_lanes(src, stride, n, buf, 0..LANES);
    }
    /// Lanes into rows: `dst[k·stride + j]` becomes `buf[j]`'s lane `k`, or
    /// with `add`, `dst[k·stride + j] + ` it (one float32 addition), for
    /// `k < n` and `j < buf.len()`; nothing else is written. Panics as
    /// [`Simd::transpose_in`].
    #[inline(always)]
    fn transpose_out(self, buf: &[[f32; LANES]], dst: &mut [f32], stride: usize, n: usize, add: bool) {
        transpose_out_lanes(buf, dst, stride, n, add, 0..n);
    }

    /// Hints that the cache line holding `at` will be used soon (into L2).
    /// Only an address: nothing is read, so `at` may point anywhere.
    fn prefetch(self, at: *const f32);

    /// Sum of the lanes by the fixed tree `(i, i+8)`, `(i, i+4)`, `(i, i+2)`, `(0, 1)`.
    fn reduce_add(self, v: Self::V) -> f32;
    /// Maximum of the lanes by the same tree as [`Simd::reduce_add`], with [`Simd::max`].
    fn reduce_max(self, v: Self::V) -> f32;
}

/// Checks that `n ≤ 16` rows of `cols` values, `stride` apart, are inside
/// a buffer of `len` values.
#[inline(always)]
pub(crate) fn check_block(len: usize, stride: usize, n: usize, cols: usize) {
    assert!(n <= LANES, "at most 16 rows");
    if n > 0 && cols > 0 {
        let end = (n - 1).checked_mul(stride).and_then(|o| o.checked_add(cols)).expect("index overflow");
        assert!(end <= len, "rows out of bounds");
    }
}

/// [`Simd::transpose_in`] for the lanes `ks` (rows `k < n` read, the
/// others 0), by plain loads and stores.
#[inline(always)]
pub(crate) fn transpose_in_lanes(
    src: &[f32],
    stride: usize,
    n: usize,
    buf: &mut [[f32; LANES]],
    ks: core::ops::Range<usize>,
) {
    let cols = buf.len();
    check_block(src.len(), stride, n, cols);
    let rows = ks.start.min(n)..ks.end.min(n);
    if rows.end < ks.end {
        for c in buf.iter_mut() {
            c[rows.end..ks.end].fill(0.0);
        }
    }
    for k in rows {
        for (c, &x) in buf.iter_mut().zip(&src[k * stride..k * stride + cols]) {
            c[k] = x;
        }
    }
}

/// [`Simd::transpose_out`] for the rows `ks` (all below `n`), by plain
/// loads and stores.
#[inline(always)]
pub(crate) fn transpose_out_lanes(
    buf: &[[f32; LANES]],
    dst: &mut [f32],
    stride: usize,
    n: usize,
    add: bool,
    ks: core::ops::Range<usize>,
) {
    check_block(dst.len(), stride, n, buf.len());
    for k in ks {
        let row = &mut dst[k * stride..k * stride + buf.len()];
        if add {
            row.iter_mut().zip(buf).for_each(|(d, c)| *d += c[k]);
        } else {
            row.iter_mut().zip(buf).for_each(|(d, c)| *d = c[k]);
        }
    }
}

/// The lanes of a tail: `src[k]` for `k < src.len()` (at most 16), `fill`
/// after (the array behind every path's [`Simd::load_tail`]).
#[inline(always)]
pub(crate) fn tail_lanes(src: &[f32], fill: f32) -> [f32; LANES] {
    core::array::from_fn(|k| src.get(k).copied().unwrap_or(fill))
}

//! Vector `exp` and `tanh`, written once over [`Simd`] so every path gives the
//! same bits.
//!
//! `exp` is table-driven, as XNNPACK's `lut16-p3` kernels are:
//! `n = round(16·x·log2 e)/16` with a magic-bias add (so `n = m + k/16`,
//! `m = ⌊n⌋`, `k` in 0..16), a two-constant (Cody–Waite) reduction
//! `r = x − n·ln 2` (|r| ≤ ln2/32), `2^(k/16)` from a 16-entry table, and a
//! degree-3 polynomial `p ≈ e^r − 1` (fitted for minimax relative error,
//! ~2e-9). The result `2^m·2^(k/16)·(1 + p)` is rounded once: the table
//! entry is scaled by `2^m` in its exponent field before the last
//! multiply-add, or (AVX-512) that multiply-add's result is scaled exactly
//! by `vscalefps`; the results are normal, so both give the same bits.
//! Against the degree-6 polynomial on `[−ln2/2, ln2/2]` it replaced, that is
//! three vector operations fewer per 16 values (one of them a permute).
//!
//! Its error is at most 2 ULP against float64 (tested exhaustively on
//! `[ln FLT_MIN, 0]`, where it is below 1 ULP, and on a stride of the
//! positive floats); below `ln FLT_MIN ≈ −87.34` it returns exactly 0 (no
//! subnormals), above `88.37` it returns +inf, and NaN propagates.

use super::exp_table::MAGIC_BIAS;
use super::simd::Simd;

const LOG2E: f32 = core::f32::consts::LOG2_E;
/// ln 2 split so that `n·LN2_HI` has few bits and `x − n·LN2_HI` is exact.
const LN2_HI: f32 = f32::from_bits(0x3f31_7200); // 0.693145751953125
const LN2_LO: f32 = f32::from_bits(0x35bf_be8e); // 1.4286068e-6
/// `e^r − 1 ≈ r·(1 + r·(C2 + r·C3))` on `[−ln2/32, ln2/32]`.
const C2: f32 = f32::from_bits(0x3f00_0110); // 0.5000162
const C3: f32 = f32::from_bits(0x3e2a_aacf); // 0.16666721
/// Above this, `exp` returns +inf (`2^n` would need n = 128).
const EXP_MAX_X: f32 = 88.376_26;

/// `e^x` per lane; see the module docs for its accuracy and range.
#[inline(always)]
pub(crate) fn exp<S: Simd>(s: S, x: S::V) -> S::V {
    let y = exp_nonpositive(s, x);
    s.select(s.lt(s.splat(EXP_MAX_X), x), s.splat(f32::INFINITY), y)
}

/// `e^x` for `x ≤ 0` (or NaN), the only range a max-subtracted softmax
/// produces; equal to [`exp`] there, one compare cheaper. Meaningless for
/// `x > 88.37`.
#[inline(always)]
pub(crate) fn exp_nonpositive<S: Simd>(s: S, x: S::V) -> S::V {
    let xc = s.exp_clamp(x);
    let biased = s.fma(xc, s.splat(LOG2E), s.splat(MAGIC_BIAS));
    let n = s.sub(biased, s.splat(MAGIC_BIAS));
    let r = s.fma(n, s.splat(-LN2_HI), xc);
    let r = s.fma(n, s.splat(-LN2_LO), r);
    let q = s.fma(s.fma(s.splat(C3), r, s.splat(C2)), r, s.splat(1.0));
    // e^x = 2^m·2^(k/16)·(1 + p) with p = e^r − 1, rounded once (the results
    // are normal), and 0 below EXP_MIN_X.
    s.exp_scale(s.mul(r, q), (biased, n), x)
}

/// Below this |u|, `tanh` uses its odd Taylor polynomial.
const TANH_SMALL: f32 = 0.25;
const T3: f32 = -1.0 / 3.0;
const T5: f32 = 2.0 / 15.0;
const T7: f32 = -17.0 / 315.0;
const T9: f32 = 62.0 / 2835.0;
const T11: f32 = -1382.0 / 155_925.0;

/// `tanh(u)` per lane, within a few ULP: the Taylor series through `u^11` for
/// `|u| < 0.25`, otherwise `±(1 − e)/(1 + e)` with `e = exp(−2|u|)`.
/// `tanh(±inf) = ±1`; NaN propagates.
#[inline(always)]
pub(crate) fn tanh<S: Simd>(s: S, u: S::V) -> S::V {
    let a = s.abs(u);
    let e = exp(s, s.mul(a, s.splat(-2.0)));
    let one = s.splat(1.0);
    let big = s.or_sign(s.div(s.sub(one, e), s.add(one, e)), u);
    let u2 = s.mul(u, u);
    let mut p = s.splat(T11);
    p = s.fma(p, u2, s.splat(T9));
    p = s.fma(p, u2, s.splat(T7));
    p = s.fma(p, u2, s.splat(T5));
    p = s.fma(p, u2, s.splat(T3));
    let small = s.fma(s.mul(u, u2), p, u);
    s.select(s.lt(a, s.splat(TANH_SMALL)), small, big)
}

const SQRT2: f32 = core::f32::consts::SQRT_2;

/// `ln x` per lane for positive normal `x`, within 2 ULP: `x = m·2^e` with
/// `m` in `[√½, √2)`, `ln m = 2·atanh(f/(2+f))` by its odd series in
/// `s = f/(2+f)` (|s| < 0.172, terms through `s^9`), plus `e·ln 2` split in
/// two so `e·LN2_HI` is exact.
#[inline(always)]
pub(crate) fn log<S: Simd>(s: S, x: S::V) -> S::V {
    let (e, m) = s.split_exponent(x);
    let big = s.lt(s.splat(SQRT2), m);
    let m = s.select(big, s.mul(m, s.splat(0.5)), m);
    let e = s.select(big, s.add(e, s.splat(1.0)), e);
    let f = s.sub(m, s.splat(1.0));
    let t = s.div(f, s.add(f, s.splat(2.0)));
    let t2 = s.mul(t, t);
    let mut q = s.splat(1.0 / 9.0);
    q = s.fma(q, t2, s.splat(1.0 / 7.0));
    q = s.fma(q, t2, s.splat(1.0 / 5.0));
    q = s.fma(q, t2, s.splat(1.0 / 3.0));
    let two_t = s.add(t, t);
    let ln_m = s.fma(s.mul(two_t, t2), q, two_t);
    s.fma(e, s.splat(LN2_HI), s.fma(e, s.splat(LN2_LO), ln_m))
}

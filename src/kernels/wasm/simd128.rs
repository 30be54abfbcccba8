//! The wasm32 `simd128` path: 16 lanes as four `v128` registers, with the
//! same IEEE operations in the same order as the portable path. WebAssembly
//! has no fused multiply-add (relaxed-simd's `madd` may or may not fuse), so
//! [`Simd::fma`] computes the exact product in float64 and corrects the one
//! case where rounding the float64 sum to float32 would differ from a single
//! rounding. WebAssembly has no run-time feature detection either: the path
//! exists when the module is built with `-C target-feature=+simd128`, and a
//! runtime without SIMD rejects such a module when loading it.

use core::arch::wasm32::*;

use crate::kernels::scalar::{max1, tree};
use crate::kernels::simd::{LANES, Simd, tail_lanes};

/// Token for the simd128 path (the build enables simd128, so every runtime
/// that loads the module has it).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Simd128;

type V = [v128; 4];

#[inline(always)]
fn map(a: V, f: impl Fn(v128) -> v128) -> V {
    [f(a[0]), f(a[1]), f(a[2]), f(a[3])]
}

#[inline(always)]
fn zip(a: V, b: V, f: impl Fn(v128, v128) -> v128) -> V {
    [f(a[0], b[0]), f(a[1], b[1]), f(a[2], b[2]), f(a[3], b[3])]
}

#[inline(always)]
fn lanes(v: V) -> [f32; LANES] {
    let mut out = [0.0f32; LANES];
    for (k, r) in v.iter().enumerate() {
        // SAFETY: four lanes (16 bytes) fit at 4·k of the 16-lane array;
        // v128 stores have no alignment requirement.
        unsafe { v128_store(out.as_mut_ptr().add(4 * k).cast::<v128>(), *r) };
    }
    out
}

#[inline(always)]
fn from_lanes(x: &[f32; LANES]) -> V {
    // SAFETY: each load reads four of the 16 values; v128 loads have no
    // alignment requirement.
    unsafe {
        [
            v128_load(x.as_ptr().cast::<v128>()),
            v128_load(x.as_ptr().add(4).cast::<v128>()),
            v128_load(x.as_ptr().add(8).cast::<v128>()),
            v128_load(x.as_ptr().add(12).cast::<v128>()),
        ]
    }
}

/// `a·b + c` rounded once to float32, for two lanes held as float64.
///
/// The product of two floats is exact in float64, and so is the sum's error
/// (TwoSum). Rounding the float64 sum `s` to float32 can only differ from
/// rounding the exact value when `s` lies exactly halfway between two floats
/// (float64 rounding never crosses a float32 halfway point, which float64
/// represents) and the error is not 0: then the exact value is on the error's
/// side of the halfway point.
///
/// Halfway points are rare, so a cheap test of the float64 sum's bits sends
/// only the two lanes around one (or around a float32 subnormal result,
/// where halfway points sit elsewhere) through the correction.
#[inline(always)]
fn fma2(a: v128, b: v128, c: v128) -> v128 {
    let p = f64x2_mul(a, b);
    let s = f64x2_add(p, c);
    let r = f32x4_demote_f64x2_zero(s);
    // A float32 halfway point in the normal range: the 29 bits float32
    // drops are exactly a half.
    let halfway = i64x2_eq(v128_and(s, u64x2_splat(0x1fff_ffff)), u64x2_splat(0x1000_0000));
    let tiny =
        v128_and(f64x2_lt(f64x2_abs(s), f64x2_splat(f64::from(f32::MIN_POSITIVE))), f64x2_ne(s, f64x2_splat(0.0)));
    if !v128_any_true(v128_or(halfway, tiny)) {
        return r;
    }
    fma2_exact(p, c, s)
}

/// [`fma2`] on the float64 product `p`, addend `c` and their rounded sum `s`,
/// correcting a float32 halfway point.
#[cold]
#[inline(never)]
fn fma2_exact(p: v128, c: v128, s: v128) -> v128 {
    // TwoSum: s + err = p + c exactly.
    let bb = f64x2_sub(s, p);
    let err = f64x2_add(f64x2_sub(p, f64x2_sub(s, bb)), f64x2_sub(c, bb));
    // The float32 nearest to s (ties to even), and its neighbour on the other
    // side of s (only looked at when s is between them).
    let r = f32x4_demote_f64x2_zero(s);
    let rd = f64x2_promote_low_f32x4(r);
    let d = f64x2_sub(s, rd);
    // One float32 step from r towards s: +1 on r's bits moves away from zero,
    // −1 towards it, so the step is +1 when s lies on r's side of zero (the
    // sign bit decides for ±0). Only the low two float32 lanes of `r` matter;
    // the comparison's 64-bit masks are narrowed to them.
    let s_below = f64x2_lt(d, f64x2_splat(0.0));
    let s_below32 = i32x4_shuffle::<0, 2, 4, 6>(s_below, s_below);
    let r_negative = i32x4_lt(r, i32x4_splat(0));
    let step = v128_bitselect(i32x4_splat(-1), i32x4_splat(1), v128_xor(s_below32, r_negative));
    let r2 = i32x4_add(r, step);
    let r2d = f64x2_promote_low_f32x4(r2);
    let halfway = v128_and(f64x2_eq(f64x2_sub(r2d, s), d), f64x2_ne(d, f64x2_splat(0.0)));
    // At a halfway point with err ≠ 0, the result is the candidate on err's
    // side: the larger of r, r2 when err > 0, the smaller when err < 0.
    let up = f64x2_gt(err, f64x2_splat(0.0));
    let down = f64x2_lt(err, f64x2_splat(0.0));
    let r2_above = f64x2_gt(r2d, rd);
    let take_r2 = v128_and(halfway, v128_or(v128_and(up, r2_above), v128_and(down, v128_not(r2_above))));
    let take32 = i32x4_shuffle::<0, 2, 4, 6>(take_r2, take_r2);
    v128_bitselect(r2, r, take32)
}

impl Simd for Simd128 {
    type V = V;
    type M = V;

    #[inline(always)]
    fn splat(self, x: f32) -> V {
        [f32x4_splat(x); 4]
    }
    #[inline(always)]
    fn load(self, src: &[f32; LANES]) -> V {
        from_lanes(src)
    }
    #[inline(always)]
    fn load_tail(self, src: &[f32], fill: f32) -> V {
        from_lanes(&tail_lanes(src, fill))
    }
    #[inline(always)]
    fn store(self, dst: &mut [f32; LANES], v: V) {
        *dst = lanes(v);
    }
    #[inline(always)]
    fn store_tail(self, dst: &mut [f32], v: V) {
        let n = dst.len();
        dst.copy_from_slice(&lanes(v)[..n]);
    }
    #[inline(always)]
    fn add(self, a: V, b: V) -> V {
        zip(a, b, |x, y| f32x4_add(x, y))
    }
    #[inline(always)]
    fn sub(self, a: V, b: V) -> V {
        zip(a, b, |x, y| f32x4_sub(x, y))
    }
    #[inline(always)]
    fn mul(self, a: V, b: V) -> V {
        zip(a, b, |x, y| f32x4_mul(x, y))
    }
    #[inline(always)]
    fn div(self, a: V, b: V) -> V {
        zip(a, b, |x, y| f32x4_div(x, y))
    }
    #[inline(always)]
    fn fma(self, a: V, b: V, c: V) -> V {
        core::array::from_fn(|k| {
            let lo = fma2(f64x2_promote_low_f32x4(a[k]), f64x2_promote_low_f32x4(b[k]), f64x2_promote_low_f32x4(c[k]));
            let high = |x: v128| f64x2_promote_low_f32x4(i64x2_shuffle::<1, 1>(x, x));
            let hi = fma2(high(a[k]), high(b[k]), high(c[k]));
            i64x2_shuffle::<0, 2>(lo, hi)
        })
    }
    #[inline(always)]
    fn max(self, a: V, b: V) -> V {
        zip(a, b, |x, y| v128_bitselect(x, y, f32x4_gt(x, y)))
    }
    #[inline(always)]
    fn abs(self, a: V) -> V {
        map(a, |x| v128_and(x, u32x4_splat(0x7fff_ffff)))
    }
    #[inline(always)]
    fn add_shl19(self, a: V, b: V) -> V {
        zip(a, b, |x, y| i32x4_add(x, u32x4_shl(y, 19)))
    }
    #[inline(always)]
    fn lut16(self, table: &[u32; LANES], idx: V) -> V {
        // swizzle reads one 16-byte register: look up in each quarter of the
        // table (out-of-range byte indices give 0) and combine.
        // SAFETY: each load reads four of the table's 16 u32; v128 loads have
        // no alignment requirement.
        let t: V = core::array::from_fn(|j| unsafe { v128_load(table.as_ptr().add(4 * j).cast::<v128>()) });
        map(idx, |x| {
            // Byte j of lane k's entry is byte 4·(b & 15) + j of the table.
            let k = v128_and(x, u32x4_splat(15));
            let at = i32x4_add(i32x4_mul(k, u32x4_splat(0x0404_0404)), u32x4_splat(0x0302_0100));
            let q = |j: usize| i8x16_swizzle(t[j], i8x16_sub(at, u8x16_splat(16 * j as u8)));
            v128_or(v128_or(q(0), q(1)), v128_or(q(2), q(3)))
        })
    }
    #[inline(always)]
    fn split_exponent(self, x: V) -> (V, V) {
        let e = map(x, |v| f32x4_convert_i32x4(i32x4_sub(u32x4_shr(v, 23), i32x4_splat(127))));
        let m = map(x, |v| v128_or(v128_and(v, u32x4_splat(0x007f_ffff)), u32x4_splat(0x3f80_0000)));
        (e, m)
    }
    #[inline(always)]
    fn or_sign(self, mag: V, sign: V) -> V {
        zip(mag, sign, |m, s| v128_or(m, v128_and(s, u32x4_splat(0x8000_0000))))
    }
    #[inline(always)]
    fn lt(self, a: V, b: V) -> V {
        zip(a, b, |x, y| f32x4_lt(x, y))
    }
    #[inline(always)]
    fn eq(self, a: V, b: V) -> V {
        zip(a, b, |x, y| f32x4_eq(x, y))
    }
    #[inline(always)]
    fn is_nan(self, a: V) -> V {
        map(a, |x| f32x4_ne(x, x))
    }
    #[inline(always)]
    fn select(self, m: V, a: V, b: V) -> V {
        core::array::from_fn(|k| v128_bitselect(a[k], b[k], m[k]))
    }
    #[inline(always)]
    fn first_set(self, m: V) -> Option<usize> {
        let bits = m.iter().enumerate().fold(0u32, |acc, (k, r)| acc | (u32::from(i32x4_bitmask(*r)) << (4 * k)));
        (bits != 0).then(|| bits.trailing_zeros() as usize)
    }
    #[inline(always)]
    fn prefetch(self, _at: *const f32) {}
    #[inline(always)]
    fn reduce_add(self, v: V) -> f32 {
        tree(lanes(v), |x, y| x + y)
    }
    #[inline(always)]
    fn reduce_max(self, v: V) -> f32 {
        tree(lanes(v), max1)
    }
}

//! The portable path: 16 lanes in an array, every operation spelled out.
//!
//! It is the definition the SIMD paths must match bit for bit, and the path
//! used on CPUs without AVX2 or on other architectures.

use super::simd::{LANES, Simd, tail_lanes};

/// Token for the portable path; always available.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Scalar;

type V = [f32; LANES];

#[inline(always)]
fn map(a: V, f: impl Fn(f32) -> f32) -> V {
    core::array::from_fn(|i| f(a[i]))
}

#[inline(always)]
fn zip(a: V, b: V, f: impl Fn(f32, f32) -> f32) -> V {
    core::array::from_fn(|i| f(a[i], b[i]))
}

#[inline(always)]
fn mask(a: V, b: V, f: impl Fn(f32, f32) -> bool) -> u16 {
    (0..LANES).fold(0, |m, i| m | (u16::from(f(a[i], b[i])) << i))
}

/// [`Simd::max`] of one lane.
#[inline(always)]
pub(crate) fn max1(a: f32, b: f32) -> f32 {
    if a > b { a } else { b }
}

/// The reduction tree every path uses: `(i, i+8)`, `(i, i+4)`, `(i, i+2)`, `(0, 1)`.
#[inline(always)]
pub(crate) fn tree(v: V, f: impl Fn(f32, f32) -> f32) -> f32 {
    let h8: [f32; 8] = core::array::from_fn(|i| f(v[i], v[i + 8]));
    let h4: [f32; 4] = core::array::from_fn(|i| f(h8[i], h8[i + 4]));
    let h2: [f32; 2] = core::array::from_fn(|i| f(h4[i], h4[i + 2]));
    f(h2[0], h2[1])
}

impl Simd for Scalar {
    type V = V;
    type M = u16;

    #[inline(always)]
    fn splat(self, x: f32) -> V {
        [x; LANES]
    }
    #[inline(always)]
    fn load(self, src: &[f32; LANES]) -> V {
        *src
    }
    #[inline(always)]
    fn load_tail(self, src: &[f32], fill: f32) -> V {
        tail_lanes(src, fill)
    }
    #[inline(always)]
    fn store(self, dst: &mut [f32; LANES], v: V) {
        *dst = v;
    }
    #[inline(always)]
    fn store_tail(self, dst: &mut [f32], v: V) {
        let n = dst.len();
        dst.copy_from_slice(&v[..n]);
    }
    #[inline(always)]
    fn add(self, a: V, b: V) -> V {
        zip(a, b, |x, y| x + y)
    }
    #[inline(always)]
    fn sub(self, a: V, b: V) -> V {
        zip(a, b, |x, y| x - y)
    }
    #[inline(always)]
    fn mul(self, a: V, b: V) -> V {
        zip(a, b, |x, y| x * y)
    }
    #[inline(always)]
    fn div(self, a: V, b: V) -> V {
        zip(a, b, |x, y| x / y)
    }
    #[inline(always)]
    fn fma(self, a: V, b: V, c: V) -> V {
        core::array::from_fn(|i| crate::fmath::fmaf(a[i], b[i], c[i]))
    }
    #[inline(always)]
    fn max(self, a: V, b: V) -> V {
        zip(a, b, max1)
    }
    #[inline(always)]
    fn abs(self, a: V) -> V {
        map(a, |x| f32::from_bits(x.to_bits() & 0x7fff_ffff))
    }
    #[inline(always)]
    fn lut16(self, table: &[u32; LANES], idx: V) -> V {
        map(idx, |x| f32::from_bits(table[(x.to_bits() & 15) as usize]))
    }
    #[inline(always)]
    fn add_shl19(self, a: V, b: V) -> V {
        zip(a, b, |x, y| f32::from_bits(x.to_bits().wrapping_add(y.to_bits() << 19)))
    }
    #[inline(always)]
    fn split_exponent(self, x: V) -> (V, V) {
        let e = map(x, |v| ((v.to_bits() >> 23) as i32 - 127) as f32);
        let m = map(x, |v| f32::from_bits((v.to_bits() & 0x007f_ffff) | 0x3f80_0000));
        (e, m)
    }
    #[inline(always)]
    fn or_sign(self, mag: V, sign: V) -> V {
        zip(mag, sign, |m, s| f32::from_bits(m.to_bits() | (s.to_bits() & 0x8000_0000)))
    }
    #[inline(always)]
    fn lt(self, a: V, b: V) -> u16 {
        mask(a, b, |x, y| x < y)
    }
    #[inline(always)]
    fn eq(self, a: V, b: V) -> u16 {
        mask(a, b, |x, y| x == y)
    }
    #[inline(always)]
    fn is_nan(self, a: V) -> u16 {
        mask(a, a, |x, _| x.is_nan())
    }
    #[inline(always)]
    fn select(self, m: u16, a: V, b: V) -> V {
        core::array::from_fn(|i| if m >> i & 1 == 1 { a[i] } else { b[i] })
    }
    #[inline(always)]
    fn first_set(self, m: u16) -> Option<usize> {
        (m != 0).then(|| m.trailing_zeros() as usize)
    }
    #[inline(always)]
    fn prefetch(self, _at: *const f32) {}
    #[inline(always)]
    fn reduce_add(self, v: V) -> f32 {
        tree(v, |x, y| x + y)
    }
    #[inline(always)]
    fn reduce_max(self, v: V) -> f32 {
        tree(v, max1)
    }
}

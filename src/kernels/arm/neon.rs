//! The aarch64 NEON path: 16 lanes as four 128-bit registers, with the
//! same IEEE operations in the same order as the portable path (fused
//! multiply-add by `fmla`, division by `fdiv`, reductions by the fixed
//! tree, `max` by compare and select so a NaN in `a` yields `b`).

use core::arch::aarch64::*;

use crate::kernels::cpu::has_feature;
use crate::kernels::scalar::{max1, tree};
use crate::kernels::simd::{LANES, Simd, tail_lanes};

/// Token for the NEON path; only made where the CPU has NEON.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Neon(());

impl Neon {
    /// The token, if this CPU has NEON (every aarch64 Linux CPU does).
    pub(crate) fn new() -> Option<Neon> {
        has_feature!(aarch64 "neon").then_some(Neon(()))
    }

    /// # Safety
    /// The CPU must have NEON.
    #[inline(always)]
    pub(crate) unsafe fn new_unchecked() -> Neon {
        Neon(())
    }
}

/// Runs NEON register intrinsics.
macro_rules! n {
    ($e:expr) => {{
        // SAFETY: a Neon token exists only where the CPU has NEON, and the
        // intrinsics in `$e` only compute on registers.
        unsafe { $e }
    }};
}

type V = [float32x4_t; 4];
type M = [uint32x4_t; 4];

#[inline(always)]
fn map(a: V, f: impl Fn(float32x4_t) -> float32x4_t) -> V {
    [f(a[0]), f(a[1]), f(a[2]), f(a[3])]
}

#[inline(always)]
fn zip(a: V, b: V, f: impl Fn(float32x4_t, float32x4_t) -> float32x4_t) -> V {
    [f(a[0], b[0]), f(a[1], b[1]), f(a[2], b[2]), f(a[3], b[3])]
}

#[inline(always)]
fn cmp(a: V, b: V, f: impl Fn(float32x4_t, float32x4_t) -> uint32x4_t) -> M {
    [f(a[0], b[0]), f(a[1], b[1]), f(a[2], b[2]), f(a[3], b[3])]
}

#[inline(always)]
fn bits(a: float32x4_t) -> uint32x4_t {
    n!(vreinterpretq_u32_f32(a))
}

#[inline(always)]
fn float(a: uint32x4_t) -> float32x4_t {
    n!(vreinterpretq_f32_u32(a))
}

#[inline(always)]
fn lanes(v: V) -> [f32; LANES] {
    let mut out = [0.0f32; LANES];
    for (k, r) in v.iter().enumerate() {
        // SAFETY: four lanes fit at 4·k of the 16-lane array.
        unsafe { vst1q_f32(out.as_mut_ptr().add(4 * k), *r) };
    }
    out
}

#[inline(always)]
fn from_lanes(x: &[f32; LANES]) -> V {
    // SAFETY: each load reads four of the 16 values.
    unsafe {
        [
            vld1q_f32(x.as_ptr()),
            vld1q_f32(x.as_ptr().add(4)),
            vld1q_f32(x.as_ptr().add(8)),
            vld1q_f32(x.as_ptr().add(12)),
        ]
    }
}

impl Simd for Neon {
    type V = V;
    type M = M;

    #[inline(always)]
    fn splat(self, x: f32) -> V {
        let r = n!(vdupq_n_f32(x));
        [r; 4]
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
        zip(a, b, |x, y| n!(vaddq_f32(x, y)))
    }
    #[inline(always)]
    fn sub(self, a: V, b: V) -> V {
        zip(a, b, |x, y| n!(vsubq_f32(x, y)))
    }
    #[inline(always)]
    fn mul(self, a: V, b: V) -> V {
        zip(a, b, |x, y| n!(vmulq_f32(x, y)))
    }
    #[inline(always)]
    fn div(self, a: V, b: V) -> V {
        zip(a, b, |x, y| n!(vdivq_f32(x, y)))
    }
    #[inline(always)]
    fn fma(self, a: V, b: V, c: V) -> V {
        n!([
            vfmaq_f32(c[0], a[0], b[0]),
            vfmaq_f32(c[1], a[1], b[1]),
            vfmaq_f32(c[2], a[2], b[2]),
            vfmaq_f32(c[3], a[3], b[3])
        ])
    }
    #[inline(always)]
    fn max(self, a: V, b: V) -> V {
        zip(a, b, |x, y| n!(vbslq_f32(vcgtq_f32(x, y), x, y)))
    }
    #[inline(always)]
    fn abs(self, a: V) -> V {
        map(a, |x| float(n!(vandq_u32(bits(x), vdupq_n_u32(0x7fff_ffff)))))
    }
    #[inline(always)]
    fn add_shl19(self, a: V, b: V) -> V {
        zip(a, b, |x, y| float(n!(vaddq_u32(bits(x), vshlq_n_u32::<19>(bits(y))))))
    }
    #[inline(always)]
    fn lut16(self, table: &[u32; LANES], idx: V) -> V {
        // SAFETY: `table` holds 64 bytes, loaded as four 16-byte registers.
        let t = unsafe { vld1q_u8_x4(table.as_ptr().cast::<u8>()) };
        map(idx, |x| {
            // Byte j of lane k's entry is byte 4·(b & 15) + j of the table.
            let k = n!(vandq_u32(bits(x), vdupq_n_u32(15)));
            let at = n!(vaddq_u32(vmulq_u32(k, vdupq_n_u32(0x0404_0404)), vdupq_n_u32(0x0302_0100)));
            float(n!(vreinterpretq_u32_u8(vqtbl4q_u8(t, vreinterpretq_u8_u32(at)))))
        })
    }
    #[inline(always)]
    fn split_exponent(self, x: V) -> (V, V) {
        let e = map(x, |v| {
            n!(vcvtq_f32_s32(vsubq_s32(vreinterpretq_s32_u32(vshrq_n_u32::<23>(bits(v))), vdupq_n_s32(127))))
        });
        let m =
            map(x, |v| float(n!(vorrq_u32(vandq_u32(bits(v), vdupq_n_u32(0x007f_ffff)), vdupq_n_u32(0x3f80_0000)))));
        (e, m)
    }
    #[inline(always)]
    fn or_sign(self, mag: V, sign: V) -> V {
        zip(mag, sign, |m, s| float(n!(vorrq_u32(bits(m), vandq_u32(bits(s), vdupq_n_u32(0x8000_0000))))))
    }
    #[inline(always)]
    fn lt(self, a: V, b: V) -> M {
        cmp(a, b, |x, y| n!(vcltq_f32(x, y)))
    }
    #[inline(always)]
    fn eq(self, a: V, b: V) -> M {
        cmp(a, b, |x, y| n!(vceqq_f32(x, y)))
    }
    #[inline(always)]
    fn is_nan(self, a: V) -> M {
        cmp(a, a, |x, _| n!(vmvnq_u32(vceqq_f32(x, x))))
    }
    #[inline(always)]
    fn select(self, m: M, a: V, b: V) -> V {
        n!([
            vbslq_f32(m[0], a[0], b[0]),
            vbslq_f32(m[1], a[1], b[1]),
            vbslq_f32(m[2], a[2], b[2]),
            vbslq_f32(m[3], a[3], b[3])
        ])
    }
    #[inline(always)]
    fn first_set(self, m: M) -> Option<usize> {
        let mut flags = [0u32; LANES];
        for (k, r) in m.iter().enumerate() {
            // SAFETY: four lanes fit at 4·k of the 16-lane array.
            unsafe { vst1q_u32(flags.as_mut_ptr().add(4 * k), *r) };
        }
        flags.iter().position(|&f| f != 0)
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

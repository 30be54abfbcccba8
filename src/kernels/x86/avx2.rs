//! AVX2 + FMA: a 16-lane vector is a pair of 8-lane registers (`lo` = lanes
//! 0..8, `hi` = lanes 8..16), so the lane layout and the reduction tree are
//! exactly those of the scalar and AVX-512 paths.

use core::arch::x86_64::*;

use crate::kernels::cpu::has_feature;
use crate::kernels::simd::{LANES, Simd, check_block, transpose_in_lanes, transpose_out_lanes};

/// Token for AVX2 + FMA. Only [`Avx2::new`] makes one, after checking the CPU.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Avx2(());

impl Avx2 {
    /// The token, if this CPU has AVX2 and FMA.
    pub(crate) fn new() -> Option<Self> {
        (has_feature!(x86 "avx2") && has_feature!(x86 "fma")).then_some(Avx2(()))
    }

    /// # Safety
    /// The CPU must support AVX2 and FMA.
    #[inline(always)]
    pub(crate) unsafe fn new_unchecked() -> Self {
        Avx2(())
    }
}

/// Lanes 0..8 and 8..16.
#[derive(Clone, Copy, Debug)]
pub(crate) struct V2 {
    lo: __m256,
    hi: __m256,
}

/// Per-lane all-ones / all-zeros masks, as floats.
#[derive(Clone, Copy, Debug)]
pub(crate) struct M2 {
    lo: __m256,
    hi: __m256,
}

/// `maskload` masks: lane i is set when i < n, for n in 0..=8.
#[inline(always)]
fn prefix_mask(n: usize) -> __m256i {
    const TABLE: [i32; 16] = [-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0];
    let start = 8 - n.min(8);
    // SAFETY: start + 8 <= 16, so the 8 loaded i32 are inside TABLE.
    unsafe { _mm256_loadu_si256(TABLE.as_ptr().add(start).cast()) }
}

/// Lane i set when i ≥ d, for d in 0..=8.
#[inline(always)]
fn lanes_from(d: usize) -> __m256i {
    const TABLE: [i32; 16] = [0, 0, 0, 0, 0, 0, 0, 0, -1, -1, -1, -1, -1, -1, -1, -1];
    let start = 8 - d.min(8);
    // SAFETY: start + 8 <= 16, so the 8 loaded i32 are inside TABLE.
    unsafe { _mm256_loadu_si256(TABLE.as_ptr().add(start).cast()) }
}

/// `[e(0), e(1), …, e(7)]`, written out (a closure would not inherit the
/// caller's target features, and the intrinsics could become calls).
macro_rules! each8 {
    (|$i:ident| $e:expr) => {
        [
            {
                let $i = 0;
                $e
            },
            {
                let $i = 1;
                $e
            },
            {
                let $i = 2;
                $e
            },
            {
                let $i = 3;
                $e
            },
            {
                let $i = 4;
                $e
            },
            {
                let $i = 5;
                $e
            },
            {
                let $i = 6;
                $e
            },
            {
                let $i = 7;
                $e
            },
        ]
    };
}

macro_rules! both {
    ($f:ident, $a:expr, $b:expr) => {
        // SAFETY: an Avx2 token exists only when the CPU has AVX2 and FMA.
        unsafe { V2 { lo: $f($a.lo, $b.lo), hi: $f($a.hi, $b.hi) } }
    };
}

impl Simd for Avx2 {
    type V = V2;
    type M = M2;

    #[inline(always)]
    fn splat(self, x: f32) -> V2 {
        // SAFETY: the token proves AVX2 is available.
        let v = unsafe { _mm256_set1_ps(x) };
        V2 { lo: v, hi: v }
    }
    #[inline(always)]
    fn load(self, src: &[f32; LANES]) -> V2 {
        // SAFETY: `src` holds 16 floats; unaligned loads of 8 at offsets 0 and 8.
        unsafe { V2 { lo: _mm256_loadu_ps(src.as_ptr()), hi: _mm256_loadu_ps(src.as_ptr().add(8)) } }
    }
    #[inline(always)]
    fn load_tail(self, src: &[f32], fill: f32) -> V2 {
        let n = src.len();
        debug_assert!(n < LANES);
        let m_lo = prefix_mask(n);
        let m_hi = prefix_mask(n.saturating_sub(8));
        // SAFETY: maskload reads only the lanes whose mask is set: lanes
        // i < n of `src`, which are in bounds. When n <= 8 the high mask is
        // empty, so the (possibly out-of-bounds) base pointer is never read.
        unsafe {
            let f = _mm256_set1_ps(fill);
            let p = src.as_ptr();
            let lo = _mm256_maskload_ps(p, m_lo);
            let hi = _mm256_maskload_ps(p.wrapping_add(8), m_hi);
            V2 {
                lo: _mm256_blendv_ps(f, lo, _mm256_castsi256_ps(m_lo)),
                hi: _mm256_blendv_ps(f, hi, _mm256_castsi256_ps(m_hi)),
            }
        }
    }
    #[inline(always)]
    fn store(self, dst: &mut [f32; LANES], v: V2) {
        // SAFETY: `dst` holds 16 floats.
        unsafe {
            _mm256_storeu_ps(dst.as_mut_ptr(), v.lo);
            _mm256_storeu_ps(dst.as_mut_ptr().add(8), v.hi);
        }
    }
    #[inline(always)]
    fn store_tail(self, dst: &mut [f32], v: V2) {
        let n = dst.len();
        debug_assert!(n < LANES);
        // SAFETY: maskstore writes only lanes i < n, which are inside `dst`.
        unsafe {
            let p = dst.as_mut_ptr();
            _mm256_maskstore_ps(p, prefix_mask(n), v.lo);
            _mm256_maskstore_ps(p.wrapping_add(8), prefix_mask(n.saturating_sub(8)), v.hi);
        }
    }
    #[inline(always)]
    fn add(self, a: V2, b: V2) -> V2 {
        both!(_mm256_add_ps, a, b)
    }
    #[inline(always)]
    fn sub(self, a: V2, b: V2) -> V2 {
        both!(_mm256_sub_ps, a, b)
    }
    #[inline(always)]
    fn mul(self, a: V2, b: V2) -> V2 {
        both!(_mm256_mul_ps, a, b)
    }
    #[inline(always)]
    fn div(self, a: V2, b: V2) -> V2 {
        both!(_mm256_div_ps, a, b)
    }
    #[inline(always)]
    fn fma(self, a: V2, b: V2, c: V2) -> V2 {
        // SAFETY: the token proves FMA is available.
        unsafe { V2 { lo: _mm256_fmadd_ps(a.lo, b.lo, c.lo), hi: _mm256_fmadd_ps(a.hi, b.hi, c.hi) } }
    }
    #[inline(always)]
    fn max(self, a: V2, b: V2) -> V2 {
        both!(_mm256_max_ps, a, b)
    }
    #[inline(always)]
    fn abs(self, a: V2) -> V2 {
        let m = self.splat(f32::from_bits(0x7fff_ffff));
        both!(_mm256_and_ps, a, m)
    }
    #[inline(always)]
    fn exp_clamp(self, x: V2) -> V2 {
        // Lanes below EXP_MIN_X would scale by 2^-126 into subnormals.
        self.max(self.splat(crate::kernels::exp_table::EXP_MIN_X), x)
    }
    #[inline(always)]
    fn lut16(self, table: &[u32; LANES], idx: V2) -> V2 {
        // vpermps reads the low 3 bits of an index; bit 3, moved to the sign,
        // picks the half. (A macro, not a closure: a closure would not
        // inherit the caller's target features, and the intrinsics would
        // become calls.)
        macro_rules! look {
            ($t0:expr, $t1:expr, $v:expr) => {{
                let i = _mm256_castps_si256($v);
                let hi = _mm256_castsi256_ps(_mm256_slli_epi32::<28>(i));
                _mm256_blendv_ps(_mm256_permutevar8x32_ps($t0, i), _mm256_permutevar8x32_ps($t1, i), hi)
            }};
        }
        // SAFETY: the token proves AVX2 is available; `table` holds 16 u32,
        // read as two halves of 8.
        unsafe {
            let t0 = _mm256_castsi256_ps(_mm256_loadu_si256(table.as_ptr().cast()));
            let t1 = _mm256_castsi256_ps(_mm256_loadu_si256(table.as_ptr().add(8).cast()));
            V2 { lo: look!(t0, t1, idx.lo), hi: look!(t0, t1, idx.hi) }
        }
    }
    #[inline(always)]
    fn add_shl19(self, a: V2, b: V2) -> V2 {
        macro_rules! add {
            ($a:expr, $b:expr) => {
                _mm256_castsi256_ps(_mm256_add_epi32(
                    _mm256_castps_si256($a),
                    _mm256_slli_epi32::<19>(_mm256_castps_si256($b)),
                ))
            };
        }
        // SAFETY: the token proves AVX2 is available.
        unsafe { V2 { lo: add!(a.lo, b.lo), hi: add!(a.hi, b.hi) } }
    }
    #[inline(always)]
    fn split_exponent(self, x: V2) -> (V2, V2) {
        // SAFETY: the token proves AVX2 is available.
        unsafe {
            let e = |v: __m256| {
                let b = _mm256_srli_epi32::<23>(_mm256_castps_si256(v));
                _mm256_cvtepi32_ps(_mm256_sub_epi32(b, _mm256_set1_epi32(127)))
            };
            let m = |v: __m256| {
                let b = _mm256_and_si256(_mm256_castps_si256(v), _mm256_set1_epi32(0x007f_ffff));
                _mm256_castsi256_ps(_mm256_or_si256(b, _mm256_set1_epi32(0x3f80_0000)))
            };
            (V2 { lo: e(x.lo), hi: e(x.hi) }, V2 { lo: m(x.lo), hi: m(x.hi) })
        }
    }
    #[inline(always)]
    fn or_sign(self, mag: V2, sign: V2) -> V2 {
        let s = both!(_mm256_and_ps, sign, self.splat(-0.0));
        both!(_mm256_or_ps, mag, s)
    }
    #[inline(always)]
    fn lt(self, a: V2, b: V2) -> M2 {
        // SAFETY: the token proves AVX2 is available.
        unsafe { M2 { lo: _mm256_cmp_ps::<_CMP_LT_OQ>(a.lo, b.lo), hi: _mm256_cmp_ps::<_CMP_LT_OQ>(a.hi, b.hi) } }
    }
    #[inline(always)]
    fn eq(self, a: V2, b: V2) -> M2 {
        // SAFETY: the token proves AVX2 is available.
        unsafe { M2 { lo: _mm256_cmp_ps::<_CMP_EQ_OQ>(a.lo, b.lo), hi: _mm256_cmp_ps::<_CMP_EQ_OQ>(a.hi, b.hi) } }
    }
    #[inline(always)]
    fn is_nan(self, a: V2) -> M2 {
        // SAFETY: the token proves AVX2 is available.
        unsafe { M2 { lo: _mm256_cmp_ps::<_CMP_UNORD_Q>(a.lo, a.lo), hi: _mm256_cmp_ps::<_CMP_UNORD_Q>(a.hi, a.hi) } }
    }
    #[inline(always)]
    fn select(self, m: M2, a: V2, b: V2) -> V2 {
        // SAFETY: the token proves AVX2 is available.
        unsafe { V2 { lo: _mm256_blendv_ps(b.lo, a.lo, m.lo), hi: _mm256_blendv_ps(b.hi, a.hi, m.hi) } }
    }
    #[inline(always)]
    fn first_set(self, m: M2) -> Option<usize> {
        // SAFETY: the token proves AVX2 is available.
        let bits = unsafe { _mm256_movemask_ps(m.lo) as u32 | (_mm256_movemask_ps(m.hi) as u32) << 8 };
        (bits != 0).then(|| bits.trailing_zeros() as usize)
    }
    #[inline(always)]
    fn transpose_in(self, src: &[f32], stride: usize, n: usize, buf: &mut [[f32; LANES]]) {
        let cols = buf.len();
        check_block(src.len(), stride, n, cols);
        for g in [0, 8] {
            if n < g + 8 || cols < 8 {
                transpose_in_lanes(src, stride, n, buf, g..g + 8);
                continue;
            }
            // 8×8 blocks of rows g..g+8; the last block of columns ends at
            // `cols`, overlapping the one before (same values stored twice).
            for j in (0..cols).step_by(8) {
                let j0 = j.min(cols - 8);
                let block: &mut [[f32; LANES]; 8] = (&mut buf[j0..j0 + 8]).try_into().expect("8 columns");
                // SAFETY: rows g..g+8 are below n and columns j0..j0+8 within
                // cols, so every load is inside `src` (checked above); each
                // store writes lanes g..g+8 of a 16-lane column of `block`.
                unsafe {
                    let p = src.as_ptr().add(g * stride + j0);
                    let c = transpose8(each8!(|i| _mm256_loadu_ps(p.add(i * stride))));
                    for (col, v) in block.iter_mut().zip(c) {
                        _mm256_storeu_ps(col.as_mut_ptr().add(g), v);
                    }
                }
            }
        }
    }
    #[inline(always)]
    fn transpose_out(self, buf: &[[f32; LANES]], dst: &mut [f32], stride: usize, n: usize, add: bool) {
        let cols = buf.len();
        check_block(dst.len(), stride, n, cols);
        for g in [0, 8] {
            if n < g + 8 || cols < 8 {
                if n > g {
                    transpose_out_lanes(buf, dst, stride, n, add, g..n.min(g + 8));
                }
                continue;
            }
            for j in (0..cols).step_by(8) {
                let j0 = j.min(cols - 8);
                // Columns j0..j are already written when blocks overlap: an
                // addition must not add them twice.
                // SAFETY: the token proves AVX is available.
                let fresh = unsafe { _mm256_castsi256_ps(lanes_from(j - j0)) };
                let block: &[[f32; LANES]; 8] = (&buf[j0..j0 + 8]).try_into().expect("8 columns");
                // SAFETY: as in `transpose_in`: rows g..g+8 below n, columns
                // j0..j0+8 within cols, all inside `dst` (checked above).
                unsafe {
                    let p = dst.as_mut_ptr().add(g * stride + j0);
                    let r = transpose8(each8!(|i| _mm256_loadu_ps(block[i].as_ptr().add(g))));
                    for (i, v) in r.into_iter().enumerate() {
                        let q = p.add(i * stride);
                        let v = if add {
                            let old = _mm256_loadu_ps(q);
                            _mm256_blendv_ps(old, _mm256_add_ps(old, v), fresh)
                        } else {
                            v
                        };
                        _mm256_storeu_ps(q, v);
                    }
                }
            }
        }
    }
    #[inline(always)]
    fn prefetch(self, at: *const f32) {
        // SAFETY: a prefetch never faults and reads nothing architecturally,
        // whatever the address.
        unsafe { _mm_prefetch::<_MM_HINT_T1>(at.cast()) }
    }
    #[inline(always)]
    fn reduce_add(self, v: V2) -> f32 {
        // SAFETY: the token proves AVX2 is available.
        unsafe { tree8(_mm256_add_ps(v.lo, v.hi), |a, b| _mm_add_ps(a, b)) }
    }
    #[inline(always)]
    fn reduce_max(self, v: V2) -> f32 {
        // SAFETY: the token proves AVX2 is available.
        unsafe { tree8(_mm256_max_ps(v.lo, v.hi), |a, b| _mm_max_ps(a, b)) }
    }
}

/// The last three levels of the reduction tree: (i, i+4), (i, i+2), (0, 1).
///
/// # Safety
/// The CPU must support AVX.
#[inline(always)]
pub(crate) unsafe fn tree8(v: __m256, f: impl Fn(__m128, __m128) -> __m128) -> f32 {
    // SAFETY: the caller guarantees AVX; the rest is SSE, part of x86_64.
    unsafe {
        let x = f(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
        let x = f(x, _mm_movehl_ps(x, x));
        let x = f(x, _mm_shuffle_ps::<0b01>(x, x));
        _mm_cvtss_f32(x)
    }
}

/// The transpose of the 8×8 matrix whose rows are `r`.
///
/// # Safety
/// The CPU must support AVX.
#[inline(always)]
unsafe fn transpose8(r: [__m256; 8]) -> [__m256; 8] {
    // Macros, not closures: a closure would not inherit the caller's target
    // features, and the intrinsics could become calls.
    macro_rules! t {
        ($a:expr, $b:expr) => {
            (_mm256_unpacklo_ps($a, $b), _mm256_unpackhi_ps($a, $b))
        };
    }
    macro_rules! u {
        ($a:expr, $b:expr) => {
            (_mm256_shuffle_ps::<0x44>($a, $b), _mm256_shuffle_ps::<0xEE>($a, $b))
        };
    }
    // SAFETY: the caller guarantees AVX.
    unsafe {
        let (t0, t1) = t!(r[0], r[1]);
        let (t2, t3) = t!(r[2], r[3]);
        let (t4, t5) = t!(r[4], r[5]);
        let (t6, t7) = t!(r[6], r[7]);
        let (u0, u1) = u!(t0, t2);
        let (u2, u3) = u!(t1, t3);
        let (u4, u5) = u!(t4, t6);
        let (u6, u7) = u!(t5, t7);
        [
            _mm256_permute2f128_ps::<0x20>(u0, u4),
            _mm256_permute2f128_ps::<0x20>(u1, u5),
            _mm256_permute2f128_ps::<0x20>(u2, u6),
            _mm256_permute2f128_ps::<0x20>(u3, u7),
            _mm256_permute2f128_ps::<0x31>(u0, u4),
            _mm256_permute2f128_ps::<0x31>(u1, u5),
            _mm256_permute2f128_ps::<0x31>(u2, u6),
            _mm256_permute2f128_ps::<0x31>(u3, u7),
        ]
    }
}

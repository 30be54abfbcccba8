//! AVX-512F: one register per 16-lane vector, `__mmask16` lane flags, masked
//! loads and stores for row tails.

use core::arch::x86_64::*;

use super::avx2::{Avx2, tree8};
use crate::kernels::cpu::has_feature;
use crate::kernels::simd::{LANES, Simd};

/// Token for AVX-512F (with AVX2 + FMA). Only [`Avx512::new`] makes one.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Avx512(());

impl Avx512 {
    /// The token, if this CPU has AVX-512F, AVX2 and FMA.
    pub(crate) fn new() -> Option<Self> {
        (has_feature!(x86 "avx512f") && has_feature!(x86 "avx2") && has_feature!(x86 "fma")).then_some(Avx512(()))
    }

    /// # Safety
    /// The CPU must support AVX-512F, AVX2 and FMA.
    #[inline(always)]
    pub(crate) unsafe fn new_unchecked() -> Self {
        Avx512(())
    }
}

#[inline(always)]
fn prefix(n: usize) -> __mmask16 {
    debug_assert!(n < LANES);
    ((1u32 << n) - 1) as __mmask16
}

macro_rules! op {
    ($e:expr) => {
        // SAFETY: an Avx512 token exists only when the CPU has AVX-512F.
        unsafe { $e }
    };
}

impl Simd for Avx512 {
    type V = __m512;
    type M = __mmask16;

    #[inline(always)]
    fn splat(self, x: f32) -> __m512 {
        op!(_mm512_set1_ps(x))
    }
    #[inline(always)]
    fn load(self, src: &[f32; LANES]) -> __m512 {
        // SAFETY: `src` holds 16 floats; the load is unaligned.
        unsafe { _mm512_loadu_ps(src.as_ptr()) }
    }
    #[inline(always)]
    fn load_tail(self, src: &[f32], fill: f32) -> __m512 {
        // SAFETY: the mask selects lanes i < src.len(), all in bounds;
        // masked-off lanes are not accessed (no fault, no read).
        unsafe { _mm512_mask_loadu_ps(_mm512_set1_ps(fill), prefix(src.len()), src.as_ptr()) }
    }
    #[inline(always)]
    fn store(self, dst: &mut [f32; LANES], v: __m512) {
        // SAFETY: `dst` holds 16 floats.
        unsafe { _mm512_storeu_ps(dst.as_mut_ptr(), v) }
    }
    #[inline(always)]
    fn store_tail(self, dst: &mut [f32], v: __m512) {
        // SAFETY: only lanes i < dst.len() are written.
        unsafe { _mm512_mask_storeu_ps(dst.as_mut_ptr(), prefix(dst.len()), v) }
    }
    #[inline(always)]
    fn stream_offset(self, dst: &[f32]) -> Option<usize> {
        // Floats are 4-byte aligned, so a 64-byte boundary is 0..16 away.
        Some(dst.as_ptr().align_offset(64)).filter(|&h| h < LANES)
    }
    #[inline(always)]
    fn shift_join(self, a: __m512, b: __m512, h: usize) -> __m512 {
        // Index k + h of the 32 lanes a:b (bit 4 selects b).
        let idx = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15].map(|k: i32| k + h as i32);
        // SAFETY: the token proves AVX-512F; the array holds 16 i32.
        unsafe { _mm512_permutex2var_ps(a, _mm512_loadu_si512(idx.as_ptr().cast()), b) }
    }
    #[inline(always)]
    fn store_stream(self, dst: &mut [f32; LANES], v: __m512) {
        if dst.as_ptr().addr().is_multiple_of(64) {
            // SAFETY: `dst` holds 16 floats and is 64-byte aligned.
            unsafe { _mm512_stream_ps(dst.as_mut_ptr(), v) }
        } else {
            self.store(dst, v)
        }
    }
    #[inline(always)]
    fn stream_fence(self) {
        // SAFETY: SSE is part of every x86-64 CPU.
        unsafe { _mm_sfence() }
    }
    #[inline(always)]
    fn add(self, a: __m512, b: __m512) -> __m512 {
        op!(_mm512_add_ps(a, b))
    }
    #[inline(always)]
    fn sub(self, a: __m512, b: __m512) -> __m512 {
        op!(_mm512_sub_ps(a, b))
    }
    #[inline(always)]
    fn mul(self, a: __m512, b: __m512) -> __m512 {
        op!(_mm512_mul_ps(a, b))
    }
    #[inline(always)]
    fn div(self, a: __m512, b: __m512) -> __m512 {
        op!(_mm512_div_ps(a, b))
    }
    #[inline(always)]
    fn fma(self, a: __m512, b: __m512, c: __m512) -> __m512 {
        op!(_mm512_fmadd_ps(a, b, c))
    }
    #[inline(always)]
    fn max(self, a: __m512, b: __m512) -> __m512 {
        op!(_mm512_max_ps(a, b))
    }
    #[inline(always)]
    fn abs(self, a: __m512) -> __m512 {
        op!(_mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(a), _mm512_set1_epi32(0x7fff_ffff))))
    }
    #[inline(always)]
    fn lut16(self, table: &[u32; LANES], idx: __m512) -> __m512 {
        // SAFETY: `table` holds 16 u32 (64 bytes); vpermd reads the low 4
        // bits of each index lane.
        unsafe {
            let t = _mm512_loadu_si512(table.as_ptr().cast());
            _mm512_castsi512_ps(_mm512_permutexvar_epi32(_mm512_castps_si512(idx), t))
        }
    }
    #[inline(always)]
    fn add_shl19(self, a: __m512, b: __m512) -> __m512 {
        op!(_mm512_castsi512_ps(_mm512_add_epi32(
            _mm512_castps_si512(a),
            _mm512_slli_epi32::<19>(_mm512_castps_si512(b))
        )))
    }
    #[inline(always)]
    fn fma_unless_tiny(self, a: __m512, p: __m512, c: __m512, tiny: __m512) -> __m512 {
        // SAFETY: the token proves AVX-512F is available.
        unsafe { _mm512_mask3_fmadd_ps(a, p, c, _mm512_cmp_ps_mask::<_CMP_NLT_UQ>(p, tiny)) }
    }
    #[inline(always)]
    fn exp_scale(self, p: __m512, (biased, n): (__m512, __m512), x: __m512) -> __m512 {
        // 2^(k/16)·(1 + p) rounded once, then scaled by 2^⌊n⌋ exactly (the
        // results are normal): the same bits as the default's single rounding.
        let t = self.lut16(&crate::kernels::exp_table::EXP2_16THS, biased);
        // SAFETY: the token proves AVX-512F is available.
        unsafe {
            // Lanes below EXP_MIN_X are zeroed, not computed (so they make no
            // subnormals); NaN compares "not less", so it is kept.
            let keep = _mm512_cmp_ps_mask::<_CMP_NLT_UQ>(x, _mm512_set1_ps(crate::kernels::exp_table::EXP_MIN_X));
            _mm512_maskz_scalef_ps(keep, _mm512_fmadd_ps(t, p, t), n)
        }
    }
    #[inline(always)]
    fn split_exponent(self, x: __m512) -> (__m512, __m512) {
        // SAFETY: the token proves AVX-512F is available.
        unsafe {
            let b = _mm512_castps_si512(x);
            let e = _mm512_cvtepi32_ps(_mm512_sub_epi32(_mm512_srli_epi32::<23>(b), _mm512_set1_epi32(127)));
            let m =
                _mm512_or_si512(_mm512_and_si512(b, _mm512_set1_epi32(0x007f_ffff)), _mm512_set1_epi32(0x3f80_0000));
            (e, _mm512_castsi512_ps(m))
        }
    }
    #[inline(always)]
    fn or_sign(self, mag: __m512, sign: __m512) -> __m512 {
        op!(_mm512_castsi512_ps(_mm512_or_si512(
            _mm512_castps_si512(mag),
            _mm512_and_si512(_mm512_castps_si512(sign), _mm512_set1_epi32(i32::MIN))
        )))
    }
    #[inline(always)]
    fn lt(self, a: __m512, b: __m512) -> __mmask16 {
        op!(_mm512_cmp_ps_mask::<_CMP_LT_OQ>(a, b))
    }
    #[inline(always)]
    fn eq(self, a: __m512, b: __m512) -> __mmask16 {
        op!(_mm512_cmp_ps_mask::<_CMP_EQ_OQ>(a, b))
    }
    #[inline(always)]
    fn is_nan(self, a: __m512) -> __mmask16 {
        op!(_mm512_cmp_ps_mask::<_CMP_UNORD_Q>(a, a))
    }
    #[inline(always)]
    fn select(self, m: __mmask16, a: __m512, b: __m512) -> __m512 {
        op!(_mm512_mask_blend_ps(m, b, a))
    }
    #[inline(always)]
    fn first_set(self, m: __mmask16) -> Option<usize> {
        (m != 0).then(|| m.trailing_zeros() as usize)
    }
    #[inline(always)]
    fn transpose_in(self, src: &[f32], stride: usize, n: usize, buf: &mut [[f32; LANES]]) {
        // SAFETY: an Avx512 token exists only when the CPU has AVX-512F,
        // AVX2 and FMA, so also what an Avx2 token stands for.
        unsafe { Avx2::new_unchecked() }.transpose_in(src, stride, n, buf)
    }
    #[inline(always)]
    fn transpose_out(self, buf: &[[f32; LANES]], dst: &mut [f32], stride: usize, n: usize, add: bool) {
        // SAFETY: as above.
        unsafe { Avx2::new_unchecked() }.transpose_out(buf, dst, stride, n, add)
    }
    #[inline(always)]
    fn prefetch(self, at: *const f32) {
        // SAFETY: a prefetch never faults and reads nothing architecturally,
        // whatever the address.
        unsafe { _mm_prefetch::<_MM_HINT_T1>(at.cast()) }
    }
    #[inline(always)]
    fn reduce_add(self, v: __m512) -> f32 {
        // SAFETY: the token proves AVX-512F (and so AVX) is available.
        unsafe {
            let (lo, hi) = halves(v);
            tree8(_mm256_add_ps(lo, hi), |a, b| _mm_add_ps(a, b))
        }
    }
    #[inline(always)]
    fn reduce_max(self, v: __m512) -> f32 {
        // SAFETY: the token proves AVX-512F (and so AVX) is available.
        unsafe {
            let (lo, hi) = halves(v);
            tree8(_mm256_max_ps(lo, hi), |a, b| _mm_max_ps(a, b))
        }
    }
}

/// Lanes 0..8 and 8..16.
///
/// # Safety
/// The CPU must support AVX-512F.
#[inline(always)]
unsafe fn halves(v: __m512) -> (__m256, __m256) {
    // SAFETY: the caller guarantees AVX-512F.
    unsafe { (_mm512_castps512_ps256(v), _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(v)))) }
}

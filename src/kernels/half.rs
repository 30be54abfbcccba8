//! 16-bit floats: widening bfloat16 / IEEE binary16 to float32 (exact) and
//! rounding float32 to them, to nearest with ties to even, subnormals kept.
//!
//! Every path gives the same bits. bfloat16 is the top half of a float32, so
//! widening is a shift and rounding is integer arithmetic on any ISA. Where
//! the CPU has AVX-512 BF16, rounding uses `vcvtne2ps2bf16` (32 values in
//! one instruction), except for groups holding a subnormal, which that
//! instruction flushes to zero: those take the integer path. For
//! binary16 the x86 paths use F16C's `vcvtph2ps` / `vcvtps2ph` (AVX-512F has
//! the 16-lane forms) and NEON its `fcvtl` / `fcvtn`, which are IEEE
//! conversions; the portable code below matches them, NaNs included
//! (quieted, payload kept as far as it fits).

use super::isa::Isa;

/// A 16-bit float format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Half {
    /// bfloat16: 1 sign, 8 exponent, 7 mantissa bits.
    Bf16,
    /// IEEE 754 binary16: 1 sign, 5 exponent, 10 mantissa bits.
    F16,
}

/// bfloat16 → float32 (exact).
#[inline]
pub(crate) fn bf16_to_f32(h: u16) -> f32 {
    f32::from_bits(u32::from(h) << 16)
}

/// float32 → bfloat16, nearest even; NaN stays NaN (quieted).
#[inline]
pub(crate) fn f32_to_bf16(x: f32) -> u16 {
    let b = x.to_bits();
    if x.is_nan() {
        return ((b >> 16) | 0x40) as u16;
    }
    ((b + 0x7fff + ((b >> 16) & 1)) >> 16) as u16
}

/// binary16 → float32 (exact).
#[inline]
pub(crate) fn f16_to_f32(h: u16) -> f32 {
    let sign = u32::from(h & 0x8000) << 16;
    let exp = u32::from((h >> 10) & 0x1f);
    let man = u32::from(h & 0x3ff);
    let bits = match (exp, man) {
        (0, 0) => sign,
        // Subnormal: man · 2⁻²⁴, exact in float32.
        (0, _) => sign | (man as f32 * f32::from_bits(0x3380_0000)).to_bits(),
        (31, 0) => sign | 0x7f80_0000,
        (31, _) => sign | 0x7fc0_0000 | (man << 13),
        _ => sign | ((exp + 112) << 23) | (man << 13),
    };
    f32::from_bits(bits)
}

/// float32 → binary16, nearest even (overflow to ±inf, subnormals kept);
/// NaN stays NaN (quieted, top payload bits kept), as `vcvtps2ph` does.
#[inline]
pub(crate) fn f32_to_f16(x: f32) -> u16 {
    let b = x.to_bits();
    let sign = ((b >> 16) & 0x8000) as u16;
    let a = b & 0x7fff_ffff;
    let rest = if a > 0x7f80_0000 {
        0x7e00 | ((a >> 13) & 0x3ff) as u16
    } else if a >= 0x477f_f000 {
        // ≥ 65520 = 65504 + half an ulp, a tie that rounds to even: inf.
        0x7c00
    } else if a >= 0x3880_0000 {
        // Normal: round away the 13 low mantissa bits, then rebias.
        let r = a + 0x0fff + ((a >> 13) & 1);
        ((r - 0x3800_0000) >> 13) as u16
    } else {
        // Subnormal or zero: |x| · 2²⁴ (exact) rounded to an integer.
        crate::fmath::round_ties_even(f32::from_bits(a) * 16_777_216.0) as u16
    };
    sign | rest
}

fn widen_scalar(kind: Half, src: &[u16], dst: &mut [f32]) {
    let f = match kind {
        Half::Bf16 => bf16_to_f32,
        Half::F16 => f16_to_f32,
    };
    dst.iter_mut().zip(src).for_each(|(d, &s)| *d = f(s));
}

fn narrow_scalar(kind: Half, src: &[f32], dst: &mut [u16]) {
    let f = match kind {
        Half::Bf16 => f32_to_bf16,
        Half::F16 => f32_to_f16,
    };
    dst.iter_mut().zip(src).for_each(|(d, &s)| *d = f(s));
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::*;
    use crate::kernels::cpu::{has_feature, once_flag};
    use core::arch::x86_64::*;
    use core::sync::atomic::AtomicU8;

    /// Does this CPU have F16C (for binary16 on the AVX2 path)?
    pub(super) fn has_f16c() -> bool {
        static F16C: AtomicU8 = AtomicU8::new(u8::MAX);
        once_flag(&F16C, || !cfg!(miri) && has_feature!(x86 "f16c"))
    }

    #[target_feature(enable = "avx512f")]
    pub(super) fn widen_avx512(kind: Half, src: &[u16], dst: &mut [f32]) {
        let n = src.len().min(dst.len());
        let full = n - n % 16;
        for i in (0..full).step_by(16) {
            // SAFETY: i + 16 ≤ n, so the 32-byte load and 64-byte store are in
            // bounds; unaligned forms are used.
            unsafe {
                let h = _mm256_loadu_si256(src.as_ptr().add(i).cast());
                let f = match kind {
                    Half::Bf16 => _mm512_castsi512_ps(_mm512_slli_epi32::<16>(_mm512_cvtepu16_epi32(h))),
                    Half::F16 => _mm512_cvtph_ps(h),
                };
                _mm512_storeu_ps(dst.as_mut_ptr().add(i), f);
            }
        }
        widen_scalar(kind, &src[full..n], &mut dst[full..n]);
    }

    /// Does this CPU have AVX-512 BF16 (and DQ, for the subnormal test)?
    pub(super) fn has_bf16() -> bool {
        static BF16: AtomicU8 = AtomicU8::new(u8::MAX);
        once_flag(&BF16, || !cfg!(miri) && has_feature!(x86 "avx512bf16") && has_feature!(x86 "avx512dq"))
    }

    /// bfloat16 rounding by `vcvtne2ps2bf16`, 32 values at a time. The
    /// instruction rounds to nearest even and quiets NaNs as the portable
    /// code does, but flushes subnormal inputs to zero: a group of 32 with a
    /// subnormal (rare: gradients below 1.2e-38) takes the integer path.
    #[target_feature(enable = "avx512f,avx512bf16,avx512dq")]
    pub(super) fn narrow_bf16_avx512(src: &[f32], dst: &mut [u16], stream: bool) {
        let n = src.len().min(dst.len());
        // Streaming stores need 64-byte aligned destinations: the head goes
        // through the 16-lane path.
        let head = if stream { dst.as_ptr().align_offset(64).min(n) } else { 0 };
        narrow_avx512(Half::Bf16, &src[..head], &mut dst[..head], false);
        let (src, dst, n) = (&src[head..], &mut dst[head..], n - head);
        let full = n - n % 32;
        for i in (0..full).step_by(32) {
            // SAFETY: i + 32 ≤ n, so the two 64-byte loads and the 64-byte
            // store are in bounds; the streaming store is aligned (head).
            unsafe {
                let a = _mm512_loadu_ps(src.as_ptr().add(i));
                let b = _mm512_loadu_ps(src.as_ptr().add(i + 16));
                // fpclass 0x20: subnormal.
                let sub = _mm512_fpclass_ps_mask::<0x20>(a) | _mm512_fpclass_ps_mask::<0x20>(b);
                if sub != 0 {
                    narrow_avx512(Half::Bf16, &src[i..i + 32], &mut dst[i..i + 32], false);
                    continue;
                }
                let h: __m512i = core::mem::transmute(_mm512_cvtne2ps_pbh(b, a));
                if stream {
                    _mm512_stream_si512(dst.as_mut_ptr().add(i).cast(), h);
                } else {
                    _mm512_storeu_si512(dst.as_mut_ptr().add(i).cast(), h);
                }
            }
        }
        if stream {
            // Orders the streaming stores before anything this thread does next.
            _mm_sfence();
        }
        narrow_avx512(Half::Bf16, &src[full..n], &mut dst[full..n], false);
    }

    #[target_feature(enable = "avx512f")]
    pub(super) fn narrow_avx512(kind: Half, src: &[f32], dst: &mut [u16], stream: bool) {
        let n = src.len().min(dst.len());
        // Streaming stores need 32-byte aligned destinations: a scalar head first.
        let head = if stream { dst.as_ptr().align_offset(32).min(n) } else { 0 };
        narrow_scalar(kind, &src[..head], &mut dst[..head]);
        let (src, dst, n) = (&src[head..], &mut dst[head..], n - head);
        let full = n - n % 16;
        for i in (0..full).step_by(16) {
            // SAFETY: i + 16 ≤ n, so the 64-byte load and 32-byte store are in
            // bounds; unaligned forms are used.
            unsafe {
                let x = _mm512_loadu_ps(src.as_ptr().add(i));
                let h = match kind {
                    Half::Bf16 => {
                        let b = _mm512_castps_si512(x);
                        let odd = _mm512_and_si512(_mm512_srli_epi32::<16>(b), _mm512_set1_epi32(1));
                        let r = _mm512_add_epi32(_mm512_add_epi32(b, _mm512_set1_epi32(0x7fff)), odd);
                        let nan = _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(x, x);
                        let q = _mm512_or_si512(b, _mm512_set1_epi32(0x0040_0000));
                        _mm512_cvtepi32_epi16(_mm512_srli_epi32::<16>(_mm512_mask_blend_epi32(nan, r, q)))
                    }
                    Half::F16 => _mm512_cvtps_ph::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(x),
                };
                if stream {
                    // Aligned: dst + i is 32-byte aligned after the head.
                    _mm256_stream_si256(dst.as_mut_ptr().add(i).cast(), h);
                } else {
                    _mm256_storeu_si256(dst.as_mut_ptr().add(i).cast(), h);
                }
            }
        }
        if stream {
            // Orders the streaming stores before anything this thread does next.
            _mm_sfence();
        }
        narrow_scalar(kind, &src[full..n], &mut dst[full..n]);
    }

    #[target_feature(enable = "avx2,f16c")]
    pub(super) fn widen_avx2(kind: Half, src: &[u16], dst: &mut [f32]) {
        let n = src.len().min(dst.len());
        let full = n - n % 8;
        for i in (0..full).step_by(8) {
            // SAFETY: i + 8 ≤ n: the 16-byte load and 32-byte store are in
            // bounds; unaligned forms are used.
            unsafe {
                let h = _mm_loadu_si128(src.as_ptr().add(i).cast());
                let f = match kind {
                    Half::Bf16 => _mm256_castsi256_ps(_mm256_slli_epi32::<16>(_mm256_cvtepu16_epi32(h))),
                    Half::F16 => _mm256_cvtph_ps(h),
                };
                _mm256_storeu_ps(dst.as_mut_ptr().add(i), f);
            }
        }
        widen_scalar(kind, &src[full..n], &mut dst[full..n]);
    }

    #[target_feature(enable = "avx2,f16c")]
    pub(super) fn narrow_avx2(kind: Half, src: &[f32], dst: &mut [u16]) {
        let n = src.len().min(dst.len());
        let full = n - n % 8;
        for i in (0..full).step_by(8) {
            // SAFETY: i + 8 ≤ n: the 32-byte load and 16-byte store are in
            // bounds; unaligned forms are used.
            unsafe {
                let x = _mm256_loadu_ps(src.as_ptr().add(i));
                let h = match kind {
                    Half::Bf16 => {
                        let b = _mm256_castps_si256(x);
                        let odd = _mm256_and_si256(_mm256_srli_epi32::<16>(b), _mm256_set1_epi32(1));
                        let r = _mm256_add_epi32(_mm256_add_epi32(b, _mm256_set1_epi32(0x7fff)), odd);
                        let nan = _mm256_castps_si256(_mm256_cmp_ps::<_CMP_UNORD_Q>(x, x));
                        let q = _mm256_or_si256(b, _mm256_set1_epi32(0x0040_0000));
                        let v = _mm256_srli_epi32::<16>(_mm256_blendv_epi8(r, q, nan));
                        // Pack the eight 16-bit values (each ≤ 0xffff) into the low 128 bits.
                        let p = _mm256_packus_epi32(v, v);
                        _mm256_castsi256_si128(_mm256_permute4x64_epi64::<0b1000>(p))
                    }
                    Half::F16 => _mm256_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(x),
                };
                _mm_storeu_si128(dst.as_mut_ptr().add(i).cast(), h);
            }
        }
        narrow_scalar(kind, &src[full..n], &mut dst[full..n]);
    }
}

#[cfg(target_arch = "aarch64")]
mod arm {
    use super::*;
    use core::arch::aarch64::*;
    use core::arch::asm;

    /// Eight values at a time: binary16 by `fcvtl`/`fcvtl2` (IEEE
    /// conversions, NaNs quieted as the portable code does), bfloat16 by a
    /// shift into the top half.
    #[target_feature(enable = "neon")]
    pub(super) fn widen_neon(kind: Half, src: &[u16], dst: &mut [f32]) {
        let n = src.len().min(dst.len());
        let full = n - n % 8;
        for i in (0..full).step_by(8) {
            // SAFETY: i + 8 ≤ n: the 16-byte load and two 16-byte stores are
            // in bounds (NEON loads and stores need no alignment); the asm
            // only converts registers.
            unsafe {
                let h = vld1q_u16(src.as_ptr().add(i));
                let (lo, hi) = match kind {
                    Half::Bf16 => (
                        vreinterpretq_f32_u32(vshll_n_u16::<16>(vget_low_u16(h))),
                        vreinterpretq_f32_u32(vshll_high_n_u16::<16>(h)),
                    ),
                    Half::F16 => {
                        let (lo, hi): (float32x4_t, float32x4_t);
                        asm!(
                            "fcvtl {lo:v}.4s, {h:v}.4h",
                            "fcvtl2 {hi:v}.4s, {h:v}.8h",
                            h = in(vreg) h,
                            lo = out(vreg) lo,
                            hi = out(vreg) hi,
                            options(pure, nomem, nostack),
                        );
                        (lo, hi)
                    }
                };
                vst1q_f32(dst.as_mut_ptr().add(i), lo);
                vst1q_f32(dst.as_mut_ptr().add(i + 4), hi);
            }
        }
        widen_scalar(kind, &src[full..n], &mut dst[full..n]);
    }

    /// Eight values at a time: binary16 by `fcvtn`/`fcvtn2` (rounding to
    /// nearest even, the mode a process starts in), bfloat16 by the integer
    /// recipe of the portable code.
    #[target_feature(enable = "neon")]
    pub(super) fn narrow_neon(kind: Half, src: &[f32], dst: &mut [u16]) {
        let n = src.len().min(dst.len());
        let full = n - n % 8;
        for i in (0..full).step_by(8) {
            // SAFETY: i + 8 ≤ n: the two 16-byte loads and the 16-byte store
            // are in bounds; the asm only converts registers.
            unsafe {
                let lo = vld1q_f32(src.as_ptr().add(i));
                let hi = vld1q_f32(src.as_ptr().add(i + 4));
                let h = match kind {
                    Half::Bf16 => vcombine_u16(bf16x4(lo), bf16x4(hi)),
                    Half::F16 => {
                        let h: uint16x8_t;
                        asm!(
                            "fcvtn {h:v}.4h, {lo:v}.4s",
                            "fcvtn2 {h:v}.8h, {hi:v}.4s",
                            lo = in(vreg) lo,
                            hi = in(vreg) hi,
                            h = out(vreg) h,
                            options(pure, nomem, nostack),
                        );
                        h
                    }
                };
                vst1q_u16(dst.as_mut_ptr().add(i), h);
            }
        }
        narrow_scalar(kind, &src[full..n], &mut dst[full..n]);
    }

    /// [`f32_to_bf16`] on four lanes.
    #[target_feature(enable = "neon")]
    fn bf16x4(x: float32x4_t) -> uint16x4_t {
        let b = vreinterpretq_u32_f32(x);
        let odd = vandq_u32(vshrq_n_u32::<16>(b), vdupq_n_u32(1));
        let r = vaddq_u32(vaddq_u32(b, vdupq_n_u32(0x7fff)), odd);
        let nan = vmvnq_u32(vceqq_f32(x, x));
        let q = vorrq_u32(b, vdupq_n_u32(0x0040_0000));
        vshrn_n_u32::<16>(vbslq_u32(nan, q, r))
    }
}

/// `dst[i] = src[i]` widened to float32, for `i < min(len)`.
pub(crate) fn widen(isa: Isa, kind: Half, src: &[u16], dst: &mut [f32]) {
    match isa.capped() {
        // SAFETY: `capped` never returns a path the CPU lacks; AVX-512F has
        // the 16-lane conversions.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => unsafe { x86::widen_avx512(kind, src, dst) },
        // SAFETY: AVX2 is present (capped); F16C is checked.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 if x86::has_f16c() => unsafe { x86::widen_avx2(kind, src, dst) },
        // SAFETY: NEON is present (capped).
        #[cfg(target_arch = "aarch64")]
        Isa::Neon => unsafe { arm::widen_neon(kind, src, dst) },
        _ => widen_scalar(kind, src, dst),
    }
}

/// `dst[i] = src[i]` rounded to the 16-bit format, for `i < min(len)`.
/// `stream`: bypass the caches (for outputs much larger than them; the
/// values are the same).
pub(crate) fn narrow(isa: Isa, kind: Half, src: &[f32], dst: &mut [u16], stream: bool) {
    let _ = stream; // (only the x86 paths stream)
    match isa.capped() {
        // SAFETY: as in `widen`.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 if kind == Half::Bf16 && x86::has_bf16() => unsafe { x86::narrow_bf16_avx512(src, dst, stream) },
        // SAFETY: as in `widen`.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => unsafe { x86::narrow_avx512(kind, src, dst, stream) },
        // SAFETY: as in `widen`.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 if x86::has_f16c() => unsafe { x86::narrow_avx2(kind, src, dst) },
        // SAFETY: as in `widen`.
        #[cfg(target_arch = "aarch64")]
        Isa::Neon => unsafe { arm::narrow_neon(kind, src, dst) },
        _ => narrow_scalar(kind, src, dst),
    }
}

/// Widening by a given path, for tests.
#[doc(hidden)]
pub fn widen_lanes(isa: Isa, kind: Half, src: &[u16], dst: &mut [f32]) {
    widen(isa, kind, src, dst);
}

/// Rounding by a given path, for tests.
#[doc(hidden)]
pub fn narrow_lanes(isa: Isa, kind: Half, src: &[f32], dst: &mut [u16], stream: bool) {
    narrow(isa, kind, src, dst, stream);
}

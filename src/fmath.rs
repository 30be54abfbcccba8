//! The few float functions core lacks: from the platform (std on Linux and
//! other Unix-likes) or from the libm crate (no_std, and Windows). The SIMD
//! paths never call them per logit; they are used per row or per chunk, and
//! by the portable path's fused multiply-add.
//!
//! Windows takes the libm crate's even with std: MinGW-w64's `fmaf` (which
//! `f32::mul_add` calls there) is not correctly rounded, so the portable path
//! gave other bits than the AVX2 one (found by `make test-windows`), and the
//! C runtimes' `exp`/`log` need not match glibc's. The libm crate's functions
//! give glibc's bits on every input the tests try (tests/no_std.rs), so
//! results stay the same on every platform.

/// `a · b + c` with one rounding.
#[inline]
pub(crate) fn fmaf(a: f32, b: f32, c: f32) -> f32 {
    #[cfg(all(feature = "std", not(windows)))]
    {
        a.mul_add(b, c)
    }
    #[cfg(any(not(feature = "std"), windows))]
    {
        libm::fmaf(a, b, c)
    }
}

/// `e^x` in float64.
#[inline]
pub(crate) fn exp(x: f64) -> f64 {
    #[cfg(all(feature = "std", not(windows)))]
    {
        x.exp()
    }
    #[cfg(any(not(feature = "std"), windows))]
    {
        libm::exp(x)
    }
}

/// Natural logarithm in float64.
#[inline]
pub(crate) fn ln(x: f64) -> f64 {
    #[cfg(all(feature = "std", not(windows)))]
    {
        x.ln()
    }
    #[cfg(any(not(feature = "std"), windows))]
    {
        libm::log(x)
    }
}

/// The nearest integer, ties to even.
#[inline]
pub(crate) fn round_ties_even(x: f32) -> f32 {
    #[cfg(all(feature = "std", not(windows)))]
    {
        x.round_ties_even()
    }
    #[cfg(any(not(feature = "std"), windows))]
    {
        // rint rounds in the default mode: to nearest, ties to even.
        libm::rintf(x)
    }
}

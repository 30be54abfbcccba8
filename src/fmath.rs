//! The few float functions core lacks: from the platform (std) or from the
//! libm crate (no_std). The SIMD paths never call them per logit; they are
//! used per row or per chunk, and by the portable path's fused multiply-add.

/// `a · b + c` with one rounding.
#[inline]
pub(crate) fn fmaf(a: f32, b: f32, c: f32) -> f32 {
    #[cfg(feature = "std")]
    {
        a.mul_add(b, c)
    }
    #[cfg(not(feature = "std"))]
    {
        libm::fmaf(a, b, c)
    }
}

/// `e^x` in float64.
#[inline]
pub(crate) fn exp(x: f64) -> f64 {
    #[cfg(feature = "std")]
    {
        x.exp()
    }
    #[cfg(not(feature = "std"))]
    {
        libm::exp(x)
    }
}

/// Natural logarithm in float64.
#[inline]
pub(crate) fn ln(x: f64) -> f64 {
    #[cfg(feature = "std")]
    {
        x.ln()
    }
    #[cfg(not(feature = "std"))]
    {
        libm::log(x)
    }
}

/// The nearest integer, ties to even.
#[inline]
pub(crate) fn round_ties_even(x: f32) -> f32 {
    #[cfg(feature = "std")]
    {
        x.round_ties_even()
    }
    #[cfg(not(feature = "std"))]
    {
        // rint rounds in the default mode: to nearest, ties to even.
        libm::rintf(x)
    }
}

//! Row kernels and their runtime dispatch.
//!
//! The passes in [`rows`] are written once over the 16-lane [`simd::Simd`]
//! trait; this module instantiates them for each instruction set inside a thin
//! `#[target_feature]` shell and picks one at first use: the best the CPU has,
//! capped by the `XENT_ISA` environment variable (`scalar`, `neon`, `simd128`,
//! `avx2`, `avx512`). Because every path runs the same operations on the same lanes,
//! they give identical bits.
//!
//! Files: `isa.rs` (the paths and the choice), `cpu.rs` (feature detection),
//! `simd.rs` (the vector trait), `scalar.rs`, `x86/`, `arm/`, `wasm/` (its
//! implementations), `exp_table.rs` and `math.rs` (exp, log, tanh),
//! `rows.rs` (the per-row passes), `tile.rs` (short rows, 16 at a
//! time with one row per lane), `half.rs` (16-bit conversions).

#[cfg(target_arch = "aarch64")]
mod arm;
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
pub(crate) mod cpu;
mod exp_table;
pub(crate) mod half;
mod isa;
mod math;
pub(crate) mod rows;
mod scalar;
pub(crate) mod simd;
mod tile;
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod wasm;
#[cfg(target_arch = "x86_64")]
mod x86;

pub use half::{Half, narrow_lanes, widen_lanes};
pub use isa::Isa;
pub(crate) use rows::{Ahead, Coef, Grad, Io, Logit};
pub(crate) use simd::LANES;
pub(crate) use tile::{ROW_BY_ROW_MAX, Rows, Scales, TILE_MAX_COLS, Tiles};

/// Generates, for each generic pass, one `#[target_feature]` shell per x86
/// or aarch64 path and a safe dispatcher taking the [`Isa`].
macro_rules! dispatch {
    ($( $(#[$doc:meta])* fn $module:ident::$name:ident($($arg:ident: $ty:ty),*) -> $ret:ty; )*) => {
        $(
            $(#[$doc])*
            #[inline]
            pub(crate) fn $name(isa: Isa, $($arg: $ty),*) -> $ret {
                #[cfg(target_arch = "x86_64")]
                mod shells {
                    use super::*;
                    #[target_feature(enable = "avx2,fma")]
                    pub(super) fn avx2($($arg: $ty),*) -> $ret {
                        // SAFETY: this function only runs when the CPU has
                        // AVX2 and FMA (it is compiled with them enabled and
                        // called only for Isa::Avx2 or better).
                        $module::$name(unsafe { x86::Avx2::new_unchecked() }, $($arg),*)
                    }
                    #[target_feature(enable = "avx512f,avx2,fma")]
                    pub(super) fn avx512($($arg: $ty),*) -> $ret {
                        // SAFETY: as above, for AVX-512F.
                        $module::$name(unsafe { x86::Avx512::new_unchecked() }, $($arg),*)
                    }
                }
                #[cfg(target_arch = "aarch64")]
                mod shells {
                    use super::*;
                    #[target_feature(enable = "neon")]
                    pub(super) fn neon($($arg: $ty),*) -> $ret {
                        // SAFETY: this function only runs when the CPU has
                        // NEON (called only for Isa::Neon, which `capped`
                        // returns only then).
                        $module::$name(unsafe { arm::Neon::new_unchecked() }, $($arg),*)
                    }
                }
                match isa.capped() {
                    // SAFETY: `capped` never returns a path the CPU lacks.
                    #[cfg(target_arch = "x86_64")]
                    Isa::Avx2 => unsafe { shells::avx2($($arg),*) },
                    // SAFETY: as above.
                    #[cfg(target_arch = "x86_64")]
                    Isa::Avx512 => unsafe { shells::avx512($($arg),*) },
                    // SAFETY: as above.
                    #[cfg(target_arch = "aarch64")]
                    Isa::Neon => unsafe { shells::neon($($arg),*) },
                    // The module is built with simd128, so it is there.
                    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
                    Isa::Simd128 => $module::$name(wasm::Simd128, $($arg),*),
                    _ => $module::$name(scalar::Scalar, $($arg),*),
                }
            }
        )*
    };
}

dispatch! {
    /// Largest `z'` of a row (NaN skipped).
    fn rows::max(row: &[f32], how: Logit) -> f32;
    /// First NaN, else first maximum, of a raw row.
    fn rows::argmax(row: &[f32]) -> usize;
    /// Stores `tanh(x / cap)` and returns its maximum.
    fn rows::tanh_store_max(io: Io<'_>, cap: f32) -> f32;
    /// `Σ exp(z' − shift)`, optionally storing each term.
    fn rows::sum_exp(io: Io<'_>, how: Logit, shift: f32, next: &[f32]) -> f64;
    /// `Σ exp(z' − shift)` for any shift (the exp does not assume `z' ≤ shift`).
    fn rows::sum_exp_any(io: Io<'_>, how: Logit, shift: f32, next: &[f32]) -> f64;
    /// Σexp of a raw chunk and the max of the next one.
    fn rows::sum_exp_max_ahead(io: Io<'_>, shift: f32, ahead: &[f32], next: &[f32]) -> (f64, f32);
    /// `(Σ c, Σ c·(z' − shift))`.
    fn rows::coef_dot(row: &[f32], how: Logit, shift: f32, coef: Coef<'_>) -> (f64, f64);
    /// Writes one gradient row, prefetching `next` (a row to read or write next).
    fn rows::grad_ahead(io: Io<'_>, g: Grad<'_>, next: Ahead) -> ();
    /// Element-wise `ln`.
    fn rows::log_slice(io: Io<'_>) -> ();
    /// A block of short rows, in tiles of 16 rows with one row per lane.
    fn tile::tiles(job: Tiles<'_>) -> ();
    /// A block of at most 3 short rows, row by row (the same results).
    fn tile::few_rows(job: Tiles<'_>) -> ();
}

/// Writes one gradient row of data already in the caches (nothing to prefetch).
#[inline]
pub(crate) fn grad(isa: Isa, io: Io<'_>, g: Grad<'_>) {
    grad_ahead(isa, io, g, Ahead::NONE);
}

/// `(z', t)` for one stored value, computed by the same vector code the
/// passes use (lane 0 of the scalar path), so it matches them bit for bit.
pub(crate) fn logit_one(x: f32, how: Logit) -> (f32, f32) {
    let (z, t) = rows::logit(scalar::Scalar, how, [x; simd::LANES]);
    (z[0], t[0])
}

/// `ln x` by the kernels' log (lane 0 of the portable path, which every
/// path matches bit for bit).
pub(crate) fn log_one(x: f32) -> f32 {
    let mut out = [0.0f32; 1];
    rows::log_slice(scalar::Scalar, Io::Map(&[x], &mut out));
    out[0]
}

/// `ln x` by the kernels' log, for tests.
#[doc(hidden)]
pub fn log_lanes(isa: Isa, x: &[f32], out: &mut [f32]) {
    log_slice(isa, Io::Map(x, out));
}

/// `e^x` by the kernels' exp, for tests; `stream` stores the results as
/// a large output is (with streaming stores where the path has them).
#[doc(hidden)]
pub fn exp_lanes(isa: Isa, x: &[f32], out: &mut [f32], stream: bool) {
    exp_slice(isa, if stream { Io::Stream(x, out) } else { Io::Map(x, out) });
}

/// `a·b + c` with one rounding by the kernels' fused multiply-add, for
/// tests (`b` and `c` as long as `a`).
#[doc(hidden)]
pub fn fma_lanes(isa: Isa, a: &[f32], b: &[f32], c: &[f32], out: &mut [f32]) {
    assert!(b.len() == a.len() && c.len() == a.len(), "equal lengths");
    fma_slice(isa, Io::Map(a, out), b, c);
}

dispatch! {
    /// Element-wise `a·b + c` (tests only).
    fn rows::fma_slice(io: Io<'_>, b: &[f32], c: &[f32]) -> ();
    /// Element-wise exp (tests only).
    fn rows::exp_slice(io: Io<'_>) -> ();
}

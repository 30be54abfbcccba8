//! Row kernels and their runtime dispatch.
//!
//! The passes in [`rows`] are written once over the 16-lane [`simd::Simd`]
//! trait; this module instantiates them for each instruction set inside a thin
//! `#[target_feature]` shell and picks one at first use: the best the CPU has,
//! capped by the `XENT_ISA` environment variable (`scalar`, `neon`, `avx2`,
//! `avx512`). Because every path runs the same operations on the same lanes,
//! they give identical bits.

#[cfg(target_arch = "aarch64")]
mod arm;
pub(crate) mod half;
mod math;
pub(crate) mod rows;
mod scalar;
mod short;
pub(crate) mod simd;
mod tile;
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod wasm;
#[cfg(target_arch = "x86_64")]
mod x86;

#[cfg(any(feature = "std", target_arch = "x86_64"))]
use core::sync::atomic::AtomicU8;
#[cfg(feature = "std")]
use core::sync::atomic::Ordering;

pub use half::{Half, narrow_lanes, widen_lanes};
pub(crate) use rows::{Ahead, Coef, Grad, Io, Logit, Rows};
pub(crate) use tile::{Tile, TileOut};

/// An instruction-set path. Values other than `Scalar` are only produced after
/// checking that the CPU supports them. The order is the order of capping:
/// a path the CPU lacks falls back to the best one below it that it has.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Isa {
    /// Portable code, any CPU.
    Scalar,
    /// aarch64 NEON (Advanced SIMD).
    Neon,
    /// wasm32 SIMD (`simd128`), in modules built with it.
    Simd128,
    /// x86-64 AVX2 + FMA.
    Avx2,
    /// x86-64 AVX-512F.
    Avx512,
}

impl Isa {
    /// The name used by `XENT_ISA` and `xent_active_isa`.
    pub fn name(self) -> &'static str {
        match self {
            Isa::Scalar => "scalar",
            Isa::Neon => "neon",
            Isa::Simd128 => "simd128",
            Isa::Avx2 => "avx2",
            Isa::Avx512 => "avx512",
        }
    }

    /// The best path this CPU supports: detected once at run time with std,
    /// the best the build targets without it (`-C target-feature` /
    /// `target-cpu`): a constant, so the other paths' code is not linked.
    pub fn best_available() -> Isa {
        #[cfg(feature = "std")]
        {
            static BEST: AtomicU8 = AtomicU8::new(UNKNOWN);
            once(&BEST, Isa::detect)
        }
        #[cfg(not(feature = "std"))]
        Isa::detect()
    }

    #[inline]
    fn detect() -> Isa {
        // Miri runs the portable path only (it has no AVX intrinsics).
        #[cfg(all(target_arch = "x86_64", not(miri)))]
        {
            if x86::Avx512::new().is_some() {
                return Isa::Avx512;
            }
            if x86::Avx2::new().is_some() {
                return Isa::Avx2;
            }
        }
        #[cfg(all(target_arch = "aarch64", not(miri)))]
        if arm::Neon::new().is_some() {
            return Isa::Neon;
        }
        #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
        return Isa::Simd128;
        #[allow(unreachable_code)]
        Isa::Scalar
    }

    /// Every path this CPU supports, worst first.
    pub fn available() -> impl Iterator<Item = Isa> {
        Isa::all().into_iter().filter(|&i| i.capped() == i)
    }

    /// The path in use: [`Isa::best_available`] capped by `XENT_ISA`, read
    /// once (an unknown value is ignored), unless this thread set an override
    /// with [`Isa::override_for_this_thread`]. Without std there is neither
    /// an environment nor an override: the best path.
    pub fn active() -> Isa {
        #[cfg(feature = "std")]
        {
            if let Some(isa) = OVERRIDE.with(std::cell::Cell::get) {
                return isa.capped();
            }
            static ACTIVE: AtomicU8 = AtomicU8::new(UNKNOWN);
            once(&ACTIVE, || {
                let best = Isa::best_available();
                let cap = std::env::var("XENT_ISA").ok().and_then(|v| Isa::parse(&v));
                cap.map_or(best, Isa::capped)
            })
        }
        #[cfg(not(feature = "std"))]
        Isa::best_available()
    }

    /// Makes calls started on this thread use `isa` (capped to what the CPU
    /// has), or the process-wide choice again for `None`. For tests and
    /// benchmarks that compare paths in one process; without std it does
    /// nothing.
    #[doc(hidden)]
    pub fn override_for_this_thread(isa: Option<Isa>) {
        #[cfg(feature = "std")]
        OVERRIDE.with(|o| o.set(isa));
        #[cfg(not(feature = "std"))]
        let _ = isa;
    }

    /// Parses a path name as `XENT_ISA` spells it.
    pub fn parse(name: &str) -> Option<Isa> {
        Isa::all().into_iter().find(|i| i.name() == name.trim())
    }

    /// Every path, in capping order.
    pub fn all() -> [Isa; 5] {
        [Isa::Scalar, Isa::Neon, Isa::Simd128, Isa::Avx2, Isa::Avx512]
    }

    /// `self` if this CPU supports it, else the best path below it that it
    /// does. Below the CPU's best path there is only the portable one, and
    /// AVX2 under AVX-512.
    pub fn capped(self) -> Isa {
        let best = Isa::best_available();
        match self {
            _ if self >= best => best,
            Isa::Avx2 => Isa::Avx2,
            _ => Isa::Scalar,
        }
    }
}

#[cfg(feature = "std")]
thread_local! {
    static OVERRIDE: std::cell::Cell<Option<Isa>> = const { std::cell::Cell::new(None) };
}

/// A cell's value not computed yet.
#[cfg(feature = "std")]
const UNKNOWN: u8 = u8::MAX;

#[cfg(feature = "std")]
/// `cell`'s path, computed by `f` on first use (threads racing to compute it
/// get the same answer).
fn once(cell: &AtomicU8, f: impl FnOnce() -> Isa) -> Isa {
    let v = cell.load(Ordering::Relaxed);
    if let Some(&isa) = Isa::all().get(usize::from(v)) {
        return isa;
    }
    let isa = f();
    let index = Isa::all().iter().position(|&i| i == isa).unwrap_or(0);
    cell.store(index as u8, Ordering::Relaxed);
    isa
}

/// A flag computed by `f` on first use (racing threads get the same answer).
#[cfg(target_arch = "x86_64")]
pub(crate) fn once_flag(cell: &AtomicU8, f: impl FnOnce() -> bool) -> bool {
    // Without std `f` reads compile-time features: a constant, not cached.
    #[cfg(not(feature = "std"))]
    {
        let _ = cell;
        f()
    }
    #[cfg(feature = "std")]
    match cell.load(Ordering::Relaxed) {
        UNKNOWN => {
            let v = f();
            cell.store(u8::from(v), Ordering::Relaxed);
            v
        }
        v => v != 0,
    }
}

/// Whether the CPU has an x86 / aarch64 feature: detected at run time with
/// std, known at compile time without it.
#[cfg(all(feature = "std", any(target_arch = "x86_64", target_arch = "aarch64")))]
macro_rules! has_feature {
    (x86 $f:tt) => {
        std::arch::is_x86_feature_detected!($f)
    };
    (aarch64 $f:tt) => {
        std::arch::is_aarch64_feature_detected!($f)
    };
}
#[cfg(all(not(feature = "std"), any(target_arch = "x86_64", target_arch = "aarch64")))]
macro_rules! has_feature {
    ($arch:ident $f:tt) => {
        $crate::kernels::compiled_with(cfg!(target_feature = $f))
    };
}
/// Whether the build enabled a target feature (a function, so that the
/// constant does not read as a tautology where features are combined).
#[cfg(all(not(feature = "std"), any(target_arch = "x86_64", target_arch = "aarch64")))]
#[inline]
pub(crate) fn compiled_with(enabled: bool) -> bool {
    enabled
}
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
pub(crate) use has_feature;

/// Generates, for each generic pass, one `#[target_feature]` shell per x86
/// or aarch64 path and a safe dispatcher taking the [`Isa`].
macro_rules! dispatch {
    ($( $(#[$doc:meta])* fn $name:ident($($arg:ident: $ty:ty),*) -> $ret:ty; )*) => {
        $(
            $(#[$doc])*
            #[inline]
            pub(crate) fn $name(isa: Isa, $($arg: $ty),*) -> $ret {
                #[cfg(target_arch = "x86_64")]
                mod $name {
                    use super::*;
                    #[target_feature(enable = "avx2,fma")]
                    pub(super) fn avx2($($arg: $ty),*) -> $ret {
                        // SAFETY: this function only runs when the CPU has
                        // AVX2 and FMA (it is compiled with them enabled and
                        // called only for Isa::Avx2 or better).
                        rows::$name(unsafe { x86::Avx2::new_unchecked() }, $($arg),*)
                    }
                    #[target_feature(enable = "avx512f,avx2,fma")]
                    pub(super) fn avx512($($arg: $ty),*) -> $ret {
                        // SAFETY: as above, for AVX-512F.
                        rows::$name(unsafe { x86::Avx512::new_unchecked() }, $($arg),*)
                    }
                }
                #[cfg(target_arch = "aarch64")]
                mod $name {
                    use super::*;
                    #[target_feature(enable = "neon")]
                    pub(super) fn neon($($arg: $ty),*) -> $ret {
                        // SAFETY: this function only runs when the CPU has
                        // NEON (called only for Isa::Neon, which `capped`
                        // returns only then).
                        rows::$name(unsafe { arm::Neon::new_unchecked() }, $($arg),*)
                    }
                }
                match isa.capped() {
                    // SAFETY: `capped` never returns a path the CPU lacks.
                    #[cfg(target_arch = "x86_64")]
                    Isa::Avx2 => unsafe { $name::avx2($($arg),*) },
                    // SAFETY: as above.
                    #[cfg(target_arch = "x86_64")]
                    Isa::Avx512 => unsafe { $name::avx512($($arg),*) },
                    // SAFETY: as above.
                    #[cfg(target_arch = "aarch64")]
                    Isa::Neon => unsafe { $name::neon($($arg),*) },
                    // The module is built with simd128, so it is there.
                    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
                    Isa::Simd128 => rows::$name(wasm::Simd128, $($arg),*),
                    _ => rows::$name(scalar::Scalar, $($arg),*),
                }
            }
        )*
    };
}

dispatch! {
    /// Largest `z'` of a row (NaN skipped).
    fn max(row: &[f32], how: Logit) -> f32;
    /// First NaN, else first maximum, of a raw row.
    fn argmax(row: &[f32]) -> usize;
    /// Stores `tanh(x / cap)` and returns its maximum.
    fn tanh_store_max(io: Io<'_>, cap: f32) -> f32;
    /// `Σ exp(z' − shift)`, optionally storing each term.
    fn sum_exp(io: Io<'_>, how: Logit, shift: f32, next: &[f32]) -> f64;
    /// `Σ exp(z' − shift)` for any shift (the exp does not assume `z' ≤ shift`).
    fn sum_exp_any(io: Io<'_>, how: Logit, shift: f32, next: &[f32]) -> f64;
    /// Σexp of a raw chunk and the max of the next one.
    fn sum_exp_max_ahead(io: Io<'_>, shift: f32, ahead: &[f32], next: &[f32]) -> (f64, f32);
    /// `(Σ c, Σ c·(z' − shift))`.
    fn coef_dot(row: &[f32], how: Logit, shift: f32, coef: Coef<'_>) -> (f64, f64);
    /// Writes one gradient row, prefetching `next` (a row to read or write next).
    fn grad_ahead(io: Io<'_>, g: Grad<'_>, next: Ahead) -> ();
    /// Element-wise `ln`.
    fn log_slice(io: Io<'_>) -> ();
    /// Max and Σexp of a batch of short rows.
    fn short_scan(rows: Rows<'_>, max_out: &mut [f32], sum_out: &mut [f32]) -> ();
    /// A tile of up to 16 rows of at most 16 classes, one row per lane.
    fn tile(t: Tile<'_>, out: &mut TileOut) -> ();
    /// Gradient pass over a batch of short rows.
    fn short_grad(dst: &mut [f32], stride: usize, cols: usize, g: Grad<'_>, a: &[f32]) -> ();
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
    fn fma_slice(io: Io<'_>, b: &[f32], c: &[f32]) -> ();
    /// Element-wise exp (tests only).
    fn exp_slice(io: Io<'_>) -> ();
}

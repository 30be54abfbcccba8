//! The instruction-set paths, which the CPU has, and which one a call uses.

#[cfg(feature = "std")]
use core::sync::atomic::{AtomicU8, Ordering};

#[cfg(target_arch = "aarch64")]
use super::arm;
#[cfg(target_arch = "x86_64")]
use super::x86;

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

//! What the CPU has: run-time feature detection with std, the build's
//! target features without it.

#[cfg(target_arch = "x86_64")]
use core::sync::atomic::AtomicU8;
#[cfg(all(feature = "std", target_arch = "x86_64"))]
use core::sync::atomic::Ordering;

/// A cell's value not computed yet.
#[cfg(all(feature = "std", target_arch = "x86_64"))]
const UNKNOWN: u8 = u8::MAX;

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
        $crate::kernels::cpu::compiled_with(cfg!(target_feature = $f))
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

//! xent: softmax cross-entropy loss and its gradient for CPUs, with a C ABI.
//!
//! Layers, each only talking to the one below:
//! - [`capi`]: the `extern "C"` functions of `include/xent.h`; validates
//!   pointers, shapes and options, converts them to slices, catches panics;
//! - [`loss`]: the safe core (slices in, `Result` out) with PyTorch's
//!   `F.cross_entropy` semantics plus z-loss and logit softcap;
//! - `parallel`: fixed row blocks on the calling thread, scoped threads or
//!   the caller's pool, with partial sums combined in a fixed order;
//! - [`kernels`]: per-row SIMD passes (scalar, AVX2, AVX-512) that give
//!   identical bits on every path.
//!
//! Without the default `std` feature the crate is `#![no_std]` and allocates
//! nothing (see `Cargo.toml` and the README's "Targets").
#![cfg_attr(not(feature = "std"), no_std)]
#![deny(missing_docs, unsafe_op_in_unsafe_fn)]
// Errors carry their message inline (240 bytes) so that failing never
// allocates; moving one on the (rare) error path is the price.
#![allow(clippy::result_large_err)]

pub mod capi;
mod error;
mod fmath;
pub mod kernels;
#[cfg(feature = "std")]
pub mod linear;
pub mod loss;
mod parallel;

/// no_std builds with the `panic-handler` feature: a panic (a bug in xent;
/// there are no panics by design) halts the calling thread.
#[cfg(all(not(feature = "std"), not(test), feature = "panic-handler"))]
#[panic_handler]
fn halt(_: &core::panic::PanicInfo<'_>) -> ! {
    loop {
        core::hint::spin_loop();
    }
}

pub use kernels::exp_lanes;

/// The precompiled `core` of a target that unwinds (x86-64 or aarch64 Linux)
/// refers to the unwinder's personality routine. A no_std build never
/// unwinds (panic = abort, and the handler above halts), so it is never
/// called; it only has to exist for the static library to link.
#[cfg(all(not(feature = "std"), not(test), feature = "panic-handler", not(target_os = "none")))]
#[unsafe(no_mangle)]
extern "C" fn rust_eh_personality() {}

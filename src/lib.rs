//! xent: softmax cross-entropy loss and its gradient for CPUs, with a C ABI.
//!
//! Layers, each importing only from those below it (`tests/boundary.rs`
//! checks that no file imports itself through others):
//! - [`capi`]: the `extern "C"` functions of `include/xent.h`, one file per
//!   call family; validates pointers, shapes and options, converts them to
//!   slices, and runs every body through one boundary (panics caught, the
//!   last error recorded);
//! - [`linear`]: the fused linear + cross-entropy head (chunks of rows, GEMMs);
//! - [`loss`]: the safe core (slices in, `Result` out) with PyTorch's
//!   `F.cross_entropy` semantics plus z-loss and logit softcap;
//! - `parallel`: fixed row blocks on the calling thread, scoped threads or
//!   the caller's pool, with partial sums combined in a fixed order;
//! - [`kernels`]: per-row SIMD passes (portable scalar, AVX2, AVX-512, NEON,
//!   wasm simd128) that give identical bits on every path;
//! - `error`: the one error type (a class and an inline message).
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

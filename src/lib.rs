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
//!
//! # Use from Rust
//!
//! The safe API is [`loss`]: slices in, [`loss::Result`] out, nothing
//! written on failure. A mean loss and its gradient in one pass:
//!
//! ```
//! use xent::loss::{self, ForwardOut, LogitsGrad, Matrix, MatrixMut, Options, Targets};
//!
//! // Two rows of three classes; the labels pick class 2, then class 0.
//! let logits = [1.0f32, 2.0, 3.0, -1.0, 0.5, 4.0];
//! let labels = [2, 0];
//! let mut grad = [0.0f32; 6];
//! let mut loss = [0.0f32];
//! loss::forward_backward(
//!     LogitsGrad::Separate {
//!         logits: Matrix { data: &logits, rows: 2, cols: 3, stride: 3 },
//!         grad: MatrixMut { data: &mut grad, rows: 2, cols: 3, stride: 3 },
//!     },
//!     Targets::Labels(&labels),
//!     &Options::default(), // PyTorch's defaults: mean, ignore_index -100
//!     ForwardOut { loss: &mut loss, lse: None, argmax: None },
//! )?;
//! assert!((loss[0] - 2.721_938).abs() < 1e-5);
//! // Each gradient row is (softmax − one-hot) / rows, so it sums to zero.
//! assert!(grad[..3].iter().sum::<f32>().abs() < 1e-6);
//! # Ok::<(), xent::loss::Error>(())
//! ```
//!
//! Options follow `F.cross_entropy` (class weights, `ignore_index`, label
//! smoothing, reductions) plus z-loss and softcap; errors say what is wrong:
//!
//! ```
//! use xent::loss::{self, ErrorKind, ForwardOut, Matrix, Options, Reduction, Targets};
//!
//! let logits = [0.0f32; 6];
//! let weights = [1.0f32, 2.0, 0.5];
//! let options = Options { reduction: Reduction::None, class_weights: Some(&weights), ..Options::default() };
//! let mut per_row = [0.0f32; 2];
//! let m = Matrix { data: &logits, rows: 2, cols: 3, stride: 3 };
//! loss::forward(m, Targets::Labels(&[1, -100]), &options, ForwardOut { loss: &mut per_row, lse: None, argmax: None })?;
//! assert_eq!(per_row, [2.0 * 3f32.ln(), 0.0]); // weighted; the ignored row is 0
//!
//! let err = loss::forward(m, Targets::Labels(&[1, 3]), &options, ForwardOut { loss: &mut per_row, lse: None, argmax: None })
//!     .unwrap_err();
//! assert_eq!(err.kind, ErrorKind::LabelOutOfRange);
//! println!("{err}"); // says which row and label
//! # Ok::<(), xent::loss::Error>(())
//! ```
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

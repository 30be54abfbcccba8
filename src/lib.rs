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
#![deny(missing_docs, unsafe_op_in_unsafe_fn)]

pub mod capi;
pub mod kernels;
pub mod linear;
pub mod loss;
mod parallel;

pub use kernels::exp_lanes;

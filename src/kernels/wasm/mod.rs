//! wasm32 paths.

mod simd128;

pub(crate) use simd128::Simd128;

//! aarch64 paths.

mod neon;

pub(crate) use neon::Neon;

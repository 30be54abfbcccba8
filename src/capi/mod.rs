//! The C ABI of `include/xent.h`, one file per part: status codes
//! (`status.rs`), the options struct (`options.rs`), the boundary every
//! export passes through (`boundary.rs`), buffer validation (`args.rs`), and
//! the exports by call family: `loss.rs` (float32, probability targets,
//! 16-bit), `linear.rs` (fused linear head) and `shard.rs` (vocabulary
//! shards). No math here: each call validates, converts to slices and calls
//! the safe core.

// In the order the header presents them (cbindgen follows it).
// In the order the header presents them (cbindgen follows it).
mod status;
mod options;
mod boundary;
mod args;
mod loss;
mod linear;
mod shard;

use core::ffi::c_char;

pub use linear::*;
pub use loss::*;
pub use options::{XENT_REDUCTION_MEAN, XENT_REDUCTION_NONE, XENT_REDUCTION_SUM};
pub use options::{XentOptions, XentParallelFor, XentReduction, XentTaskFn};
pub use shard::*;
pub use status::*;

/// The default options: MEAN, ignore_index -100, no weights, no smoothing,
/// no z-loss, no softcap, num_threads 0, no parallel_for.
#[unsafe(no_mangle)]
pub extern "C" fn xent_options_default() -> XentOptions {
    boundary::value(options::default_options(), options::default_options)
}

/// The library version, "MAJOR.MINOR.PATCH" (static storage). The header's
/// XENT_VERSION_MAJOR/MINOR/PATCH give the version compiled against.
#[unsafe(no_mangle)]
pub extern "C" fn xent_version() -> *const c_char {
    const V: &str = concat!(env!("CARGO_PKG_VERSION"), "\0");
    boundary::value(V.as_ptr().cast(), || V.as_ptr().cast())
}

/// A static, distinct, non-NULL description of any status value.
#[unsafe(no_mangle)]
pub extern "C" fn xent_status_message(status: XentStatus) -> *const c_char {
    boundary::value(c"unknown status code".as_ptr(), || status::message(status).as_ptr())
}

/// This thread's last failure message ("" if none yet; at most 240 bytes).
/// Valid until this thread's next failing xent call; never NULL. A no_std
/// build (no thread-locals) returns the xent_status_message text of the
/// last failure on any thread instead.
#[unsafe(no_mangle)]
pub extern "C" fn xent_last_error() -> *const c_char {
    boundary::value(c"".as_ptr(), boundary::last_error_ptr)
}

/// The kernel path in use: "scalar", "neon", "simd128", "avx2" or "avx512"
/// (static storage).
/// The best the CPU has, capped by the XENT_ISA environment variable (read once).
#[unsafe(no_mangle)]
pub extern "C" fn xent_active_isa() -> *const c_char {
    boundary::value(c"scalar".as_ptr(), || match crate::kernels::Isa::active() {
        crate::kernels::Isa::Scalar => c"scalar".as_ptr(),
        crate::kernels::Isa::Neon => c"neon".as_ptr(),
        crate::kernels::Isa::Simd128 => c"simd128".as_ptr(),
        crate::kernels::Isa::Avx2 => c"avx2".as_ptr(),
        crate::kernels::Isa::Avx512 => c"avx512".as_ptr(),
    })
}

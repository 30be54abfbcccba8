//! The status codes every fallible call returns, their texts, and the
//! mapping from the safe core's error classes.

use crate::error::ErrorKind;

/// Result of every fallible call. Codes are never renumbered.
pub type XentStatus = u32;
/// Success.
pub const XENT_STATUS_OK: XentStatus = 0;
/// A required pointer was NULL.
pub const XENT_STATUS_NULL_POINTER: XentStatus = 1;
/// classes == 0, a stride below classes, or mismatched shapes.
pub const XENT_STATUS_INVALID_SHAPE: XentStatus = 2;
/// A bad option value, struct_size, alignment or buffer overlap.
pub const XENT_STATUS_INVALID_ARGUMENT: XentStatus = 3;
/// A label outside [0, classes) that is not ignore_index.
pub const XENT_STATUS_LABEL_OUT_OF_RANGE: XentStatus = 4;
/// rows × stride (or a buffer's byte size) does not fit the address space.
pub const XENT_STATUS_SIZE_OVERFLOW: XentStatus = 5;
/// Memory for the threaded path could not be allocated.
pub const XENT_STATUS_ALLOCATION_FAILED: XentStatus = 6;
/// A bug in xent (a caught panic) or a parallel_for that skipped tasks.
pub const XENT_STATUS_INTERNAL_ERROR: XentStatus = 7;
/// This build lacks what the call needs: a no_std build (without the `std`
/// feature) has no 16-bit or fused linear calls.
pub const XENT_STATUS_UNSUPPORTED: XentStatus = 8;

/// The status of an error class (one to one).
pub(crate) fn status_of(kind: ErrorKind) -> XentStatus {
    match kind {
        ErrorKind::NullPointer => XENT_STATUS_NULL_POINTER,
        ErrorKind::InvalidShape => XENT_STATUS_INVALID_SHAPE,
        ErrorKind::InvalidArgument => XENT_STATUS_INVALID_ARGUMENT,
        ErrorKind::LabelOutOfRange => XENT_STATUS_LABEL_OUT_OF_RANGE,
        ErrorKind::SizeOverflow => XENT_STATUS_SIZE_OVERFLOW,
        ErrorKind::AllocationFailed => XENT_STATUS_ALLOCATION_FAILED,
        ErrorKind::Internal => XENT_STATUS_INTERNAL_ERROR,
        ErrorKind::Unsupported => XENT_STATUS_UNSUPPORTED,
    }
}

/// Static text of a status code.
pub(crate) fn message(s: XentStatus) -> &'static core::ffi::CStr {
    match s {
        XENT_STATUS_OK => c"ok",
        XENT_STATUS_NULL_POINTER => c"a required pointer is NULL",
        XENT_STATUS_INVALID_SHAPE => c"invalid shape: classes, strides or buffer sizes",
        XENT_STATUS_INVALID_ARGUMENT => c"invalid argument: an option, alignment or buffer overlap",
        XENT_STATUS_LABEL_OUT_OF_RANGE => c"a label is outside [0, classes) and is not ignore_index",
        XENT_STATUS_SIZE_OVERFLOW => c"a size computation overflows",
        XENT_STATUS_ALLOCATION_FAILED => c"memory allocation failed",
        XENT_STATUS_INTERNAL_ERROR => c"internal error",
        XENT_STATUS_UNSUPPORTED => {
            c"this build of xent lacks the call (a no_std build: 16-bit and fused linear calls need std)"
        }
        _ => c"unknown status code",
    }
}

//! Status codes, reductions, the options struct, the last-error slot and the
//! panic guard every exported function runs its body in.

use core::ffi::{c_char, c_void};
use std::cell::RefCell;
use std::ffi::CString;
use std::panic::{AssertUnwindSafe, catch_unwind};

use crate::loss::{Error, ErrorKind};

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

/// How row losses are combined (PyTorch's `reduction=`).
pub type XentReduction = u32;
/// Weighted mean over kept rows: 'mean'.
pub const XENT_REDUCTION_MEAN: XentReduction = 0;
/// Sum over rows: 'sum'.
pub const XENT_REDUCTION_SUM: XentReduction = 1;
/// One loss per row: 'none'.
pub const XENT_REDUCTION_NONE: XentReduction = 2;

/// One task of a parallel_for: run block `task_index` with `task_ctx`.
pub type XentTaskFn = Option<unsafe extern "C" fn(task_ctx: *mut c_void, task_index: usize)>;

/// A caller's pool: call `task(task_ctx, i)` once for every i in [0, n_tasks),
/// on any threads, and return only when all calls have returned.
pub type XentParallelFor =
    Option<unsafe extern "C" fn(parallel_ctx: *mut c_void, n_tasks: usize, task: XentTaskFn, task_ctx: *mut c_void)>;

/// Options of every call. Start from `xent_options_default()` and change fields.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct XentOptions {
    /// sizeof(XentOptions) as the caller compiled it. A smaller value (an older
    /// header, at least sizeof(size_t)) is accepted and the fields it does not
    /// cover keep their defaults; 0, anything below sizeof(size_t) or a larger
    /// value is XENT_STATUS_INVALID_ARGUMENT.
    pub struct_size: usize,
    /// XENT_REDUCTION_MEAN (default), _SUM or _NONE.
    pub reduction: XentReduction,
    /// Rows with this label are skipped (default -100). Class-index targets only.
    pub ignore_index: i32,
    /// NULL (default) or `classes` weights, as PyTorch's `weight=`.
    pub class_weights: *const f32,
    /// In [0, 1] (default 0), as PyTorch's `label_smoothing=`.
    pub label_smoothing: f32,
    /// >= 0 (default 0): adds z_loss_scale * lse^2 per kept row.
    pub z_loss_scale: f32,
    /// >= 0 (default 0 = off): logits become cap * tanh(z / cap) first.
    pub logit_softcap: f32,
    /// 1 = the calling thread only; N = up to N threads; 0 (default) = all
    /// cores for large calls, the calling thread for small ones.
    pub num_threads: u32,
    /// NULL (default) = xent's own threads; otherwise xent hands its row
    /// blocks to this function (num_threads is then ignored).
    pub parallel_for: XentParallelFor,
    /// Passed to parallel_for as its first argument.
    pub parallel_ctx: *mut c_void,
}

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

pub(crate) fn status_of(kind: ErrorKind) -> XentStatus {
    match kind {
        ErrorKind::NullPointer => XENT_STATUS_NULL_POINTER,
        ErrorKind::InvalidShape => XENT_STATUS_INVALID_SHAPE,
        ErrorKind::InvalidArgument => XENT_STATUS_INVALID_ARGUMENT,
        ErrorKind::LabelOutOfRange => XENT_STATUS_LABEL_OUT_OF_RANGE,
        ErrorKind::SizeOverflow => XENT_STATUS_SIZE_OVERFLOW,
        ErrorKind::AllocationFailed => XENT_STATUS_ALLOCATION_FAILED,
        ErrorKind::Internal => XENT_STATUS_INTERNAL_ERROR,
    }
}

fn set_last_error(message: &str) {
    let c = CString::new(message.replace('\0', " ")).unwrap_or_default();
    LAST_ERROR.with(|e| *e.borrow_mut() = c);
}

/// Pointer to this thread's last error message.
pub(crate) fn last_error_ptr() -> *const c_char {
    LAST_ERROR.with(|e| e.borrow().as_ptr())
}

/// Runs an exported body: catches panics, records the error message and
/// returns the status.
pub(crate) fn guard(body: impl FnOnce() -> Result<(), Error>) -> XentStatus {
    let result = catch_unwind(AssertUnwindSafe(body)).unwrap_or_else(|payload| {
        let what = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into());
        Err(Error::new(ErrorKind::Internal, format!("internal error (panic): {what}")))
    });
    match result {
        Ok(()) => XENT_STATUS_OK,
        Err(e) => {
            set_last_error(&e.message);
            status_of(e.kind)
        }
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
        _ => c"unknown status code",
    }
}

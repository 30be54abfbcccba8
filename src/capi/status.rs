//! Status codes, reductions, the options struct, the last-error slot and the
//! panic guard every exported function runs its body in.

use core::ffi::{c_char, c_void};

#[cfg(feature = "std")]
use crate::loss::Message;
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
/// This build lacks what the call needs: a no_std build (without the `std`
/// feature) has no 16-bit or fused linear calls.
pub const XENT_STATUS_UNSUPPORTED: XentStatus = 8;

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
    /// Finite (default 1): every gradient a call writes is the gradient of
    /// grad_scale times its loss (for the backward calls, on top of
    /// grad_loss), e.g. 1/N with XENT_REDUCTION_NONE for per-row losses and
    /// the mean's gradient in one pass. Losses, lse and argmax are unchanged.
    pub grad_scale: f32,
    /// 0 (default) or 1: add gradients into the caller's buffers
    /// (grad_logits; grad_hidden, grad_weight and grad_bias of the linear
    /// call) instead of overwriting them. Each element gets exactly old + g,
    /// g being what the call writes without it (16-bit: the widened old value
    /// plus the float32 gradient, rounded once to nearest even; the linear
    /// call's products add in their own order); rows whose label is
    /// ignore_index are left as they are. With grad_logits == logits it is
    /// XENT_STATUS_INVALID_ARGUMENT.
    pub grad_accumulate: u32,
    /// 0 (default) or 1: also set the columns [classes, grad_row_stride) of
    /// every gradient row to 0 (the linear call: [dim, stride) of grad_hidden
    /// and grad_weight rows), so a padded vocabulary's gradient is ready for
    /// the next matrix product. The gradient buffer must then hold rows x
    /// grad_row_stride values (the last row's padding included).
    pub grad_zero_padding: u32,
}

/// A message as C reads it: its bytes and a NUL (a NUL inside becomes a space).
#[cfg(feature = "std")]
struct CMessage([u8; Message::capacity() + 1]);

#[cfg(feature = "std")]
impl CMessage {
    const EMPTY: CMessage = CMessage([0; Message::capacity() + 1]);

    fn set(&mut self, m: &str) {
        let n = m.len().min(Message::capacity());
        for (d, &b) in self.0.iter_mut().zip(&m.as_bytes()[..n]) {
            *d = if b == 0 { b' ' } else { b };
        }
        self.0[n] = 0;
    }
}

#[cfg(feature = "std")]
thread_local! {
    static LAST_ERROR: core::cell::RefCell<CMessage> = const { core::cell::RefCell::new(CMessage::EMPTY) };
}

/// no_std builds have no thread-locals: the last failure's status, for
/// every thread, whose static text `xent_last_error` returns.
#[cfg(not(feature = "std"))]
static LAST_STATUS: core::sync::atomic::AtomicU32 = core::sync::atomic::AtomicU32::new(XENT_STATUS_OK);

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

fn set_last_error(e: &Error) {
    #[cfg(feature = "std")]
    LAST_ERROR.with(|slot| slot.borrow_mut().set(&e.message));
    #[cfg(not(feature = "std"))]
    LAST_STATUS.store(status_of(e.kind), core::sync::atomic::Ordering::Relaxed);
}

/// Pointer to this thread's last error message (no_std: the static text of
/// the last failure's status, on any thread; "" before the first).
pub(crate) fn last_error_ptr() -> *const c_char {
    #[cfg(feature = "std")]
    {
        LAST_ERROR.with(|slot| slot.borrow().0.as_ptr().cast())
    }
    #[cfg(not(feature = "std"))]
    {
        match LAST_STATUS.load(core::sync::atomic::Ordering::Relaxed) {
            XENT_STATUS_OK => c"".as_ptr(),
            s => message(s).as_ptr(),
        }
    }
}

/// Runs an exported body: catches panics (with std; without it a panic is
/// the panic handler's), records the error message and returns the status.
pub(crate) fn guard(body: impl FnOnce() -> Result<(), Error>) -> XentStatus {
    #[cfg(feature = "std")]
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(body)).unwrap_or_else(|payload| {
        let what = payload
            .downcast_ref::<&str>()
            .copied()
            .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
            .unwrap_or("unknown panic");
        Err(Error::new(ErrorKind::Internal, format_args!("internal error (panic): {what}")))
    });
    #[cfg(not(feature = "std"))]
    let result = body();
    match result {
        Ok(()) => XENT_STATUS_OK,
        Err(e) => {
            set_last_error(&e);
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
        XENT_STATUS_UNSUPPORTED => {
            c"this build of xent lacks the call (a no_std build: 16-bit and fused linear calls need std)"
        }
        _ => c"unknown status code",
    }
}

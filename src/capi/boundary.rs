//! The C boundary every export passes through: [`status`] runs a fallible
//! body (catching panics, recording the message for `xent_last_error`) and
//! returns its status; [`value`] runs one that cannot fail and returns its
//! value, or a fallback if it panicked. `tests/boundary.rs` checks that every
//! `extern "C"` function's body is one of them.

use core::ffi::c_char;

use crate::error::Error;
#[cfg(feature = "std")]
use crate::error::{ErrorKind, Message};

use super::status::*;

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
pub(crate) fn status(body: impl FnOnce() -> Result<(), Error>) -> XentStatus {
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

/// Runs an exported body that cannot fail and returns its value; a panic
/// (a bug in xent) returns `fallback` instead of unwinding into C.
pub(crate) fn value<T>(fallback: T, body: impl FnOnce() -> T) -> T {
    #[cfg(feature = "std")]
    {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(body)).unwrap_or(fallback)
    }
    #[cfg(not(feature = "std"))]
    {
        let _ = fallback;
        body()
    }
}

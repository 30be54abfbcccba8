//! The safe API's inputs and outputs: matrices, targets, options, errors.

use core::fmt;

pub use crate::kernels::Half;

/// How row losses are combined, as in PyTorch's `reduction=`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Reduction {
    /// Weighted mean over kept rows (`'mean'`).
    #[default]
    Mean,
    /// Sum over rows (`'sum'`).
    Sum,
    /// One loss per row (`'none'`).
    None,
}

/// A pool that runs `n_tasks` tasks, each index exactly once, and returns when
/// all are done. Implemented by the C API for a caller's `parallel_for`.
pub trait ParallelFor: Sync {
    /// Runs `task(i)` for every `i` in `0..n_tasks`, in any order and on any threads.
    fn run(&self, n_tasks: usize, task: &(dyn Fn(usize) + Sync));
}

/// Options shared by every call; [`Options::default`] matches PyTorch's defaults.
#[derive(Clone, Copy)]
pub struct Options<'a> {
    /// How row losses are combined.
    pub reduction: Reduction,
    /// Rows whose label equals this are skipped (class-index targets only).
    pub ignore_index: i32,
    /// One weight per class, or `None` for all ones.
    pub class_weights: Option<&'a [f32]>,
    /// Label smoothing in `[0, 1]`.
    pub label_smoothing: f32,
    /// Adds `z_loss_scale · lse²` per kept row (≥ 0).
    pub z_loss_scale: f32,
    /// `z → cap·tanh(z / cap)` before everything else when `> 0`.
    pub logit_softcap: f32,
    /// 1 = the calling thread only; N = up to N threads; 0 = all cores for
    /// large problems.
    pub num_threads: u32,
    /// The caller's pool; when set it runs the row blocks instead of xent's threads.
    pub parallel_for: Option<&'a dyn ParallelFor>,
    /// Every gradient written is the gradient of `grad_scale ×` the loss (for
    /// backward calls, on top of `grad_loss`); losses, lse and argmax are
    /// unchanged. Must be finite (default 1).
    pub grad_scale: f32,
    /// Add gradients into the caller's buffers instead of overwriting them
    /// (never in place). Rows whose label is `ignore_index` are left as they
    /// are; other values get exactly `old + g`, where `g` is what the call
    /// writes without this option (16-bit: the widened old value plus the
    /// float32 gradient, rounded once). Default false.
    pub grad_accumulate: bool,
    /// Set the columns `[cols, stride)` of every gradient row to 0, so a
    /// padded gradient is ready for the next matrix product; the gradient
    /// buffer must then hold `rows × stride` values. Default false.
    pub grad_zero_padding: bool,
}

impl Default for Options<'_> {
    fn default() -> Self {
        Options {
            reduction: Reduction::Mean,
            ignore_index: -100,
            class_weights: None,
            label_smoothing: 0.0,
            z_loss_scale: 0.0,
            logit_softcap: 0.0,
            num_threads: 0,
            parallel_for: None,
            grad_scale: 1.0,
            grad_accumulate: false,
            grad_zero_padding: false,
        }
    }
}

impl fmt::Debug for Options<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Options")
            .field("reduction", &self.reduction)
            .field("ignore_index", &self.ignore_index)
            .field("class_weights", &self.class_weights.map(<[f32]>::len))
            .field("label_smoothing", &self.label_smoothing)
            .field("z_loss_scale", &self.z_loss_scale)
            .field("logit_softcap", &self.logit_softcap)
            .field("num_threads", &self.num_threads)
            .field("parallel_for", &self.parallel_for.is_some())
            .field("grad_scale", &self.grad_scale)
            .field("grad_accumulate", &self.grad_accumulate)
            .field("grad_zero_padding", &self.grad_zero_padding)
            .finish()
    }
}

/// A bfloat16 value as its raw bits (the top half of a float32).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(transparent)]
pub struct Bf16(pub u16);

/// An IEEE 754 binary16 value as its raw bits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(transparent)]
pub struct F16(pub u16);

/// A logits element type: `f32`, [`Bf16`] or [`F16`]. 16-bit logits are
/// widened to float32 exactly, every computation is the float32 one, and the
/// gradient is rounded once, to nearest even.
pub trait Element: Copy + Send + Sync + sealed::Sealed {
    /// The 16-bit format, or `None` for `f32`.
    const HALF: Option<Half>;
    #[doc(hidden)]
    fn view(s: &[Self]) -> Elems<'_>;
    #[doc(hidden)]
    fn view_mut(s: &mut [Self]) -> ElemsMut<'_>;
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for f32 {}
    impl Sealed for super::Bf16 {}
    impl Sealed for super::F16 {}
}

/// A slice of logits as the core reads it.
#[doc(hidden)]
pub enum Elems<'a> {
    F32(&'a [f32]),
    Half(Half, &'a [u16]),
}

/// A slice of logits or gradient as the core writes it.
#[doc(hidden)]
pub enum ElemsMut<'a> {
    F32(&'a mut [f32]),
    Half(Half, &'a mut [u16]),
}

impl Element for f32 {
    const HALF: Option<Half> = None;
    fn view(s: &[f32]) -> Elems<'_> {
        Elems::F32(s)
    }
    fn view_mut(s: &mut [f32]) -> ElemsMut<'_> {
        ElemsMut::F32(s)
    }
}

macro_rules! half_element {
    ($t:ty, $kind:expr) => {
        impl Element for $t {
            const HALF: Option<Half> = Some($kind);
            fn view(s: &[$t]) -> Elems<'_> {
                // SAFETY: the type is a repr(transparent) u16, so the slice's
                // memory is a valid [u16] of the same length; the borrow moves.
                Elems::Half($kind, unsafe { core::slice::from_raw_parts(s.as_ptr().cast::<u16>(), s.len()) })
            }
            fn view_mut(s: &mut [$t]) -> ElemsMut<'_> {
                // SAFETY: as in `view`, for an exclusive borrow.
                ElemsMut::Half($kind, unsafe { core::slice::from_raw_parts_mut(s.as_mut_ptr().cast::<u16>(), s.len()) })
            }
        }
    };
}
half_element!(Bf16, Half::Bf16);
half_element!(F16, Half::F16);

/// A row-major matrix view: row `i` is `data[i·stride .. i·stride + cols]`.
#[derive(Clone, Copy, Debug)]
pub struct Matrix<'a, T = f32> {
    /// At least `(rows − 1)·stride + cols` values (0 when `rows == 0`).
    pub data: &'a [T],
    /// Number of rows.
    pub rows: usize,
    /// Number of columns (classes).
    pub cols: usize,
    /// Distance between row starts, `≥ cols`.
    pub stride: usize,
}

/// A mutable row-major matrix view; only the first `cols` of each row are written.
#[derive(Debug)]
pub struct MatrixMut<'a, T = f32> {
    /// At least `(rows − 1)·stride + cols` values (0 when `rows == 0`).
    pub data: &'a mut [T],
    /// Number of rows.
    pub rows: usize,
    /// Number of columns (classes).
    pub cols: usize,
    /// Distance between row starts, `≥ cols`.
    pub stride: usize,
}

/// Where the logits come from and where their gradient goes (of the same
/// element type).
#[derive(Debug)]
pub enum LogitsGrad<'a, T = f32> {
    /// Read `logits`, write the gradient into `grad` (same shape).
    Separate {
        /// The logits.
        logits: Matrix<'a, T>,
        /// The gradient, same rows and columns.
        grad: MatrixMut<'a, T>,
    },
    /// The gradient overwrites the logits.
    InPlace(MatrixMut<'a, T>),
}

/// What each row is compared with.
#[derive(Clone, Copy, Debug)]
pub enum Targets<'a> {
    /// One class index per row (`ignore_index` skips a row).
    Labels(&'a [i32]),
    /// A probability row per logits row (rows need not sum to 1).
    Probs(Matrix<'a>),
}

/// Outputs of a forward pass.
#[derive(Debug)]
pub struct ForwardOut<'a> {
    /// 1 value for `Mean`/`Sum`, `rows` values for `None`.
    pub loss: &'a mut [f32],
    /// Optional log-sum-exp of each row (after softcap).
    pub lse: Option<&'a mut [f32]>,
    /// Optional index of each row's largest raw logit (first NaN, else first maximum).
    pub argmax: Option<&'a mut [i32]>,
}

/// Inputs of a backward pass besides the logits.
#[derive(Clone, Copy, Debug)]
pub struct Upstream<'a> {
    /// 1 value, or `rows` values for `Reduction::None`.
    pub grad_loss: &'a [f32],
    /// Optional per-row log-sum-exp from a forward call, to skip recomputing it.
    pub lse: Option<&'a [f32]>,
}

/// The class of a failure; the C API's `XentStatus` codes map one to one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// A required pointer was NULL (C API only).
    NullPointer,
    /// Sizes or strides do not describe a valid matrix, or buffers are too short.
    InvalidShape,
    /// An option or buffer arrangement is invalid.
    InvalidArgument,
    /// A label is outside `[0, classes)` and is not `ignore_index`.
    LabelOutOfRange,
    /// A size computation overflowed.
    SizeOverflow,
    /// Memory for the threaded path could not be allocated.
    AllocationFailed,
    /// A bug: a panic was caught, or a caller's pool skipped tasks.
    Internal,
    /// The call needs what this build left out (the `std` feature).
    Unsupported,
}

/// A failure with its class and a precise message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    /// The class of failure.
    pub kind: ErrorKind,
    /// What exactly was wrong.
    pub message: Message,
}

impl Error {
    /// An error of `kind` with `message` (a `&str`, or `format_args!` for a
    /// formatted one; formatting allocates nothing).
    pub fn new(kind: ErrorKind, message: impl fmt::Display) -> Self {
        Error { kind, message: Message::of(message) }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

#[cfg(feature = "std")]
impl std::error::Error for Error {}

/// An error message of at most [`Message::capacity`] bytes of UTF-8, held
/// inline so that failing never allocates; a longer text is cut at a
/// character boundary and ends in "...".
#[derive(Clone, PartialEq, Eq)]
pub struct Message {
    len: u8,
    bytes: [u8; CAPACITY],
}

/// The longest message kept, in bytes (fits the `u8` length).
const CAPACITY: usize = 240;

impl Message {
    /// The longest message kept, in bytes.
    pub const fn capacity() -> usize {
        CAPACITY
    }

    /// `text` formatted into a message.
    pub fn of(text: impl fmt::Display) -> Message {
        let mut m = Message { len: 0, bytes: [0; CAPACITY] };
        // `write_str` fails only to stop the text once it was cut.
        let _ = fmt::write(&mut m, format_args!("{text}"));
        m
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        // `write_str` only ever appends whole characters.
        core::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or("")
    }
}

impl fmt::Write for Message {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        const MORE: &str = "...";
        let len = usize::from(self.len);
        let room = CAPACITY - len;
        let fits = if s.len() <= room {
            s.len()
        } else {
            // Cut at a character boundary, leaving room for the marker.
            let mut n = room.saturating_sub(MORE.len());
            while !s.is_char_boundary(n) {
                n -= 1;
            }
            n
        };
        self.bytes[len..len + fits].copy_from_slice(&s.as_bytes()[..fits]);
        let mut end = len + fits;
        if fits < s.len() && end + MORE.len() <= CAPACITY {
            self.bytes[end..end + MORE.len()].copy_from_slice(MORE.as_bytes());
            end += MORE.len();
        }
        // CAPACITY fits a u8.
        self.len = end as u8;
        // A cut message takes no more text.
        if fits < s.len() { Err(fmt::Error) } else { Ok(()) }
    }
}

impl core::ops::Deref for Message {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Debug for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Result of the safe API.
pub type Result<T> = core::result::Result<T, Error>;

//! The safe API's inputs and outputs: matrices, targets, options, errors.

use core::fmt;

pub use crate::kernels::Half;
pub use crate::parallel::ParallelFor;

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

impl<'a> Options<'a> {
    /// Who runs the call's blocks.
    pub(crate) fn workers(&self) -> crate::parallel::Workers<'a> {
        crate::parallel::Workers { pool: self.parallel_for, num_threads: self.num_threads }
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

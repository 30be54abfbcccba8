//! The fused linear + cross-entropy calls' arguments: the same order of
//! checks as [`super::args::Call`] (options, shapes and sizes, every pointer,
//! then overlap of every output, the workspace included, with every other
//! buffer) before any slice exists.

use core::ffi::c_void;

#[cfg(feature = "std")]
use super::args::Regions;
use super::boundary;
use super::options::XentOptions;
#[cfg(feature = "std")]
use super::options::{CPool, grad_extent, read_options, reduction, safe_options};
use super::status::XentStatus;
use crate::error::{ErrorKind, Result, fail};
#[cfg(feature = "std")]
use crate::linear::{self, Linear, LinearGrads};
#[cfg(feature = "std")]
use crate::loss::{ForwardOut, Matrix, MatrixMut, Reduction, check_shape};

/// Bytes the C caller may lose aligning its workspace pointer to 4 bytes.
#[cfg(feature = "std")]
const C_ALIGN_SLACK: usize = 3;

/// `xent_linear_workspace_size`: bytes of the default workspace, 0 when the
/// shape is invalid (or, without std, always: there is no fused linear call).
#[cfg(not(feature = "std"))]
pub(crate) fn workspace_size(_: usize, _: usize, _: usize) -> usize {
    0
}

/// `xent_linear_workspace_size`: bytes of the default workspace, 0 when the
/// shape is invalid.
#[cfg(feature = "std")]
pub(crate) fn workspace_size(rows: usize, dim: usize, classes: usize) -> usize {
    linear::workspace_len(rows, dim, classes)
        .and_then(|n| n.checked_mul(4))
        .and_then(|b| b.checked_add(C_ALIGN_SLACK))
        .filter(|&b| b <= isize::MAX as usize)
        .unwrap_or(0)
}

/// Every argument of the two calls; the gradients are NULL for the forward.
#[cfg_attr(not(feature = "std"), allow(dead_code))]
pub(crate) struct LinearCall {
    pub hidden: *const f32,
    pub rows: usize,
    pub dim: usize,
    pub hidden_stride: usize,
    pub weight: *const f32,
    pub classes: usize,
    pub weight_stride: usize,
    pub bias: *const f32,
    pub labels: *const i32,
    pub options: *const XentOptions,
    pub loss: *mut f32,
    pub lse: *mut f32,
    pub argmax: *mut i32,
    /// `None` for the forward call.
    pub grads: Option<GradPtrs>,
    pub workspace: *mut c_void,
    pub workspace_size: usize,
}

/// The gradient outputs of `xent_linear_forward_backward` (each may be NULL).
#[cfg_attr(not(feature = "std"), allow(dead_code))]
pub(crate) struct GradPtrs {
    pub hidden: *mut f32,
    pub hidden_stride: usize,
    pub weight: *mut f32,
    pub weight_stride: usize,
    pub bias: *mut f32,
}

impl LinearCall {
    /// Without std there is no fused linear call (its products allocate).
    ///
    /// # Safety
    /// None needed: no pointer is read.
    #[cfg(not(feature = "std"))]
    pub(crate) unsafe fn run(self) -> Result<()> {
        fail(ErrorKind::Unsupported, "the fused linear calls need xent's std feature (this is a no_std build)")
    }

    /// Validates everything and runs the safe core.
    ///
    /// # Safety
    /// Every non-NULL pointer must be valid for the extent its arguments
    /// describe, as the header documents.
    #[cfg(feature = "std")]
    pub(crate) unsafe fn run(self) -> Result<()> {
        // SAFETY: forwarded from the caller.
        let o = unsafe { read_options(self.options)? };
        let red = reduction(o.reduction)?;
        let (rows, dim, classes) = (self.rows, self.dim, self.classes);
        if dim == 0 {
            return fail(ErrorKind::InvalidShape, "dim must be at least 1");
        }
        if classes == 0 {
            return fail(ErrorKind::InvalidShape, "classes must be at least 1");
        }
        let hext = check_shape("hidden", rows, dim, self.hidden_stride)?;
        let wext = check_shape("weight", classes, dim, self.weight_stride)?;
        let grads = self.grads.as_ref();
        let ghext = match grads.filter(|g| !g.hidden.is_null()) {
            Some(g) => grad_extent(&o, "grad_hidden", rows, dim, g.hidden_stride)?,
            None => 0,
        };
        let gwext = match grads.filter(|g| !g.weight.is_null()) {
            Some(g) => grad_extent(&o, "grad_weight", classes, dim, g.weight_stride)?,
            None => 0,
        };
        let n_loss = if red == Reduction::None { rows } else { 1 };

        let mut r = Regions::new("no buffer of a linear call may overlap an output");
        let hidden = r.input("hidden", self.hidden, hext)?;
        let weight = r.input("weight", self.weight, wext)?;
        let bias = r.optional("bias", self.bias, classes, false)?;
        let labels = r.input("labels", self.labels, rows)?;
        let class_weights = r.optional("class_weights", o.class_weights, classes, false)?;
        let loss = r.output("loss", self.loss, n_loss)?;
        let lse = r.optional("lse", self.lse, rows, true)?;
        let argmax = r.optional("argmax", self.argmax, rows, true)?;
        let null = GradPtrs {
            hidden: core::ptr::null_mut(),
            hidden_stride: 0,
            weight: core::ptr::null_mut(),
            weight_stride: 0,
            bias: core::ptr::null_mut(),
        };
        let g = grads.unwrap_or(&null);
        let gh = r.optional("grad_hidden", g.hidden, ghext, true)?;
        let gw = r.optional("grad_weight", g.weight, gwext, true)?;
        let gb = r.optional("grad_bias", g.bias, classes, true)?;
        let workspace = r.optional("workspace", self.workspace.cast::<u8>(), self.workspace_size, true)?;
        r.check()?;

        // SAFETY: every region is non-NULL (or empty), aligned, inside the
        // address space, and no output (the workspace included) overlaps any
        // other buffer, so the shared and exclusive slices below never alias.
        // Validity of the memory itself is the caller's contract.
        unsafe {
            let pool = CPool::of(&o);
            let options = safe_options(&o, red, class_weights.map(|w| w.slice()), pool.as_ref());
            let lin = Linear {
                hidden: Matrix { data: hidden.slice(), rows, cols: dim, stride: self.hidden_stride },
                weight: Matrix { data: weight.slice(), rows: classes, cols: dim, stride: self.weight_stride },
                bias: bias.map(|b| b.slice()),
            };
            let out = ForwardOut {
                loss: loss.slice_mut(),
                lse: lse.map(|l| l.slice_mut()),
                argmax: argmax.map(|a| a.slice_mut()),
            };
            // NULL: the core allocates; non-NULL (even of 0 bytes): the caller's.
            let ws = workspace.map(|w| floats(w.slice_mut()));
            let labels = labels.slice();
            match self.grads {
                None => linear::linear_forward(lin, labels, &options, out, ws),
                Some(g) => {
                    let grads = LinearGrads {
                        hidden: gh.map(|h| MatrixMut { data: h.slice_mut(), rows, cols: dim, stride: g.hidden_stride }),
                        weight: gw.map(|w| MatrixMut {
                            data: w.slice_mut(),
                            rows: classes,
                            cols: dim,
                            stride: g.weight_stride,
                        }),
                        bias: gb.map(|b| b.slice_mut()),
                    };
                    linear::linear_forward_backward(lin, labels, &options, out, grads, ws)
                }
            }
        }
    }
}

/// The 4-byte-aligned floats inside a byte buffer.
#[cfg(feature = "std")]
fn floats(bytes: &mut [u8]) -> &mut [f32] {
    let skip = bytes.as_ptr().align_offset(4).min(bytes.len());
    let rest = &mut bytes[skip..];
    let n = rest.len() / 4;
    if n == 0 {
        return &mut [];
    }
    // SAFETY: `rest` starts 4-byte aligned and holds at least 4·n bytes that
    // this exclusive borrow owns; any bit pattern is a valid f32.
    unsafe { core::slice::from_raw_parts_mut(rest.as_mut_ptr().cast::<f32>(), n) }
}

/// Bytes of the workspace xent_linear_forward / xent_linear_forward_backward
/// allocate when given none: one chunk of rows (as many as about 32 MiB of
/// logits hold, at least 32 and at most 1024, and at most `rows`) plus
/// alignment slack. It depends on `dim` and `classes` and stops growing with
/// `rows` at one chunk. 0 if `dim` or `classes` is 0
/// or the size overflows. `options` may be NULL (it does not change the size).
#[unsafe(no_mangle)]
pub extern "C" fn xent_linear_workspace_size(
    rows: usize,
    dim: usize,
    classes: usize,
    options: *const XentOptions,
) -> usize {
    boundary::value(0, || {
        let _ = options;
        workspace_size(rows, dim, classes)
    })
}

/// Loss of `logits = hidden * weight^T + bias` against `labels`, computed a
/// chunk of rows at a time: the rows x classes logits never exist whole.
///
/// `hidden` is rows x dim (row i at `hidden + i * hidden_row_stride`);
/// `weight` is classes x dim (the nn.Linear layout), `bias` has `classes`
/// values or is NULL. Outputs and options mean what they mean for
/// xent_forward on those logits. `workspace` (`workspace_size` bytes, any
/// alignment) is scratch the call may overwrite; the largest chunk of rows
/// that fits is used, and a buffer too small for one row is
/// XENT_STATUS_INVALID_ARGUMENT. NULL: the call allocates
/// xent_linear_workspace_size() bytes itself. No buffer may overlap an
/// output or the workspace. On failure nothing is written.
///
/// The products are the matrixmultiply crate's; each allocates a packing
/// buffer of at most about 1.2 MiB on the heap, outside xent's control (its
/// failure aborts, as Rust's allocator does; xent's own allocations report
/// XENT_STATUS_ALLOCATION_FAILED). It starts no threads of its own.
///
/// # Safety
/// Every non-NULL pointer must be valid for the extent its sizes describe.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn xent_linear_forward(
    hidden: *const f32,
    rows: usize,
    dim: usize,
    hidden_row_stride: usize,
    weight: *const f32,
    classes: usize,
    weight_row_stride: usize,
    bias: *const f32,
    labels: *const i32,
    options: *const XentOptions,
    loss: *mut f32,
    lse: *mut f32,
    argmax: *mut i32,
    workspace: *mut c_void,
    workspace_size: usize,
) -> XentStatus {
    let call = LinearCall {
        hidden,
        rows,
        dim,
        hidden_stride: hidden_row_stride,
        weight,
        classes,
        weight_stride: weight_row_stride,
        bias,
        labels,
        options,
        loss,
        lse,
        argmax,
        grads: None,
        workspace,
        workspace_size,
    };
    // SAFETY: the caller's pointer contract, forwarded.
    boundary::status(|| unsafe { call.run() })
}

/// As xent_linear_forward, and the gradients of the reduced loss (for NONE,
/// of the sum of row losses): `grad_hidden` (rows x dim), `grad_weight`
/// (classes x dim) and `grad_bias` (classes). They are written (added to,
/// with grad_accumulate); each may be NULL to skip it and its work. Rows whose label
/// is ignore_index cost no matrix product (unless `lse` or `argmax` is
/// asked for, which needs their logits) and get a zero `grad_hidden` row
/// (with grad_accumulate it is left as it is).
/// Results are identical for every thread count and pool.
///
/// # Safety
/// Every non-NULL pointer must be valid for the extent its sizes describe.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn xent_linear_forward_backward(
    hidden: *const f32,
    rows: usize,
    dim: usize,
    hidden_row_stride: usize,
    weight: *const f32,
    classes: usize,
    weight_row_stride: usize,
    bias: *const f32,
    labels: *const i32,
    options: *const XentOptions,
    loss: *mut f32,
    lse: *mut f32,
    argmax: *mut i32,
    grad_hidden: *mut f32,
    grad_hidden_row_stride: usize,
    grad_weight: *mut f32,
    grad_weight_row_stride: usize,
    grad_bias: *mut f32,
    workspace: *mut c_void,
    workspace_size: usize,
) -> XentStatus {
    let call = LinearCall {
        hidden,
        rows,
        dim,
        hidden_stride: hidden_row_stride,
        weight,
        classes,
        weight_stride: weight_row_stride,
        bias,
        labels,
        options,
        loss,
        lse,
        argmax,
        grads: Some(GradPtrs {
            hidden: grad_hidden,
            hidden_stride: grad_hidden_row_stride,
            weight: grad_weight,
            weight_stride: grad_weight_row_stride,
            bias: grad_bias,
        }),
        workspace,
        workspace_size,
    };
    // SAFETY: the caller's pointer contract, forwarded.
    boundary::status(|| unsafe { call.run() })
}

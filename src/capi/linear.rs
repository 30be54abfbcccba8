//! The fused linear + cross-entropy calls' arguments: the same order of
//! checks as [`super::args::Call`] (options, shapes and sizes, every pointer,
//! then overlap of every output, the workspace included, with every other
//! buffer) before any slice exists.

use core::ffi::c_void;

#[cfg(feature = "std")]
use super::args::{CPool, Regions, grad_extent, read_options, reduction, safe_options};
use super::status::XentOptions;
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

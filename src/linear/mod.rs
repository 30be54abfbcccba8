//! Fused linear + cross-entropy: the loss of `logits = hidden · weightᵀ + bias`
//! and its gradients with respect to `hidden`, `weight` and `bias`, computed
//! a chunk of rows at a time so the `rows × classes` logits never exist whole.
//!
//! Per chunk of rows: one matrix product makes the chunk's logits in the
//! workspace, the loss core's row kernels turn them into per-row outputs and
//! (in place) into the logits' gradient `G`, then `grad_hidden = G · weight`
//! and `grad_weight += Gᵀ · hidden` consume it. Rows whose label is ignored
//! have a zero gradient, so they take part in no product unless their `lse`
//! or `argmax` is asked for (then only in the first one).
//!
//! Every product is split into tiles (of classes, or of `dim`) that depend
//! only on the shape, never on the number of threads, so results are
//! identical for any thread count.
//!
//! One job, over 500 lines: the chunk loop and the workspace and tiles it
//! carves; the products themselves are in `gemm.rs`.

mod gemm;

use core::ops::Range;

use gemm::{Tiles, View, ViewMut, gemm};

use crate::error::fail;

use crate::loss::{
    Chunked, Error, ErrorKind, ForwardOut, Matrix, MatrixMut, Options, Reduction, Result, RowOuts, check_grad_buffer,
    check_len, check_matrix, zero_padding,
};
use crate::parallel::{self, Exec};

/// The classifier: `logits = hidden · weightᵀ + bias`.
#[derive(Clone, Copy, Debug)]
pub struct Linear<'a> {
    /// `rows × dim` hidden states.
    pub hidden: Matrix<'a>,
    /// `classes × dim` weight (the `nn.Linear` layout).
    pub weight: Matrix<'a>,
    /// `classes` values, or `None` for no bias.
    pub bias: Option<&'a [f32]>,
}

/// Where gradients go; each `None` skips that gradient and its work. They are
/// written, or added to with `Options::grad_accumulate`.
#[derive(Debug, Default)]
pub struct LinearGrads<'a> {
    /// `rows × dim`, the gradient with respect to `hidden`.
    pub hidden: Option<MatrixMut<'a>>,
    /// `classes × dim`, the gradient with respect to `weight`.
    pub weight: Option<MatrixMut<'a>>,
    /// `classes` values, the gradient with respect to `bias`.
    pub bias: Option<&'a mut [f32]>,
}

/// Classes per tile of the logits product and of `grad_weight`: about an
/// eighth of the classes (so two threads have work even with 1000 classes),
/// a multiple of 256, at most 2048.
fn tile_classes(classes: usize) -> usize {
    (classes.div_ceil(8).div_ceil(256) * 256).clamp(256, 2048)
}

/// Columns of `grad_hidden` per tile. Each tile packs the chunk's whole
/// gradient again, so tiles are wide: for dim ≤ 512 one task, which the
/// `grad_weight` tiles of the same phase balance.
const TILE_DIM: usize = 512;
/// Workspace rows start on 64-byte boundaries.
const ALIGN: usize = 16;
/// Logits a default chunk holds (32 MiB), and bounds on its rows. Every
/// chunk packs the whole weight twice for matrixmultiply, so fewer, larger
/// chunks are faster; 32 MiB keeps a call within 64 MiB of its inputs and
/// outputs on one thread and on two (where glibc keeps more of
/// matrixmultiply's packing buffers; see BENCHMARKS.md §5).
const DEFAULT_CHUNK_LOGITS: usize = 8 << 20;
const MIN_CHUNK: usize = 32;
const MAX_CHUNK: usize = 1024;

fn round_up(n: usize, to: usize) -> Option<usize> {
    Some(n.checked_add(to - 1)? / to * to)
}

/// The workspace a chunk row needs, in floats: its logits, a gathered
/// hidden row, a `grad_hidden` row (when wanted) and four per-row outputs.
#[derive(Clone, Copy)]
struct RowNeed {
    logits_stride: usize,
    dim_stride: usize,
    grad_panel: bool,
}

impl RowNeed {
    fn new(dim: usize, classes: usize, grad_panel: bool) -> Option<Self> {
        Some(RowNeed { logits_stride: round_up(classes, ALIGN)?, dim_stride: round_up(dim, ALIGN)?, grad_panel })
    }

    fn floats(self) -> Option<usize> {
        let panels = if self.grad_panel { 2 } else { 1 };
        self.dim_stride.checked_mul(panels)?.checked_add(self.logits_stride)?.checked_add(4)
    }
}

/// Rows in a default chunk.
fn default_chunk(rows: usize, classes: usize) -> usize {
    let by_budget = DEFAULT_CHUNK_LOGITS / classes.max(1);
    let r = by_budget.clamp(MIN_CHUNK, MAX_CHUNK);
    (r - r % 16).min(rows.max(1))
}

/// Floats of the default workspace for a call on `rows` rows (it stops
/// growing at a chunk's worth of rows); `None` if `dim` or `classes` is 0 or
/// the size overflows.
pub fn workspace_len(rows: usize, dim: usize, classes: usize) -> Option<usize> {
    if dim == 0 || classes == 0 {
        return None;
    }
    let per_row = RowNeed::new(dim, classes, true)?.floats()?;
    default_chunk(rows, classes).checked_mul(per_row)?.checked_add(ALIGN - 1)
}

/// Shapes of a call: `(rows, dim, classes)`, after checking every matrix.
fn check(lin: &Linear<'_>, grads: Option<&LinearGrads<'_>>, options: &Options<'_>) -> Result<(usize, usize, usize)> {
    let (rows, dim, classes) = (lin.hidden.rows, lin.hidden.cols, lin.weight.rows);
    if dim == 0 {
        return fail(ErrorKind::InvalidShape, "dim must be at least 1");
    }
    if classes == 0 {
        return fail(ErrorKind::InvalidShape, "classes must be at least 1");
    }
    if lin.weight.cols != dim {
        return fail(
            ErrorKind::InvalidShape,
            format_args!("weight is {}x{} but hidden rows have {dim} values", lin.weight.rows, lin.weight.cols),
        );
    }
    let h = &lin.hidden;
    check_matrix("hidden", h.data.len(), rows, dim, h.stride)?;
    check_matrix("weight", lin.weight.data.len(), classes, dim, lin.weight.stride)?;
    if let Some(b) = lin.bias {
        check_len("bias", b.len(), classes)?;
    }
    let Some(g) = grads else { return Ok((rows, dim, classes)) };
    let same = |what: &str, m: &Option<MatrixMut<'_>>, want: (usize, usize)| {
        let Some(m) = m else { return Ok(()) };
        if (m.rows, m.cols) != want {
            return fail(
                ErrorKind::InvalidShape,
                format_args!("{what} is {}x{} but must be {}x{}", m.rows, m.cols, want.0, want.1),
            );
        }
        check_matrix(what, m.data.len(), m.rows, m.cols, m.stride)
    };
    same("grad_hidden", &g.hidden, (rows, dim))?;
    same("grad_weight", &g.weight, (classes, dim))?;
    for m in [&g.hidden, &g.weight].into_iter().flatten() {
        check_grad_buffer(options, false, m.data.len(), m.rows, m.stride)?;
    }
    if let Some(b) = &g.bias {
        check_len("grad_bias", b.len(), classes)?;
    }
    Ok((rows, dim, classes))
}

/// Rows in processing order: kept rows (label ≠ ignore_index) first, then,
/// when their forward outputs are wanted, ignored ones.
#[derive(Clone)]
struct Order<'a> {
    labels: &'a [i32],
    ignore: i32,
    pos: usize,
    ignored_pass: bool,
    with_ignored: bool,
}

impl Iterator for Order<'_> {
    type Item = usize;

    fn next(&mut self) -> Option<usize> {
        loop {
            if self.pos == self.labels.len() {
                if self.ignored_pass || !self.with_ignored {
                    return None;
                }
                (self.pos, self.ignored_pass) = (0, true);
                continue;
            }
            let i = self.pos;
            self.pos += 1;
            if (self.labels[i] == self.ignore) == self.ignored_pass {
                return Some(i);
            }
        }
    }
}

/// The workspace carved into one chunk's buffers.
struct Work<'w> {
    logits: &'w mut [f32],
    hidden: &'w mut [f32],
    grad_hidden: &'w mut [f32],
    labels: &'w mut [i32],
    loss: &'w mut [f32],
    lse: &'w mut [f32],
    argmax: &'w mut [i32],
}

fn as_i32(s: &mut [f32]) -> &mut [i32] {
    // SAFETY: f32 and i32 have the same size and alignment and every bit
    // pattern is a valid i32; the borrow is moved, not duplicated.
    unsafe { core::slice::from_raw_parts_mut(s.as_mut_ptr().cast::<i32>(), s.len()) }
}

impl<'w> Work<'w> {
    fn carve(ws: &'w mut [f32], chunk: usize, need: RowNeed) -> Self {
        let (logits, rest) = ws.split_at_mut(chunk * need.logits_stride);
        let (hidden, rest) = rest.split_at_mut(chunk * need.dim_stride);
        let (grad_hidden, rest) = rest.split_at_mut(if need.grad_panel { chunk * need.dim_stride } else { 0 });
        let (labels, rest) = rest.split_at_mut(chunk);
        let (loss, rest) = rest.split_at_mut(chunk);
        let (lse, rest) = rest.split_at_mut(chunk);
        Work { logits, hidden, grad_hidden, labels: as_i32(labels), loss, lse, argmax: as_i32(&mut rest[..chunk]) }
    }
}

/// A task of the gradient products: a tile of `dim` columns of
/// `grad_hidden`, or a tile of classes of `grad_weight` and `grad_bias`.
enum GradTask<'a> {
    Hidden(Range<usize>, ViewMut<'a>),
    Weight(Range<usize>, Option<ViewMut<'a>>, Option<&'a mut [f32]>),
}

/// The gradient tasks of a chunk, in a fixed order.
struct GradTasks<'a> {
    hidden: Option<Tiles<'a>>,
    weight: Option<Tiles<'a>>,
    bias: Option<core::slice::ChunksMut<'a, f32>>,
    classes: usize,
    tile: usize,
    next_class: usize,
}

impl<'a> Iterator for GradTasks<'a> {
    type Item = GradTask<'a>;

    fn next(&mut self) -> Option<GradTask<'a>> {
        if let Some((r, t)) = self.hidden.as_mut().and_then(Iterator::next) {
            return Some(GradTask::Hidden(r, t));
        }
        if self.next_class >= self.classes || (self.weight.is_none() && self.bias.is_none()) {
            return None;
        }
        let r = self.next_class..(self.next_class + self.tile).min(self.classes);
        self.next_class = r.end;
        let w = self.weight.as_mut().and_then(Iterator::next).map(|(_, t)| t);
        let b = self.bias.as_mut().and_then(Iterator::next);
        Some(GradTask::Weight(r, w, b))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let h = self.hidden.as_ref().map_or(0, ExactSizeIterator::len);
        let c = if self.weight.is_none() && self.bias.is_none() {
            0
        } else {
            (self.classes - self.next_class).div_ceil(self.tile)
        };
        (h + c, Some(h + c))
    }
}

impl ExactSizeIterator for GradTasks<'_> {}

/// The workspace a call runs in and the rows of its chunks: the caller's,
/// or the default one allocated into `owned` when some row needs it.
fn take_workspace<'w>(
    given: Option<&'w mut [f32]>,
    owned: &'w mut Vec<f32>,
    needed: bool,
    (rows, dim, classes): (usize, usize, usize),
    per_row: usize,
) -> Result<(&'w mut [f32], usize)> {
    let is_given = given.is_some();
    let ws: &mut [f32] = match given {
        Some(w) => w,
        None if !needed => &mut [],
        None => {
            let len = workspace_len(rows, dim, classes)
                .ok_or_else(|| Error::new(ErrorKind::SizeOverflow, "the default workspace size overflows"))?;
            owned.try_reserve_exact(len).map_err(|_| {
                Error::new(
                    ErrorKind::AllocationFailed,
                    format_args!("cannot allocate a workspace of {} bytes", len * 4),
                )
            })?;
            owned.resize(len, 0.0f32);
            owned
        }
    };
    let skip = ws.as_ptr().align_offset(ALIGN * 4).min(ws.len());
    let ws = &mut ws[skip..];
    let chunk = ws.len() / per_row;
    // A caller's workspace is checked even when no row needs it, so its
    // validity does not depend on the labels.
    if chunk == 0 && (is_given || needed) {
        return fail(
            ErrorKind::InvalidArgument,
            format_args!(
                "workspace of {} bytes is too small: one row of {dim} x {classes} needs {} bytes",
                (skip + ws.len()) * 4,
                (per_row + ALIGN - 1) * 4
            ),
        );
    }
    Ok((ws, chunk))
}

/// What every chunk's products share.
struct Head<'a, 'o> {
    weight: View<'a>,
    bias: Option<&'a [f32]>,
    classes: usize,
    dim: usize,
    /// Classes per tile.
    tile: usize,
    options: &'o Options<'o>,
}

impl Head<'_, '_> {
    /// `logits ← h · weightᵀ + bias`, a tile of classes per task.
    fn logits(&self, h: View<'_>, logits: ViewMut<'_>) -> Result<()> {
        let work = h.n_rows().saturating_mul(self.dim).saturating_mul(self.classes);
        let exec = Exec::for_tasks(self.options.workers(), self.classes.div_ceil(self.tile), work);
        parallel::run(exec, logits.col_tiles(self.tile), |(r, mut c)| {
            let beta = match self.bias {
                Some(b) => {
                    c.fill_rows(&b[r.clone()]);
                    1.0
                }
                None => 0.0,
            };
            gemm(h, self.weight.rows(r).t(), beta, &mut c);
            (0.0, 0.0)
        })
        .map(|_| ())
    }

    /// From the logits' gradient `g` of the rows of `h`: `grad_hidden ←
    /// g · weight` in tiles of dims, and per tile of classes `grad_weight ←
    /// gᵀ · h + beta · grad_weight` and `grad_bias += Σ rows of g`.
    fn grads(
        &self,
        g: View<'_>,
        h: View<'_>,
        (gh, gw, gb): (Option<ViewMut<'_>>, Option<ViewMut<'_>>, Option<&mut [f32]>),
        (beta_hidden, beta): (f32, f32),
    ) -> Result<()> {
        let tasks = GradTasks {
            hidden: gh.map(|v| v.col_tiles(TILE_DIM)),
            weight: gw.map(|v| v.row_tiles(self.tile)),
            bias: gb.map(|b| b[..self.classes].chunks_mut(self.tile)),
            classes: self.classes,
            tile: self.tile,
            next_class: 0,
        };
        let work = h.n_rows().saturating_mul(self.dim).saturating_mul(self.classes);
        parallel::run(Exec::for_tasks(self.options.workers(), tasks.len(), work), tasks, |task| {
            match task {
                GradTask::Hidden(r, mut c) => gemm(g, self.weight.cols(r), beta_hidden, &mut c),
                GradTask::Weight(r, w, b) => {
                    if let Some(mut w) = w {
                        gemm(g.cols(r.clone()).t(), h, beta, &mut w);
                    }
                    if let Some(b) = b {
                        for k in 0..h.n_rows() {
                            b.iter_mut().zip(&g.row(k)[r.clone()]).for_each(|(s, &x)| *s += x);
                        }
                    }
                }
            }
            (0.0, 0.0)
        })
        .map(|_| ())
    }
}

/// The loss (and optionally per-row `lse` and `argmax`) of `hidden ·
/// weightᵀ + bias` against `labels`, without holding the logits.
/// `workspace` is the caller's scratch (`None`: one is allocated for the
/// call); nothing is written unless the arguments are valid.
pub fn linear_forward(
    lin: Linear<'_>,
    labels: &[i32],
    options: &Options<'_>,
    out: ForwardOut<'_>,
    workspace: Option<&mut [f32]>,
) -> Result<()> {
    run(lin, labels, options, out, None, workspace)
}

/// As [`linear_forward`], and the gradients of the reduced loss (for
/// `Reduction::None`, of the sum of row losses) with respect to hidden,
/// weight and bias.
pub fn linear_forward_backward(
    lin: Linear<'_>,
    labels: &[i32],
    options: &Options<'_>,
    out: ForwardOut<'_>,
    grads: LinearGrads<'_>,
    workspace: Option<&mut [f32]>,
) -> Result<()> {
    run(lin, labels, options, out, Some(grads), workspace)
}

fn run(
    lin: Linear<'_>,
    labels: &[i32],
    options: &Options<'_>,
    out: ForwardOut<'_>,
    grads: Option<LinearGrads<'_>>,
    workspace: Option<&mut [f32]>,
) -> Result<()> {
    let (rows, dim, classes) = check(&lin, grads.as_ref(), options)?;
    let fused = grads.is_some();
    let chunked = Chunked::new(fused, rows, classes, labels, options)?;
    chunked.check_out(&out)?;
    let labels = &labels[..rows];
    let mut grads = grads.unwrap_or_default();
    let overflow =
        || Error::new(ErrorKind::SizeOverflow, format_args!("a workspace row for {dim} x {classes} overflows"));
    let need = RowNeed::new(dim, classes, grads.hidden.is_some()).ok_or_else(overflow)?;
    let per_row = need.floats().ok_or_else(overflow)?;

    let ignored = labels.iter().filter(|&&y| y == options.ignore_index).count();
    let kept = rows - ignored;
    let with_ignored = out.lse.is_some() || out.argmax.is_some();
    let total = if with_ignored { rows } else { kept };

    let mut owned = Vec::new();
    let (ws, chunk) = take_workspace(workspace, &mut owned, total > 0, (rows, dim, classes), per_row)?;

    // Everything is valid from here on; outputs are written.
    let ForwardOut { loss, lse: mut lse_out, argmax: mut argmax_out } = out;
    let none = options.reduction == Reduction::None;
    let acc = options.grad_accumulate;
    if let Some(b) = grads.bias.as_deref_mut().filter(|_| !acc) {
        b[..classes].fill(0.0);
    }
    let work = Work::carve(ws, chunk, need);
    let weight = View::new(lin.weight.data, classes, dim, lin.weight.stride);
    let hidden = View::new(lin.hidden.data, rows, dim, lin.hidden.stride);
    let mut order = Order { labels, ignore: options.ignore_index, pos: 0, ignored_pass: false, with_ignored };
    let mut sums = (0.0f64, 0.0f64);
    let mut done = 0;
    let mut first_grad = true;
    let head = Head { weight, bias: lin.bias, classes, dim, tile: tile_classes(classes), options };
    while done < total {
        let n = chunk.min(total - done);
        let n_kept = kept.saturating_sub(done).min(n);
        let rows_of_chunk = order.clone().take(n);
        // This chunk's labels; its rows are contiguous unless some were skipped.
        let mut first = 0;
        let mut contiguous = true;
        for (k, i) in order.by_ref().take(n).enumerate() {
            work.labels[k] = labels[i];
            if k == 0 {
                first = i;
            } else {
                contiguous &= i == first + k;
            }
        }
        let h = if contiguous {
            hidden.rows(first..first + n)
        } else {
            for (k, i) in rows_of_chunk.clone().enumerate() {
                let src = &lin.hidden.data[i * lin.hidden.stride..][..dim];
                work.hidden[k * need.dim_stride..][..dim].copy_from_slice(src);
            }
            View::new(work.hidden, n, dim, need.dim_stride)
        };

        head.logits(h, ViewMut::new(work.logits, n, classes, need.logits_stride))?;

        // Per-row outputs, and the logits' gradient in place.
        let row_outs = RowOuts {
            loss: none.then_some(&mut work.loss[..n]),
            lse: lse_out.is_some().then_some(&mut work.lse[..n]),
            argmax: argmax_out.is_some().then_some(&mut work.argmax[..n]),
        };
        let s = chunked.run(options, &work.labels[..n], work.logits, need.logits_stride, row_outs)?;
        sums = (sums.0 + s.0, sums.1 + s.1);
        for (k, i) in rows_of_chunk.clone().enumerate() {
            if none {
                loss[i] = work.loss[k];
            }
            if let Some(l) = lse_out.as_deref_mut() {
                l[i] = work.lse[k];
            }
            if let Some(a) = argmax_out.as_deref_mut() {
                a[i] = work.argmax[k];
            }
        }

        if fused && n_kept > 0 {
            let g = View::new(work.logits, n_kept, classes, need.logits_stride);
            let h = h.rows(0..n_kept);
            // grad_hidden goes straight to its rows when they are contiguous.
            let gh = grads.hidden.as_mut().map(|m| {
                if contiguous {
                    ViewMut::new(&mut m.data[first * m.stride..], n_kept, dim, m.stride)
                } else {
                    ViewMut::new(work.grad_hidden, n_kept, dim, need.dim_stride)
                }
            });
            let gw = grads.weight.as_mut().map(|m| ViewMut::new(m.data, classes, dim, m.stride));
            let beta = if first_grad && !acc { 0.0 } else { 1.0 };
            let beta_hidden = if acc && contiguous { 1.0 } else { 0.0 };
            head.grads(g, h, (gh, gw, grads.bias.as_deref_mut()), (beta_hidden, beta))?;
            if let (Some(m), false) = (grads.hidden.as_mut(), contiguous) {
                for (k, i) in rows_of_chunk.take(n_kept).enumerate() {
                    let (to, from) =
                        (&mut m.data[i * m.stride..][..dim], &work.grad_hidden[k * need.dim_stride..][..dim]);
                    if acc {
                        to.iter_mut().zip(from).for_each(|(t, &f)| *t += f);
                    } else {
                        to.copy_from_slice(from);
                    }
                }
            }
            first_grad = false;
        }
        done += n;
    }

    // What no chunk wrote: ignored rows' loss and grad_hidden, and
    // grad_weight when no row was kept.
    for (i, _) in labels.iter().enumerate().filter(|&(_, &y)| y == options.ignore_index) {
        if none && !with_ignored {
            loss[i] = 0.0;
        }
        if let Some(m) = grads.hidden.as_mut().filter(|_| !acc) {
            m.data[i * m.stride..][..dim].fill(0.0);
        }
    }
    if first_grad
        && !acc
        && let Some(m) = grads.weight.as_mut()
    {
        for i in 0..classes {
            m.data[i * m.stride..][..dim].fill(0.0);
        }
    }
    if options.grad_zero_padding {
        for m in [grads.hidden.as_mut(), grads.weight.as_mut()].into_iter().flatten() {
            zero_padding(m.data, m.rows, dim, m.stride);
        }
    }
    if !none {
        loss[0] = chunked.reduce(sums);
    }
    Ok(())
}

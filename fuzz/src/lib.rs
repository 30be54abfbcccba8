//! What the fuzz targets share: decoding the fuzzer's bytes into shapes,
//! values, options and pointers (valid or deliberately bad), buffers of
//! exactly the size a call may touch (so AddressSanitizer sees one element
//! too far), caller pools, and the judgement of a call's status: a call with
//! a deliberate defect must fail with that defect's status and write nothing;
//! a call without one must succeed.
#![allow(clippy::missing_safety_doc)]

#[path = "../../tests/support/mod.rs"]
pub mod support;

use core::ffi::c_void;
use core::mem::{offset_of, size_of};
use std::cell::Cell;

pub use support::{bytes, last_error};
pub use xent::capi::*;
use xent::loss::Reduction;

/// Largest buffer (elements) a fuzz case allocates.
pub const MAX_ELEMS: usize = 1 << 18;

/// The fuzzer's bytes, then a generator seeded from them once they run out.
pub struct Input<'a> {
    bytes: &'a [u8],
    rng: support::Rng,
}

impl<'a> Input<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        let seed =
            bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
        Input { bytes, rng: support::Rng(seed) }
    }
    pub fn byte(&mut self) -> u8 {
        match self.bytes.split_first() {
            Some((&b, rest)) => {
                self.bytes = rest;
                b
            }
            None => self.rng.next_u64() as u8,
        }
    }
    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.byte(), self.byte()])
    }
    pub fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.byte(), self.byte(), self.byte(), self.byte()])
    }
    /// Uniform-ish in [0, n); 0 when n is 0.
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 { 0 } else { self.u16() as usize % n }
    }
    /// True about once in `n`.
    pub fn one_in(&mut self, n: u8) -> bool {
        self.byte().is_multiple_of(n)
    }
    pub fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.byte() as usize % xs.len()]
    }
}

/// A logit: mostly ordinary values, then the extremes the kernels must get
/// right (±1e4, −inf masks, NaN, +inf, subnormals, signed zeros) and, rarely,
/// an arbitrary bit pattern (`wild`: only no-crash checks apply then).
pub fn logit(inp: &mut Input, wild: &mut bool) -> f32 {
    let b = inp.byte();
    match b % 32 {
        0..=19 => (inp.byte() as i8) as f32 / 8.0,
        20 => 1e4 + (inp.byte() as i8) as f32 / 4.0,
        21 => -1e4 + (inp.byte() as i8) as f32 / 4.0,
        22 | 23 => f32::NEG_INFINITY,
        24 => f32::NAN,
        25 => f32::INFINITY,
        26 => f32::from_bits(u32::from(inp.u16()) | u32::from(inp.byte() & 0x7f) << 16),
        27 => -0.0,
        28 => 88.0 + (inp.byte() as i8) as f32 / 16.0,
        29 => -87.0 - inp.byte() as f32 / 16.0,
        30 => f32::from_bits(0x7fc0_0000 | inp.u32() & 0x803f_ffff),
        _ => {
            *wild = true;
            f32::from_bits(inp.u32())
        }
    }
}

/// rows, classes, stride and how they were meant: `defect` names the shape
/// error the call must report (with its status), and `extent` is the
/// number of elements the call may touch when the shape is valid.
#[derive(Clone, Copy, Debug)]
pub struct Shape {
    pub rows: usize,
    pub classes: usize,
    pub stride: usize,
}

/// The elements `rows` rows of `classes` with `stride` span, if that fits
/// this harness's buffers.
pub fn extent(rows: usize, classes: usize, stride: usize) -> Option<usize> {
    if rows == 0 {
        return Some(0);
    }
    let n = (rows - 1).checked_mul(stride)?.checked_add(classes)?;
    (n <= MAX_ELEMS).then_some(n)
}

/// Rows and classes: small, medium, or a few blocks' worth (so a caller's
/// pool gets more than one task).
pub fn rows_classes(inp: &mut Input) -> (usize, usize) {
    match inp.byte() % 16 {
        0..=10 => (inp.below(7), 1 + inp.below(70)),
        11..=13 => (1 + inp.below(40), 1 + inp.below(600)),
        14 => (inp.pick(&[0, 1, 2]), inp.pick(&[1, 15, 16, 17, 31, 32, 33, 64, 1023, 1024, 1025, 2048, 2049])),
        _ => (17 + inp.below(8), 1000 + inp.below(1100)),
    }
}

/// A row stride for `classes`: mostly valid (dense or padded); sometimes
/// below `classes` or so large that `rows × stride` cannot be addressed.
pub fn stride(inp: &mut Input, rows: usize, classes: usize, ex: &mut Expect, what: &'static str) -> usize {
    match inp.byte() % 32 {
        0..=21 => classes,
        22..=28 => classes + 1 + inp.below(19),
        29 if classes > 0 => {
            ex.defect(XENT_STATUS_INVALID_SHAPE, what);
            inp.below(classes)
        }
        30 if rows >= 2 => {
            ex.defect(XENT_STATUS_SIZE_OVERFLOW, what);
            inp.pick(&[usize::MAX, usize::MAX / 2, 1 << 62, (1 << 61) + 3, (usize::MAX / (rows - 1)).saturating_add(1)])
        }
        31 if rows == 1 => classes + inp.pick(&[1 << 40, usize::MAX - classes]),
        _ => classes,
    }
}

/// What the harness knows about a call before making it.
#[derive(Clone, Debug, Default)]
pub struct Expect {
    /// Deliberate defects: (the status each one must produce, what it is).
    pub defects: Vec<(XentStatus, &'static str)>,
    /// Values that make the result meaningless to compare (arbitrary bits).
    pub wild: bool,
    /// A caller pool that skipped a task (XENT_STATUS_INTERNAL_ERROR).
    pub skipped: bool,
    /// A status the call may return instead of success (a workspace that
    /// may or may not hold one row); it must then write nothing.
    pub tolerated: Option<XentStatus>,
}

impl Expect {
    pub fn defect(&mut self, status: XentStatus, what: &'static str) {
        self.defects.push((status, what));
    }

    /// Judges a call: with a defect it must fail with one of the defects'
    /// statuses, say why, and have left every byte of `before` as it was;
    /// without one it must succeed (or report the skipped pool task).
    pub fn judge(&self, status: XentStatus, before: &[Vec<u8>], after: &[Vec<u8>], call: &str) {
        let msg = last_error();
        if !self.defects.is_empty() {
            assert!(
                self.defects.iter().any(|d| d.0 == status),
                "{call}: status {status} ({msg}) but the defects were {:?}",
                self.defects
            );
            assert!(!msg.is_empty(), "{call}: failed with an empty xent_last_error");
            assert!(before == after, "{call}: failed with {status} ({msg}) but changed an output");
        } else if self.tolerated == Some(status) {
            assert!(before == after, "{call}: failed with {status} ({msg}) but changed an output");
        } else if self.skipped {
            assert_eq!(status, XENT_STATUS_INTERNAL_ERROR, "{call}: a pool skipped a task ({msg})");
        } else {
            assert_eq!(status, XENT_STATUS_OK, "{call}: a valid call failed: {msg}");
        }
    }

    /// True when results must match the reference.
    pub fn comparable(&self, status: XentStatus) -> bool {
        status == XENT_STATUS_OK && !self.wild
    }
}

/// Exactly `n` elements (no spare capacity, so AddressSanitizer catches a
/// read or write one past the end).
pub fn exact<T: Clone>(n: usize, fill: T) -> Vec<T> {
    let mut v = Vec::with_capacity(n);
    v.resize(n, fill);
    v.shrink_to_fit();
    v
}

/// How a pointer argument is passed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Place {
    Own,
    Null,
    /// One byte past the buffer's start.
    Misaligned,
    /// The start of another buffer (an overlap when both are non-empty).
    Alias,
}

/// A pointer mode for a required buffer of `len` elements of `elem` bytes:
/// mostly its own buffer; sometimes NULL or misaligned (defects when
/// `len > 0`), or `Alias`, which the caller turns into an overlap defect or
/// back into `Own` when no overlap can be made.
pub fn place(inp: &mut Input, ex: &mut Expect, what: &'static str, len: usize, elem: usize) -> Place {
    match inp.byte() % 64 {
        0 => {
            if len > 0 {
                ex.defect(XENT_STATUS_NULL_POINTER, what);
            }
            Place::Null
        }
        1 if elem > 1 => {
            if len > 0 {
                ex.defect(XENT_STATUS_INVALID_ARGUMENT, what);
            }
            Place::Misaligned
        }
        2 | 3 if len > 0 => Place::Alias,
        _ => Place::Own,
    }
}

/// Settles an `Alias` of a buffer of `len` elements onto a buffer passed as
/// `target` holding `target_len` elements: an overlap defect when both are
/// non-empty and the target is really passed, else `Own`.
pub fn settle(p: Place, ex: &mut Expect, what: &'static str, len: usize, target: Place, target_len: usize) -> Place {
    if p != Place::Alias {
        return p;
    }
    if len > 0 && target_len > 0 && target == Place::Own {
        ex.defect(XENT_STATUS_INVALID_ARGUMENT, what);
        Place::Alias
    } else {
        Place::Own
    }
}

/// The pointer `p` gives for `own`, with `alias` the other buffer's start.
pub fn resolve<T>(p: Place, own: &mut [T], alias: *mut u8) -> *mut T {
    match p {
        Place::Own => own.as_mut_ptr(),
        Place::Null => core::ptr::null_mut(),
        Place::Misaligned => (own.as_mut_ptr() as *mut u8).wrapping_add(1) as *mut T,
        Place::Alias => alias as *mut T,
    }
}

/// A caller's `parallel_for`, as the fuzzer picks it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum PoolKind {
    /// Every task in order.
    Forward,
    /// Every task, last first.
    Reverse,
    /// Every task twice, plus the out-of-range indices n and usize::MAX.
    Twice,
    /// All but the last task (a broken pool: XENT_STATUS_INTERNAL_ERROR).
    SkipLast,
}

/// The context the pool functions receive.
pub struct Pool {
    pub kind: PoolKind,
    pub calls: Cell<usize>,
    pub skipped: Cell<bool>,
}

/// # Safety
/// `ctx` is a live `Pool`; `task` runs `task_ctx`'s tasks.
pub unsafe extern "C" fn pool_run(ctx: *mut c_void, n: usize, task: XentTaskFn, task_ctx: *mut c_void) {
    // SAFETY: the harness passes its Pool, alive for the call.
    let pool = unsafe { &*(ctx as *const Pool) };
    pool.calls.set(pool.calls.get() + 1);
    let Some(task) = task else { return };
    // SAFETY (each call below): the xent contract for its task function.
    match pool.kind {
        PoolKind::Forward => (0..n).for_each(|i| unsafe { task(task_ctx, i) }),
        PoolKind::Reverse => (0..n).rev().for_each(|i| unsafe { task(task_ctx, i) }),
        PoolKind::Twice => {
            (0..n).chain(0..n).chain([n, usize::MAX]).for_each(|i| unsafe { task(task_ctx, i) });
        }
        PoolKind::SkipLast => {
            if n > 0 {
                pool.skipped.set(true);
            }
            (0..n.saturating_sub(1)).for_each(|i| unsafe { task(task_ctx, i) });
        }
    }
}

/// Options as the fuzzer builds them, and what they mean.
pub struct Opts {
    pub raw: XentOptions,
    /// The options the library must act on (fields past a short
    /// `struct_size` keep their defaults).
    pub reduction: Reduction,
    pub ignore_index: i32,
    pub weights: Option<Vec<f32>>,
    pub smoothing: f32,
    pub z_loss: f32,
    pub softcap: f32,
    pub pool: Box<Pool>,
    /// Where the options are passed: 0 = a normal pointer, 1 = NULL
    /// (defaults), 2 = a misaligned copy.
    pub mode: u8,
}

/// Options with `classes` (class-weight length), good or bad.
pub fn options(inp: &mut Input, ex: &mut Expect, classes: usize) -> Opts {
    let mut raw = xent_options_default();
    raw.reduction = if inp.one_in(32) {
        ex.defect(XENT_STATUS_INVALID_ARGUMENT, "reduction");
        inp.pick(&[3, 4, u32::MAX, 0x8000_0000])
    } else {
        inp.below(3) as u32
    };
    raw.ignore_index = inp.pick(&[-100, -100, -100, -1, 0, 1, 3, i32::MIN, i32::MAX]);
    let weights = inp.one_in(3).then(|| {
        (0..classes)
            .map(|_| match inp.byte() % 32 {
                0 => 0.0,
                1 => {
                    ex.wild = true;
                    inp.pick(&[f32::NAN, f32::INFINITY, -1.0, 1e30])
                }
                b => 0.1 + b as f32 / 16.0,
            })
            .collect::<Vec<f32>>()
    });
    raw.label_smoothing = match inp.byte() % 16 {
        0..=9 => 0.0,
        10 => 0.1,
        11 => 1.0,
        12 => inp.byte() as f32 / 255.0,
        _ => {
            if inp.one_in(2) {
                ex.defect(XENT_STATUS_INVALID_ARGUMENT, "label_smoothing");
                inp.pick(&[-0.1, 1.5, f32::NAN, f32::INFINITY, (-0.0f32).next_down()])
            } else {
                0.0
            }
        }
    };
    raw.z_loss_scale = match inp.byte() % 16 {
        0..=10 => 0.0,
        11 => 1e-4,
        12 => 0.5,
        13 => inp.byte() as f32 / 1024.0,
        _ => {
            ex.defect(XENT_STATUS_INVALID_ARGUMENT, "z_loss_scale");
            inp.pick(&[-1e-4, f32::NAN, f32::INFINITY, f32::NEG_INFINITY])
        }
    };
    raw.logit_softcap = match inp.byte() % 16 {
        0..=10 => 0.0,
        11 => 15.0,
        12 => 0.5,
        13 => 1.0 + inp.byte() as f32,
        _ => {
            ex.defect(XENT_STATUS_INVALID_ARGUMENT, "logit_softcap");
            inp.pick(&[-1.0, f32::NAN, f32::INFINITY, (-0.0f32).next_down()])
        }
    };
    raw.num_threads = inp.pick(&[0, 0, 1, 1, 2, 3, 8, u32::MAX]);
    let pool = Box::new(Pool {
        kind: inp.pick(&[PoolKind::Forward, PoolKind::Reverse, PoolKind::Twice, PoolKind::SkipLast]),
        calls: Cell::new(0),
        skipped: Cell::new(false),
    });
    if inp.one_in(4) {
        raw.parallel_for = Some(pool_run);
        raw.parallel_ctx = &*pool as *const Pool as *mut c_void;
    }
    // An older caller's shorter struct: later fields keep their defaults.
    let full = size_of::<XentOptions>();
    let mut size = full;
    match inp.byte() % 32 {
        0 => size = inp.pick(&[offset_of!(XentOptions, reduction), offset_of!(XentOptions, label_smoothing)]),
        1 => size = inp.pick(&[offset_of!(XentOptions, num_threads), offset_of!(XentOptions, parallel_for)]),
        2 => {
            ex.defect(XENT_STATUS_INVALID_ARGUMENT, "struct_size");
            size = inp.pick(&[0, 1, 4, 7, full + 1, full + 8, usize::MAX]);
        }
        _ => {}
    }
    raw.struct_size = size;
    // The options as the library must read them.
    let covers = |off: usize, len: usize| off + len <= size;
    let d = xent_options_default();
    let mut eff = raw;
    macro_rules! keep {
        ($($f:ident),*) => {$(
            if !covers(offset_of!(XentOptions, $f), core::mem::size_of_val(&raw.$f)) {
                eff.$f = d.$f;
            }
        )*};
    }
    keep!(reduction, ignore_index, class_weights, label_smoothing, z_loss_scale, logit_softcap);
    keep!(num_threads, parallel_for, parallel_ctx);
    let weights_ptr_covered = covers(offset_of!(XentOptions, class_weights), size_of::<*const f32>());
    // A defect in a field the library does not read is no defect.
    let struct_ok = (size_of::<usize>()..=full).contains(&size);
    if struct_ok {
        ex.defects.retain(|d| match d.1 {
            "reduction" => eff.reduction == raw.reduction,
            "label_smoothing" => eff.label_smoothing.to_bits() == raw.label_smoothing.to_bits(),
            "z_loss_scale" => eff.z_loss_scale.to_bits() == raw.z_loss_scale.to_bits(),
            "logit_softcap" => eff.logit_softcap.to_bits() == raw.logit_softcap.to_bits(),
            _ => true,
        });
    }
    let mode = match inp.byte() % 32 {
        0 => 1,
        1 if struct_ok && size == full => 2,
        _ => 0,
    };
    if mode == 2 {
        ex.defect(XENT_STATUS_INVALID_ARGUMENT, "options alignment");
    }
    if mode == 1 {
        // NULL options: every default, whatever the struct said.
        ex.defects.retain(|d| {
            !matches!(d.1, "reduction" | "label_smoothing" | "z_loss_scale" | "logit_softcap" | "struct_size")
        });
        eff = d;
    }
    let weights = if mode != 1 && weights_ptr_covered { weights } else { None };
    let reduction = match eff.reduction {
        1 => Reduction::Sum,
        2 => Reduction::None,
        _ => Reduction::Mean,
    };
    Opts {
        raw,
        reduction,
        ignore_index: eff.ignore_index,
        weights,
        smoothing: eff.label_smoothing,
        z_loss: eff.z_loss_scale,
        softcap: eff.logit_softcap,
        pool,
        mode,
    }
}

/// Storage for passing options: `ptr()` gives the pointer `mode` asks for.
pub struct OptsArg {
    aligned: Box<XentOptions>,
    /// A byte copy one past an aligned start (for the misaligned mode).
    bytes: Vec<u64>,
    mode: u8,
}

impl Opts {
    /// The options with `class_weights` pointing at `weights` (when the
    /// fuzzer gave weights), ready to pass.
    pub fn arg(&mut self) -> OptsArg {
        let mut raw = self.raw;
        raw.class_weights = self.weights.as_ref().map_or(core::ptr::null(), |w| w.as_ptr());
        let mut bytes = vec![0u64; size_of::<XentOptions>() / 8 + 2];
        // SAFETY: the copy fits in `bytes` (one spare word past the offset).
        unsafe {
            core::ptr::copy_nonoverlapping(
                &raw as *const XentOptions as *const u8,
                (bytes.as_mut_ptr() as *mut u8).add(1),
                size_of::<XentOptions>(),
            );
        }
        OptsArg { aligned: Box::new(raw), bytes, mode: self.mode }
    }

    /// True when the library must have used the caller's pool and found a
    /// skipped task.
    pub fn pool_skipped(&self) -> bool {
        self.pool.skipped.get()
    }
}

impl OptsArg {
    pub fn ptr(&self) -> *const XentOptions {
        match self.mode {
            1 => core::ptr::null(),
            2 => (self.bytes.as_ptr() as *const u8).wrapping_add(1) as *const XentOptions,
            _ => &*self.aligned,
        }
    }
}

/// Labels for `rows` rows of `classes`: in range or `ignore_index`, and
/// sometimes one out of range (a defect unless it equals `ignore_index`).
pub fn labels(inp: &mut Input, ex: &mut Expect, rows: usize, classes: usize, ignore: i32) -> Vec<i32> {
    let mut v = exact(rows, 0i32);
    for l in v.iter_mut() {
        *l = match inp.byte() % 32 {
            0..=26 => inp.below(classes) as i32,
            27..=29 => ignore,
            _ => {
                let bad =
                    inp.pick(&[-1, classes as i32, i32::MAX, i32::MIN, -100, classes.min(i32::MAX as usize) as i32]);
                if bad != ignore && !(0..classes as i64).contains(&i64::from(bad)) {
                    ex.defect(XENT_STATUS_LABEL_OUT_OF_RANGE, "label");
                }
                bad
            }
        };
    }
    v
}

/// A reference case from what a call was given.
#[allow(clippy::too_many_arguments)]
pub fn case(
    rows: usize,
    classes: usize,
    stride: usize,
    logits: &[f32],
    labels: &[i32],
    probs: Option<(&[f32], usize)>,
    o: &Opts,
) -> support::Case {
    let dense = probs
        .map_or_else(Vec::new, |(p, s)| (0..rows).flat_map(|i| p[i * s..i * s + classes].iter().copied()).collect());
    support::Case {
        rows,
        cols: classes,
        stride,
        logits: logits.to_vec(),
        labels: labels.to_vec(),
        probs: dense,
        soft: probs.is_some(),
        weights: o.weights.clone(),
        reduction: o.reduction,
        ignore_index: o.ignore_index,
        smoothing: o.smoothing,
        z_loss: o.z_loss,
        softcap: o.softcap,
    }
}

/// Tolerances for comparing a call with the float64 reference. The fuzz
/// values reach ±1e4 next to ordinary ones, so the absolute part scales with
/// each row's largest magnitude (the f32 rounding of `z − max` and of lse).
pub struct Tol {
    pub rel: f64,
    /// Absolute slack per unit of a row's magnitude.
    pub per_scale: f64,
}

impl Tol {
    pub fn of(c: &support::Case) -> Tol {
        Tol { rel: if c.softcap > 0.0 { 2e-4 } else { 1e-4 }, per_scale: 4e-6 }
    }
}

/// Largest finite |value| of row `i` and its lse.
fn row_scale(c: &support::Case, r: &support::reference::Out, i: usize) -> f64 {
    let z = (0..c.cols).map(|j| f64::from(c.logits[i * c.stride + j])).filter(|x| x.is_finite());
    let m = z.fold(0.0f64, |a, x| a.max(x.abs()));
    let l = if r.lse[i].is_finite() { r.lse[i].abs() } else { 0.0 };
    1.0 + m.max(l)
}

/// Compares forward outputs with the reference.
pub fn check_forward(
    c: &support::Case,
    r: &support::reference::Out,
    loss: &[f32],
    lse: Option<&[f32]>,
    argmax: Option<&[i32]>,
) {
    let t = Tol::of(c);
    let wmax = c.weights.as_ref().map_or(1.0, |w| w.iter().fold(1.0f64, |a, &x| a.max(f64::from(x).abs())));
    let zl = 1.0 + f64::from(c.z_loss) * 2.0 * (0..c.rows).map(|i| row_scale(c, r, i)).fold(0.0, f64::max);
    let scales: Vec<f64> = (0..c.rows).map(|i| row_scale(c, r, i) * wmax * zl).collect();
    let total: f64 = scales.iter().sum();
    for (i, (&got, &want)) in loss.iter().zip(&r.loss).enumerate() {
        let s = if loss.len() == c.rows { scales[i] } else { total };
        assert!(
            support::close(f64::from(got), want, t.rel, t.per_scale * s),
            "loss[{i}] {got} vs {want} (scale {s}) in {c:?}"
        );
    }
    for i in 0..c.rows {
        if let Some(l) = lse {
            let want = r.lse[i];
            assert!(support::close(f64::from(l[i]), want, 1e-6, 1e-5), "lse[{i}] {} vs {want} in {c:?}", l[i]);
        }
        if let Some(a) = argmax {
            assert_eq!(a[i] as usize, r.argmax[i], "argmax[{i}] in {c:?}");
        }
    }
}

/// Compares a gradient (row stride `stride`) with the reference gradient
/// scaled per row by `up[i]`. With `given_lse` the call computed
/// `P = exp(z − lse)` from a float32 lse, which the header documents as
/// precise to `|lse|·2⁻²⁴` relative.
pub fn check_grad(
    c: &support::Case,
    r: &support::reference::Out,
    grad: &[f32],
    stride: usize,
    up: &[f64],
    given_lse: bool,
) {
    if degenerate_mean(c) {
        return;
    }
    for i in 0..c.rows {
        let want: Vec<f64> = r.grad[i * c.cols..(i + 1) * c.cols].iter().map(|g| g * up[i]).collect();
        let slack = grad_slack(c, r, i, up[i], given_lse);
        for j in 0..c.cols {
            let got = f64::from(grad[i * stride + j]);
            assert!(
                support::close(got, want[j], Tol::of(c).rel, slack),
                "grad[{i}][{j}] {got} vs {} (upstream {}) in {c:?}",
                want[j],
                up[i]
            );
        }
    }
}

/// The absolute error allowed in every gradient value of row `i` (besides
/// the relative tolerance): the cancellation of `a·p_j − c_j` relative to
/// its terms, P's error from a given float32 lse, and the z-loss term's
/// share of lse's float32 rounding (absolute in the row's magnitude, so
/// relative when lse is near 0).
pub fn grad_slack(c: &support::Case, r: &support::reference::Out, i: usize, up: f64, given_lse: bool) -> f64 {
    let t = Tol::of(c);
    let lse_rel = if given_lse && r.lse[i].is_finite() { 2.0 * r.lse[i].abs() * f64::from(f32::EPSILON) } else { 0.0 };
    let z_abs = 8.0 * f64::from(c.z_loss) * up.abs() * f64::from(f32::EPSILON) * row_scale(c, r, i);
    let row = &r.grad[i * c.cols..(i + 1) * c.cols];
    let scale = row.iter().filter(|x| x.is_finite()).fold(0.0f64, |a, &x| a.max((x * up).abs()));
    t.rel * scale + (1e-5 + lse_rel) * r.grad_terms[i] * up.abs() + z_abs
}

/// Row padding (between `cols` and `stride`) must equal `before`'s.
pub fn check_padding<T: Copy + PartialEq + core::fmt::Debug>(
    after: &[T],
    before: &[T],
    rows: usize,
    cols: usize,
    stride: usize,
) {
    for i in 0..rows.saturating_sub(1) {
        for j in cols..stride.min(after.len().saturating_sub(i * stride)) {
            let k = i * stride + j;
            assert_eq!(after[k], before[k], "padding at row {i}, column {j} was written");
        }
    }
}

/// MEAN over kept rows of total weight 0 divides by zero (as PyTorch): the
/// gradient is then non-finite in ways no two formulas share.
pub fn degenerate_mean(c: &support::Case) -> bool {
    if c.reduction != Reduction::Mean || c.soft {
        return false;
    }
    let w = |y: usize| c.weights.as_ref().map_or(1.0, |w| f64::from(w[y]));
    let kept: f64 = c.labels.iter().filter(|&&y| y != c.ignore_index).map(|&y| w(y as usize)).sum();
    kept == 0.0 && c.labels.iter().any(|&y| y != c.ignore_index)
}

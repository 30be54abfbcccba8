//! Turning C arguments into the safe core's slices and options.
//!
//! Order of checks: options, shapes and sizes, then every pointer (NULL,
//! alignment, address-space wrap), then pairwise overlap of outputs with
//! everything else. Only after all of them pass are slices created, so no
//! aliasing `&`/`&mut` pair ever exists.

use core::ffi::c_void;
use core::mem::{align_of, offset_of, size_of};

use super::status::*;
use crate::error::fail;
use crate::loss::{
    self, Element, ErrorKind, ForwardOut, LogitsGrad, Matrix, MatrixMut, Options, ParallelFor, Reduction, Result,
    Targets, Upstream, check_shape,
};

/// Default options, as `xent_options_default()` returns them.
pub(crate) fn default_options() -> XentOptions {
    XentOptions {
        struct_size: size_of::<XentOptions>(),
        reduction: XENT_REDUCTION_MEAN,
        ignore_index: -100,
        class_weights: core::ptr::null(),
        label_smoothing: 0.0,
        z_loss_scale: 0.0,
        logit_softcap: 0.0,
        num_threads: 0,
        parallel_for: None,
        parallel_ctx: core::ptr::null_mut(),
        grad_scale: 1.0,
        grad_accumulate: 0,
        grad_zero_padding: 0,
    }
}

/// Reads the caller's options: NULL means defaults; fields past `struct_size`
/// keep their defaults.
///
/// # Safety
/// `p` is NULL or points to at least `struct_size` readable bytes.
pub(super) unsafe fn read_options(p: *const XentOptions) -> Result<XentOptions> {
    let mut o = default_options();
    if p.is_null() {
        return Ok(o);
    }
    if !(p as usize).is_multiple_of(align_of::<XentOptions>()) {
        return fail(ErrorKind::InvalidArgument, "options pointer is not aligned for XentOptions");
    }
    // SAFETY: p is non-NULL and aligned; struct_size is the first field, which
    // any caller's version of the struct has.
    let size = unsafe { core::ptr::addr_of!((*p).struct_size).read() };
    if size < size_of::<usize>() || size > size_of::<XentOptions>() {
        return fail(
            ErrorKind::InvalidArgument,
            format_args!(
                "options struct_size {size} is invalid (this library's XentOptions is {} bytes)",
                size_of::<XentOptions>()
            ),
        );
    }
    macro_rules! take {
        ($($field:ident),*) => {$(
            if offset_of!(XentOptions, $field) + size_of_val(&o.$field) <= size {
                // SAFETY: the field lies within the struct_size bytes the
                // caller provides; every bit pattern is valid for its type.
                o.$field = unsafe { core::ptr::addr_of!((*p).$field).read() };
            }
        )*};
    }
    take!(
        reduction,
        ignore_index,
        class_weights,
        label_smoothing,
        z_loss_scale,
        logit_softcap,
        num_threads,
        parallel_for,
        parallel_ctx,
        grad_scale,
        grad_accumulate,
        grad_zero_padding
    );
    for (name, v) in [("grad_accumulate", o.grad_accumulate), ("grad_zero_padding", o.grad_zero_padding)] {
        if v > 1 {
            return fail(ErrorKind::InvalidArgument, format_args!("{name} is {v} (expected 0 or 1)"));
        }
    }
    Ok(o)
}

/// Values a gradient buffer of `rows × cols` at `stride` must hold: the
/// matrix's extent, or every row's padding too with `grad_zero_padding`.
pub(super) fn grad_extent(o: &XentOptions, what: &str, rows: usize, cols: usize, stride: usize) -> Result<usize> {
    let ext = check_shape(what, rows, cols, stride)?;
    if o.grad_zero_padding == 0 {
        return Ok(ext);
    }
    match rows.checked_mul(stride) {
        Some(n) if n <= isize::MAX as usize / 4 => Ok(n),
        _ => fail(
            ErrorKind::SizeOverflow,
            format_args!("{what}: {rows} rows of stride {stride} (grad_zero_padding) overflow the address space"),
        ),
    }
}

pub(super) fn reduction(r: XentReduction) -> Result<Reduction> {
    match r {
        XENT_REDUCTION_MEAN => Ok(Reduction::Mean),
        XENT_REDUCTION_SUM => Ok(Reduction::Sum),
        XENT_REDUCTION_NONE => Ok(Reduction::None),
        _ => fail(ErrorKind::InvalidArgument, format_args!("unknown reduction {r} (expected 0, 1 or 2)")),
    }
}

/// A checked buffer: non-NULL (unless empty), aligned, not wrapping.
#[derive(Clone, Copy)]
pub(super) struct Region<T> {
    ptr: *mut T,
    len: usize,
}

impl<T> Region<T> {
    /// # Safety
    /// The region must be readable for `len` elements and not written by
    /// anyone while the slice lives.
    pub(super) unsafe fn slice<'a>(self) -> &'a [T] {
        if self.len == 0 {
            return &[];
        }
        // SAFETY: checked non-NULL, aligned and within the address space; the
        // caller guarantees the memory is valid.
        unsafe { core::slice::from_raw_parts(self.ptr, self.len) }
    }

    /// # Safety
    /// As `slice`, and no other live reference may overlap it.
    pub(super) unsafe fn slice_mut<'a>(self) -> &'a mut [T] {
        if self.len == 0 {
            return &mut [];
        }
        // SAFETY: as in `slice`; overlap was excluded by `Regions::check`.
        unsafe { core::slice::from_raw_parts_mut(self.ptr, self.len) }
    }
}

/// All buffers of a call, for the overlap check.
pub(super) struct Regions {
    list: [(&'static str, usize, usize, bool); 16],
    n: usize,
    /// What overlap the call allows, for the error message.
    allowed: &'static str,
}

impl Regions {
    pub(super) fn new(allowed: &'static str) -> Self {
        Regions { list: [("", 0, 0, false); 16], n: 0, allowed }
    }

    fn add<T>(&mut self, name: &'static str, p: *const T, len: usize, output: bool) -> Result<Region<T>> {
        let r = Region { ptr: p as *mut T, len };
        if len == 0 {
            return Ok(r);
        }
        if p.is_null() {
            return fail(ErrorKind::NullPointer, format_args!("{name} is NULL but {len} values are needed"));
        }
        if !(p as usize).is_multiple_of(align_of::<T>()) {
            return fail(
                ErrorKind::InvalidArgument,
                format_args!("{name} is not aligned to {} bytes", align_of::<T>()),
            );
        }
        let bytes = len
            .checked_mul(size_of::<T>())
            .filter(|&b| b <= isize::MAX as usize)
            .and_then(|b| (p as usize).checked_add(b).map(|end| (b, end)));
        let Some((_, end)) = bytes else {
            return fail(ErrorKind::SizeOverflow, format_args!("{name}: {len} values overflow the address space"));
        };
        self.list[self.n] = (name, p as usize, end, output);
        self.n += 1;
        Ok(r)
    }

    pub(super) fn input<T>(&mut self, name: &'static str, p: *const T, len: usize) -> Result<Region<T>> {
        self.add(name, p, len, false)
    }

    pub(super) fn output<T>(&mut self, name: &'static str, p: *mut T, len: usize) -> Result<Region<T>> {
        self.add(name, p, len, true)
    }

    /// An optional buffer: NULL means absent.
    pub(super) fn optional<T>(
        &mut self,
        name: &'static str,
        p: *const T,
        len: usize,
        output: bool,
    ) -> Result<Option<Region<T>>> {
        if p.is_null() { Ok(None) } else { self.add(name, p, len, output).map(Some) }
    }

    pub(super) fn check(&self) -> Result<()> {
        let l = &self.list[..self.n];
        for (i, a) in l.iter().enumerate() {
            for b in &l[i + 1..] {
                if (a.3 || b.3) && a.1 < b.2 && b.1 < a.2 {
                    return fail(
                        ErrorKind::InvalidArgument,
                        format_args!("{} overlaps {} ({})", b.0, a.0, self.allowed),
                    );
                }
            }
        }
        Ok(())
    }
}

/// The safe core's options from the caller's, with the checked reduction,
/// class weights and pool.
pub(super) fn safe_options<'a>(
    o: &XentOptions,
    reduction: Reduction,
    class_weights: Option<&'a [f32]>,
    pool: Option<&'a CPool>,
) -> Options<'a> {
    Options {
        reduction,
        ignore_index: o.ignore_index,
        class_weights,
        label_smoothing: o.label_smoothing,
        z_loss_scale: o.z_loss_scale,
        logit_softcap: o.logit_softcap,
        num_threads: o.num_threads,
        parallel_for: pool.map(|p| p as &dyn ParallelFor),
        grad_scale: o.grad_scale,
        grad_accumulate: o.grad_accumulate != 0,
        grad_zero_padding: o.grad_zero_padding != 0,
    }
}

/// The caller's `parallel_for` as a [`ParallelFor`].
pub(super) struct CPool {
    f: unsafe extern "C" fn(*mut c_void, usize, XentTaskFn, *mut c_void),
    ctx: *mut c_void,
}

// SAFETY: `run` is only called from the thread that made the xent call; the
// pool's function and context are the caller's to make thread-safe, as the
// header documents.
unsafe impl Sync for CPool {}

struct TaskData<'a> {
    task: &'a (dyn Fn(usize) + Sync),
}

unsafe extern "C" fn trampoline(ctx: *mut c_void, index: usize) {
    if ctx.is_null() {
        return;
    }
    // SAFETY: ctx is the TaskData passed to parallel_for below, alive until it returns.
    let data = unsafe { &*(ctx as *const TaskData<'_>) };
    // A panic must not unwind into the caller's C frames; the task's block
    // then never finishes, which the call reports as an internal error.
    // (Without std there is no unwinding: a panic is the panic handler's.)
    #[cfg(feature = "std")]
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| (data.task)(index)));
    #[cfg(not(feature = "std"))]
    (data.task)(index);
}

impl CPool {
    /// The pool of `o`, if it names one.
    pub(super) fn of(o: &XentOptions) -> Option<CPool> {
        o.parallel_for.map(|f| CPool { f, ctx: o.parallel_ctx })
    }
}

impl ParallelFor for CPool {
    fn run(&self, n_tasks: usize, task: &(dyn Fn(usize) + Sync)) {
        let data = TaskData { task };
        // SAFETY: the caller's parallel_for contract: call trampoline(ctx, i)
        // for i < n_tasks and return when all calls have returned.
        unsafe { (self.f)(self.ctx, n_tasks, Some(trampoline), &data as *const TaskData<'_> as *mut c_void) };
    }
}

/// What kind of call.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Forward,
    Backward,
    ForwardBackward,
}

/// Class-index or probability targets as the C caller passed them.
#[derive(Clone, Copy)]
pub(crate) enum RawTargets {
    Labels(*const i32),
    Probs(*const f32, usize),
}

/// Every argument any entry point takes; unused ones are NULL / 0. `T` is
/// the logits' element type (`f32`, `Bf16`, `F16`).
pub(crate) struct Call<T = f32> {
    pub kind: Kind,
    pub logits: *const T,
    pub rows: usize,
    pub classes: usize,
    pub row_stride: usize,
    pub targets: RawTargets,
    pub options: *const XentOptions,
    pub loss: *mut f32,
    pub lse_out: *mut f32,
    pub argmax: *mut i32,
    pub grad_loss: *const f32,
    pub lse_in: *const f32,
    pub grad: *mut T,
    pub grad_stride: usize,
}

impl<T: Element> Call<T> {
    /// A call of `kind` on these logits and targets, with no outputs,
    /// upstream gradient or gradient buffer yet.
    pub(crate) fn new(
        kind: Kind,
        logits: *const T,
        rows: usize,
        classes: usize,
        row_stride: usize,
        targets: RawTargets,
        options: *const XentOptions,
    ) -> Call<T> {
        Call {
            kind,
            logits,
            rows,
            classes,
            row_stride,
            targets,
            options,
            loss: core::ptr::null_mut(),
            lse_out: core::ptr::null_mut(),
            argmax: core::ptr::null_mut(),
            grad_loss: core::ptr::null(),
            lse_in: core::ptr::null(),
            grad: core::ptr::null_mut(),
            grad_stride: 0,
        }
    }

    /// The forward outputs.
    pub(crate) fn outputs(self, loss: *mut f32, lse: *mut f32, argmax: *mut i32) -> Call<T> {
        Call { loss, lse_out: lse, argmax, ..self }
    }

    /// The upstream gradient and optional forward lse of a backward call.
    pub(crate) fn upstream(self, grad_loss: *const f32, lse: *const f32) -> Call<T> {
        Call { grad_loss, lse_in: lse, ..self }
    }

    /// The gradient buffer.
    pub(crate) fn gradient(self, grad: *mut T, grad_stride: usize) -> Call<T> {
        Call { grad, grad_stride, ..self }
    }

    /// Runs the call inside the panic guard and returns its status.
    ///
    /// # Safety
    /// As [`Call::run`].
    pub(crate) unsafe fn status(self) -> XentStatus {
        // SAFETY: forwarded from the caller.
        guard(|| unsafe { self.run() })
    }

    /// Validates everything and runs the safe core.
    ///
    /// # Safety
    /// Every non-NULL pointer must be valid for the extent its arguments
    /// describe, as the header documents.
    pub(crate) unsafe fn run(self) -> Result<()> {
        // SAFETY: forwarded from the caller.
        let o = unsafe { read_options(self.options)? };
        let red = reduction(o.reduction)?;
        let (rows, classes) = (self.rows, self.classes);
        let n_loss = if red == Reduction::None { rows } else { 1 };
        let ext = check_shape("logits", rows, classes, self.row_stride)?;
        let grads = self.kind != Kind::Forward;
        let in_place = grads && core::ptr::eq(self.grad, self.logits) && !self.logits.is_null();
        let gext = if grads { grad_extent(&o, "grad_logits", rows, classes, self.grad_stride)? } else { 0 };
        let targets_ext = match self.targets {
            RawTargets::Probs(_, stride) => check_shape("targets", rows, classes, stride)?,
            RawTargets::Labels(_) => rows,
        };

        let mut r = Regions::new("only grad_logits == logits with the same stride is allowed");
        let logits = if in_place && self.grad_stride == self.row_stride {
            None
        } else {
            Some(r.input("logits", self.logits, ext)?)
        };
        let labels = match self.targets {
            RawTargets::Labels(p) => Some(r.input("labels", p, targets_ext)?),
            RawTargets::Probs(..) => None,
        };
        let probs = match self.targets {
            RawTargets::Probs(p, _) => Some(r.input("targets", p, targets_ext)?),
            RawTargets::Labels(_) => None,
        };
        let weights = r.optional("class_weights", o.class_weights, classes, false)?;
        let (loss, lse_out, argmax) = if self.kind == Kind::Backward {
            (None, None, None)
        } else {
            (
                Some(r.output("loss", self.loss, n_loss)?),
                r.optional("lse", self.lse_out, rows, true)?,
                r.optional("argmax", self.argmax, rows, true)?,
            )
        };
        let (grad_loss, lse_in) = if self.kind == Kind::Backward {
            (Some(r.input("grad_loss", self.grad_loss, n_loss)?), r.optional("lse", self.lse_in, rows, false)?)
        } else {
            (None, None)
        };
        let grad = if grads { Some(r.output("grad_logits", self.grad, gext)?) } else { None };
        r.check()?;

        // SAFETY: every region is non-NULL (or empty), aligned, inside the
        // address space, and no output overlaps any other buffer, so the
        // shared and exclusive slices below never alias. Validity of the
        // memory itself is the caller's contract.
        unsafe {
            let pool = CPool::of(&o);
            let options = safe_options(&o, red, weights.map(|w| w.slice()), pool.as_ref());
            let targets = match (labels, probs, self.targets) {
                (Some(l), _, _) => Targets::Labels(l.slice()),
                (_, Some(t), RawTargets::Probs(_, stride)) => {
                    Targets::Probs(Matrix { data: t.slice(), rows, cols: classes, stride })
                }
                _ => unreachable!("targets match their kind"),
            };
            let out = || ForwardOut {
                loss: loss.expect("forward outputs").slice_mut(),
                lse: lse_out.map(|l| l.slice_mut()),
                argmax: argmax.map(|a| a.slice_mut()),
            };
            let io = || {
                let g = grad.expect("gradient output");
                match logits {
                    None => LogitsGrad::InPlace(MatrixMut {
                        data: g.slice_mut(),
                        rows,
                        cols: classes,
                        stride: self.grad_stride,
                    }),
                    Some(l) => LogitsGrad::Separate {
                        logits: Matrix { data: l.slice(), rows, cols: classes, stride: self.row_stride },
                        grad: MatrixMut { data: g.slice_mut(), rows, cols: classes, stride: self.grad_stride },
                    },
                }
            };
            match self.kind {
                Kind::Forward => {
                    let m =
                        Matrix { data: logits.expect("logits").slice(), rows, cols: classes, stride: self.row_stride };
                    loss::forward(m, targets, &options, out())
                }
                Kind::Backward => {
                    let up =
                        Upstream { grad_loss: grad_loss.expect("grad_loss").slice(), lse: lse_in.map(|l| l.slice()) };
                    loss::backward(io(), targets, &options, up)
                }
                Kind::ForwardBackward => loss::forward_backward(io(), targets, &options, out()),
            }
        }
    }
}

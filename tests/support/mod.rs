//! Shared test support: a deterministic RNG, the float64 reference, and
//! helpers to call the safe API and compare with the reference.
#![allow(dead_code)]

pub mod reference;

use xent::kernels::Isa;
use xent::loss::*;

/// The paths `XENT_REQUIRE_ISA` (a comma-separated list, e.g.
/// `avx2,avx512`) names: a test that would skip one of them fails instead,
/// so a machine without them cannot pass with their code untested.
pub fn required_isas() -> Vec<Isa> {
    let list = std::env::var("XENT_REQUIRE_ISA").unwrap_or_default();
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| Isa::parse(s).unwrap_or_else(|| panic!("XENT_REQUIRE_ISA: unknown path {s:?}")))
        .collect()
}

/// Runs `f` on every kernel path this CPU has, with this thread's calls
/// forced onto it (and says which paths it skips; a path `XENT_REQUIRE_ISA`
/// names is never skipped: the test fails).
pub fn for_each_isa(f: impl Fn(Isa)) {
    let required = required_isas();
    for isa in Isa::all() {
        if isa.capped() != isa {
            assert!(
                !required.contains(&isa),
                "XENT_REQUIRE_ISA names {} but this CPU lacks it: its kernels would go untested",
                isa.name()
            );
            println!("skipping {}: this CPU lacks it", isa.name());
            continue;
        }
        Isa::override_for_this_thread(Some(isa));
        f(isa);
    }
    Isa::override_for_this_thread(None);
}

/// A caller's pool that runs the tasks backwards on the calling thread (to
/// show that the order of blocks does not matter).
pub struct ReversePool;

impl ParallelFor for ReversePool {
    fn run(&self, n_tasks: usize, task: &(dyn Fn(usize) + Sync)) {
        for i in (0..n_tasks).rev() {
            task(i);
        }
    }
}

/// splitmix64: deterministic, seedable, good enough for test data.
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
    /// Roughly normal (sum of uniforms).
    pub fn normal(&mut self) -> f64 {
        (0..4).map(|_| self.unit()).sum::<f64>() * 1.732 - 3.464
    }
    pub fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len())]
    }
}

/// A test case: logits with a stride gap, targets and options.
#[derive(Clone, Debug)]
pub struct Case {
    pub rows: usize,
    pub cols: usize,
    pub stride: usize,
    pub logits: Vec<f32>,
    pub labels: Vec<i32>,
    /// Probability targets (rows × cols, stride `cols`) when `soft`.
    pub probs: Vec<f32>,
    pub soft: bool,
    pub weights: Option<Vec<f32>>,
    pub reduction: Reduction,
    pub ignore_index: i32,
    pub smoothing: f32,
    pub z_loss: f32,
    pub softcap: f32,
}

impl Case {
    pub fn options(&self) -> Options<'_> {
        Options {
            reduction: self.reduction,
            ignore_index: self.ignore_index,
            class_weights: self.weights.as_deref(),
            label_smoothing: self.smoothing,
            z_loss_scale: self.z_loss,
            logit_softcap: self.softcap,
            ..Options::default()
        }
    }

    pub fn targets(&self) -> Targets<'_> {
        if self.soft {
            Targets::Probs(Matrix { data: &self.probs, rows: self.rows, cols: self.cols, stride: self.cols })
        } else {
            Targets::Labels(&self.labels)
        }
    }

    pub fn matrix(&self) -> Matrix<'_> {
        Matrix { data: &self.logits, rows: self.rows, cols: self.cols, stride: self.stride }
    }

    pub fn loss_len(&self) -> usize {
        if self.reduction == Reduction::None { self.rows } else { 1 }
    }

    pub fn reference(&self) -> reference::Out {
        reference::compute(self)
    }

    /// The logits as a dense matrix with the same stride, for gradients.
    pub fn grad_buffer(&self) -> Vec<f32> {
        vec![0.0; self.logits.len()]
    }

    /// The gradient buffer a call starts from: a copy of the logits when in
    /// place, else zeros.
    pub fn grad_start(&self, in_place: bool) -> Vec<f32> {
        if in_place { self.logits.clone() } else { self.grad_buffer() }
    }

    /// The logits and `grad` as a call's input/output (`grad` holds the
    /// logits when in place).
    pub fn logits_grad<'a>(&'a self, grad: &'a mut [f32], in_place: bool) -> LogitsGrad<'a> {
        let out = MatrixMut { data: grad, rows: self.rows, cols: self.cols, stride: self.stride };
        if in_place { LogitsGrad::InPlace(out) } else { LogitsGrad::Separate { logits: self.matrix(), grad: out } }
    }
}

/// Results of one fused call through the safe API.
#[derive(Clone, Debug, PartialEq)]
pub struct Fused {
    pub loss: Vec<f32>,
    pub lse: Vec<f32>,
    pub argmax: Vec<i32>,
    pub grad: Vec<f32>,
}

/// Runs `forward_backward` (separate buffer or in place) with `tweak`ed options.
pub fn fused(c: &Case, in_place: bool, tweak: impl Fn(&mut Options<'_>)) -> Fused {
    let mut loss = vec![0.0; c.loss_len()];
    let mut lse = vec![0.0; c.rows];
    let mut argmax = vec![0; c.rows];
    let mut grad = c.grad_start(in_place);
    let mut o = c.options();
    tweak(&mut o);
    let out = ForwardOut { loss: &mut loss, lse: Some(&mut lse), argmax: Some(&mut argmax) };
    let io = c.logits_grad(&mut grad, in_place);
    forward_backward(io, c.targets(), &o, out).expect("valid case");
    Fused { loss, lse, argmax, grad }
}

/// Compares `got` with the reference value `want` within `rel` relative and
/// `abs` absolute tolerance; NaN must match NaN and infinities must match.
pub fn close(got: f64, want: f64, rel: f64, abs: f64) -> bool {
    if got == want {
        return true;
    }
    if want.is_nan() || got.is_nan() {
        return want.is_nan() && got.is_nan();
    }
    if want.is_infinite() || got.is_infinite() {
        return got == want;
    }
    (got - want).abs() <= abs + rel * want.abs()
}

/// The bytes of a buffer of plain numbers (for checking that a call wrote
/// nothing, or the same thing twice).
pub fn bytes<T: Copy>(v: &[T]) -> Vec<u8> {
    // SAFETY: plain numbers; any byte view of them is valid.
    unsafe { core::slice::from_raw_parts(v.as_ptr() as *const u8, core::mem::size_of_val(v)) }.to_vec()
}

/// This thread's `xent_last_error()`.
pub fn last_error() -> String {
    // SAFETY: never NULL, valid until this thread's next failing call.
    unsafe { std::ffi::CStr::from_ptr(xent::capi::xent_last_error()) }.to_string_lossy().into_owned()
}

//! Small calls of every C function, sized for Miri (`make miri` runs this
//! file and `tests/bad_input.rs` under it; Miri runs the portable kernel
//! path, as it has no AVX intrinsics): valid calls against the float64
//! reference, strided and in place, 16-bit, fused linear, sharded, a
//! caller's pool on two threads. Under plain `cargo test` it runs too.

mod support;

use core::ffi::c_void;
use core::ptr::{null, null_mut};
use support::*;
use xent::capi::*;
use xent::loss::Reduction;

fn case(rows: usize, cols: usize, stride: usize, reduction: Reduction, smoothing: f32, seed: u64) -> Case {
    let mut rng = Rng(seed);
    let mut logits = vec![f32::from_bits(0x7fc0_dead); (rows - 1) * stride + cols];
    for i in 0..rows {
        for j in 0..cols {
            logits[i * stride + j] = (rng.normal() * 3.0) as f32;
        }
    }
    logits[1] = f32::NEG_INFINITY;
    Case {
        rows,
        cols,
        stride,
        logits,
        labels: (0..rows).map(|i| if i == 1 { -100 } else { ((i * 7 + 2) % cols) as i32 }).collect(),
        probs: (0..rows * cols).map(|_| rng.unit() as f32 / cols as f32).collect(),
        soft: false,
        weights: Some((0..cols).map(|j| 0.5 + (j % 3) as f32 * 0.5).collect()),
        reduction,
        ignore_index: -100,
        smoothing,
        z_loss: 1e-4,
        softcap: 0.0,
    }
}

fn options(c: &Case) -> XentOptions {
    let mut o = xent_options_default();
    o.reduction = match c.reduction {
        Reduction::Mean => XENT_REDUCTION_MEAN,
        Reduction::Sum => XENT_REDUCTION_SUM,
        Reduction::None => XENT_REDUCTION_NONE,
    };
    o.class_weights = c.weights.as_ref().map_or(null(), |w| w.as_ptr());
    o.label_smoothing = c.smoothing;
    o.z_loss_scale = c.z_loss;
    o.logit_softcap = c.softcap;
    o
}

fn check_loss(got: &[f32], r: &reference::Out) {
    for (g, w) in got.iter().zip(&r.loss) {
        assert!(close(f64::from(*g), *w, 1e-4, 1e-6), "loss {g} vs {w}");
    }
}

fn check_grad(c: &Case, got: &[f32], stride: usize, r: &reference::Out, up: f64) {
    for i in 0..c.rows {
        for j in 0..c.cols {
            let (g, w) = (f64::from(got[i * stride + j]), r.grad[i * c.cols + j] * up);
            assert!(close(g, w, 1e-4, 1e-6 + 1e-5 * r.grad_terms[i]), "grad[{i}][{j}] {g} vs {w}");
        }
        for j in c.cols..stride.min(got.len() - i * stride) {
            assert_eq!(got[i * stride + j].to_bits(), 0x7fc0_dead, "padding written");
        }
    }
}

#[test]
fn every_loss_call_on_small_strided_rows() {
    for (k, (cols, stride, reduction, smoothing)) in
        [(5, 5, Reduction::Mean, 0.0), (17, 19, Reduction::Sum, 0.1), (33, 33, Reduction::None, 0.0)]
            .into_iter()
            .enumerate()
    {
        let mut c = case(3, cols, stride, reduction, smoothing, k as u64);
        let o = options(&c);
        let r = c.reference();
        let n = c.loss_len();
        let (mut loss, mut lse, mut am) = (vec![0f32; n], vec![0f32; 3], vec![0i32; 3]);
        let mut grad = vec![f32::from_bits(0x7fc0_dead); c.logits.len()];
        // SAFETY (every call in this test): buffers of the sizes passed.
        unsafe {
            let s = xent_forward_backward(
                c.logits.as_ptr(),
                3,
                cols,
                stride,
                c.labels.as_ptr(),
                &o,
                loss.as_mut_ptr(),
                lse.as_mut_ptr(),
                am.as_mut_ptr(),
                grad.as_mut_ptr(),
                stride,
            );
            assert_eq!(s, XENT_STATUS_OK);
        }
        check_loss(&loss, &r);
        check_grad(&c, &grad, stride, &r, 1.0);
        assert_eq!(am.iter().map(|&a| a as usize).collect::<Vec<_>>(), r.argmax);
        // Backward from the forward's lse, in place on a copy.
        let mut inplace = c.logits.clone();
        let up = vec![2.0f32; n];
        unsafe {
            let p = inplace.as_mut_ptr();
            let s = xent_backward(p, 3, cols, stride, c.labels.as_ptr(), &o, up.as_ptr(), lse.as_ptr(), p, stride);
            assert_eq!(s, XENT_STATUS_OK);
        }
        check_grad(&c, &inplace, stride, &r, 2.0);
        // Probability targets.
        c.soft = true;
        let r = c.reference();
        unsafe {
            let s = xent_soft_forward(
                c.logits.as_ptr(),
                3,
                cols,
                stride,
                c.probs.as_ptr(),
                cols,
                &o,
                loss.as_mut_ptr(),
                null_mut(),
                null_mut(),
            );
            assert_eq!(s, XENT_STATUS_OK);
            let s = xent_soft_backward(
                c.logits.as_ptr(),
                3,
                cols,
                stride,
                c.probs.as_ptr(),
                cols,
                &o,
                up.as_ptr(),
                null(),
                grad.as_mut_ptr(),
                stride,
            );
            assert_eq!(s, XENT_STATUS_OK);
        }
        check_loss(&loss, &r);
        check_grad(&c, &grad, stride, &r, 2.0);
        unsafe {
            let p = c.logits.as_mut_ptr();
            let s = xent_soft_forward_backward(
                p,
                3,
                cols,
                stride,
                c.probs.as_ptr(),
                cols,
                &o,
                loss.as_mut_ptr(),
                null_mut(),
                null_mut(),
                p,
                stride,
            );
            assert_eq!(s, XENT_STATUS_OK);
        }
        check_loss(&loss, &r);
        check_grad(&c, &c.logits, stride, &r, 1.0);
    }
}

#[test]
fn the_16_bit_calls_equal_the_float32_call_on_widened_logits() {
    let c = case(2, 21, 23, Reduction::None, 0.0, 9);
    let o = options(&c);
    let bf: Vec<u16> = c.logits.iter().map(|x| (x.to_bits() >> 16) as u16).collect();
    let wide: Vec<f32> = bf.iter().map(|&h| f32::from_bits(u32::from(h) << 16)).collect();
    let (mut l16, mut l32) = ([0f32; 2], [0f32; 2]);
    let mut g16 = bf.clone();
    let mut g32 = wide.clone();
    // SAFETY: buffers of the sizes passed; both gradients in place.
    unsafe {
        let p = g16.as_mut_ptr();
        assert_eq!(
            xent_forward_backward_bf16(
                p,
                2,
                21,
                23,
                c.labels.as_ptr(),
                &o,
                l16.as_mut_ptr(),
                null_mut(),
                null_mut(),
                p,
                23
            ),
            0
        );
        let p = g32.as_mut_ptr();
        assert_eq!(
            xent_forward_backward(p, 2, 21, 23, c.labels.as_ptr(), &o, l32.as_mut_ptr(), null_mut(), null_mut(), p, 23),
            0
        );
    }
    assert_eq!(l16, l32);
    for i in 0..2 {
        for j in 0..21 {
            let want = g32[i * 23 + j];
            let got = f32::from_bits(u32::from(g16[i * 23 + j]) << 16);
            assert!((got - want).abs() <= want.abs() / 128.0, "grad[{i}][{j}] {got} vs {want}");
        }
    }
    // binary16 forward.
    let h: Vec<u16> = (0..2 * 23).map(|i| 0x3c00 + (i as u16 % 7) * 0x100).collect();
    let mut loss = [0f32; 2];
    // SAFETY: as above.
    assert_eq!(
        unsafe {
            xent_forward_f16(h.as_ptr(), 2, 21, 23, c.labels.as_ptr(), &o, loss.as_mut_ptr(), null_mut(), null_mut())
        },
        0
    );
    assert!(loss.iter().all(|l| l.is_finite()));
}

#[test]
fn fused_linear_and_sharded_calls() {
    let (rows, dim, classes) = (3usize, 4usize, 6usize);
    let hidden: Vec<f32> = (0..rows * dim).map(|i| (i % 5) as f32 - 2.0).collect();
    let weight: Vec<f32> = (0..classes * dim).map(|i| ((i % 7) as f32 - 3.0) * 0.25).collect();
    let labels = [1i32, 5, 0];
    let o = xent_options_default();
    let mut logits = vec![0f32; rows * classes];
    for i in 0..rows {
        for k in 0..classes {
            logits[i * classes + k] = (0..dim).map(|j| hidden[i * dim + j] * weight[k * dim + j]).sum();
        }
    }
    let (mut loss, mut want_loss) = ([0f32], [0f32]);
    let (mut gh, mut gw, mut gb) = (vec![0f32; rows * dim], vec![0f32; classes * dim], vec![0f32; classes]);
    let mut g = vec![0f32; rows * classes];
    let mut work = vec![0u8; xent_linear_workspace_size(rows, dim, classes, null())];
    // SAFETY: buffers of the sizes passed.
    unsafe {
        let s = xent_linear_forward_backward(
            hidden.as_ptr(),
            rows,
            dim,
            dim,
            weight.as_ptr(),
            classes,
            dim,
            null(),
            labels.as_ptr(),
            &o,
            loss.as_mut_ptr(),
            null_mut(),
            null_mut(),
            gh.as_mut_ptr(),
            dim,
            gw.as_mut_ptr(),
            dim,
            gb.as_mut_ptr(),
            work.as_mut_ptr() as *mut c_void,
            work.len(),
        );
        assert_eq!(s, 0);
        let s = xent_forward_backward(
            logits.as_ptr(),
            rows,
            classes,
            classes,
            labels.as_ptr(),
            &o,
            want_loss.as_mut_ptr(),
            null_mut(),
            null_mut(),
            g.as_mut_ptr(),
            classes,
        );
        assert_eq!(s, 0);
    }
    assert!((loss[0] - want_loss[0]).abs() <= 1e-5 * want_loss[0].abs());
    for k in 0..classes {
        let want: f32 = (0..rows).map(|i| g[i * classes + k]).sum();
        assert!((gb[k] - want).abs() <= 1e-5, "grad_bias[{k}]");
    }
    // Two shards of the same logits, merged.
    let (mut a, mut b) = (vec![XentShardStats::default(); rows], vec![XentShardStats::default(); rows]);
    let (mut sl, mut sg) = ([0f32], vec![0f32; rows * classes]);
    let up = [1.0f32];
    // SAFETY: buffers of the sizes passed; the shards are views of the rows.
    unsafe {
        assert_eq!(
            xent_shard_stats(logits.as_ptr(), rows, 2, classes, 0, classes, labels.as_ptr(), &o, a.as_mut_ptr()),
            0
        );
        assert_eq!(
            xent_shard_stats(logits.as_ptr().add(2), rows, 4, classes, 2, classes, labels.as_ptr(), &o, b.as_mut_ptr()),
            0
        );
        xent_shard_stats_merge(b.as_ptr(), a.as_mut_ptr(), rows);
        assert_eq!(xent_shard_loss(a.as_ptr(), rows, classes, labels.as_ptr(), &o, sl.as_mut_ptr(), null_mut()), 0);
        let s = xent_shard_backward(
            logits.as_ptr(),
            rows,
            classes,
            classes,
            0,
            classes,
            labels.as_ptr(),
            &o,
            a.as_ptr(),
            up.as_ptr(),
            sg.as_mut_ptr(),
            classes,
        );
        assert_eq!(s, 0);
    }
    assert!((sl[0] - want_loss[0]).abs() <= 1e-5 * want_loss[0].abs());
    for (x, y) in sg.iter().zip(&g) {
        assert!((x - y).abs() <= 1e-6, "shard gradient {x} vs {y}");
    }
    // The kept pair on one shard of all classes: kept into the gradient
    // buffer, then the gradient in place there.
    let mut local = vec![XentShardStats::default(); rows];
    let mut kg = vec![0f32; rows * classes];
    // SAFETY: buffers of the sizes passed.
    unsafe {
        let (l, p) = (labels.as_ptr(), kg.as_mut_ptr());
        assert_eq!(
            xent_shard_stats_keep(
                logits.as_ptr(),
                rows,
                classes,
                classes,
                0,
                classes,
                l,
                &o,
                local.as_mut_ptr(),
                p,
                classes
            ),
            0
        );
        let s = xent_shard_backward_kept(
            p,
            rows,
            classes,
            classes,
            0,
            classes,
            l,
            &o,
            local.as_ptr(),
            a.as_ptr(),
            up.as_ptr(),
            p,
            classes,
        );
        assert_eq!(s, 0);
    }
    for (x, y) in kg.iter().zip(&g) {
        assert!((x - y).abs() <= 1e-6, "kept shard gradient {x} vs {y}");
    }
}

/// xent's task context, handed to the pool's threads.
#[derive(Clone, Copy)]
struct Ctx(*mut c_void);
// SAFETY: xent's parallel_for contract: its tasks may run on any thread.
unsafe impl Send for Ctx {}

/// A caller's pool that runs the tasks on two scoped threads.
unsafe extern "C" fn two_threads(_: *mut c_void, n: usize, task: XentTaskFn, ctx: *mut c_void) {
    let task = task.expect("a task");
    let ctx = Ctx(ctx);
    std::thread::scope(|s| {
        for half in 0..2 {
            s.spawn(move || {
                let ctx = ctx;
                for i in (half..n).step_by(2) {
                    // SAFETY: xent's task and context, alive until we return.
                    unsafe { task(ctx.0, i) };
                }
            });
        }
    });
}

#[test]
fn a_caller_pool_on_two_threads_gives_the_inline_bits() {
    // Two blocks of rows (blocks hold 16384 logits).
    let (rows, cols) = (3usize, 6000usize);
    let logits: Vec<f32> = (0..rows * cols).map(|i| ((i * 31) % 97) as f32 * 0.05).collect();
    let labels = [5i32, 100, 5999];
    let run = |o: &XentOptions| {
        let (mut loss, mut g) = ([0f32], vec![0f32; rows * cols]);
        // SAFETY: buffers of the sizes passed.
        let s = unsafe {
            xent_forward_backward(
                logits.as_ptr(),
                rows,
                cols,
                cols,
                labels.as_ptr(),
                o,
                loss.as_mut_ptr(),
                null_mut(),
                null_mut(),
                g.as_mut_ptr(),
                cols,
            )
        };
        assert_eq!(s, 0);
        (loss[0].to_bits(), g.iter().map(|x| x.to_bits()).collect::<Vec<_>>())
    };
    let mut o = xent_options_default();
    o.num_threads = 1;
    let inline = run(&o);
    o.parallel_for = Some(two_threads);
    assert!(run(&o) == inline, "the pool changed the result");
}

//! Stress: 8 threads call every C function at once, for
//! `XENT_STRESS_SECONDS` (default 30), on a fixed set of valid and invalid
//! calls whose results were first recorded by serial calls. Every
//! concurrent call must return the serial status and the same output bytes,
//! and a failing call's `xent_last_error()` must be its own message (each
//! invalid call has a distinct one), never another thread's.

use core::ffi::{CStr, c_void};
use core::ptr::{null, null_mut};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use xent::capi::*;

mod support;
use support::{Rng, bytes, last_error};

type Out = (XentStatus, Vec<u8>, String);
type Run = Box<dyn Fn() -> Out + Send + Sync>;

/// The result of a call: its status, its outputs and, when it failed, the
/// message this thread then sees.
fn out(status: XentStatus, outputs: &[Vec<u8>]) -> Out {
    let msg = if status == XENT_STATUS_OK { String::new() } else { last_error() };
    (status, outputs.concat(), msg)
}

/// Options shared by the threads.
#[derive(Clone, Copy)]
struct Opt(XentOptions);

// SAFETY: the options hold no class weights and a NULL pool context, and the
// only pool function runs the tasks it is given on the calling thread.
unsafe impl Send for Opt {}
// SAFETY: as for Send; the options are only read.
unsafe impl Sync for Opt {}

impl Opt {
    fn ptr(&self) -> *const XentOptions {
        &self.0
    }
}

/// Options for a call: reduction, threads (1, 2 or all) and smoothing.
fn options(reduction: u32, threads: u32, smoothing: f32) -> Opt {
    let mut o = xent_options_default();
    o.reduction = reduction;
    o.num_threads = threads;
    o.label_smoothing = smoothing;
    o.z_loss_scale = 1e-4;
    Opt(o)
}

/// A caller pool that runs every task on the calling thread, last first.
unsafe extern "C" fn reverse_pool(_: *mut c_void, n: usize, task: XentTaskFn, ctx: *mut c_void) {
    for i in (0..n).rev() {
        // SAFETY: xent's task with its context.
        unsafe { task.expect("task")(ctx, i) };
    }
}

/// Every job: calls of each function, valid and invalid, small and large
/// (large enough for xent's own threads, or a caller's pool).
fn jobs() -> Vec<(String, Run)> {
    let mut rng = Rng(2024);
    let mut jobs: Vec<(String, Run)> = Vec::new();
    // Every invalid call's label is out of range by a value of its own.
    let mut uniq = 1000;
    let mut labels_for = |labels: &[i32], cols: usize, bad: bool| {
        let mut y = labels.to_vec();
        if bad {
            uniq += 1;
            let n = y.len();
            y[n / 2] = (cols + uniq) as i32;
        }
        y
    };
    for (k, &(rows, cols, threads)) in
        [(3usize, 5usize, 1u32), (40, 33, 2), (300, 1000, 2), (17, 2100, 0)].iter().enumerate()
    {
        let logits: Vec<f32> = (0..rows * cols).map(|_| (rng.normal() * 4.0) as f32).collect();
        let labels: Vec<i32> = (0..rows).map(|_| rng.below(cols) as i32).collect();
        let probs: Vec<f32> = (0..rows * cols).map(|_| rng.unit() as f32 / cols as f32).collect();
        let h16: Vec<u16> = logits.iter().map(|x| (x.to_bits() >> 16) as u16).collect();
        let red = (k % 3) as u32;
        let n_loss = if red == XENT_REDUCTION_NONE { rows } else { 1 };
        let o = options(red, threads, if k == 1 { 0.1 } else { 0.0 });
        let up = vec![0.5f32; n_loss];
        for variant in 0..2 {
            // Variant 1: invalid calls, each with a message of its own.
            let bad = variant == 1;
            let tag = format!("{rows}x{cols} t{threads}{}", if variant == 1 { " bad label" } else { "" });
            let (l, y, h, u) = (logits.clone(), labels_for(&labels, cols, bad), h16.clone(), up.clone());
            jobs.push((
                format!("forward_backward {tag}"),
                Box::new(move || {
                    let (mut loss, mut lse, mut am, mut g) =
                        (vec![0f32; n_loss], vec![0f32; rows], vec![0i32; rows], vec![0f32; rows * cols]);
                    // SAFETY: valid buffers of the sizes passed.
                    let s = unsafe {
                        xent_forward_backward(
                            l.as_ptr(),
                            rows,
                            cols,
                            cols,
                            y.as_ptr(),
                            o.ptr(),
                            loss.as_mut_ptr(),
                            lse.as_mut_ptr(),
                            am.as_mut_ptr(),
                            g.as_mut_ptr(),
                            cols,
                        )
                    };
                    out(s, &[bytes(&loss), bytes(&lse), bytes(&am), bytes(&g)])
                }),
            ));
            let (l, y, u2) = (logits.clone(), labels_for(&labels, cols, bad), u.clone());
            jobs.push((
                format!("forward + backward in place {tag}"),
                Box::new(move || {
                    let (mut loss, mut lse, mut g) = (vec![0f32; n_loss], vec![0f32; rows], l.clone());
                    // SAFETY: valid buffers; the backward is in place.
                    let s = unsafe {
                        let s = xent_forward(
                            l.as_ptr(),
                            rows,
                            cols,
                            cols,
                            y.as_ptr(),
                            o.ptr(),
                            loss.as_mut_ptr(),
                            lse.as_mut_ptr(),
                            null_mut(),
                        );
                        if s != XENT_STATUS_OK {
                            s
                        } else {
                            let p = g.as_mut_ptr();
                            xent_backward(p, rows, cols, cols, y.as_ptr(), o.ptr(), u2.as_ptr(), lse.as_ptr(), p, cols)
                        }
                    };
                    out(s, &[bytes(&loss), bytes(&lse), bytes(&g)])
                }),
            ));
            let y = labels_for(&labels, cols, bad);
            jobs.push((
                format!("bf16 and f16 {tag}"),
                Box::new(move || {
                    let (mut loss, mut g, mut loss2) =
                        (vec![0f32; n_loss], vec![0u16; rows * cols], vec![0f32; n_loss]);
                    // SAFETY: valid buffers of the sizes passed.
                    let s = unsafe {
                        let s = xent_forward_backward_bf16(
                            h.as_ptr(),
                            rows,
                            cols,
                            cols,
                            y.as_ptr(),
                            o.ptr(),
                            loss.as_mut_ptr(),
                            null_mut(),
                            null_mut(),
                            g.as_mut_ptr(),
                            cols,
                        );
                        if s != XENT_STATUS_OK {
                            s
                        } else {
                            xent_forward_f16(
                                h.as_ptr(),
                                rows,
                                cols,
                                cols,
                                y.as_ptr(),
                                o.ptr(),
                                loss2.as_mut_ptr(),
                                null_mut(),
                                null_mut(),
                            )
                        }
                    };
                    out(s, &[bytes(&loss), bytes(&g), bytes(&loss2)])
                }),
            ));
            let (l, y) = (logits.clone(), labels_for(&labels, cols, bad));
            jobs.push((
                format!("shard stats, merge, loss, backward {tag}"),
                Box::new(move || {
                    let half = cols / 2;
                    let (mut a, mut b) = (vec![XentShardStats::default(); rows], vec![XentShardStats::default(); rows]);
                    let (mut loss, mut g) = (vec![0f32; n_loss], vec![0f32; rows * cols]);
                    let upv = vec![1.0f32; n_loss];
                    // SAFETY: valid buffers; each shard is a view of the rows.
                    let s = unsafe {
                        let mut s = xent_shard_stats(
                            l.as_ptr(),
                            rows,
                            half,
                            cols,
                            0,
                            cols,
                            y.as_ptr(),
                            o.ptr(),
                            a.as_mut_ptr(),
                        );
                        if s == XENT_STATUS_OK {
                            s = xent_shard_stats(
                                l.as_ptr().add(half),
                                rows,
                                cols - half,
                                cols,
                                half,
                                cols,
                                y.as_ptr(),
                                o.ptr(),
                                b.as_mut_ptr(),
                            );
                        }
                        if s == XENT_STATUS_OK {
                            xent_shard_stats_merge(b.as_ptr(), a.as_mut_ptr(), rows);
                            s = xent_shard_loss(
                                a.as_ptr(),
                                rows,
                                cols,
                                y.as_ptr(),
                                o.ptr(),
                                loss.as_mut_ptr(),
                                null_mut(),
                            );
                        }
                        if s == XENT_STATUS_OK {
                            s = xent_shard_backward(
                                l.as_ptr(),
                                rows,
                                cols,
                                cols,
                                0,
                                cols,
                                y.as_ptr(),
                                o.ptr(),
                                a.as_ptr(),
                                upv.as_ptr(),
                                g.as_mut_ptr(),
                                cols,
                            );
                        }
                        s
                    };
                    out(s, &[bytes(&a), bytes(&loss), bytes(&g)])
                }),
            ));
            let (l, p) = (logits.clone(), probs.clone());
            let mut op = o;
            if bad {
                // An invalid option with a value unique to this job.
                op.0.label_smoothing = 2.0 + k as f32;
            }
            if k == 3 {
                op.0.parallel_for = Some(reverse_pool);
            }
            jobs.push((
                format!("soft forward_backward {tag}"),
                Box::new(move || {
                    let (mut loss, mut g) = (vec![0f32; n_loss], vec![0f32; rows * cols]);
                    // SAFETY: valid buffers of the sizes passed.
                    let s = unsafe {
                        xent_soft_forward_backward(
                            l.as_ptr(),
                            rows,
                            cols,
                            cols,
                            p.as_ptr(),
                            cols,
                            op.ptr(),
                            loss.as_mut_ptr(),
                            null_mut(),
                            null_mut(),
                            g.as_mut_ptr(),
                            cols,
                        )
                    };
                    out(s, &[bytes(&loss), bytes(&g)])
                }),
            ));
            let dim = 8 + k;
            let hidden: Vec<f32> = (0..rows * dim).map(|_| rng.normal() as f32).collect();
            let weight: Vec<f32> = (0..cols * dim).map(|_| (rng.normal() * 0.3) as f32).collect();
            let y = labels_for(&labels, cols, bad);
            jobs.push((
                format!("linear forward_backward {tag}"),
                Box::new(move || {
                    let mut loss = vec![0f32; n_loss];
                    let (mut gh, mut gw, mut gb) = (vec![0f32; rows * dim], vec![0f32; cols * dim], vec![0f32; cols]);
                    let size = xent_linear_workspace_size(rows, dim, cols, o.ptr());
                    // SAFETY: valid buffers; the library allocates the workspace.
                    let s = unsafe {
                        xent_linear_forward_backward(
                            hidden.as_ptr(),
                            rows,
                            dim,
                            dim,
                            weight.as_ptr(),
                            cols,
                            dim,
                            null(),
                            y.as_ptr(),
                            o.ptr(),
                            loss.as_mut_ptr(),
                            null_mut(),
                            null_mut(),
                            gh.as_mut_ptr(),
                            dim,
                            gw.as_mut_ptr(),
                            dim,
                            gb.as_mut_ptr(),
                            null_mut(),
                            0,
                        )
                    };
                    out(s, &[bytes(&loss), bytes(&gh), bytes(&gw), bytes(&gb), bytes(&[size])])
                }),
            ));
        }
    }
    jobs.push((
        "version, status messages, isa, defaults".into(),
        Box::new(|| {
            // SAFETY: static strings.
            let mut text = unsafe { CStr::from_ptr(xent_version()) }.to_string_lossy().into_owned();
            for s in 0..9 {
                // SAFETY: static strings for every status value.
                text += &unsafe { CStr::from_ptr(xent_status_message(s)) }.to_string_lossy();
            }
            // SAFETY: a static string.
            text += &unsafe { CStr::from_ptr(xent_active_isa()) }.to_string_lossy();
            text += &format!("{:?}", xent_options_default().struct_size);
            (XENT_STATUS_OK, text.into_bytes(), String::new())
        }),
    ));
    jobs
}

#[test]
fn eight_threads_calling_everything_match_the_serial_calls() {
    let seconds: u64 = std::env::var("XENT_STRESS_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(30);
    let jobs = jobs();
    let serial: Vec<Out> = jobs.iter().map(|(_, run)| run()).collect();
    let failing = serial.iter().filter(|o| o.0 != XENT_STATUS_OK).count();
    assert!(failing >= 8, "the stress set has invalid calls");
    let mut msgs: Vec<&String> = serial.iter().filter(|o| o.0 != XENT_STATUS_OK).map(|o| &o.2).collect();
    msgs.sort();
    msgs.dedup();
    assert_eq!(msgs.len(), failing, "each invalid call has a message of its own");
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let calls = AtomicU64::new(0);
    let failed = AtomicBool::new(false);
    std::thread::scope(|s| {
        for t in 0..8u64 {
            let (jobs, serial, calls, failed) = (&jobs, &serial, &calls, &failed);
            s.spawn(move || {
                let mut rng = Rng(t + 1);
                while Instant::now() < deadline && !failed.load(Ordering::Relaxed) {
                    let k = rng.below(jobs.len());
                    let got = (jobs[k].1)();
                    if got != serial[k] {
                        failed.store(true, Ordering::Relaxed);
                        panic!(
                            "thread {t}, {}: status {} message {:?}, serially {} {:?} (outputs equal: {})",
                            jobs[k].0,
                            got.0,
                            got.2,
                            serial[k].0,
                            serial[k].2,
                            got.1 == serial[k].1
                        );
                    }
                    calls.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
    });
    println!(
        "{} concurrent calls over {} jobs in {seconds} s, all equal to the serial calls",
        calls.into_inner(),
        jobs.len()
    );
}

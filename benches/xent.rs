//! Criterion benchmarks: forward, backward (with and without the forward's
//! lse), fused and fused-in-place on the shapes, each beside a memcpy
//! of the same logits into the gradient buffer measured in the same run.
//! `bench/criterion_table.py` turns the results into the G logits/s and
//! ×memcpy table of BENCHMARKS.md.
//!
//! `XENT_BENCH_SHAPES=2048x32000,1x10` limits the shapes; `XENT_BENCH_THREADS`
//! sets the thread count (default 1).

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use xent::loss::*;

const SHAPES: &[(usize, usize)] =
    &[(2048, 32000), (512, 128_256), (16384, 1000), (262_144, 10), (65536, 100), (4096, 10), (64, 10), (1, 10)];

fn shapes() -> Vec<(usize, usize)> {
    match std::env::var("XENT_BENCH_SHAPES") {
        Ok(s) => s
            .split(',')
            .filter_map(|p| p.split_once('x'))
            .map(|(r, c)| (r.trim().parse().expect("rows"), c.trim().parse().expect("cols")))
            .collect(),
        Err(_) => SHAPES.to_vec(),
    }
}

fn data(rows: usize, cols: usize) -> (Vec<f32>, Vec<i32>) {
    let mut x = 0x1234_5678u32;
    let logits = (0..rows * cols)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 8) as f32 / (1u32 << 24) as f32 * 8.0 - 4.0
        })
        .collect();
    let labels = (0..rows).map(|i| ((i * 7919) % cols) as i32).collect();
    (logits, labels)
}

fn bench(c: &mut Criterion) {
    let threads: u32 = std::env::var("XENT_BENCH_THREADS").ok().and_then(|t| t.parse().ok()).unwrap_or(1);
    for (rows, cols) in shapes() {
        let (logits, labels) = data(rows, cols);
        let mut grad = vec![0.0f32; rows * cols];
        let mut work = logits.clone();
        let mut loss = [0.0f32];
        let mut lse = vec![0.0f32; rows];
        let opts = Options { num_threads: threads, ..Options::default() };
        let m = Matrix { data: &logits, rows, cols, stride: cols };
        let mut g = c.benchmark_group(format!("{rows}x{cols}/t{threads}"));
        g.throughput(Throughput::Elements((rows * cols) as u64));
        let big = rows * cols >= 1 << 24;
        g.sample_size(if big { 10 } else { 30 });
        g.measurement_time(Duration::from_secs(if big { 6 } else { 3 }));
        g.warm_up_time(Duration::from_secs(1));
        g.bench_function("memcpy", |b| b.iter(|| grad.copy_from_slice(black_box(&logits))));
        g.bench_function("forward", |b| {
            b.iter(|| {
                let out = ForwardOut { loss: &mut loss, lse: Some(&mut lse), argmax: None };
                forward(m, Targets::Labels(&labels), &opts, out).unwrap()
            })
        });
        let out = ForwardOut { loss: &mut loss, lse: Some(&mut lse), argmax: None };
        forward(m, Targets::Labels(&labels), &opts, out).unwrap();
        g.bench_function("backward", |b| {
            b.iter(|| {
                let io =
                    LogitsGrad::Separate { logits: m, grad: MatrixMut { data: &mut grad, rows, cols, stride: cols } };
                backward(io, Targets::Labels(&labels), &opts, Upstream { grad_loss: &[1.0], lse: None }).unwrap()
            })
        });
        // Given the forward's lse, as a training step calls it.
        g.bench_function("backward_lse", |b| {
            b.iter(|| {
                let io =
                    LogitsGrad::Separate { logits: m, grad: MatrixMut { data: &mut grad, rows, cols, stride: cols } };
                backward(io, Targets::Labels(&labels), &opts, Upstream { grad_loss: &[1.0], lse: Some(&lse) }).unwrap()
            })
        });
        g.bench_function("fused", |b| {
            b.iter(|| {
                let io =
                    LogitsGrad::Separate { logits: m, grad: MatrixMut { data: &mut grad, rows, cols, stride: cols } };
                let out = ForwardOut { loss: &mut loss, lse: None, argmax: None };
                forward_backward(io, Targets::Labels(&labels), &opts, out).unwrap()
            })
        });
        // In place: each iteration's input is the previous gradient, which is
        // as valid (and as costly) an input as the logits.
        g.bench_function("fused_in_place", |b| {
            b.iter(|| {
                let io = LogitsGrad::InPlace(MatrixMut { data: &mut work, rows, cols, stride: cols });
                let out = ForwardOut { loss: &mut loss, lse: None, argmax: None };
                forward_backward(io, Targets::Labels(&labels), &opts, out).unwrap()
            })
        });
        // One rank's work in a vocabulary-sharded step on a shard of this
        // size: statistics, then the gradient from (here: its own) merged
        // statistics; against `fused` on the same logits.
        let mut stats = vec![xent::loss::shard::ShardStats::default(); rows];
        let layout = xent::loss::shard::ShardLayout { class_offset: 0, total_classes: cols };
        g.bench_function("shard_stats_backward", |b| {
            b.iter(|| {
                xent::loss::shard::shard_stats(m, layout, &labels, &opts, &mut stats).unwrap();
                let io =
                    LogitsGrad::Separate { logits: m, grad: MatrixMut { data: &mut grad, rows, cols, stride: cols } };
                xent::loss::shard::shard_backward(io, layout, &labels, &opts, &stats, &[1.0]).unwrap()
            })
        });
        // The same with the exps kept: statistics into the gradient buffer,
        // then the gradient in place there from the local and merged stats.
        let mut local = stats.clone();
        g.bench_function("shard_kept", |b| {
            b.iter(|| {
                let io =
                    LogitsGrad::Separate { logits: m, grad: MatrixMut { data: &mut grad, rows, cols, stride: cols } };
                xent::loss::shard::shard_stats_keep(io, layout, &labels, &opts, &mut local).unwrap();
                stats.copy_from_slice(&local);
                let io = LogitsGrad::InPlace(MatrixMut { data: &mut grad, rows, cols, stride: cols });
                xent::loss::shard::shard_backward_kept(io, layout, &labels, &opts, (&local, &stats), &[1.0]).unwrap()
            })
        });
        // bfloat16 logits and gradient (the same values rounded to bf16).
        let logits16: Vec<Bf16> = logits.iter().map(|&x| Bf16((x.to_bits() >> 16) as u16)).collect();
        let mut grad16 = vec![Bf16(0); rows * cols];
        let m16 = Matrix { data: &logits16, rows, cols, stride: cols };
        g.bench_function("fused_bf16", |b| {
            b.iter(|| {
                let io = LogitsGrad::Separate {
                    logits: m16,
                    grad: MatrixMut { data: &mut grad16, rows, cols, stride: cols },
                };
                let out = ForwardOut { loss: &mut loss, lse: None, argmax: None };
                forward_backward(io, Targets::Labels(&labels), &opts, out).unwrap()
            })
        });
        g.bench_function("forward_bf16", |b| {
            b.iter(|| {
                let out = ForwardOut { loss: &mut loss, lse: Some(&mut lse), argmax: None };
                forward(m16, Targets::Labels(&labels), &opts, out).unwrap()
            })
        });
        g.finish();
    }
}

/// Per-call overhead through the C ABI (option parsing, pointer checks,
/// panic guard included) on the smallest useful call.
fn capi_overhead(c: &mut Criterion) {
    use xent::capi::*;
    let logits = [0.5f32, -1.0, 2.0, 0.1, 0.0, 3.0, -2.0, 1.5, 0.7, -0.3];
    let label = [3i32];
    let mut grad = [0.0f32; 10];
    let mut loss = 0.0f32;
    let opts = xent_options_default();
    c.bench_function("capi/1x10/forward_backward", |b| {
        b.iter(|| {
            // SAFETY: every pointer is valid for the sizes passed.
            let s = unsafe {
                xent_forward_backward(
                    black_box(logits.as_ptr()),
                    1,
                    10,
                    10,
                    label.as_ptr(),
                    &opts,
                    &mut loss,
                    core::ptr::null_mut(),
                    core::ptr::null_mut(),
                    grad.as_mut_ptr(),
                    10,
                )
            };
            assert_eq!(s, XENT_STATUS_OK);
        })
    });
}

criterion_group!(benches, bench, capi_overhead);
criterion_main!(benches);

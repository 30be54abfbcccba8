//! Criterion benchmark of the fused linear + cross-entropy call beside its
//! floor: the three plain matrixmultiply products the unfused computation
//! needs (logits = H·Wᵀ, grad_hidden = G·W, grad_weight = Gᵀ·H), on the same
//! data in the same run.
//!
//! `XENT_BENCH_LINEAR=1024x1024x32000` sets rows×dim×classes (comma-separated
//! list); `XENT_BENCH_THREADS` the thread count (default 1).

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use xent::linear::*;
use xent::loss::*;

#[path = "common/plain_gemm.rs"]
mod plain_gemm;
use plain_gemm::{fill, three_products};

fn shapes() -> Vec<(usize, usize, usize)> {
    let s = std::env::var("XENT_BENCH_LINEAR").unwrap_or_else(|_| "1024x1024x32000".into());
    s.split(',')
        .map(|p| {
            let v: Vec<usize> = p.split('x').map(|x| x.trim().parse().expect("rows x dim x classes")).collect();
            (v[0], v[1], v[2])
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let threads: u32 = std::env::var("XENT_BENCH_THREADS").ok().and_then(|t| t.parse().ok()).unwrap_or(1);
    for (rows, dim, classes) in shapes() {
        let hidden = fill(rows * dim, 1, 1.0);
        let weight = fill(classes * dim, 2, 1.0 / (dim as f32).sqrt());
        let labels: Vec<i32> = (0..rows).map(|i| ((i * 7919) % classes) as i32).collect();
        let mut logits = vec![0.0f32; rows * classes];
        let mut gh = vec![0.0f32; rows * dim];
        let mut gw = vec![0.0f32; classes * dim];
        let mut gb = vec![0.0f32; classes];
        let mut loss = [0.0f32];
        let opts = Options { num_threads: threads, ..Options::default() };
        let lin = Linear {
            hidden: Matrix { data: &hidden, rows, cols: dim, stride: dim },
            weight: Matrix { data: &weight, rows: classes, cols: dim, stride: dim },
            bias: None,
        };
        let mut g = c.benchmark_group(format!("linear/{rows}x{dim}x{classes}/t{threads}"));
        // Throughput in multiply-adds of the three products.
        g.throughput(Throughput::Elements(3 * (rows * dim * classes) as u64));
        g.sample_size(10);
        g.measurement_time(Duration::from_secs(10));
        g.warm_up_time(Duration::from_secs(1));
        g.bench_function("three_gemms", |b| {
            b.iter(|| {
                three_products((rows, dim, classes), &hidden, &weight, &mut logits, &mut gh, &mut gw);
                black_box(&gw);
            })
        });
        let mut ws = vec![0.0f32; workspace_len(rows, dim, classes).expect("size")];
        g.bench_function("fused_linear", |b| {
            b.iter(|| {
                let out = ForwardOut { loss: &mut loss, lse: None, argmax: None };
                let grads = LinearGrads {
                    hidden: Some(MatrixMut { data: &mut gh, rows, cols: dim, stride: dim }),
                    weight: Some(MatrixMut { data: &mut gw, rows: classes, cols: dim, stride: dim }),
                    bias: Some(&mut gb),
                };
                linear_forward_backward(lin, &labels, &opts, out, grads, Some(&mut ws)).unwrap();
            })
        });
        g.bench_function("fused_linear_forward", |b| {
            b.iter(|| {
                let out = ForwardOut { loss: &mut loss, lse: None, argmax: None };
                linear_forward(lin, &labels, &opts, out, Some(&mut ws)).unwrap();
            })
        });
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);

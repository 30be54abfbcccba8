//! Median times (ns per logit, one thread) of the fused call and of the
//! backward call into a separate gradient (computing each row's lse, and
//! given the forward's), on logits spread uniformly over
//! a given width below their max, for comparing two builds run alternately
//! on a noisy machine (see BENCHMARKS.md §10).
//!
//!     cargo run --release --example timings -- 6 100     # widths to try
//!     XENT_TIMINGS_SHAPES=262144x10 cargo run --release --example timings
//!     XENT_TIMINGS_SHAPES=4x32000 XENT_TIMINGS_CALLS=1001 cargo run --release --example timings -- 6

use std::time::Instant;

use xent::loss::*;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let widths: Vec<f32> = std::env::args().skip(1).map(|v| v.parse().expect("a width")).collect();
    let widths = if widths.is_empty() { vec![6.0, 100.0] } else { widths };
    let o = Options { num_threads: 1, ..Options::default() };
    let shapes: Vec<(usize, usize)> = std::env::var("XENT_TIMINGS_SHAPES")
        .unwrap_or_else(|_| "2048x32000,16384x1000,262144x10".into())
        .split(',')
        .map(|s| {
            let (r, c) = s.split_once('x').expect("ROWSxCOLS");
            (r.parse().expect("rows"), c.parse().expect("cols"))
        })
        .collect();
    // Calls timed per median: more for logits that fit in the caches.
    let calls: usize = std::env::var("XENT_TIMINGS_CALLS").map_or(9, |v| v.parse().expect("a count"));
    for (rows, cols) in shapes {
        for &w in &widths {
            let f: Vec<f32> = (0..rows * cols).map(|i| -w * ((i * 7919) % 32768) as f32 / 32768.0).collect();
            let labels: Vec<i32> = (0..rows).map(|i| (i * 31 % cols) as i32).collect();
            let mut g = vec![0f32; rows * cols];
            let mut loss = [0f32];
            let mut lse = vec![0f32; rows];
            let logits = Matrix { data: &f, rows, cols, stride: cols };
            let out = ForwardOut { loss: &mut loss, lse: Some(&mut lse), argmax: None };
            forward(logits, Targets::Labels(&labels), &o, out).expect("valid");
            let (mut fused, mut back, mut back_lse) = (vec![], vec![], vec![]);
            for _ in 0..calls {
                let io = LogitsGrad::Separate {
                    logits: Matrix { data: &f, rows, cols, stride: cols },
                    grad: MatrixMut { data: &mut g, rows, cols, stride: cols },
                };
                let t = Instant::now();
                let out = ForwardOut { loss: &mut loss, lse: None, argmax: None };
                forward_backward(io, Targets::Labels(&labels), &o, out).expect("valid");
                fused.push(t.elapsed().as_secs_f64());
                let io = LogitsGrad::Separate {
                    logits: Matrix { data: &f, rows, cols, stride: cols },
                    grad: MatrixMut { data: &mut g, rows, cols, stride: cols },
                };
                let t = Instant::now();
                backward(io, Targets::Labels(&labels), &o, Upstream { grad_loss: &[1.0], lse: None }).expect("valid");
                back.push(t.elapsed().as_secs_f64());
                let io = LogitsGrad::Separate {
                    logits: Matrix { data: &f, rows, cols, stride: cols },
                    grad: MatrixMut { data: &mut g, rows, cols, stride: cols },
                };
                let t = Instant::now();
                backward(io, Targets::Labels(&labels), &o, Upstream { grad_loss: &[1.0], lse: Some(&lse) })
                    .expect("valid");
                back_lse.push(t.elapsed().as_secs_f64());
            }
            let per = 1e9 / (rows * cols) as f64;
            println!(
                "{rows}x{cols} width {w}: fused {:.3} ns/logit, backward {:.3} ns/logit, backward given lse {:.3} ns/logit",
                median(fused) * per,
                median(back) * per,
                median(back_lse) * per
            );
        }
    }
}

//! Peak resident memory of a whole process running one fused linear +
//! cross-entropy forward+backward, beside the bytes of its inputs and outputs.
//!
//!     cargo run --release --example linear_peak_memory -- 4096 1024 32000 [threads]
//!
//! Prints the process's high-water mark (VmHWM from /proc/self/status, Linux),
//! the inputs + outputs, and the difference: everything else the process
//! needed, the workspace and the matrix products' packing buffers included.

use std::time::Instant;

use xent::linear::*;
use xent::loss::*;

fn status_kib(key: &str) -> usize {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn main() {
    let a: Vec<usize> = std::env::args().skip(1).map(|v| v.parse().expect("numbers")).collect();
    let (rows, dim, classes) = match a[..] {
        [r, d, c, ..] => (r, d, c),
        _ => (4096, 1024, 32000),
    };
    let threads = a.get(3).copied().unwrap_or(1) as u32;
    let mut x = 1u32;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        (x >> 8) as f32 / (1u32 << 24) as f32 * 2.0 - 1.0
    };
    let hidden: Vec<f32> = (0..rows * dim).map(|_| next()).collect();
    let scale = 1.0 / (dim as f32).sqrt();
    let weight: Vec<f32> = (0..classes * dim).map(|_| next() * scale).collect();
    let bias: Vec<f32> = (0..classes).map(|_| next() * 0.1).collect();
    let labels: Vec<i32> = (0..rows).map(|i| ((i * 7919) % classes) as i32).collect();
    let mut gh = vec![1.0f32; rows * dim];
    let mut gw = vec![1.0f32; classes * dim];
    let mut gb = vec![1.0f32; classes];
    let mut loss = [0.0f32];
    let io = 4 * (hidden.len() + weight.len() + bias.len() + labels.len() + gh.len() + gw.len() + gb.len());
    let before = status_kib("VmRSS:");
    let lin = Linear {
        hidden: Matrix { data: &hidden, rows, cols: dim, stride: dim },
        weight: Matrix { data: &weight, rows: classes, cols: dim, stride: dim },
        bias: Some(&bias),
    };
    let grads = LinearGrads {
        hidden: Some(MatrixMut { data: &mut gh, rows, cols: dim, stride: dim }),
        weight: Some(MatrixMut { data: &mut gw, rows: classes, cols: dim, stride: dim }),
        bias: Some(&mut gb),
    };
    let opts = Options { num_threads: threads, ..Options::default() };
    let t = Instant::now();
    let out = ForwardOut { loss: &mut loss, lse: None, argmax: None };
    linear_forward_backward(lin, &labels, &opts, out, grads, None).expect("valid call");
    let secs = t.elapsed().as_secs_f64();
    let peak = status_kib("VmHWM:") * 1024;
    let mib = |b: usize| b as f64 / f64::from(1 << 20);
    println!(
        "{rows}x{dim}x{classes}, {threads} thread(s): loss {:.6}, {:.2} s; logits would be {:.0} MiB",
        loss[0],
        secs,
        mib(4 * rows * classes)
    );
    println!(
        "process peak {:.1} MiB = inputs + outputs {:.1} MiB + {:.1} MiB (resident before the call: {:.1} MiB)",
        mib(peak),
        mib(io),
        mib(peak.saturating_sub(io)),
        mib(before * 1024)
    );
}

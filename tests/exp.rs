//! The vector exp against float64, over every float in [ln FLT_MIN, 0].

use xent::kernels::{Isa, exp_lanes};

const BATCH: usize = 1 << 20;

/// Distance in units in the last place of the f32 nearest `exact`.
fn ulps(got: f32, exact: f64) -> f64 {
    let nearest = exact as f32;
    let ulp = f64::from(f32::from_bits(nearest.to_bits() + 1) - nearest);
    (f64::from(got) - exact).abs() / ulp
}

/// Sweeps the bit patterns `[lo, hi)` and returns the worst ULP error seen.
fn sweep(isa: Isa, lo: u32, hi: u32, step: u32) -> (f64, f32) {
    let mut xs = Vec::with_capacity(BATCH);
    let mut out = vec![0.0f32; BATCH];
    let mut worst = (0.0, 0.0);
    let mut bits = lo;
    while bits < hi {
        xs.clear();
        while xs.len() < BATCH && bits < hi {
            xs.push(f32::from_bits(bits));
            bits = bits.saturating_add(step);
        }
        exp_lanes(isa, &xs, &mut out[..xs.len()]);
        for (&x, &y) in xs.iter().zip(&out) {
            let e = ulps(y, f64::from(x).exp());
            if e > worst.0 {
                worst = (e, x);
            }
        }
    }
    worst
}

#[test]
fn exp_is_within_2_ulp_on_the_softmax_domain_exhaustively() {
    // Negative floats from -0.0 up to ln(FLT_MIN) = -87.33654: every one.
    let lo = 0x8000_0000u32;
    let hi = (-87.336_54f32).to_bits() + 1;
    let isa = Isa::active();
    let mid = lo + (hi - lo) / 2;
    let (a, b) = std::thread::scope(|sc| {
        let h = sc.spawn(|| sweep(isa, lo, mid, 1));
        let b = sweep(isa, mid, hi, 1);
        (h.join().unwrap(), b)
    });
    let worst = if a.0 > b.0 { a } else { b };
    println!("{}: worst {:.3} ulp at {}", isa.name(), worst.0, worst.1);
    assert!(worst.0 <= 2.0, "{worst:?}");
}

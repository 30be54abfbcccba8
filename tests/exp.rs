//! The vector exp against float64, over every float in [ln FLT_MIN, 0].

use xent::kernels::{Isa, exp_lanes, log_lanes};

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
    // Two threads where there are threads (not on wasm32-wasip1).
    let (a, b) =
        std::thread::scope(|sc| match std::thread::Builder::new().spawn_scoped(sc, || sweep(isa, lo, mid, 1)) {
            Ok(h) => {
                let b = sweep(isa, mid, hi, 1);
                (h.join().unwrap(), b)
            }
            Err(_) => (sweep(isa, lo, mid, 1), sweep(isa, mid, hi, 1)),
        });
    let worst = if a.0 > b.0 { a } else { b };
    println!("{}: worst {:.3} ulp at {}", isa.name(), worst.0, worst.1);
    assert!(worst.0 <= 2.0, "{worst:?}");
}

#[test]
fn exp_is_exactly_zero_below_ln_flt_min_and_propagates_nan() {
    let xs = [-87.34f32, -88.0, -100.0, -1e4, f32::NEG_INFINITY, f32::NAN, 0.0, -0.0];
    for isa in Isa::available() {
        let mut out = [1.0f32; 8];
        exp_lanes(isa, &xs, &mut out);
        assert_eq!(&out[..5], &[0.0; 5], "{}", isa.name());
        assert!(out[5].is_nan());
        assert_eq!(out[6], 1.0);
        assert_eq!(out[7], 1.0);
    }
}

/// Every path must give the bits of the portable path (a strided sweep over
/// the softmax domain and beyond, which the scalar path is too slow to sweep
/// exhaustively).
#[test]
fn exp_and_log_give_identical_bits_on_every_path() {
    let xs: Vec<f32> = (0u32..(1 << 22)).map(|i| f32::from_bits(0x8000_0000 + i * 509)).collect();
    let pos: Vec<f32> = (0u32..(1 << 22)).map(|i| f32::from_bits(0x0080_0000 + i * 503)).collect();
    let mut want = vec![0.0f32; xs.len()];
    let mut want_log = vec![0.0f32; pos.len()];
    exp_lanes(Isa::Scalar, &xs, &mut want);
    log_lanes(Isa::Scalar, &pos, &mut want_log);
    for isa in Isa::available() {
        let mut got = vec![0.0f32; xs.len()];
        exp_lanes(isa, &xs, &mut got);
        for (i, (a, b)) in got.iter().zip(&want).enumerate() {
            assert_eq!(a.to_bits(), b.to_bits(), "exp({}) on {}", xs[i], isa.name());
        }
        log_lanes(isa, &pos, &mut got);
        for (i, (a, b)) in got.iter().zip(&want_log).enumerate() {
            assert_eq!(a.to_bits(), b.to_bits(), "ln({}) on {}", pos[i], isa.name());
        }
    }
}

#[test]
fn log_is_within_2_ulp_on_positive_normals() {
    let isa = Isa::active();
    // Every float in [1, 128) (where softmax sums of up to 128 classes live),
    // and a strided sweep over all positive normal floats.
    let dense: Vec<f32> = (1.0f32.to_bits()..128.0f32.to_bits()).map(f32::from_bits).collect();
    let sparse: Vec<f32> = (0x0080_0000u32..0x7f80_0000).step_by(97).map(f32::from_bits).collect();
    for xs in [dense, sparse] {
        let mut out = vec![0.0f32; xs.len()];
        log_lanes(isa, &xs, &mut out);
        let mut worst = (0.0, 0.0);
        for (&x, &y) in xs.iter().zip(&out) {
            let exact = f64::from(x).ln();
            if exact == 0.0 {
                assert_eq!(y, 0.0);
                continue;
            }
            let e = ulps(y, exact);
            if e > worst.0 {
                worst = (e, x);
            }
        }
        println!("{}: log worst {:.3} ulp at {}", isa.name(), worst.0, worst.1);
        assert!(worst.0 <= 2.0, "{worst:?}");
    }
}

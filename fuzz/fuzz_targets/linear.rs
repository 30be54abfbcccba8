//! The fused linear calls (`xent_linear_forward`, `_forward_backward`,
//! `xent_linear_workspace_size`): arbitrary rows, dim, classes and strides,
//! bias or not, each gradient present or not, workspaces of any size and
//! alignment (or none), every option and pool, NULL / misaligned /
//! overlapping buffers. Hidden and weight values are small integers and
//! quarters, so every product is exact in float32 and the logits equal the
//! float64 oracle's; the bias brings ±1e4, −inf masks and NaN.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xent_fuzz::*;

fn small(inp: &mut Input) -> f32 {
    (inp.byte() % 9) as f32 - 4.0
}

fuzz_target!(|data: &[u8]| {
    let mut inp = Input::new(data);
    let mut ex = Expect::default();
    let fused = !inp.one_in(3);
    let rows = match inp.byte() % 8 {
        0..=5 => inp.below(9),
        _ => 9 + inp.below(40),
    };
    let max_dim = if inp.one_in(4) { 300 } else { 24 };
    let dim = 1 + inp.below(max_dim);
    let max_classes = if inp.one_in(4) { 300 } else { 40 };
    let classes = 1 + inp.below(max_classes);
    let hs = stride(&mut inp, rows, dim, &mut ex, "hidden_row_stride");
    let ws = stride(&mut inp, classes, dim, &mut ex, "weight_row_stride");
    let mut o = options(&mut inp, &mut ex, classes);
    let n_loss = if o.reduction == xent::loss::Reduction::None { rows } else { 1 };
    let h_ext = extent(rows, dim, hs);
    let w_ext = extent(classes, dim, ws);
    if h_ext.is_none() || w_ext.is_none() {
        assert!(!ex.defects.is_empty(), "an unaddressable shape without a defect");
    }
    let mut hidden = exact(h_ext.unwrap_or(16), f32::from_bits(0x7fc0_dead));
    if h_ext.is_some() {
        for i in 0..rows {
            for j in 0..dim {
                hidden[i * hs + j] = small(&mut inp);
            }
        }
    }
    let mut weight = exact(w_ext.unwrap_or(16), f32::from_bits(0x7fc0_dead));
    if w_ext.is_some() {
        for i in 0..classes {
            for j in 0..dim {
                weight[i * ws + j] = small(&mut inp) * 0.25;
            }
        }
    }
    let with_bias = inp.one_in(2);
    let mut bias = exact(if with_bias { classes } else { 0 }, 0.0f32);
    for b in bias.iter_mut() {
        *b = match inp.byte() % 16 {
            0 => f32::NEG_INFINITY,
            1 => 1e4,
            2 => f32::NAN,
            _ => small(&mut inp),
        };
    }
    let mut labels = labels(&mut inp, &mut ex, rows, classes, o.ignore_index);

    // Outputs: each gradient present or not, with its own stride.
    let want = |inp: &mut Input| fused && !inp.one_in(4);
    let (want_gh, want_gw, want_gb) = (want(&mut inp), want(&mut inp), want(&mut inp));
    let ghs = if want_gh { stride(&mut inp, rows, dim, &mut ex, "grad_hidden_row_stride") } else { dim };
    let gws = if want_gw { stride(&mut inp, classes, dim, &mut ex, "grad_weight_row_stride") } else { dim };
    let gh_len = if want_gh { extent(rows, dim, ghs) } else { Some(0) };
    let gw_len = if want_gw { extent(classes, dim, gws) } else { Some(0) };
    if gh_len.is_none() || gw_len.is_none() {
        assert!(!ex.defects.is_empty(), "an unaddressable gradient without a defect");
    }
    let mut gh = exact(gh_len.unwrap_or(16), f32::from_bits(0x7fc0_f00d));
    let mut gw = exact(gw_len.unwrap_or(16), f32::from_bits(0x7fc0_f00d));
    let mut gb = exact(if want_gb { classes } else { 0 }, f32::from_bits(0x7fc0_f00d));
    let mut loss = exact(n_loss, f32::from_bits(0x7fc0_0001));
    let want_lse = inp.one_in(2);
    let want_argmax = inp.one_in(2);
    let mut lse = exact(if want_lse { rows } else { 0 }, 0.0f32);
    let mut argmax = exact(if want_argmax { rows } else { 0 }, -7i32);

    // The workspace: none, the documented size, one row's, or smaller.
    let one_row = xent_linear_workspace_size(1, dim, classes, core::ptr::null());
    let full = xent_linear_workspace_size(rows, dim, classes, core::ptr::null());
    let ws_bytes = match inp.byte() % 8 {
        0..=3 => None,
        4 => Some(full),
        5 => Some(one_row),
        6 => Some(one_row + inp.below(4096)),
        _ => Some(inp.below(one_row.max(1))),
    };
    if let Some(n) = ws_bytes
        && n < one_row
    {
        ex.tolerated = Some(XENT_STATUS_INVALID_ARGUMENT);
    }
    let ws_shift = inp.below(8);
    let mut workspace = exact(ws_bytes.map_or(0, |n| n + ws_shift), 0u8);

    // Pointer defects: NULL or misaligned inputs, a gradient over the hidden.
    let p_hidden = place(&mut inp, &mut ex, "hidden", h_ext.unwrap_or(1), 4);
    let p_weight = place(&mut inp, &mut ex, "weight", w_ext.unwrap_or(1), 4);
    let p_loss = place(&mut inp, &mut ex, "loss", n_loss, 4);
    let p_hidden = if p_hidden == Place::Alias { Place::Own } else { p_hidden };
    let p_weight = if p_weight == Place::Alias { Place::Own } else { p_weight };
    let p_loss = settle(p_loss, &mut ex, "loss overlaps the hidden", n_loss, p_hidden, h_ext.unwrap_or(1));
    let p_gw = if want_gw { inp.pick(&[Place::Own, Place::Own, Place::Own, Place::Alias]) } else { Place::Own };
    let p_gw =
        settle(p_gw, &mut ex, "grad_weight overlaps the hidden", gw_len.unwrap_or(1), p_hidden, h_ext.unwrap_or(1));

    let hidden_start = hidden.as_mut_ptr() as *mut u8;
    let opts = o.arg();
    let hp = resolve(p_hidden, &mut hidden, core::ptr::null_mut());
    let wp = resolve(p_weight, &mut weight, core::ptr::null_mut());
    let bp = if with_bias { bias.as_ptr() } else { core::ptr::null() };
    let lossp = resolve(p_loss, &mut loss, hidden_start);
    let lsep = if want_lse { lse.as_mut_ptr() } else { core::ptr::null_mut() };
    let amp = if want_argmax { argmax.as_mut_ptr() } else { core::ptr::null_mut() };
    let ghp = if want_gh { gh.as_mut_ptr() } else { core::ptr::null_mut() };
    let gwp = if want_gw { resolve(p_gw, &mut gw, hidden_start) } else { core::ptr::null_mut() };
    let gbp = if want_gb { gb.as_mut_ptr() } else { core::ptr::null_mut() };
    let (wsp, wsn) = match ws_bytes {
        Some(n) => ((workspace.as_mut_ptr()).wrapping_add(ws_shift) as *mut core::ffi::c_void, n),
        None => (core::ptr::null_mut(), 0),
    };
    let snap = |h: &[f32], w: &[f32], l: &[f32], a: &[f32], b: &[i32], gh: &[f32], gw: &[f32], gb: &[f32]| {
        vec![bytes(h), bytes(w), bytes(l), bytes(a), bytes(b), bytes(gh), bytes(gw), bytes(gb)]
    };
    let before = snap(&hidden, &weight, &loss, &lse, &argmax, &gh, &gw, &gb);
    let lp = labels.as_mut_ptr() as *const i32;
    // SAFETY: pointers are NULL, misaligned, aliases or exact buffers.
    let status = unsafe {
        if fused {
            xent_linear_forward_backward(
                hp,
                rows,
                dim,
                hs,
                wp,
                classes,
                ws,
                bp,
                lp,
                opts.ptr(),
                lossp,
                lsep,
                amp,
                ghp,
                ghs,
                gwp,
                gws,
                gbp,
                wsp,
                wsn,
            )
        } else {
            xent_linear_forward(hp, rows, dim, hs, wp, classes, ws, bp, lp, opts.ptr(), lossp, lsep, amp, wsp, wsn)
        }
    };
    let after = snap(&hidden, &weight, &loss, &lse, &argmax, &gh, &gw, &gb);
    ex.skipped = o.pool_skipped();
    ex.judge(status, &before, &after, &format!("linear fused={fused} rows={rows} dim={dim} classes={classes}"));
    drop(opts);
    if !ex.comparable(status) || ex.skipped {
        return;
    }
    assert!(after[..2] == before[..2], "an input changed");

    // The oracle: exact logits, the float64 loss, float64 products.
    let mut logits = vec![0.0f32; rows * classes];
    for i in 0..rows {
        for k in 0..classes {
            let dot: f64 = (0..dim).map(|j| f64::from(hidden[i * hs + j]) * f64::from(weight[k * ws + j])).sum();
            logits[i * classes + k] = (dot + if with_bias { f64::from(bias[k]) } else { 0.0 }) as f32;
        }
    }
    let c = case(rows, classes, classes, &logits, &labels, None, &o);
    o.weights.take();
    let r = c.reference();
    check_forward(&c, &r, &loss, want_lse.then_some(&lse[..]), want_argmax.then_some(&argmax[..]));
    if !fused || degenerate_mean(&c) {
        return;
    }
    let g = &r.grad;
    // Each logit gradient is within `slack[i]` (+ relative 1e-4) of the
    // oracle's; a product's error is that, carried through the exact factors.
    let slack: Vec<f64> = (0..rows).map(|i| grad_slack(&c, &r, i, 1.0, false)).collect();
    let err = |i: usize, k: usize| 1e-4 * g[i * classes + k].abs() + slack[i];
    let close = |got: f32, want: f64, allowed: f64, what: &str| {
        assert!(
            support::close(f64::from(got), want, 1e-5, allowed + 1e-30),
            "{what}: {got} vs {want} (allowed {allowed})"
        );
    };
    if want_gh {
        for i in 0..rows {
            for j in 0..dim {
                let want: f64 = (0..classes).map(|k| g[i * classes + k] * f64::from(weight[k * ws + j])).sum();
                let allowed: f64 = (0..classes).map(|k| err(i, k) * f64::from(weight[k * ws + j]).abs()).sum();
                close(gh[i * ghs + j], want, allowed, &format!("grad_hidden[{i}][{j}]"));
            }
        }
        check_padding(&bits(&gh), &bits(&before_vec(&before[5])), rows, dim, ghs);
    }
    if want_gw {
        for k in 0..classes {
            for j in 0..dim {
                let want: f64 = (0..rows).map(|i| g[i * classes + k] * f64::from(hidden[i * hs + j])).sum();
                let allowed: f64 = (0..rows).map(|i| err(i, k) * f64::from(hidden[i * hs + j]).abs()).sum();
                close(gw[k * gws + j], want, allowed, &format!("grad_weight[{k}][{j}]"));
            }
        }
        check_padding(&bits(&gw), &bits(&before_vec(&before[6])), classes, dim, gws);
    }
    if want_gb {
        for k in 0..classes {
            let want: f64 = (0..rows).map(|i| g[i * classes + k]).sum();
            let allowed: f64 = (0..rows).map(|i| err(i, k)).sum();
            close(gb[k], want, allowed, &format!("grad_bias[{k}]"));
        }
    }
});

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

fn before_vec(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4).map(|c| f32::from_ne_bytes([c[0], c[1], c[2], c[3]])).collect()
}

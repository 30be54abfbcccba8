//! The 16-bit calls (`xent_forward_bf16`, `_forward_backward_bf16` and the
//! binary16 pair): any 16-bit pattern as a logit, any shape, stride, option
//! struct and pool, separate or in-place gradients, NULL / misaligned /
//! overlapping buffers. A valid call must equal the float32 call on the
//! widened logits bit for bit, with the gradient rounded once to nearest
//! even (checked with the `half` crate's conversions, not xent's).
#![no_main]

use libfuzzer_sys::fuzz_target;
use xent_fuzz::*;

fn widen(bf16: bool, x: u16) -> f32 {
    if bf16 { half::bf16::from_bits(x).to_f32() } else { half::f16::from_bits(x).to_f32() }
}

fn narrow(bf16: bool, x: f32) -> u16 {
    if bf16 { half::bf16::from_f32(x).to_bits() } else { half::f16::from_f32(x).to_bits() }
}

fn is_nan(bf16: bool, x: u16) -> bool {
    widen(bf16, x).is_nan()
}

/// A 16-bit logit: ordinary values, the specials, or any pattern.
fn logit16(inp: &mut Input, bf16: bool) -> u16 {
    match inp.byte() % 8 {
        0..=3 => narrow(bf16, (inp.byte() as i8) as f32 / 8.0),
        4 => narrow(bf16, inp.pick(&[f32::NEG_INFINITY, f32::INFINITY, f32::NAN, -0.0, 1e4, -1e4, 60000.0])),
        _ => inp.u16(),
    }
}

fuzz_target!(|data: &[u8]| {
    let mut inp = Input::new(data);
    let mut ex = Expect::default();
    let bf16 = inp.one_in(2);
    let fused = !inp.one_in(3);
    let (rows, mut classes) = rows_classes(&mut inp);
    if inp.one_in(64) {
        ex.defect(XENT_STATUS_INVALID_SHAPE, "classes 0");
        classes = 0;
    }
    let stride = stride(&mut inp, rows, classes, &mut ex, "row_stride");
    let mut o = options(&mut inp, &mut ex, classes);
    let n_loss = if o.reduction == xent::loss::Reduction::None { rows } else { 1 };
    let ext = extent(rows, classes, stride);
    let mut logits = exact(ext.unwrap_or(16), 0x7fc1u16);
    if ext.is_some() {
        for i in 0..rows {
            for j in 0..classes {
                logits[i * stride + j] = logit16(&mut inp, bf16);
            }
        }
    } else {
        assert!(!ex.defects.is_empty(), "an unaddressable shape without a defect");
    }
    let mut labels = labels(&mut inp, &mut ex, rows, classes, o.ignore_index);
    let in_place = fused && inp.one_in(3);
    let g_stride = if !fused {
        0
    } else if in_place {
        stride
    } else {
        xent_fuzz::stride(&mut inp, rows, classes, &mut ex, "grad_row_stride")
    };
    let g_ext = if fused { extent(rows, classes, g_stride) } else { Some(0) };
    if fused && g_ext.is_none() {
        assert!(!ex.defects.is_empty(), "an unaddressable gradient without a defect");
    }
    let g_len = if fused { g_ext.unwrap_or(1) } else { 0 };
    let l_len = ext.unwrap_or(1);
    let mut grad = exact(if in_place { 0 } else { g_ext.unwrap_or(16) }, 0x7fc2u16);
    let mut loss = exact(n_loss, f32::from_bits(0x7fc0_0001));
    let want_lse = !inp.one_in(3);
    let want_argmax = !inp.one_in(3);
    let mut lse = exact(if want_lse { rows } else { 0 }, f32::from_bits(0x7fc0_0002));
    let mut argmax = exact(if want_argmax { rows } else { 0 }, -7i32);

    let p_logits = match place(&mut inp, &mut ex, "logits", l_len, 2) {
        Place::Alias => Place::Own,
        p => p,
    };
    let p_labels = place(&mut inp, &mut ex, "labels", rows, 4);
    let p_loss = place(&mut inp, &mut ex, "loss", n_loss, 4);
    let p_grad = if in_place { Place::Own } else { place(&mut inp, &mut ex, "grad_logits", g_len, 2) };
    // The loss may alias the logits, the labels the loss, the gradient the
    // logits (with another stride; the same stride is the in-place call).
    let p_loss = settle(p_loss, &mut ex, "loss overlaps the logits", n_loss, p_logits, l_len);
    let p_labels = settle(p_labels, &mut ex, "labels overlaps the loss", rows, p_loss, n_loss);
    let p_grad = if p_grad == Place::Alias && g_stride == stride { Place::Own } else { p_grad };
    let p_grad = settle(p_grad, &mut ex, "grad_logits overlaps the logits", g_len, p_logits, l_len);

    let logits_in = logits.clone();
    let opts = o.arg();
    let logits_start = logits.as_mut_ptr() as *mut u8;
    let loss_start = loss.as_mut_ptr() as *mut u8;
    let lp = resolve(p_logits, &mut logits, loss_start);
    let labp = resolve(p_labels, &mut labels, loss_start) as *const i32;
    let lossp = resolve(p_loss, &mut loss, logits_start);
    let lsep = if want_lse { lse.as_mut_ptr() } else { core::ptr::null_mut() };
    let amp = if want_argmax { argmax.as_mut_ptr() } else { core::ptr::null_mut() };
    let gp = if in_place { lp } else { resolve(p_grad, &mut grad, logits_start) };
    let before = [bytes(&logits), bytes(&labels), bytes(&loss), bytes(&lse), bytes(&argmax), bytes(&grad)];
    let grad_before = grad.clone();
    // SAFETY: every pointer is NULL, misaligned, an alias or a buffer of
    // exactly the extent its arguments describe.
    let status = unsafe {
        match (bf16, fused) {
            (true, false) => xent_forward_bf16(lp, rows, classes, stride, labp, opts.ptr(), lossp, lsep, amp),
            (false, false) => xent_forward_f16(lp, rows, classes, stride, labp, opts.ptr(), lossp, lsep, amp),
            (true, true) => {
                xent_forward_backward_bf16(lp, rows, classes, stride, labp, opts.ptr(), lossp, lsep, amp, gp, g_stride)
            }
            (false, true) => {
                xent_forward_backward_f16(lp, rows, classes, stride, labp, opts.ptr(), lossp, lsep, amp, gp, g_stride)
            }
        }
    };
    let after = [bytes(&logits), bytes(&labels), bytes(&loss), bytes(&lse), bytes(&argmax), bytes(&grad)];
    ex.skipped = o.pool_skipped();
    ex.judge(status, &before, &after, &format!("bf16={bf16} fused={fused} rows={rows} classes={classes}"));
    if status != XENT_STATUS_OK {
        return;
    }
    if !in_place {
        assert!(logits == logits_in, "the logits changed");
    }

    // The float32 call on the widened logits, same options and stride.
    let mut wide = exact(logits_in.len(), 0.0f32);
    for (w, &x) in wide.iter_mut().zip(&logits_in) {
        *w = widen(bf16, x);
    }
    let mut loss32 = exact(n_loss, 0.0f32);
    let mut lse32 = exact(rows, 0.0f32);
    let mut argmax32 = exact(rows, 0i32);
    let mut grad32 = exact(if fused { wide.len() } else { 0 }, 0.0f32);
    // SAFETY: valid buffers of the extents the arguments describe.
    let status32 = unsafe {
        if fused {
            xent_forward_backward(
                wide.as_ptr(),
                rows,
                classes,
                stride,
                labels.as_ptr(),
                opts.ptr(),
                loss32.as_mut_ptr(),
                lse32.as_mut_ptr(),
                argmax32.as_mut_ptr(),
                grad32.as_mut_ptr(),
                stride,
            )
        } else {
            xent_forward(
                wide.as_ptr(),
                rows,
                classes,
                stride,
                labels.as_ptr(),
                opts.ptr(),
                loss32.as_mut_ptr(),
                lse32.as_mut_ptr(),
                argmax32.as_mut_ptr(),
            )
        }
    };
    if o.pool_skipped() {
        // The float32 call has other blocks; its pool skipped one of them.
        assert_eq!(status32, XENT_STATUS_INTERNAL_ERROR);
        return;
    }
    assert_eq!(status32, XENT_STATUS_OK, "the float32 call refused what the 16-bit call took");
    drop(opts);
    o.weights.take();
    let same = |a: f32, b: f32| a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan());
    for i in 0..n_loss {
        assert!(same(loss[i], loss32[i]), "loss[{i}] {} vs float32 {}", loss[i], loss32[i]);
    }
    for i in 0..rows {
        if want_lse {
            assert!(same(lse[i], lse32[i]), "lse[{i}] {} vs float32 {}", lse[i], lse32[i]);
        }
        if want_argmax {
            assert_eq!(argmax[i], argmax32[i], "argmax[{i}]");
        }
    }
    if fused {
        let g = if in_place { &logits } else { &grad };
        for i in 0..rows {
            for j in 0..classes {
                let (got, want) = (g[i * g_stride + j], grad32[i * stride + j]);
                let ok = if want.is_nan() { is_nan(bf16, got) } else { got == narrow(bf16, want) };
                assert!(ok, "grad[{i}][{j}] {got:#06x} vs float32 {want} rounded {:#06x}", narrow(bf16, want));
            }
        }
        let b = if in_place { &logits_in } else { &grad_before };
        check_padding(g, b, rows, classes, g_stride);
    }
});

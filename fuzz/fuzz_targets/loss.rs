//! The float32 loss calls (`xent_forward`, `_backward`, `_forward_backward`
//! and their `soft_` forms) through their C signatures: arbitrary shapes,
//! strides, labels, targets, option structs and pools; NULL, misaligned,
//! overlapping and in-place buffers; extreme logits. A call with a defect
//! must fail with its status and write nothing; a valid one must succeed
//! and match the float64 reference.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xent_fuzz::*;

#[derive(Clone, Copy, PartialEq, Debug)]
enum Kind {
    Forward,
    Backward,
    ForwardBackward,
}

fn f32_bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

fuzz_target!(|data: &[u8]| {
    let mut inp = Input::new(data);
    let mut ex = Expect::default();
    let kind = inp.pick(&[Kind::Forward, Kind::Backward, Kind::ForwardBackward]);
    let soft = inp.one_in(3);
    let (rows, mut classes) = rows_classes(&mut inp);
    if inp.one_in(64) {
        ex.defect(XENT_STATUS_INVALID_SHAPE, "classes 0");
        classes = 0;
    }
    let stride = stride(&mut inp, rows, classes, &mut ex, "row_stride");
    let mut o = options(&mut inp, &mut ex, classes);
    let reduce_none = o.reduction == xent::loss::Reduction::None;
    let n_loss = if reduce_none { rows } else { 1 };
    let grads = kind != Kind::Forward;

    // Logits, padding holding a NaN pattern the call must not touch.
    let ext = extent(rows, classes, stride);
    let mut logits = exact(ext.unwrap_or(16), f32::from_bits(0x7fc0_dead));
    if let Some(n) = ext {
        for i in 0..rows {
            for j in 0..classes {
                logits[i * stride + j] = logit(&mut inp, &mut ex.wild);
            }
        }
        debug_assert!(n == logits.len());
    } else {
        assert!(!ex.defects.is_empty(), "an unaddressable shape without a defect");
    }

    // Targets.
    let mut labels = if soft { Vec::new() } else { labels(&mut inp, &mut ex, rows, classes, o.ignore_index) };
    let t_stride = if soft { stride_for_targets(&mut inp, rows, classes, &mut ex) } else { 0 };
    let t_ext = if soft { extent(rows, classes, t_stride) } else { Some(0) };
    let mut probs = exact(t_ext.unwrap_or(16), f32::from_bits(0x7fc0_beef));
    if soft && t_ext.is_some() {
        for i in 0..rows {
            for j in 0..classes {
                probs[i * t_stride + j] = match inp.byte() % 16 {
                    0..=4 => 0.0,
                    5..=13 => inp.byte() as f32 / 255.0,
                    14 => -(inp.byte() as f32) / 255.0,
                    _ => 1.0 + inp.byte() as f32 / 64.0,
                };
            }
        }
    }

    // The gradient buffer: separate (with its own stride) or the logits.
    let in_place = grads && inp.one_in(4);
    let g_stride = if !grads {
        0
    } else if in_place && !inp.one_in(8) {
        stride
    } else {
        stride_fn(&mut inp, rows, classes, &mut ex)
    };
    let g_ext = if grads { extent(rows, classes, g_stride) } else { Some(0) };
    if grads && g_ext.is_none() {
        assert!(!ex.defects.is_empty(), "an unaddressable gradient without a defect");
    }
    let mut grad = exact(if in_place { 0 } else { g_ext.unwrap_or(16) }, f32::from_bits(0x7fc0_f00d));
    let g_len = if grads { g_ext.unwrap_or(1) } else { 0 };
    let l_len = ext.unwrap_or(1);
    if in_place && g_stride != stride && g_len > 0 && l_len > 0 {
        ex.defect(XENT_STATUS_INVALID_ARGUMENT, "grad_logits overlaps logits");
    }

    // Forward outputs and backward inputs.
    let mut loss = exact(n_loss, f32::from_bits(0x7fc0_0001));
    let want_lse = !inp.one_in(3);
    let want_argmax = !inp.one_in(3);
    let mut lse = exact(if want_lse { rows } else { 0 }, f32::from_bits(0x7fc0_0002));
    let mut argmax = exact(if want_argmax { rows } else { 0 }, -7i32);
    let grad_loss: Vec<f32> = {
        let mut v = exact(n_loss, 0.0f32);
        for g in v.iter_mut() {
            *g = inp.pick(&[1.0, 1.0, 0.5, -2.0, 0.0, 3.25]);
        }
        v
    };
    // A backward call may take the forward lse; a wrong one only changes
    // values, so it is given as the reference lse when one is comparable.
    let give_lse = kind == Kind::Backward && inp.one_in(2);

    // Pointer modes.
    let p_logits = place(&mut inp, &mut ex, "logits", l_len, 4);
    let p_labels = place(&mut inp, &mut ex, "labels", if soft { 0 } else { rows }, 4);
    let p_probs = place(&mut inp, &mut ex, "targets", if soft { t_ext.unwrap_or(1) } else { 0 }, 4);
    let p_loss = place(&mut inp, &mut ex, "loss", if grads && kind == Kind::Backward { 0 } else { n_loss }, 4);
    let p_gloss = place(&mut inp, &mut ex, "grad_loss", if kind == Kind::Backward { n_loss } else { 0 }, 4);
    let p_grad = if in_place { Place::Own } else { place(&mut inp, &mut ex, "grad_logits", g_len, 4) };
    // Outputs may alias the logits; inputs the gradient (or the loss).
    let p_logits = if p_logits == Place::Alias {
        // (The gradient with the logits' stride would be an in-place call.)
        let (t, n) = if kind == Kind::Backward {
            (p_grad, g_len * usize::from(!in_place && g_stride != stride))
        } else {
            (p_loss, n_loss)
        };
        settle(Place::Alias, &mut ex, "logits overlaps an output", l_len, t, n)
    } else {
        p_logits
    };
    let out_t = if kind == Kind::Backward { (p_grad, if in_place { 0 } else { g_len }) } else { (p_loss, n_loss) };
    let p_labels =
        settle(p_labels, &mut ex, "labels overlaps an output", if soft { 0 } else { rows }, out_t.0, out_t.1);
    let p_probs = settle(
        p_probs,
        &mut ex,
        "targets overlaps an output",
        if soft { t_ext.unwrap_or(1) } else { 0 },
        out_t.0,
        out_t.1,
    );
    let p_gloss = settle(
        p_gloss,
        &mut ex,
        "grad_loss overlaps an output",
        if kind == Kind::Backward { n_loss } else { 0 },
        if in_place { Place::Null } else { p_grad },
        g_len,
    );
    let p_loss = settle(
        p_loss,
        &mut ex,
        "loss overlaps the logits",
        if kind == Kind::Backward { 0 } else { n_loss },
        p_logits,
        l_len,
    );
    // (With the logits' stride that is an in-place call.)
    let p_grad = if p_grad == Place::Alias && g_stride == stride { Place::Own } else { p_grad };
    let p_grad = settle(p_grad, &mut ex, "grad_logits overlaps the logits", g_len, p_logits, l_len);

    // Reference, when the call is valid and comparable.
    let valid = ex.defects.is_empty() && !ex.wild;
    let reference_case =
        valid.then(|| case(rows, classes, stride, &logits, &labels, soft.then_some((&probs[..], t_stride)), &o));
    let reference = reference_case.as_ref().map(|c| c.reference());
    let mut lse_in = exact(if give_lse { rows } else { 0 }, 0.0f32);
    if give_lse {
        match &reference {
            Some(r) => lse_in.iter_mut().zip(&r.lse).for_each(|(d, &s)| *d = s as f32),
            None => lse_in.iter_mut().for_each(|d| *d = logit(&mut inp, &mut ex.wild)),
        }
    }

    // The call.
    let opts = o.arg();
    let logits_start = logits.as_mut_ptr() as *mut u8;
    let grad_start = grad.as_mut_ptr() as *mut u8;
    let loss_start = loss.as_mut_ptr() as *mut u8;
    let lp = resolve(p_logits, &mut logits, if kind == Kind::Backward { grad_start } else { loss_start });
    let in_alias = if kind == Kind::Backward { grad_start } else { loss_start };
    let labp = resolve(p_labels, &mut labels, in_alias) as *const i32;
    let tp = resolve(p_probs, &mut probs, in_alias) as *const f32;
    let mut gl = grad_loss.clone();
    let glp = resolve(p_gloss, &mut gl, grad_start) as *const f32;
    let lossp = resolve(p_loss, &mut loss, logits_start);
    let lsep = if want_lse { lse.as_mut_ptr() } else { core::ptr::null_mut() };
    let amp = if want_argmax { argmax.as_mut_ptr() } else { core::ptr::null_mut() };
    let lse_inp = if give_lse { lse_in.as_ptr() } else { core::ptr::null() };
    let gp = if in_place { lp } else { resolve(p_grad, &mut grad, logits_start) };

    let before = [
        bytes(&logits),
        bytes(&labels),
        bytes(&probs),
        bytes(&loss),
        bytes(&lse),
        bytes(&argmax),
        bytes(&grad),
        bytes(&gl),
    ];
    let before_logits = f32_bits(&logits);
    let before_grad = f32_bits(&grad);
    // SAFETY: every pointer is NULL, misaligned, an alias or a buffer of
    // exactly the extent its arguments describe (the contract the header
    // states); the defects are what the call must refuse.
    let status = unsafe {
        match (kind, soft) {
            (Kind::Forward, false) => xent_forward(lp, rows, classes, stride, labp, opts.ptr(), lossp, lsep, amp),
            (Kind::Forward, true) => {
                xent_soft_forward(lp, rows, classes, stride, tp, t_stride, opts.ptr(), lossp, lsep, amp)
            }
            (Kind::Backward, false) => {
                xent_backward(lp, rows, classes, stride, labp, opts.ptr(), glp, lse_inp, gp, g_stride)
            }
            (Kind::Backward, true) => {
                xent_soft_backward(lp, rows, classes, stride, tp, t_stride, opts.ptr(), glp, lse_inp, gp, g_stride)
            }
            (Kind::ForwardBackward, false) => {
                xent_forward_backward(lp, rows, classes, stride, labp, opts.ptr(), lossp, lsep, amp, gp, g_stride)
            }
            (Kind::ForwardBackward, true) => xent_soft_forward_backward(
                lp,
                rows,
                classes,
                stride,
                tp,
                t_stride,
                opts.ptr(),
                lossp,
                lsep,
                amp,
                gp,
                g_stride,
            ),
        }
    };
    let after = [
        bytes(&logits),
        bytes(&labels),
        bytes(&probs),
        bytes(&loss),
        bytes(&lse),
        bytes(&argmax),
        bytes(&grad),
        bytes(&gl),
    ];
    ex.skipped = o.pool_skipped();
    ex.judge(status, &before, &after, &format!("{kind:?} soft={soft} rows={rows} classes={classes}"));
    drop(opts);
    if !ex.comparable(status) || ex.skipped {
        return;
    }
    let r = reference.expect("a valid call has a reference");
    let c = reference_case.as_ref().expect("a valid call has a case");
    // Inputs stay as they were.
    assert!(after[1..3] == before[1..3] && after[7] == before[7], "an input changed");
    if !in_place {
        assert!(after[0] == before[0], "the logits changed");
    }
    if kind != Kind::Backward {
        check_forward(c, &r, &loss, want_lse.then_some(&lse[..]), want_argmax.then_some(&argmax[..]));
    }
    if grads {
        let up: Vec<f64> = (0..rows)
            .map(|i| {
                if kind == Kind::ForwardBackward { 1.0 } else { f64::from(grad_loss[if reduce_none { i } else { 0 }]) }
            })
            .collect();
        let (g, b) = if in_place { (&logits, &before_logits) } else { (&grad, &before_grad) };
        check_grad(c, &r, g, g_stride, &up, give_lse);
        check_padding(&f32_bits(g), b, rows, classes, g_stride);
    }
});

fn stride_for_targets(inp: &mut Input, rows: usize, classes: usize, ex: &mut Expect) -> usize {
    stride(inp, rows, classes, ex, "target_row_stride")
}

fn stride_fn(inp: &mut Input, rows: usize, classes: usize, ex: &mut Expect) -> usize {
    stride(inp, rows, classes, ex, "grad_row_stride")
}

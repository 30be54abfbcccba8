//! The sharded calls (`xent_shard_stats`, `_stats_merge`, `_loss`,
//! `_backward`, and the kept pair `_stats_keep` / `_backward_kept`): a row split at arbitrary class cuts into shards of their
//! own strides, merged in an arbitrary order, with every option, pool and
//! bad layout, label or pointer. Valid calls must match the float64
//! reference of the unsharded rows; failing ones must write nothing.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xent_fuzz::*;

fuzz_target!(|data: &[u8]| {
    let mut inp = Input::new(data);
    let mut base = Expect::default();
    let (rows, total) = rows_classes(&mut inp);
    let mut o = options(&mut inp, &mut base, total);
    let none = o.reduction == xent::loss::Reduction::None;
    let n_loss = if none { rows } else { 1 };
    let labels = labels(&mut inp, &mut base, rows, total, o.ignore_index);
    let mut full = exact(rows * total, 0.0f32);
    for v in full.iter_mut() {
        *v = logit(&mut inp, &mut base.wild);
    }
    // Shards: 1 to 4 cuts of [0, total).
    let mut cuts: Vec<usize> = (0..inp.below(4)).map(|_| 1 + inp.below(total.max(2) - 1)).collect();
    cuts.extend([0, total]);
    cuts.sort_unstable();
    cuts.dedup();
    let shards: Vec<(usize, usize)> = cuts.windows(2).map(|w| (w[0], w[1] - w[0])).collect();
    let opts = o.arg();

    // Each shard's statistics, from its own buffer and stride.
    let mut bufs = Vec::new();
    let mut stats_all = Vec::new();
    for &(off, n) in &shards {
        let mut ex = base.clone();
        let stride = stride(&mut inp, rows, n, &mut ex, "row_stride");
        let ext = extent(rows, n, stride);
        let mut buf = exact(ext.unwrap_or(16), f32::from_bits(0x7fc0_dead));
        if ext.is_some() {
            for i in 0..rows {
                buf[i * stride..][..n].copy_from_slice(&full[i * total + off..][..n]);
            }
        }
        let (mut c_off, mut c_total) = (off, total);
        match inp.byte() % 64 {
            0 => {
                ex.defect(XENT_STATUS_INVALID_SHAPE, "shard beyond total_classes");
                c_off = inp.pick(&[total - n + 1, total, usize::MAX - n + 1, usize::MAX]);
            }
            1 => {
                ex.defect(XENT_STATUS_INVALID_SHAPE, "total_classes");
                c_total = inp.pick(&[0, off + n - 1]);
            }
            _ => {}
        }
        let mut stats = exact(rows, XentShardStats { max: 1.5, sum_exp: 2.5, target_logit: 3.5, ..Default::default() });
        let p_logits = place(&mut inp, &mut ex, "logits", ext.unwrap_or(1), 4);
        let p_stats = place(&mut inp, &mut ex, "stats", rows, 4);
        let p_logits = if p_logits == Place::Alias { Place::Own } else { p_logits };
        let p_stats = settle(p_stats, &mut ex, "stats overlaps the logits", rows, p_logits, ext.unwrap_or(1));
        let buf_start = buf.as_mut_ptr() as *mut u8;
        let lp = resolve(p_logits, &mut buf, core::ptr::null_mut());
        let sp = resolve(p_stats, &mut stats, buf_start);
        let before = [bytes(&buf), bytes(&stats), bytes(&labels)];
        // SAFETY: pointers are NULL, misaligned, aliases or exact buffers.
        let status = unsafe { xent_shard_stats(lp, rows, n, stride, c_off, c_total, labels.as_ptr(), opts.ptr(), sp) };
        let after = [bytes(&buf), bytes(&stats), bytes(&labels)];
        ex.skipped = o.pool_skipped();
        ex.judge(status, &before, &after, &format!("shard_stats {off}+{n} of {total}, rows {rows}"));
        if status != XENT_STATUS_OK {
            return;
        }
        bufs.push((buf, stride));
        stats_all.push(stats);
    }

    // Merge in an order the fuzzer picks; NULL and empty merges do nothing.
    let mut order: Vec<usize> = (0..shards.len()).collect();
    for k in (1..order.len()).rev() {
        order.swap(k, inp.below(k + 1));
    }
    let mut merged = stats_all[order[0]].clone();
    for &k in &order[1..] {
        // SAFETY: both hold `rows` statistics.
        unsafe { xent_shard_stats_merge(stats_all[k].as_ptr(), merged.as_mut_ptr(), rows) };
    }
    let kept = merged.clone();
    // SAFETY: NULL and zero rows are documented no-ops.
    unsafe {
        xent_shard_stats_merge(core::ptr::null(), merged.as_mut_ptr(), rows);
        xent_shard_stats_merge(stats_all[0].as_ptr(), core::ptr::null_mut(), rows);
        xent_shard_stats_merge(stats_all[0].as_ptr(), merged.as_mut_ptr(), 0);
    }
    assert!(bytes(&kept) == bytes(&merged), "a no-op merge changed the statistics");

    // The loss from the merged statistics.
    let mut ex = base.clone();
    let mut loss = exact(n_loss, f32::from_bits(0x7fc0_0001));
    let want_lse = !inp.one_in(3);
    let mut lse = exact(if want_lse { rows } else { 0 }, f32::from_bits(0x7fc0_0002));
    let p_loss = place(&mut inp, &mut ex, "loss", n_loss, 4);
    let p_loss = settle(p_loss, &mut ex, "loss overlaps merged", n_loss, Place::Own, rows);
    let lossp = resolve(p_loss, &mut loss, merged.as_mut_ptr() as *mut u8);
    let lsep = if want_lse { lse.as_mut_ptr() } else { core::ptr::null_mut() };
    let before = [bytes(&merged), bytes(&loss), bytes(&lse)];
    // SAFETY: as above.
    let status = unsafe { xent_shard_loss(merged.as_ptr(), rows, total, labels.as_ptr(), opts.ptr(), lossp, lsep) };
    let after = [bytes(&merged), bytes(&loss), bytes(&lse)];
    ex.judge(status, &before, &after, "shard_loss");
    if status != XENT_STATUS_OK {
        return;
    }

    // Every shard's gradient, sometimes in place.
    let up: Vec<f32> = (0..n_loss).map(|_| inp.pick(&[1.0, 1.0, 0.5, -2.0, 0.0])).collect();
    let mut grads = Vec::new();
    for (k, &(off, n)) in shards.iter().enumerate() {
        let mut ex = base.clone();
        let (buf, stride) = &mut bufs[k];
        let stride = *stride;
        // Sometimes the kept pair: the shard's exps (or tanh) kept in a copy
        // of its buffer, whose padding must stay as it was, and the gradient
        // made from them with this shard's own statistics.
        let local = inp.one_in(3).then(|| {
            let mut kb = buf.clone();
            let mut local = exact(rows, XentShardStats::default());
            // SAFETY: exact buffers of the shard's extent and `rows` stats.
            let status = unsafe {
                xent_shard_stats_keep(
                    buf.as_ptr(),
                    rows,
                    n,
                    stride,
                    off,
                    total,
                    labels.as_ptr(),
                    opts.ptr(),
                    local.as_mut_ptr(),
                    kb.as_mut_ptr(),
                    stride,
                )
            };
            assert_eq!(status, XENT_STATUS_OK, "stats_keep where shard_stats succeeded");
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<u32>>();
            check_padding(&bits(&kb), &bits(buf), rows, n, stride);
            for (a, b) in local.iter().zip(&stats_all[k]) {
                assert!(a.max.to_bits() == b.max.to_bits(), "kept max {} vs {}", a.max, b.max);
            }
            *buf = kb;
            local
        });
        let in_place = inp.one_in(4);
        let g_stride = if in_place { stride } else { xent_fuzz::stride(&mut inp, rows, n, &mut ex, "grad_row_stride") };
        let g_ext = extent(rows, n, g_stride);
        let mut g = exact(if in_place { 0 } else { g_ext.unwrap_or(16) }, f32::from_bits(0x7fc0_f00d));
        let p_up = place(&mut inp, &mut ex, "grad_loss", n_loss, 4);
        let p_up = if p_up == Place::Alias { Place::Own } else { p_up };
        let mut upk = up.clone();
        let upp = resolve(p_up, &mut upk, core::ptr::null_mut());
        let (lp, gp) = if in_place {
            let p = buf.as_mut_ptr();
            (p as *const f32, p)
        } else {
            (buf.as_ptr(), g.as_mut_ptr())
        };
        let before = [bytes(buf), bytes(&g), bytes(&merged)];
        let pad_before: Vec<u32> = if in_place { buf.iter() } else { g.iter() }.map(|x| x.to_bits()).collect();
        // SAFETY: as above.
        let status = unsafe {
            match &local {
                Some(l) => xent_shard_backward_kept(
                    lp,
                    rows,
                    n,
                    stride,
                    off,
                    total,
                    labels.as_ptr(),
                    opts.ptr(),
                    l.as_ptr(),
                    merged.as_ptr(),
                    upp,
                    gp,
                    g_stride,
                ),
                None => xent_shard_backward(
                    lp,
                    rows,
                    n,
                    stride,
                    off,
                    total,
                    labels.as_ptr(),
                    opts.ptr(),
                    merged.as_ptr(),
                    upp,
                    gp,
                    g_stride,
                ),
            }
        };
        let after = [bytes(buf), bytes(&g), bytes(&merged)];
        ex.skipped = o.pool_skipped();
        let what = if local.is_some() { "shard_backward_kept" } else { "shard_backward" };
        ex.judge(status, &before, &after, &format!("{what} {off}+{n} of {total}"));
        if status != XENT_STATUS_OK {
            return;
        }
        let got = if in_place { buf.clone() } else { g };
        let bits: Vec<u32> = got.iter().map(|x| x.to_bits()).collect();
        check_padding(&bits, &pad_before, rows, n, g_stride);
        grads.push((got, g_stride));
    }
    drop(opts);
    if base.wild || !base.defects.is_empty() {
        return;
    }

    // Against the float64 reference of the whole rows.
    let c = case(rows, total, total, &full, &labels, None, &o);
    o.weights.take();
    let r = c.reference();
    check_forward(&c, &r, &loss, want_lse.then_some(&lse[..]), None);
    let upr: Vec<f64> = (0..rows).map(|i| f64::from(up[if none { i } else { 0 }])).collect();
    let mut whole = vec![0.0f32; rows * total];
    for (&(off, n), (g, s)) in shards.iter().zip(&grads) {
        for i in 0..rows {
            whole[i * total + off..][..n].copy_from_slice(&g[i * s..][..n]);
        }
    }
    check_grad(&c, &r, &whole, total, &upr, false);
});

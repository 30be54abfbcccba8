//! The constants of the table-driven `exp` (see `math.rs`), apart so that
//! the vector trait's default `exp_scale` and the paths that override it
//! share them without importing the math built on that trait.

/// 1.5·2^19 + 127: adding it rounds to a multiple of 1/16 and leaves
/// `16·(n + 127)` in the low mantissa bits: `k` in bits 0..4, `m + 127` in
/// bits 4..12 (0 above them up to bit 22, where the 1.5 sits).
pub(crate) const MAGIC_BIAS: f32 = 786_559.0;
/// `2^(k/16)` for k in 0..16, correctly rounded, as float32 bits.
pub(crate) const EXP2_16THS: [u32; 16] = [
    0x3f80_0000,
    0x3f85_aac3,
    0x3f8b_95c2,
    0x3f91_c3d3,
    0x3f98_37f0,
    0x3f9e_f532,
    0x3fa5_fed7,
    0x3fad_583f,
    0x3fb5_04f3,
    0x3fbd_08a4,
    0x3fc5_672a,
    0x3fce_248c,
    0x3fd7_44fd,
    0x3fe0_ccdf,
    0x3fea_c0c7,
    0x3ff5_257d,
];
/// [`EXP2_16THS`] less what `biased << 19` adds besides `m << 23`: adding
/// `biased << 19` (as `u32`, see [`MAGIC_BIAS`]) to entry `k` gives the bits
/// of `2^m·2^(k/16)` exactly, for `m` in `−126..=127`.
pub(crate) const EXP2_16THS_LESS_BIAS: [u32; 16] = {
    let mut t = [0u32; 16];
    let mut k = 0;
    while k < 16 {
        t[k] = EXP2_16THS[k].wrapping_sub(127 << 23).wrapping_sub((k as u32) << 19);
        k += 1;
    }
    t
};
/// Below this, `exp` returns 0: `ln(FLT_MIN)`, so results are never subnormal.
pub(crate) const EXP_MIN_X: f32 = -87.336_54;

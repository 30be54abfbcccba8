//! `XENT_ISA` caps the kernel path (never above what the CPU has) and
//! `xent_active_isa()` reports the path in use. The variable is read once
//! per process, so each setting runs in a child process.

mod cross;

use std::ffi::CStr;

use xent::kernels::Isa;

/// Helper run in the child processes: does nothing in a normal test run.
#[test]
fn child_reports_active_isa() {
    let Ok(expect) = std::env::var("XENT_TEST_EXPECT_ISA") else { return };
    // SAFETY: xent_active_isa returns a static NUL-terminated string.
    let got = unsafe { CStr::from_ptr(xent::capi::xent_active_isa()) }.to_str().expect("ASCII");
    assert_eq!(got, expect, "XENT_ISA={:?}", std::env::var("XENT_ISA"));
}

#[test]
fn xent_isa_caps_the_path_and_active_isa_reports_it() {
    let exe = std::env::current_exe().expect("test binary");
    let best = Isa::best_available();
    for name in ["scalar", "neon", "avx2", "avx512", "not-a-path"] {
        let want = Isa::parse(name).map_or(best, Isa::capped);
        if Isa::parse(name).is_some_and(|isa| isa.capped() != isa) {
            println!("XENT_ISA={name}: this CPU lacks it, so the path is capped to {}", best.name());
        }
        let out = cross::run_target(&exe)
            .args(["--exact", "child_reports_active_isa", "--test-threads=1"])
            .env("XENT_ISA", name)
            .env("XENT_TEST_EXPECT_ISA", want.name())
            .output()
            .expect("child test runs");
        assert!(
            out.status.success(),
            "XENT_ISA={name}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains("1 passed"), "child ran no test");
    }
}

//! The no_std build (`--no-default-features`) on this machine: built as a
//! static library with a nested cargo, linked into c_tests/nostd.c, whose
//! printout of every float32 result's bits must equal that of the same
//! program linked with the std build (cross::c_lib_dir). The no_std
//! build picks its path at compile time (the portable one for baseline
//! x86-64), so this also compares paths, and the libm crate's float64
//! functions with the platform's.

mod cross;

use std::path::{Path, PathBuf};
use std::process::Command;

fn target() -> String {
    format!("{}-unknown-linux-gnu", std::env::consts::ARCH)
}

/// Builds libxent.a without std (panics halt: the `panic-handler` feature,
/// with panic = abort) and returns its path.
fn build_no_std() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("nostd");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["rustc", "--lib", "--crate-type", "staticlib", "--locked", "--no-default-features"])
        .args(["--features", "panic-handler"])
        .args(["--target", &target()])
        .arg("--target-dir")
        .arg(&dir)
        .env("CARGO_PROFILE_DEV_PANIC", "abort")
        .status()
        .expect("cargo runs");
    assert!(status.success(), "the no_std build failed");
    dir.join(target()).join("debug").join("libxent.a")
}

fn run(exe: &Path, arg: &str) -> String {
    let out = cross::run_target(exe).arg(arg).output().expect("program runs");
    eprint!("{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{} {arg} failed", exe.display());
    String::from_utf8(out.stdout).expect("ASCII printout")
}

#[test]
fn the_no_std_build_gives_the_std_build_bits() {
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let std_lib = cross::c_lib_dir().join("libxent.a");
    let (with_std, without) = (tmp.join("nostd_c_std"), tmp.join("nostd_c_nostd"));
    cross::compile_c("nostd.c", &with_std, &[std_lib.as_os_str()]);
    cross::compile_c("nostd.c", &without, &[build_no_std().as_os_str()]);
    let (a, b) = (run(&with_std, "std"), run(&without, "nostd"));
    assert_eq!(a.lines().count(), 29, "{a}");
    for (x, y) in a.lines().zip(b.lines()) {
        assert_eq!(x, y, "std and no_std results differ");
    }
    assert_eq!(a, b);
}

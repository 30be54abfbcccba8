//! Builds c_tests/harness.c against include/xent.h with the compiler the `cc`
//! crate finds, links it once with the shared and once with the static
//! library (built as `make build` does: cross::c_lib_dir), and runs both.

mod cross;

use std::path::{Path, PathBuf};

fn lib_dir() -> PathBuf {
    cross::c_lib_dir()
}

fn compile(out: &Path, link: &[&str]) {
    let link: Vec<&std::ffi::OsStr> = link.iter().map(std::ffi::OsStr::new).collect();
    cross::compile_c("harness.c", out, &link);
}

fn run(exe: &Path) {
    let out = cross::run_target(exe).output().expect("harness runs");
    let text = String::from_utf8_lossy(&out.stdout);
    print!("{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{} failed", exe.display());
    assert!(text.contains(" passed, 0 failed"), "no summary line");
}

#[test]
fn c_harness_against_the_shared_library() {
    let dir = lib_dir();
    let exe = Path::new(env!("CARGO_TARGET_TMPDIR")).join("harness_shared");
    let rpath = format!("-Wl,-rpath,{}", dir.display());
    compile(&exe, &["-L", dir.to_str().expect("utf-8 path"), "-lxent", &rpath]);
    run(&exe);
}

#[test]
fn c_harness_against_the_static_library() {
    let dir = lib_dir();
    let exe = Path::new(env!("CARGO_TARGET_TMPDIR")).join("harness_static");
    compile(&exe, &[dir.join("libxent.a").to_str().expect("utf-8 path")]);
    run(&exe);
}

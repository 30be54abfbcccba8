//! Running what the tests build for the target they were built for, so
//! that `make test-cross` can run the aarch64 build under qemu. (Apart from
//! `support`, which the fuzz crate also compiles.)
#![allow(dead_code)]

/// A command that runs the target binary `exe`: through the emulator in
/// `$XENT_TEST_RUNNER` (e.g. `qemu-aarch64 -L /usr/aarch64-linux-gnu`, as
/// `make test-cross` sets it) when the tests are cross-built, else directly.
pub fn run_target(exe: &std::path::Path) -> std::process::Command {
    match std::env::var("XENT_TEST_RUNNER") {
        Ok(r) if !r.trim().is_empty() => {
            let mut parts = r.split_whitespace();
            let mut c = std::process::Command::new(parts.next().expect("a runner"));
            c.args(parts).arg(exe);
            c
        }
        _ => std::process::Command::new(exe),
    }
}

/// The C compiler for the target these tests were built for (the `cc`
/// crate's choice: `cc` natively, `aarch64-linux-gnu-gcc` for aarch64...).
pub fn target_cc() -> std::process::Command {
    let target = format!("{}-unknown-linux-gnu", std::env::consts::ARCH);
    cc::Build::new()
        .cargo_metadata(false)
        .target(&target)
        .host(&target)
        .opt_level(1)
        .warnings_into_errors(true)
        .get_compiler()
        .to_command()
}

/// Compiles `c_tests/<source>` against include/xent.h for the target, with
/// the warnings the project's C is held to, into `out`, linked with `link`.
pub fn compile_c(source: &str, out: &std::path::Path, link: &[&std::ffi::OsStr]) {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut cmd = target_cc();
    cmd.args(["-std=c11", "-Wall", "-Wextra", "-Wpedantic", "-Werror", "-g"])
        .arg("-I")
        .arg(root.join("include"))
        .arg(root.join("c_tests").join(source))
        .arg("-o")
        .arg(out)
        .args(link)
        .args(["-lpthread", "-lm", "-ldl"]);
    let status = cmd.status().expect("C compiler runs");
    assert!(status.success(), "compiling c_tests/{source} failed: {cmd:?}");
}

/// The directory holding the C libraries (libxent.so, libxent.a) for the
/// target these tests were built for, built on first use by a nested
/// `cargo rustc --release --lib --crate-type cdylib,staticlib` in this
/// build's target directory: the same command and profile as `make build`,
/// so the C tests link what users link and the two builds share one tree.
/// (The crate's own crate type is only `rlib`: see Cargo.toml.)
pub fn c_lib_dir() -> std::path::PathBuf {
    static DIR: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        // build.rs passes the triples; a cross build's executables sit in
        // <target dir>/<triple>/<profile>/deps, a native one's in
        // <target dir>/<profile>/deps.
        let (target, host) = (env!("XENT_BUILD_TARGET"), env!("XENT_BUILD_HOST"));
        let exe = std::env::current_exe().expect("test executable path");
        let cross = target != host;
        let target_dir = exe.ancestors().nth(if cross { 4 } else { 3 }).expect("the target dir").to_path_buf();
        let mut cargo = std::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        cargo
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .args(["rustc", "--quiet", "--locked", "--release", "--lib", "--crate-type", "cdylib,staticlib"])
            .arg("--target-dir")
            .arg(&target_dir);
        let out = if cross {
            cargo.args(["--target", target]);
            target_dir.join(target).join("release")
        } else {
            target_dir.join("release")
        };
        let status = cargo.status().expect("cargo runs");
        assert!(status.success(), "building the C libraries failed: {cargo:?}");
        out
    })
    .clone()
}

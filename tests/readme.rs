//! Every C example in the README must compile (with -Werror) and run:
//! blocks fenced as `c` are complete programs (fragments are fenced `C`).

mod cross;

use std::path::Path;

#[test]
fn readme_c_examples_compile_and_run() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).expect("README.md");
    let blocks: Vec<&str> =
        readme.split("```c\n").skip(1).map(|b| &b[..b.find("```").expect("closed code block")]).collect();
    assert!(blocks.len() >= 2, "the README's C examples are missing");
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let deps = cross::c_lib_dir();
    for (k, block) in blocks.iter().enumerate() {
        let src = tmp.join(format!("readme_example_{k}.c"));
        std::fs::write(&src, block).expect("write example");
        let exe = tmp.join(format!("readme_example_{k}"));
        let status = cross::target_cc()
            .args(["-std=c11", "-Wall", "-Wextra", "-Wpedantic", "-Werror", "-I"])
            .arg(root.join("include"))
            .arg(&src)
            .arg("-o")
            .arg(&exe)
            .arg("-L")
            .arg(&deps)
            .arg("-lxent")
            .arg(format!("-Wl,-rpath,{}", deps.display()))
            .status()
            .expect("cc runs");
        assert!(status.success(), "README C example {k} does not compile");
        let out = cross::run_target(&exe).output().expect("example runs");
        assert!(out.status.success(), "README C example {k}: {}", String::from_utf8_lossy(&out.stderr));
        assert!(String::from_utf8_lossy(&out.stdout).starts_with("loss "), "README C example {k} prints its loss");
    }
}

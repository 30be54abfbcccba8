//! With the `header` feature, generates include/xent.h from the C API with
//! cbindgen (the header is committed; tests/header.rs fails when it is
//! stale). Always: the installed shared library's soname.

use std::env;
#[cfg(feature = "header")]
use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    // The target and host triples, for the tests that build the C libraries
    // for the target they run on (tests/cross: c_lib_dir).
    for (var, name) in [("TARGET", "XENT_BUILD_TARGET"), ("HOST", "XENT_BUILD_HOST")] {
        println!("cargo:rustc-env={name}={}", env::var(var).expect("cargo sets TARGET and HOST"));
    }
    // `make install` builds with XENT_SONAME=libxent.so.MAJOR.MINOR so the
    // installed shared library carries a soname; development builds have
    // none, so programs linked against target/ find plain libxent.so.
    println!("cargo:rerun-if-env-changed=XENT_SONAME");
    if let Ok(soname) = env::var("XENT_SONAME")
        && env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux")
    {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,{soname}");
    }
    #[cfg(feature = "header")]
    generate_header();
}

/// Writes the header cbindgen generates from src/capi to OUT_DIR and, when it
/// differs, to include/xent.h.
#[cfg(feature = "header")]
fn generate_header() {
    println!("cargo:rerun-if-changed=src/capi");
    println!("cargo:rerun-if-changed=cbindgen.toml");
    let dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let mut config = cbindgen::Config::from_file(dir.join("cbindgen.toml")).expect("cbindgen.toml parses");
    let v = |k: &str| env::var(k).expect("cargo sets the version variables");
    config.after_includes = Some(format!(
        "\n#define XENT_VERSION_MAJOR {}\n#define XENT_VERSION_MINOR {}\n#define XENT_VERSION_PATCH {}\n#define XENT_VERSION \"{}\"",
        v("CARGO_PKG_VERSION_MAJOR"),
        v("CARGO_PKG_VERSION_MINOR"),
        v("CARGO_PKG_VERSION_PATCH"),
        v("CARGO_PKG_VERSION"),
    ));
    let out = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("xent.h");
    let mut generated = Vec::new();
    cbindgen::Builder::new()
        .with_crate(&dir)
        .with_config(config)
        .generate()
        .expect("cbindgen generates the header")
        .write(&mut generated);
    let fresh = portable(&String::from_utf8(generated).expect("the header is UTF-8")).into_bytes();
    std::fs::write(&out, &fresh).expect("the header can be written");
    // Write the committed copy only when it changed, so builds of a clean
    // checkout leave the tree untouched; tests/header.rs compares the two.
    let committed = dir.join("include/xent.h");
    if std::fs::read(&committed).ok().as_deref() != Some(&fresh[..]) {
        std::fs::create_dir_all(dir.join("include")).expect("include/ can be created");
        std::fs::write(&committed, &fresh).expect("include/xent.h can be written");
    }
}

/// cbindgen's C made valid C89 and C++98 (tests/header.rs compiles it so):
/// its `//` comments become `/* */`, and the `#define`d status and
/// reduction codes become the constants of an enum each (FFI declaration
/// tools such as LuaJIT's `ffi.cdef` drop macros), without a trailing
/// comma. The types `XentStatus` and `XentReduction` stay `uint32_t`.
#[cfg(feature = "header")]
fn portable(header: &str) -> String {
    // Paragraphs are separated by blank lines; a constant is a comment
    // paragraph ending in `#define XENT_<GROUP>_<NAME> <value>`.
    let groups = [("XENT_STATUS_", "XentStatusCode"), ("XENT_REDUCTION_", "XentReductionCode")];
    let mut out: Vec<String> = Vec::new();
    let mut members: Vec<Vec<String>> = vec![Vec::new(); groups.len()];
    let mut placed = vec![None; groups.len()];
    for para in header.split("\n\n") {
        let last = para.lines().last().unwrap_or("");
        let group = groups.iter().position(|(prefix, _)| last.starts_with(&format!("#define {prefix}")));
        let Some(g) = group else {
            out.push(para.to_string());
            continue;
        };
        let mut words = last.split_whitespace().skip(1);
        let (name, value) = (words.next().expect("a name"), words.next().expect("a value"));
        let mut member: Vec<String> =
            para.lines().take_while(|l| !l.starts_with("#define")).map(|l| format!("  {l}")).collect();
        member.push(format!("  {name} = {value}"));
        members[g].push(member.join("\n"));
        if placed[g].is_none() {
            placed[g] = Some(out.len());
            out.push(String::new());
        }
    }
    for (g, (_, enum_name)) in groups.iter().enumerate() {
        let at = placed[g].expect("the header defines every group of constants");
        out[at] = format!("enum {enum_name} {{\n{}\n}};", members[g].join(",\n"));
    }
    out.join("\n\n")
        .replace("#endif // __cplusplus", "#endif /* __cplusplus */")
        .replace("#endif  // __cplusplus", "#endif  /* __cplusplus */")
        .replace("}  // extern \"C\"", "}  /* extern \"C\" */")
}

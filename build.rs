//! Generates include/xent.h from the C API with cbindgen. The header is
//! committed; tests/header.rs fails when it is stale.

use std::env;
use std::path::PathBuf;

fn main() {
    let dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    println!("cargo:rerun-if-changed=src/capi");
    println!("cargo:rerun-if-changed=cbindgen.toml");
    // `make install` builds with XENT_SONAME=libxent.so.MAJOR.MINOR so the
    // installed shared library carries a soname; development builds have
    // none, so programs linked against target/ find plain libxent.so.
    println!("cargo:rerun-if-env-changed=XENT_SONAME");
    if let Ok(soname) = env::var("XENT_SONAME")
        && env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux")
    {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,{soname}");
    }
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
    cbindgen::Builder::new()
        .with_crate(&dir)
        .with_config(config)
        .generate()
        .expect("cbindgen generates the header")
        .write_to_file(&out);
    // Write the committed copy only when it changed, so builds of a clean
    // checkout leave the tree untouched; tests/header.rs compares the two.
    let committed = dir.join("include/xent.h");
    let fresh = std::fs::read(&out).expect("header was written");
    if std::fs::read(&committed).ok().as_deref() != Some(&fresh[..]) {
        std::fs::create_dir_all(dir.join("include")).expect("include/ can be created");
        std::fs::write(&committed, &fresh).expect("include/xent.h can be written");
    }
}

//! The committed `include/repute.h` is what cbindgen makes of `src/lib.rs` today.
//!
//! Regenerate it with `REPUTE_BLESS=1 cargo test -p repute-ffi --test header`.

use std::path::Path;

#[test]
fn header_is_current() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = cbindgen::Config::from_file(dir.join("cbindgen.toml")).expect("cbindgen.toml");
    let mut generated = Vec::new();
    cbindgen::Builder::new()
        .with_src(dir.join("src/lib.rs"))
        .with_config(config)
        .generate()
        .expect("cbindgen generates the header")
        .write(&mut generated);
    let path = dir.join("include/repute.h");
    if std::env::var_os("REPUTE_BLESS").is_some() {
        std::fs::write(&path, &generated).expect("write include/repute.h");
        return;
    }
    let committed = std::fs::read(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "include/repute.h is out of date with src/lib.rs; regenerate it with \
         `REPUTE_BLESS=1 cargo test -p repute-ffi --test header` and commit it"
    );
}

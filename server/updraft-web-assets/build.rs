//! Builds the web app (`web/`) for `wasm32-unknown-unknown` in release mode, runs wasm-bindgen
//! (the library, pinned to the `wasm-bindgen` crate's exact version) for the browser's ES
//! module target, shrinks the wasm with `wasm-opt -Oz` (npm's binaryen, installed into
//! `web/node_modules` by `npm ci` when npm is on the PATH; skipped with a warning otherwise),
//! gzips each file, and writes `assets.rs`: the files the API server embeds.
//!
//! The nested cargo builds into `<target>/updraft-web` (shared by every profile of the outer
//! build, so `cargo test` and `cargo build --release` build the app once) without the outer
//! build's `CARGO_*`, `RUSTFLAGS` or wrapper variables. `UPDRAFT_WEB_TARGET_DIR` overrides
//! the directory.

use std::env;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::Command;

fn main() {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let root = manifest_dir.join("../..");
    let web = root.join("web");
    let out_dir = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    for watched in [
        "web/Cargo.toml",
        "web/Cargo.lock",
        "web/package.json",
        "web/package-lock.json",
        "web/src",
        "web/static",
        "server/updraft-dag/src",
        "server/updraft-dag/Cargo.toml",
        "server/updraft-types/src",
        "server/updraft-types/Cargo.toml",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(watched).display());
    }
    println!("cargo:rerun-if-env-changed=UPDRAFT_WEB_TARGET_DIR");

    // OUT_DIR is <target>/<profile>/build/<crate>-<hash>/out, or one level deeper with --target.
    let shared = out_dir
        .ancestors()
        .find(|dir| dir.file_name().is_some_and(|n| n == "build"))
        .and_then(|build| build.parent()?.parent())
        .map(|target| target.join("updraft-web"));
    let target_dir =
        env::var_os("UPDRAFT_WEB_TARGET_DIR").map(PathBuf::from).or(shared).unwrap_or_else(|| out_dir.join("web"));
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.arg("build")
        .arg("--release")
        .arg("--locked")
        .arg("--target")
        .arg("wasm32-unknown-unknown")
        .arg("--manifest-path")
        .arg(web.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target_dir);
    for (key, _) in env::vars_os() {
        let Some(key) = key.to_str() else { continue };
        let leaks = (key.starts_with("CARGO_") && key != "CARGO_HOME")
            || key.starts_with("RUSTC")
            || key.ends_with("RUSTFLAGS")
            || key.ends_with("RUSTDOCFLAGS")
            || matches!(key, "TARGET" | "HOST" | "OUT_DIR" | "PROFILE" | "OPT_LEVEL" | "DEBUG" | "NUM_JOBS");
        if leaks {
            cmd.env_remove(key);
        }
    }
    let status = cmd.status().expect("running cargo for the web app web/");
    assert!(status.success(), "building web/ for wasm32-unknown-unknown failed (see the output above)");

    let wasm = target_dir.join("wasm32-unknown-unknown/release/updraft-web.wasm");
    let bindgen_out = out_dir.join("bindgen");
    let _ = std::fs::remove_dir_all(&bindgen_out);
    wasm_bindgen_cli_support::Bindgen::new()
        .input_path(&wasm)
        .out_name("updraft_web")
        .web(true)
        .expect("wasm-bindgen: the web target")
        .typescript(false)
        .remove_name_section(true)
        .remove_producers_section(true)
        .generate(&bindgen_out)
        .expect("wasm-bindgen on the web app");
    optimize(&web, &bindgen_out.join("updraft_web_bg.wasm"));

    // (URL path, file, content type). The bundle's names carry a hash of its content, so
    // browsers may cache them for good; index.html is never cached.
    let js = std::fs::read(bindgen_out.join("updraft_web.js")).expect("reading wasm-bindgen's JS");
    let wasm_bytes = std::fs::read(bindgen_out.join("updraft_web_bg.wasm")).expect("reading wasm-bindgen's wasm");
    let css = std::fs::read(web.join("static/style.css")).expect("reading web/static/style.css");
    let tag = fingerprint(&[&js, &wasm_bytes, &css]);
    let js_name = format!("updraft-{tag}.js");
    let wasm_name = format!("updraft-{tag}.wasm");
    let css_name = format!("updraft-{tag}.css");
    // The JS loads its wasm by a URL relative to itself; point it at the hashed name.
    let js = String::from_utf8(js)
        .expect("wasm-bindgen's JS is UTF-8")
        .replace("updraft_web_bg.wasm", &wasm_name)
        .into_bytes();
    let index = std::fs::read_to_string(web.join("static/index.html"))
        .expect("reading web/static/index.html")
        .replace("{js}", &js_name)
        .replace("{wasm}", &wasm_name)
        .replace("{css}", &css_name);

    let files: Vec<(String, Vec<u8>, &str)> = vec![
        ("/index.html".into(), index.into_bytes(), "text/html; charset=utf-8"),
        (format!("/assets/{js_name}"), js, "text/javascript; charset=utf-8"),
        (format!("/assets/{wasm_name}"), wasm_bytes, "application/wasm"),
        (format!("/assets/{css_name}"), css, "text/css; charset=utf-8"),
    ];
    let mut code = String::from(
        "/// The bundle: (URL path, content type, gzip-compressed bytes, uncompressed length).\n\
         pub static FILES: &[Asset] = &[\n",
    );
    for (path, bytes, content_type) in &files {
        let name = path.trim_start_matches('/').replace('/', "_");
        let gz_path = out_dir.join(format!("{name}.gz"));
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        encoder.write_all(bytes).expect("gzip in memory");
        std::fs::write(&gz_path, encoder.finish().expect("gzip in memory")).expect("writing a gzipped asset");
        writeln!(
            code,
            "    Asset {{ path: {path:?}, content_type: {content_type:?}, gzip: include_bytes!({:?}), len: {} }},",
            gz_path.display().to_string(),
            bytes.len()
        )
        .expect("writing to a String");
    }
    code.push_str("];\n");
    std::fs::write(out_dir.join("assets.rs"), code).expect("writing assets.rs");
}

/// `wasm-opt -Oz` in place, from npm's binaryen in `web/node_modules` (installed here with
/// `npm ci` when npm exists). Without it the app still works, only larger.
fn optimize(web: &std::path::Path, wasm: &std::path::Path) {
    let wasm_opt = web.join("node_modules/.bin/wasm-opt");
    if !wasm_opt.exists() {
        let installed = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
            .current_dir(web)
            .status()
            .is_ok_and(|s| s.success());
        if !installed {
            println!("cargo:warning=npm is not available: the web app's wasm is not shrunk by wasm-opt");
            return;
        }
    }
    let optimized = wasm.with_extension("opt.wasm");
    let status = Command::new(&wasm_opt)
        .arg(wasm)
        .args(["-Oz", "--strip-debug", "--strip-producers"])
        .args([
            "--enable-bulk-memory",
            "--enable-nontrapping-float-to-int",
            "--enable-sign-ext",
            "--enable-mutable-globals",
            "--enable-reference-types",
            "--enable-multivalue",
        ])
        .arg("-o")
        .arg(&optimized)
        .status();
    match status {
        Ok(s) if s.success() => std::fs::rename(&optimized, wasm).expect("replacing the wasm with wasm-opt's"),
        other => println!("cargo:warning=wasm-opt failed ({other:?}): the web app's wasm is not shrunk"),
    }
}

/// A short hex digest (FNV-1a, 64 bits) of the bundle's files, for cache-busting names.
fn fingerprint(parts: &[&[u8]]) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for &byte in *part {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    format!("{:012x}", hash >> 16)
}

//! Builds the guest workspace `plugins/` (built-in operators and test fixtures) for
//! `wasm32-wasip2` so that the server embeds the built-ins and no user needs a separate step.
//!
//! The nested cargo gets its own target directory under `OUT_DIR` and none of the `CARGO_*`,
//! `RUSTFLAGS` or wrapper variables of the outer build (they would make it build for the host
//! target, or run clippy-driver on the guests). `UPDRAFT_PLUGINS_TARGET_DIR` overrides the
//! target directory, to share guest builds between profiles.

use std::env;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Built-in operators: (operator name, file stem of the component cargo produces).
const BUILTINS: &[(&str, &str)] = &[
    ("noop", "updraft_op_noop"),
    ("sleep", "updraft_op_sleep"),
    ("fail", "updraft_op_fail"),
    ("sql", "updraft_op_sql"),
    ("http", "updraft_op_http"),
    ("sql_sensor", "updraft_op_sql_sensor"),
    ("kubernetes_pod", "updraft_op_kubernetes_pod"),
];

fn main() {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let plugins = manifest_dir.join("../../plugins");
    let out_dir = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    for watched in ["Cargo.toml", "Cargo.lock", "wit", "updraft-plugin-sdk", "operators", "test-fixtures"] {
        println!("cargo:rerun-if-changed={}", plugins.join(watched).display());
    }
    println!("cargo:rerun-if-env-changed=UPDRAFT_PLUGINS_TARGET_DIR");

    let target_dir =
        env::var_os("UPDRAFT_PLUGINS_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| out_dir.join("wasm"));
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.arg("build")
        .arg("--release")
        .arg("--target")
        .arg("wasm32-wasip2")
        .arg("--manifest-path")
        .arg(plugins.join("Cargo.toml"))
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
    let status = cmd.status().expect("running cargo for the guest workspace plugins/");
    assert!(status.success(), "building plugins/ for wasm32-wasip2 failed (see the output above)");

    let release = target_dir.join("wasm32-wasip2").join("release");
    let mut code = String::from(
        "/// Built-in operators: (name, component bytes).\npub(crate) const BUILTINS: &[(&str, &[u8])] = &[\n",
    );
    for (name, stem) in BUILTINS {
        let path = release.join(format!("{stem}.wasm"));
        assert!(Path::new(&path).exists(), "{} was not built", path.display());
        writeln!(code, "    ({name:?}, include_bytes!({:?})),", path.display().to_string())
            .expect("writing to a String");
    }
    code.push_str("];\n");
    std::fs::write(out_dir.join("builtins.rs"), code).expect("writing builtins.rs");
    // Tests and benches find the fixtures (never shipped) here.
    println!("cargo:rustc-env=UPDRAFT_GUEST_DIR={}", release.display());
}

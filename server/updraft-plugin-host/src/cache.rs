//! On-disk cache of compiled components, so that a restart loads machine code instead of
//! recompiling every plugin.
//!
//! An entry is named by the SHA-256 of the component's bytes and a hash of everything that
//! makes compiled code incompatible (wasmtime's version and the engine's configuration, from
//! [`wasmtime::Engine::precompile_compatibility_hash`]). Entries are written to a temporary
//! file and renamed into place, so a crash never leaves a torn entry; an entry that fails to
//! load anyway is treated as a miss and rewritten.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};

use serde::Serialize;
use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

/// Where a loaded component's machine code came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CacheStatus {
    /// Loaded from the cache.
    Hit,
    /// Compiled now (and stored, when a cache folder is configured).
    Compiled,
}

/// SHA-256 of `bytes`, lowercase hex.
pub(crate) fn content_hash(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    let mut out = String::with_capacity(64);
    for b in digest {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// The cache entry path for a component with content hash `sha256` under `engine`.
fn entry_path(dir: &Path, engine: &Engine, sha256: &str) -> PathBuf {
    let mut h = DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut h);
    dir.join(format!("{sha256}-{:016x}.cwasm", h.finish()))
}

/// Compiles `bytes`, or loads its compiled form from `dir`.
pub(crate) fn load(
    engine: &Engine,
    bytes: &[u8],
    sha256: &str,
    dir: Option<&Path>,
) -> wasmtime::Result<(Component, CacheStatus)> {
    let Some(dir) = dir else {
        return Ok((Component::new(engine, bytes)?, CacheStatus::Compiled));
    };
    let path = entry_path(dir, engine, sha256);
    if path.exists() {
        // SAFETY: the cache folder belongs to this server (like its database) and entries are
        // only ever written by `store` below from `Component::serialize` under an engine with
        // the same compatibility hash, which is part of the file name; wasmtime additionally
        // checks the version and configuration recorded in the file and fails on a mismatch.
        #[allow(unsafe_code)]
        let loaded = unsafe { Component::deserialize_file(engine, &path) };
        match loaded {
            Ok(c) => return Ok((c, CacheStatus::Hit)),
            Err(error) => {
                tracing::warn!(%error, path = %path.display(), "unusable cache entry; recompiling");
            }
        }
    }
    let component = Component::new(engine, bytes)?;
    if let Err(error) = store(dir, &path, &component) {
        tracing::warn!(%error, dir = %dir.display(), "cannot write the component cache");
    }
    Ok((component, CacheStatus::Compiled))
}

fn store(dir: &Path, path: &Path, component: &Component) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    let code = component.serialize().map_err(|e| e.to_string())?;
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, code).map_err(|e| e.to_string())?;
    std::fs::rename(&tmp, path).map_err(|e| e.to_string())
}

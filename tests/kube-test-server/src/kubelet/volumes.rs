//! A pod's volumes on the node, when the test server mounts them
//! (`FakeKubeConfig::mount_volumes`): what the kubelet's volume manager sets up before the
//! first container starts, as host folders the containers' sandboxes bind-mount.
//!
//! * `emptyDir`: a folder of the pod's own, shared by its containers, gone with the pod.
//! * `configMap`, `secret`: one file per key (or per `items` entry, at its `path`, with its
//!   `mode`), from the stored objects; always read-only. A missing object or key keeps the pod
//!   waiting with a `FailedMount` event, unless the volume is `optional`.
//! * `projected` (ServiceAccount token, ConfigMap, Secret and downward API sources) and
//!   `downwardAPI`: files likewise; the token is the pod's ServiceAccount's (for another
//!   `audience`, one the API server refuses, as a real one would).
//!
//! Those four are written as the kubelet's atomic writer writes them: the files in a folder
//! `..<timestamp>`, a symbolic link `..data` to it, and one link per top-level entry into
//! `..data`. [`sync`] rewrites them while the pod runs (the kubelet's periodic sync), swapping
//! `..data` in one rename, so a reader sees the old files or the new ones, never a mix, and an
//! object created or changed after the pod started reaches it. A `subPath` mount pins the file
//! it was made from and sees no update, as in a cluster; so old payload folders are kept while
//! the pod lives.
//! * `persistentVolumeClaim`: one folder per claim on the node, shared by every pod that mounts
//!   it and kept until the server stops (`FakeKube::claim_dir`); every claim is bound.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::sandbox::Mount;
use crate::Shared;

/// A volume set up on the host.
#[derive(Debug, Clone)]
pub(crate) struct HostVolume {
    pub(crate) path: PathBuf,
    /// Every mount of it is read-only (content the kubelet writes, or a claim mounted
    /// `readOnly`).
    pub(crate) read_only: bool,
}

/// Where the node keeps the folder of claim `namespace/name`.
pub(crate) fn claim_path(claims: &Path, namespace: &str, name: &str) -> PathBuf {
    claims.join(namespace).join(name)
}

fn str_at<'a>(value: &'a Value, key: &str) -> &'a str {
    value.get(key).and_then(Value::as_str).unwrap_or("")
}

/// A file of a ConfigMap, Secret or projected volume: its relative path, content and mode.
#[derive(Debug, PartialEq)]
struct File {
    path: String,
    text: Vec<u8>,
    mode: u32,
}

/// The files of a ConfigMap or Secret source: every key, or the `items` asked for.
fn key_files(
    data: Option<&BTreeMap<String, Vec<u8>>>,
    source: &Value,
    kind: &str,
    name: &str,
    default_mode: u32,
) -> Result<Vec<File>, String> {
    let optional = source.get("optional").and_then(Value::as_bool).unwrap_or(false);
    let Some(data) = data else {
        return if optional { Ok(Vec::new()) } else { Err(format!("{kind} \"{name}\" not found")) };
    };
    let Some(items) = source.get("items").and_then(Value::as_array) else {
        return Ok(data.iter().map(|(k, v)| File { path: k.clone(), text: v.clone(), mode: default_mode }).collect());
    };
    let mut files = Vec::new();
    for item in items {
        let key = str_at(item, "key");
        let mode = item.get("mode").and_then(Value::as_u64).and_then(|m| u32::try_from(m).ok()).unwrap_or(default_mode);
        match data.get(key) {
            Some(text) => files.push(File { path: str_at(item, "path").to_owned(), text: text.clone(), mode }),
            None if optional => {}
            None => {
                let what = if kind == "secret" { "secret key" } else { "config key" };
                return Err(format!("{kind} references non-existent {what}: {key}"));
            }
        }
    }
    Ok(files)
}

fn mode_of(source: &Value) -> u32 {
    source.get("defaultMode").and_then(Value::as_u64).and_then(|m| u32::try_from(m).ok()).unwrap_or(0o644)
}

/// The files of a `projected` volume's sources.
fn projected_files(shared: &Shared, pod: &Value, namespace: &str, projected: &Value) -> Result<Vec<File>, String> {
    let default_mode = mode_of(projected);
    let mut files = Vec::new();
    for source in projected.get("sources").and_then(Value::as_array).into_iter().flatten() {
        if let Some(token) = source.get("serviceAccountToken") {
            let account = pod.pointer("/spec/serviceAccountName").and_then(Value::as_str).unwrap_or("default");
            let text = match token.get("audience").and_then(Value::as_str).filter(|a| !a.is_empty()) {
                Some(audience) => crate::rbac::audience_token(namespace, account, audience),
                None => crate::rbac::service_account_token(namespace, account),
            };
            files.push(File { path: str_at(token, "path").to_owned(), text: text.into_bytes(), mode: default_mode });
        }
        if let Some(config_map) = source.get("configMap") {
            let name = str_at(config_map, "name");
            let data = shared.config_map(namespace, name);
            files.extend(key_files(data.as_ref(), config_map, "configmap", name, default_mode)?);
        }
        if let Some(secret) = source.get("secret") {
            let name = str_at(secret, "name");
            let data = shared.secret(namespace, name);
            files.extend(key_files(data.as_ref(), secret, "secret", name, default_mode)?);
        }
        if let Some(downward) = source.get("downwardAPI") {
            files.extend(downward_files(pod, downward, default_mode)?);
        }
    }
    Ok(files)
}

fn downward_files(pod: &Value, downward: &Value, default_mode: u32) -> Result<Vec<File>, String> {
    let mut files = Vec::new();
    for item in downward.get("items").and_then(Value::as_array).into_iter().flatten() {
        let field = item.pointer("/fieldRef/fieldPath").and_then(Value::as_str).unwrap_or("");
        let text = super::container::field_ref(pod, field)
            .ok_or_else(|| format!("unsupported fieldPath: {field}"))?
            .into_bytes();
        let mode = item.get("mode").and_then(Value::as_u64).and_then(|m| u32::try_from(m).ok()).unwrap_or(default_mode);
        files.push(File { path: str_at(item, "path").to_owned(), text, mode });
    }
    Ok(files)
}

/// The payload currently published in `dir` (through `..data`), by path.
fn published(dir: &Path) -> Option<BTreeMap<String, (Vec<u8>, u32)>> {
    let root = std::fs::canonicalize(dir.join("..data")).ok()?;
    let mut out = BTreeMap::new();
    let mut stack = vec![root.clone()];
    while let Some(folder) = stack.pop() {
        for entry in std::fs::read_dir(&folder).ok()?.flatten() {
            let path = entry.path();
            let meta = entry.metadata().ok()?;
            if meta.is_dir() {
                stack.push(path);
            } else {
                let relative = path.strip_prefix(&root).ok()?.to_str()?.to_owned();
                out.insert(relative, (std::fs::read(&path).ok()?, meta.permissions().mode() & 0o777));
            }
        }
    }
    Some(out)
}

/// Publishes `files` in `dir` as the kubelet's atomic writer does, unless they are what `dir`
/// already holds: a new `..<timestamp>` folder, `..data` swapped to it in one rename, a link per
/// top-level entry, links of entries no longer there removed. True if something changed.
fn atomic_write(dir: &Path, files: &[File]) -> Result<bool, String> {
    let io = |path: &Path, e: std::io::Error| format!("writing {}: {e}", path.display());
    let mut payload = BTreeMap::new();
    for file in files {
        let relative = Path::new(&file.path);
        if file.path.is_empty()
            || relative.is_absolute()
            || relative.components().any(|c| c.as_os_str() == "..")
            || file.path.starts_with("..")
        {
            return Err(format!("invalid path {:?}: must be relative and may not contain '..'", file.path));
        }
        payload.insert(file.path.clone(), (file.text.clone(), file.mode & 0o777));
    }
    if published(dir).as_ref() == Some(&payload) {
        return Ok(false);
    }
    std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
    let stamp = crate::time::now().format("..%Y_%m_%d_%H_%M_%S.%f").to_string();
    let mut version = dir.join(&stamp);
    for n in 1.. {
        if !version.exists() {
            break;
        }
        version = dir.join(format!("{stamp}{n}"));
    }
    std::fs::create_dir(&version).map_err(|e| io(&version, e))?;
    for (relative, (text, mode)) in &payload {
        let path = version.join(relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| io(parent, e))?;
        }
        std::fs::write(&path, text).map_err(|e| io(&path, e))?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(*mode)).map_err(|e| io(&path, e))?;
    }
    let tmp = dir.join("..data_tmp");
    let _ = std::fs::remove_file(&tmp);
    let target = version.file_name().map(PathBuf::from).unwrap_or_default();
    std::os::unix::fs::symlink(&target, &tmp).map_err(|e| io(&tmp, e))?;
    std::fs::rename(&tmp, dir.join("..data")).map_err(|e| io(&tmp, e))?;
    let top: std::collections::BTreeSet<String> =
        payload.keys().filter_map(|p| p.split('/').next()).map(str::to_owned).collect();
    for name in &top {
        let link = dir.join(name);
        if std::fs::symlink_metadata(&link).is_err() {
            std::os::unix::fs::symlink(Path::new("..data").join(name), &link).map_err(|e| io(&link, e))?;
        }
    }
    for entry in std::fs::read_dir(dir).map_err(|e| io(dir, e))?.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with("..") && !top.contains(&name) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
    Ok(true)
}

/// The files of a volume the kubelet writes (ConfigMap, Secret, projected, downward API), or
/// `None` for other volume types. `Err` says what is missing.
fn contents(shared: &Shared, pod: &Value, namespace: &str, volume: &Value) -> Option<Result<Vec<File>, String>> {
    if let Some(source) = volume.get("configMap") {
        let object = str_at(source, "name");
        let data = shared.config_map(namespace, object);
        return Some(key_files(data.as_ref(), source, "configmap", object, mode_of(source)));
    }
    if let Some(source) = volume.get("secret") {
        let object = str_at(source, "secretName");
        let data = shared.secret(namespace, object);
        return Some(key_files(data.as_ref(), source, "secret", object, mode_of(source)));
    }
    if let Some(source) = volume.get("projected") {
        return Some(projected_files(shared, pod, namespace, source));
    }
    volume.get("downwardAPI").map(|source| downward_files(pod, source, mode_of(source)))
}

/// Brings the kubelet-written volumes of a running pod (set up in `dir`) up to date with the
/// objects they come from. Returns the `FailedMount` message of each volume that could not be
/// (a non-optional object gone): its files stay as they were, as the kubelet keeps them.
pub(crate) fn sync(shared: &Shared, pod: &Value, dir: &Path) -> Vec<String> {
    let namespace = pod.pointer("/metadata/namespace").and_then(Value::as_str).unwrap_or("");
    let mut errors = Vec::new();
    for volume in pod.pointer("/spec/volumes").and_then(Value::as_array).into_iter().flatten() {
        let name = str_at(volume, "name");
        let result = match contents(shared, pod, namespace, volume) {
            None => continue,
            Some(files) => files.and_then(|files| atomic_write(&dir.join(name), &files)),
        };
        if let Err(why) = result {
            errors.push(format!("MountVolume.SetUp failed for volume \"{name}\" : {why}"));
        }
    }
    errors
}

/// Sets up every volume of `pod`: its own under `dir`, claims under `claims`. `Err` is the
/// message of the `FailedMount` event (`MountVolume.SetUp failed for volume "x" : …`); the
/// kubelet retries until it succeeds.
pub(crate) fn set_up(
    shared: &Shared,
    pod: &Value,
    dir: &Path,
    claims: &Path,
) -> Result<BTreeMap<String, HostVolume>, String> {
    let namespace = pod.pointer("/metadata/namespace").and_then(Value::as_str).unwrap_or("");
    let mut volumes = BTreeMap::new();
    for volume in pod.pointer("/spec/volumes").and_then(Value::as_array).into_iter().flatten() {
        let name = str_at(volume, "name");
        let failed = |why: String| format!("MountVolume.SetUp failed for volume \"{name}\" : {why}");
        let own = dir.join(name);
        let host = if let Some(files) = contents(shared, pod, namespace, volume) {
            // A fresh start: what an earlier attempt left is replaced.
            let _ = std::fs::remove_dir_all(&own);
            atomic_write(&own, &files.map_err(failed)?).map_err(failed)?;
            HostVolume { path: own.clone(), read_only: true }
        } else if volume.get("emptyDir").is_some() {
            std::fs::create_dir_all(&own).map_err(|e| failed(e.to_string()))?;
            HostVolume { path: own.clone(), read_only: false }
        } else if let Some(source) = volume.get("persistentVolumeClaim") {
            let path = claim_path(claims, namespace, str_at(source, "claimName"));
            std::fs::create_dir_all(&path).map_err(|e| failed(e.to_string()))?;
            HostVolume { path, read_only: source.get("readOnly").and_then(Value::as_bool).unwrap_or(false) }
        } else {
            let kind = volume.as_object().and_then(|v| v.keys().find(|k| *k != "name").cloned()).unwrap_or_default();
            return Err(failed(format!("the test server's kubelet does not support {kind} volumes")));
        };
        volumes.insert(name.to_owned(), host);
    }
    Ok(volumes)
}

/// The mounts of one container: each `volumeMounts` entry on its volume's host folder (or the
/// `subPath` inside it, made as a folder if it does not exist, as the kubelet does). `Err` is
/// the message of the container's `CreateContainerConfigError`.
pub(crate) fn container_mounts(
    volumes: &BTreeMap<String, HostVolume>,
    container: &Value,
) -> Result<Vec<Mount>, String> {
    let mut mounts = Vec::new();
    for mount in container.get("volumeMounts").and_then(Value::as_array).into_iter().flatten() {
        let name = str_at(mount, "name");
        let volume =
            volumes.get(name).ok_or_else(|| format!("cannot find volume \"{name}\" to mount into container"))?;
        let mut source = volume.path.clone();
        let sub_path = str_at(mount, "subPath");
        if !sub_path.is_empty() {
            source = source.join(sub_path);
            if !source.exists() {
                std::fs::create_dir_all(&source)
                    .map_err(|e| format!("failed to prepare subPath for volumeMount \"{name}\": {e}"))?;
            }
        }
        let read_only = volume.read_only || mount.get("readOnly").and_then(Value::as_bool).unwrap_or(false);
        mounts.push(Mount {
            file: source.is_file(),
            source,
            target: PathBuf::from(str_at(mount, "mountPath")),
            read_only,
        });
    }
    Ok(mounts)
}

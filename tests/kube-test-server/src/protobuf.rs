//! Request bodies in Kubernetes' protobuf encoding (`application/vnd.kubernetes.protobuf`),
//! for the kinds kubectl sends that way: its typed client encodes `kubectl create secret …` and
//! `kubectl create configmap …` as protobuf, with no JSON fallback. The envelope is the magic
//! `k8s\0` and a `runtime.Unknown` (type meta, raw bytes); the raw bytes are a `v1.Secret` or
//! `v1.ConfigMap` message, with field numbers from `k8s.io/api/core/v1/generated.proto` and
//! `k8s.io/apimachinery/pkg/apis/meta/v1/generated.proto`. They decode into the JSON the rest of
//! the server stores; other kinds get 415, as their messages are not implemented.

use base64::Engine as _;
use serde_json::{Map, Value, json};

use crate::status::ApiError;
use crate::store::Resource;

pub(crate) const CONTENT_TYPE: &str = "application/vnd.kubernetes.protobuf";

/// One field of a message: its number and its value (varint, or bytes for length-delimited).
#[derive(Debug)]
enum Field<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
}

fn varint(bytes: &[u8], at: &mut usize) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *bytes.get(*at)?;
        *at += 1;
        value |= u64::from(byte & 0x7F) << shift;
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

/// The fields of a message, in order; `None` if it is not well-formed protobuf.
fn fields(bytes: &[u8]) -> Option<Vec<(u64, Field<'_>)>> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let key = varint(bytes, &mut at)?;
        let (number, wire) = (key >> 3, key & 7);
        let field = match wire {
            0 => Field::Varint(varint(bytes, &mut at)?),
            2 => {
                let length = usize::try_from(varint(bytes, &mut at)?).ok()?;
                let end = at.checked_add(length).filter(|end| *end <= bytes.len())?;
                let slice = &bytes[at..end];
                at = end;
                Field::Bytes(slice)
            }
            1 => {
                at = at.checked_add(8).filter(|end| *end <= bytes.len())?;
                continue;
            }
            5 => {
                at = at.checked_add(4).filter(|end| *end <= bytes.len())?;
                continue;
            }
            _ => return None,
        };
        out.push((number, field));
    }
    Some(out)
}

fn text(bytes: &[u8]) -> Option<String> {
    String::from_utf8(bytes.to_vec()).ok()
}

/// A `map<string, string|bytes>` entry (key = 1, value = 2).
fn entry(bytes: &[u8]) -> Option<(String, &[u8])> {
    let mut key = String::new();
    let mut value: &[u8] = &[];
    for (number, field) in fields(bytes)? {
        match (number, field) {
            (1, Field::Bytes(b)) => key = text(b)?,
            (2, Field::Bytes(b)) => value = b,
            _ => {}
        }
    }
    Some((key, value))
}

/// `ObjectMeta`, as far as a create or update carries it.
fn object_meta(bytes: &[u8]) -> Option<Value> {
    let mut meta = Map::new();
    let mut labels = Map::new();
    let mut annotations = Map::new();
    let mut finalizers = Vec::new();
    for (number, field) in fields(bytes)? {
        match (number, field) {
            (1, Field::Bytes(b)) => _ = meta.insert("name".into(), json!(text(b)?)),
            (2, Field::Bytes(b)) => _ = meta.insert("generateName".into(), json!(text(b)?)),
            (3, Field::Bytes(b)) => _ = meta.insert("namespace".into(), json!(text(b)?)),
            (5, Field::Bytes(b)) => _ = meta.insert("uid".into(), json!(text(b)?)),
            (6, Field::Bytes(b)) => _ = meta.insert("resourceVersion".into(), json!(text(b)?)),
            (11, Field::Bytes(b)) => {
                let (key, value) = entry(b)?;
                labels.insert(key, json!(text(value)?));
            }
            (12, Field::Bytes(b)) => {
                let (key, value) = entry(b)?;
                annotations.insert(key, json!(text(value)?));
            }
            (14, Field::Bytes(b)) => finalizers.push(json!(text(b)?)),
            _ => {}
        }
    }
    for (key, map) in [("labels", labels), ("annotations", annotations)] {
        if !map.is_empty() {
            meta.insert(key.into(), Value::Object(map));
        }
    }
    if !finalizers.is_empty() {
        meta.insert("finalizers".into(), Value::Array(finalizers));
    }
    Some(Value::Object(meta))
}

/// A `v1.Secret` (metadata 1, data 2, type 3, stringData 4, immutable 5) or `v1.ConfigMap`
/// (metadata 1, data 2, binaryData 3, immutable 4) message as JSON.
fn object(resource: Resource, bytes: &[u8]) -> Option<Value> {
    let b64 = |b: &[u8]| json!(base64::engine::general_purpose::STANDARD.encode(b));
    let secret = resource == Resource::Secrets;
    let mut object = json!({"metadata": {}});
    fn set(object: &mut Value, field: &str, key: String, value: Value) {
        if !object[field].is_object() {
            object[field] = json!({});
        }
        object[field][key] = value;
    }
    for (number, field) in fields(bytes)? {
        match (number, field, secret) {
            (1, Field::Bytes(b), _) => object["metadata"] = object_meta(b)?,
            (2, Field::Bytes(b), true) => {
                let (key, value) = entry(b)?;
                set(&mut object, "data", key, b64(value));
            }
            (2, Field::Bytes(b), false) => {
                let (key, value) = entry(b)?;
                set(&mut object, "data", key, json!(text(value)?));
            }
            (3, Field::Bytes(b), true) => object["type"] = json!(text(b)?),
            (3, Field::Bytes(b), false) => {
                let (key, value) = entry(b)?;
                set(&mut object, "binaryData", key, b64(value));
            }
            (4, Field::Bytes(b), true) => {
                let (key, value) = entry(b)?;
                set(&mut object, "stringData", key, json!(text(value)?));
            }
            (5, Field::Varint(v), true) | (4, Field::Varint(v), false) => object["immutable"] = json!(v != 0),
            _ => {}
        }
    }
    Some(object)
}

/// Decodes a protobuf request body of `resource` into JSON; 400 if it is not the envelope and
/// message it should be, 415 for kinds whose messages this server does not decode.
pub(crate) fn decode(resource: Resource, body: &[u8]) -> Result<Value, ApiError> {
    if !matches!(resource, Resource::Secrets | Resource::ConfigMaps) {
        return Err(ApiError::unsupported_media_type(CONTENT_TYPE));
    }
    let bad = || ApiError::bad_request("the protobuf body is not a well-formed Kubernetes object");
    let unknown = body.strip_prefix(b"k8s\0").ok_or_else(bad)?;
    let mut type_meta = (String::new(), String::new());
    let mut raw: &[u8] = &[];
    for (number, field) in fields(unknown).ok_or_else(bad)? {
        match (number, field) {
            (1, Field::Bytes(b)) => {
                for (n, f) in fields(b).ok_or_else(bad)? {
                    match (n, f) {
                        (1, Field::Bytes(v)) => type_meta.0 = text(v).ok_or_else(bad)?,
                        (2, Field::Bytes(v)) => type_meta.1 = text(v).ok_or_else(bad)?,
                        _ => {}
                    }
                }
            }
            (2, Field::Bytes(b)) => raw = b,
            _ => {}
        }
    }
    let mut object = object(resource, raw).ok_or_else(bad)?;
    object["apiVersion"] = json!(if type_meta.0.is_empty() { resource.api_version().to_owned() } else { type_meta.0 });
    object["kind"] = json!(if type_meta.1.is_empty() { resource.kind().to_owned() } else { type_meta.1 });
    Ok(object)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(number: u8, bytes: &[u8]) -> Vec<u8> {
        let mut out = vec![(number << 3) | 2, bytes.len() as u8];
        out.extend_from_slice(bytes);
        out
    }

    fn entry(key: &str, value: &[u8]) -> Vec<u8> {
        [field(1, key.as_bytes()), field(2, value)].concat()
    }

    #[test]
    fn a_secret_from_kubectl_create_secret_generic() {
        // What client-go encodes for `kubectl create secret generic db --from-literal=password=pw`.
        let meta = field(1, b"db");
        let secret = [field(1, &meta), field(2, &entry("password", b"pw")), field(3, b"Opaque")].concat();
        let type_meta = [field(1, b"v1"), field(2, b"Secret")].concat();
        let body = [b"k8s\0".to_vec(), field(1, &type_meta), field(2, &secret)].concat();
        let object = decode(Resource::Secrets, &body).expect("decodes");
        assert_eq!(
            object,
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db"}, "data": {"password": "cHc="}, "type": "Opaque"})
        );
        assert_eq!(decode(Resource::Secrets, b"{}").expect_err("no envelope").code, 400);
        assert_eq!(decode(Resource::Pods, &body).expect_err("not decoded").code, 415);
    }
}

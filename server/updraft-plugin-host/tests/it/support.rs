//! Helpers: runtimes with test configurations, fixture bytes, a one-shot HTTP server.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::Arc;

use updraft_plugin_host::backends::{MemoryBackends, MemoryComponents};
use updraft_plugin_host::{Backends, GUEST_DIR, HostConfig, Plugin, PluginSource, Runtime};

/// The bytes of a component built by the build script (`updraft_op_noop`, `fixture_spin`, ...).
pub fn guest(stem: &str) -> Vec<u8> {
    let path = Path::new(GUEST_DIR).join(format!("{stem}.wasm"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

pub fn runtime(config: HostConfig) -> (Arc<Runtime>, MemoryBackends) {
    let (backends, memory) = Backends::in_memory();
    (Runtime::new(config, backends).expect("runtime"), memory)
}

/// A runtime whose plugin store is `store`: another process of the same deployment.
pub fn runtime_on(config: HostConfig, store: &Arc<MemoryComponents>) -> Arc<Runtime> {
    let (mut backends, _) = Backends::in_memory();
    backends.plugins = store.clone();
    Runtime::new(config, backends).expect("runtime")
}

pub fn small_config() -> HostConfig {
    let mut config = HostConfig::default();
    config.limits.max_instances = 50;
    config
}

/// Loads a component: `updraft_op_*` as the built-in it is, anything else as a folder file.
pub async fn load(rt: &Runtime, stem: &str) -> Arc<Plugin> {
    let source = if stem.starts_with("updraft_op_") {
        PluginSource::Builtin
    } else {
        PluginSource::File(format!("{stem}.wasm").into())
    };
    rt.load(guest(stem), source).await.expect("load")
}

/// Serves `requests` HTTP requests on 127.0.0.1 with a JSON body; returns the port.
pub fn http_server(requests: usize) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(requests) {
            let Ok(mut stream) = stream else { continue };
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            let body = r#"{"ok":true}"#;
            let response = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(response.as_bytes());
        }
    });
    port
}

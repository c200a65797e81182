//! `window.__updraftLayout(yaml)`: the DAG model's layout timed in the browser's wasm, for the
//! web benchmark (`tests/browser/bench.mjs`). The DAG (a one-file DAG, checked without its SQL
//! as the editor does) is read first, untimed; the result is `{tasks, ms}`, or `{error}`.

use std::sync::Arc;

use wasm_bindgen::JsValue;
use wasm_bindgen::prelude::Closure;

pub fn install() {
    let Some(window) = web_sys::window() else { return };
    let layout = Closure::<dyn Fn(String) -> JsValue>::new(|yaml: String| {
        let out = js_sys::Object::new();
        let name: Arc<str> = Arc::from("bench.yaml");
        let (dag, diagnostics) = updraft_dag::validate_source_structure(&name, &yaml, updraft_dag::Options::default());
        match dag {
            Some(dag) => {
                let perf = web_sys::window().and_then(|w| w.performance());
                let start = perf.as_ref().map_or(0.0, |p| p.now());
                let layout = updraft_dag::layout::layout(&dag);
                let ms = perf.as_ref().map_or(0.0, |p| p.now()) - start;
                let _ = js_sys::Reflect::set(&out, &"tasks".into(), &JsValue::from_f64(dag.tasks.len() as f64));
                let _ = js_sys::Reflect::set(&out, &"nodes".into(), &JsValue::from_f64(layout.nodes.len() as f64));
                let _ = js_sys::Reflect::set(&out, &"ms".into(), &JsValue::from_f64(ms));
            }
            None => {
                let first = diagnostics.first().map_or_else(|| "no DAG".to_owned(), |d| d.message.clone());
                let _ = js_sys::Reflect::set(&out, &"error".into(), &JsValue::from_str(&first));
            }
        }
        out.into()
    });
    let _ = js_sys::Reflect::set(&window, &"__updraftLayout".into(), &layout.into_js_value());
}

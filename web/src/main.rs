//! Updraft's web app: a Leptos single-page app rendered in the browser (wasm32), served by the
//! API server at `/`. `app` holds the router, `session` who is signed in, `api` the typed REST
//! client (with the loaders several pages share); one module per page under `pages/` (no page
//! imports another); shared pieces (the graph canvas, live updates, toasts, the YAML
//! highlighter) under `components/`. DAG files are validated here with the same DAG
//! model crate as the server's (`updraft-dag`, compiled to wasm), and laid out by it.

mod api;
mod app;
mod bench;
mod components;
mod pages;
mod session;

fn main() {
    console_error_panic_hook::set_once();
    bench::install();
    leptos::mount::mount_to_body(app::App);
}

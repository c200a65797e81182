//! The graph view: the laid-out DAG drawn on a 2D canvas (never one DOM element per task), so
//! it stays smooth at thousands of tasks. Pan with drag or arrow keys, zoom with the wheel,
//! pinch, `+`/`-`, fit with `0`; level of detail (zoomed out: coloured boxes only; labels once
//! they are readable, and only for what is on screen); search a task and jump to it; click a
//! task to highlight its upstream and downstream; a minimap. States recolour nodes in place.

pub mod model;

use std::collections::HashMap;
use std::sync::Arc;

use leptos::html::Canvas;
use leptos::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::{CanvasRenderingContext2d, HtmlCanvasElement};

use crate::components::state::color;
pub use model::Graph;

/// Most labels drawn in one frame; past this many nodes on screen, boxes only.
const MAX_LABELS: usize = 2500;
/// Smallest on-screen node height (CSS px) at which labels are drawn.
const LABEL_MIN_PX: f64 = 13.0;

/// Where the camera is: screen = world × scale + (tx, ty), in CSS pixels.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Camera {
    scale: f64,
    tx: f64,
    ty: f64,
}

/// What the view holds between frames.
#[derive(Debug, Default)]
struct ViewState {
    camera: Option<Camera>,
    drag: Option<(f64, f64, f64, f64, bool)>,
    frame_pending: bool,
}

fn context(canvas: &HtmlCanvasElement) -> Option<CanvasRenderingContext2d> {
    canvas.get_context("2d").ok().flatten().and_then(|c| c.dyn_into().ok())
}

/// The canvas' size in CSS pixels, and the device pixel ratio; the backing store follows it.
fn fit_backing(canvas: &HtmlCanvasElement) -> (f64, f64, f64) {
    let dpr = web_sys::window().map_or(1.0, |w| w.device_pixel_ratio()).max(1.0);
    let (w, h) = (f64::from(canvas.client_width().max(1)), f64::from(canvas.client_height().max(1)));
    let (bw, bh) = ((w * dpr).round() as u32, (h * dpr).round() as u32);
    if canvas.width() != bw || canvas.height() != bh {
        canvas.set_width(bw);
        canvas.set_height(bh);
    }
    (w, h, dpr)
}

fn fit_camera(graph: &Graph, w: f64, h: f64) -> Camera {
    let [x0, y0, x1, y1] = graph.bounds.map(f64::from);
    let pad = 30.0;
    let scale = ((w - 2.0 * pad) / (x1 - x0).max(1.0)).min((h - 2.0 * pad) / (y1 - y0).max(1.0)).clamp(0.002, 1.5);
    Camera { scale, tx: pad - x0 * scale + ((w - 2.0 * pad) - (x1 - x0) * scale).max(0.0) / 2.0, ty: pad - y0 * scale }
}

/// The graph view. `graph` is the laid-out DAG, `states` task id → state; `on_open` is called
/// with a task id on double click (or Enter on the selected task).
#[component]
pub fn GraphView(
    #[prop(into)] graph: Signal<Option<Arc<Graph>>>,
    #[prop(into)] states: Signal<HashMap<String, String>>,
    #[prop(optional)] on_open: Option<Callback<String>>,
    #[prop(optional)] compact: bool,
) -> impl IntoView {
    let canvas_ref = NodeRef::<Canvas>::new();
    let minimap_ref = NodeRef::<Canvas>::new();
    let view = StoredValue::new(ViewState::default());
    let selected = RwSignal::new(None::<u32>);
    let lineage = RwSignal::new(None::<Arc<Vec<bool>>>);
    let search = RwSignal::new(String::new());
    let matches = Memo::new(move |_| {
        let needle = search.get().to_lowercase();
        if needle.is_empty() {
            return Vec::new();
        }
        graph.with(|g| match g {
            Some(g) => g
                .ids
                .iter()
                .enumerate()
                .filter(|(_, id)| id.to_lowercase().contains(&needle))
                .take(50)
                .map(|(i, _)| i as u32)
                .collect(),
            None => Vec::new(),
        })
    });
    // Fill colour of every node, recomputed when the states change (no re-layout).
    let fills = Memo::new(move |_| {
        let states = states.get();
        graph.with(|g| match g {
            Some(g) => g
                .ids
                .iter()
                .enumerate()
                .map(|(i, id)| if g.external[i] { "#eef2f7" } else { color(states.get(id).map_or("", String::as_str)) })
                .collect::<Vec<_>>(),
            None => Vec::new(),
        })
    });

    let draw = move || {
        let Some(canvas) = canvas_ref.get_untracked() else { return };
        let Some(ctx) = context(&canvas) else { return };
        let (w, h, dpr) = fit_backing(&canvas);
        let start = web_sys::window().and_then(|w| w.performance()).map(|p| p.now());
        graph.with_untracked(|g| {
            let Some(g) = g else { return };
            let camera = view.with_value(|v| v.camera).unwrap_or_else(|| fit_camera(g, w, h));
            view.update_value(|v| v.camera = Some(camera));
            fills.with_untracked(|fills| {
                lineage.with_untracked(|lin| {
                    let selected = selected.get_untracked();
                    let matches = matches.get_untracked();
                    paint(&ctx, g, camera, w, h, dpr, fills, lin.as_deref().map(Vec::as_slice), selected, &matches);
                });
            });
            if let Some(mini) = minimap_ref.get_untracked() {
                fills.with_untracked(|fills| paint_minimap(&mini, g, fills, camera, w, h));
            }
        });
        if let (Some(start), Some(perf)) = (start, web_sys::window().and_then(|w| w.performance()))
            && graph.with_untracked(Option::is_some)
        {
            record_frame(perf.now() - start);
            let _ = perf.mark("graph-frame");
        }
    };
    let request = move || {
        if view.with_value(|v| v.frame_pending) {
            return;
        }
        view.update_value(|v| v.frame_pending = true);
        request_animation_frame(move || {
            view.update_value(|v| v.frame_pending = false);
            draw();
        });
    };
    // A new graph resets the camera; anything else only redraws.
    Effect::new(move |_| {
        graph.track();
        view.update_value(|v| v.camera = None);
        selected.set(None);
        lineage.set(None);
        request();
    });
    Effect::new(move |_| {
        fills.track();
        selected.track();
        lineage.track();
        matches.track();
        request();
    });
    let resize = window_event_listener(leptos::ev::resize, move |_| request());
    on_cleanup(move || resize.remove());

    let zoom_at = move |factor: f64, sx: f64, sy: f64| {
        view.update_value(|v| {
            if let Some(c) = v.camera.as_mut() {
                let scale = (c.scale * factor).clamp(0.002, 4.0);
                let f = scale / c.scale;
                c.tx = sx - (sx - c.tx) * f;
                c.ty = sy - (sy - c.ty) * f;
                c.scale = scale;
            }
        });
        request();
    };
    let pan = move |dx: f64, dy: f64| {
        view.update_value(|v| {
            if let Some(c) = v.camera.as_mut() {
                c.tx += dx;
                c.ty += dy;
            }
        });
        request();
    };
    let focus_on = move |node: u32| {
        let Some(canvas) = canvas_ref.get_untracked() else { return };
        let (w, h) = (f64::from(canvas.client_width()), f64::from(canvas.client_height()));
        graph.with_untracked(|g| {
            let Some(g) = g else { return };
            let (x, y) = (f64::from(g.x[node as usize] + g.w / 2.0), f64::from(g.y[node as usize] + g.h / 2.0));
            view.update_value(|v| {
                let scale = v.camera.map_or(1.0, |c| c.scale).max(0.9);
                v.camera = Some(Camera { scale, tx: w / 2.0 - x * scale, ty: h / 2.0 - y * scale });
            });
            lineage.set(Some(Arc::new(g.lineage(node, None))));
        });
        selected.set(Some(node));
        request();
    };
    let select_at = move |sx: f64, sy: f64| {
        let hit = graph.with_untracked(|g| {
            let g = g.as_ref()?;
            let c = view.with_value(|v| v.camera)?;
            g.hit(((sx - c.tx) / c.scale) as f32, ((sy - c.ty) / c.scale) as f32)
        });
        match hit {
            Some(node) if selected.get_untracked() != Some(node) => {
                let lin = graph.with_untracked(|g| g.as_ref().map(|g| Arc::new(g.lineage(node, None))));
                selected.set(Some(node));
                lineage.set(lin);
            }
            _ => {
                selected.set(None);
                lineage.set(None);
            }
        }
    };
    let id_of = move |node: u32| graph.with_untracked(|g| g.as_ref().and_then(|g| g.ids.get(node as usize).cloned()));

    let on_pointerdown = move |ev: leptos::ev::PointerEvent| {
        if let Some(canvas) = canvas_ref.get_untracked() {
            let _ = canvas.set_pointer_capture(ev.pointer_id());
            let _ = canvas.focus();
        }
        let (x, y) = (f64::from(ev.offset_x()), f64::from(ev.offset_y()));
        view.update_value(|v| v.drag = Some((x, y, x, y, false)));
    };
    let on_pointermove = move |ev: leptos::ev::PointerEvent| {
        let (x, y) = (f64::from(ev.offset_x()), f64::from(ev.offset_y()));
        let moved = view.try_update_value(|v| {
            let (x0, y0, lx, ly, moved) = v.drag?;
            let moved = moved || (x - x0).abs() + (y - y0).abs() > 4.0;
            v.drag = Some((x0, y0, x, y, moved));
            moved.then_some((x - lx, y - ly))
        });
        if let Some(Some((dx, dy))) = moved {
            pan(dx, dy);
        }
    };
    let on_pointerup = move |ev: leptos::ev::PointerEvent| {
        let drag = view.try_update_value(|v| v.drag.take()).flatten();
        if let Some((x, y, _, _, false)) = drag {
            let _ = (x, y);
            select_at(f64::from(ev.offset_x()), f64::from(ev.offset_y()));
        }
    };
    let on_dblclick = move |ev: leptos::ev::MouseEvent| {
        let hit = graph.with_untracked(|g| {
            let g = g.as_ref()?;
            let c = view.with_value(|v| v.camera)?;
            g.hit(
                ((f64::from(ev.offset_x()) - c.tx) / c.scale) as f32,
                ((f64::from(ev.offset_y()) - c.ty) / c.scale) as f32,
            )
        });
        if let (Some(node), Some(open)) = (hit, on_open)
            && let Some(id) = id_of(node)
        {
            open.run(id);
        }
    };
    let on_wheel = move |ev: leptos::ev::WheelEvent| {
        ev.prevent_default();
        let (sx, sy) = (f64::from(ev.offset_x()), f64::from(ev.offset_y()));
        if ev.ctrl_key() || ev.delta_mode() != 0 || ev.delta_x() == 0.0 {
            // A wheel, or a pinch (ctrl+wheel): zoom around the pointer.
            let step = if ev.delta_mode() == 0 { ev.delta_y() } else { ev.delta_y() * 40.0 };
            zoom_at((-step * if ev.ctrl_key() { 0.01 } else { 0.0015 }).exp(), sx, sy);
        } else {
            // A two-finger scroll on a trackpad: pan.
            pan(-ev.delta_x(), -ev.delta_y());
        }
    };
    let on_keydown = move |ev: leptos::ev::KeyboardEvent| {
        let Some(canvas) = canvas_ref.get_untracked() else { return };
        let (w, h) = (f64::from(canvas.client_width()), f64::from(canvas.client_height()));
        match ev.key().as_str() {
            "ArrowLeft" => pan(80.0, 0.0),
            "ArrowRight" => pan(-80.0, 0.0),
            "ArrowUp" => pan(0.0, 80.0),
            "ArrowDown" => pan(0.0, -80.0),
            "+" | "=" => zoom_at(1.25, w / 2.0, h / 2.0),
            "-" | "_" => zoom_at(0.8, w / 2.0, h / 2.0),
            "0" => {
                view.update_value(|v| v.camera = None);
                request();
            }
            "Escape" => {
                selected.set(None);
                lineage.set(None);
            }
            "Enter" => {
                if let (Some(node), Some(open)) = (selected.get_untracked(), on_open)
                    && let Some(id) = id_of(node)
                {
                    open.run(id);
                }
            }
            _ => return,
        }
        ev.prevent_default();
    };
    let on_minimap = move |ev: leptos::ev::MouseEvent| {
        let Some(mini) = minimap_ref.get_untracked() else { return };
        let Some(canvas) = canvas_ref.get_untracked() else { return };
        let (w, h) = (f64::from(canvas.client_width()), f64::from(canvas.client_height()));
        graph.with_untracked(|g| {
            let Some(g) = g else { return };
            let (mw, mh) = (f64::from(mini.client_width()), f64::from(mini.client_height()));
            let (s, ox, oy) = minimap_transform(g, mw, mh);
            let (wx, wy) = ((f64::from(ev.offset_x()) - ox) / s, (f64::from(ev.offset_y()) - oy) / s);
            view.update_value(|v| {
                if let Some(c) = v.camera.as_mut() {
                    c.tx = w / 2.0 - wx * c.scale;
                    c.ty = h / 2.0 - wy * c.scale;
                }
            });
        });
        request();
    };

    let jump = move || {
        if let Some(&first) = matches.get_untracked().first() {
            focus_on(first);
        }
    };
    let side = move || {
        let node = selected.get()?;
        let (id, op, ext, ups, downs, group) = graph.with(|g| {
            let g = g.as_ref()?;
            let i = node as usize;
            Some((
                g.ids[i].clone(),
                g.operator[i].clone(),
                g.external[i],
                g.up[i].len(),
                g.down[i].len(),
                g.group[i].clone(),
            ))
        })?;
        let lineage_size = lineage.with(|l| l.as_ref().map_or(0, |l| l.iter().filter(|b| **b).count()));
        let state = states.with(|s| s.get(&id).cloned()).unwrap_or_default();
        let open_id = id.clone();
        Some(view! {
            <div class="graph-side panel" data-testid="graph-selection">
                <strong class="mono">{id.clone()}</strong>
                <div class="muted">{if ext { "external table".to_owned() } else { format!("operator {}", op.unwrap_or_default()) }}</div>
                {group.map(|g| view! { <div class="muted">"folder " {g}</div> })}
                <div>{format!("{ups} upstream, {downs} downstream; lineage {lineage_size} nodes")}</div>
                <div>"state: " <span data-testid="selected-state">{if state.is_empty() { "none".to_owned() } else { state }}</span></div>
                {(!ext && on_open.is_some()).then(|| view! {
                    <button class="small" style="margin-top: 8px" on:click=move |_| { if let Some(open) = on_open { open.run(open_id.clone()) } }>
                        "Open task instance"
                    </button>
                })}
            </div>
        })
    };
    let class = if compact { "preview-box" } else { "graph-box panel" };
    view! {
        <div class=class>
            <Show when=move || !compact>
                <div class="graph-tools">
                    <input type="search" placeholder="Find a task (Enter jumps)" aria-label="Find a task" data-testid="graph-search"
                        prop:value=move || search.get() on:input=move |ev| search.set(event_target_value(&ev))
                        on:keydown=move |ev: leptos::ev::KeyboardEvent| if ev.key() == "Enter" { ev.prevent_default(); jump() }/>
                    <span class="muted" style="font-size: 12px">{move || if search.with(String::is_empty) { String::new() } else { format!("{} found", matches.with(Vec::len)) }}</span>
                    <button class="small" title="Zoom in (+)" on:click=move |_| { if let Some(c) = canvas_ref.get_untracked() { zoom_at(1.25, f64::from(c.client_width()) / 2.0, f64::from(c.client_height()) / 2.0) } }>"+"</button>
                    <button class="small" title="Zoom out (-)" on:click=move |_| { if let Some(c) = canvas_ref.get_untracked() { zoom_at(0.8, f64::from(c.client_width()) / 2.0, f64::from(c.client_height()) / 2.0) } }>"−"</button>
                    <button class="small" title="Fit (0)" on:click=move |_| { view.update_value(|v| v.camera = None); request(); }>"Fit"</button>
                    <Show when=move || !matches.with(Vec::is_empty)>
                        <div class="suggest" data-testid="graph-suggest">
                            <For each=move || matches.get().into_iter().take(12) key=|i| *i let:node>
                                <div on:mousedown=move |ev| { ev.prevent_default(); focus_on(node) }>{move || id_of(node).unwrap_or_default()}</div>
                            </For>
                        </div>
                    </Show>
                </div>
            </Show>
            <canvas class="main" node_ref=canvas_ref tabindex="0" data-testid="graph-canvas" aria-label="DAG graph"
                on:pointerdown=on_pointerdown on:pointermove=on_pointermove on:pointerup=on_pointerup
                on:dblclick=on_dblclick on:wheel=on_wheel on:keydown=on_keydown></canvas>
            <Show when=move || !compact>
                <canvas class="minimap" node_ref=minimap_ref on:click=on_minimap aria-label="minimap"></canvas>
                {side}
            </Show>
        </div>
    }
}

/// Keeps the last frame times for the browser benchmark (`window.__updraftFrames`).
fn record_frame(ms: f64) {
    let Some(window) = web_sys::window() else { return };
    let key = wasm_bindgen::JsValue::from_str("__updraftFrames");
    let frames = js_sys::Reflect::get(&window, &key).ok().filter(|v| v.is_object()).unwrap_or_else(|| {
        let array: wasm_bindgen::JsValue = js_sys::Array::new().into();
        let _ = js_sys::Reflect::set(&window, &key, &array);
        array
    });
    if let Ok(array) = frames.dyn_into::<js_sys::Array>() {
        array.push(&wasm_bindgen::JsValue::from_f64(ms));
        if array.length() > 2000 {
            array.shift();
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn paint(
    ctx: &CanvasRenderingContext2d,
    g: &Graph,
    c: Camera,
    w: f64,
    h: f64,
    dpr: f64,
    fills: &[&'static str],
    lineage: Option<&[bool]>,
    selected: Option<u32>,
    matches: &[u32],
) {
    let _ = ctx.set_transform(dpr, 0.0, 0.0, dpr, 0.0, 0.0);
    ctx.set_fill_style_str("#fbfcfd");
    ctx.fill_rect(0.0, 0.0, w, h);
    let _ = ctx.set_transform(dpr * c.scale, 0.0, 0.0, dpr * c.scale, dpr * c.tx, dpr * c.ty);
    let (x0, y0) = ((-c.tx / c.scale) as f32, (-c.ty / c.scale) as f32);
    let (x1, y1) = (((w - c.tx) / c.scale) as f32, ((h - c.ty) / c.scale) as f32);
    let px = 1.0 / c.scale;
    let in_lineage = |i: u32| lineage.is_none_or(|l| l[i as usize]);

    // Edges: one path for the faded ones, one for the highlighted; culled by their box.
    let (nw, nh) = (g.w, g.h);
    let zoomed_out = c.scale * f64::from(nh) < 4.0;
    for pass in [false, true] {
        if pass && lineage.is_none() {
            break;
        }
        ctx.begin_path();
        let mut drawn = 0usize;
        for e in &g.edges {
            let (s, t) = (e.source as usize, e.target as usize);
            let highlighted = lineage.is_some_and(|l| l[s] && l[t]);
            if highlighted != pass {
                continue;
            }
            let (sx, sy) = (g.x[s] + nw, g.y[s] + nh / 2.0);
            let (tx, ty) = (g.x[t], g.y[t] + nh / 2.0);
            let (minx, maxx) = (sx.min(tx), sx.max(tx));
            let (mut miny, mut maxy) = (sy.min(ty), sy.max(ty));
            for p in &e.points {
                miny = miny.min(p[1]);
                maxy = maxy.max(p[1]);
            }
            if maxx < x0 || minx > x1 || maxy < y0 || miny > y1 {
                continue;
            }
            ctx.move_to(f64::from(sx), f64::from(sy));
            if !zoomed_out {
                for p in &e.points {
                    ctx.line_to(f64::from(p[0]), f64::from(p[1]));
                }
            }
            ctx.line_to(f64::from(tx), f64::from(ty));
            drawn += 1;
        }
        let faded = lineage.is_some() && !pass;
        let alpha = if faded {
            0.12
        } else if drawn > 20_000 {
            0.25
        } else {
            0.7
        };
        ctx.set_global_alpha(alpha);
        ctx.set_stroke_style_str(if pass { "#1d4ed8" } else { "#94a3b8" });
        ctx.set_line_width(if pass { 2.0 * px } else { px });
        ctx.stroke();
    }
    ctx.set_global_alpha(1.0);

    // Nodes: collected once, then filled in one path per colour.
    let mut visible = Vec::new();
    g.visible(x0, y0, x1, y1, |i| visible.push(i));
    for faded in [true, false] {
        if faded && lineage.is_none() {
            continue;
        }
        ctx.set_global_alpha(if faded { 0.18 } else { 1.0 });
        let mut by_color: HashMap<&'static str, Vec<u32>> = HashMap::new();
        for &i in &visible {
            if in_lineage(i) != faded {
                by_color.entry(fills.get(i as usize).copied().unwrap_or("#ffffff")).or_default().push(i);
            }
        }
        let mut colors: Vec<_> = by_color.into_iter().collect();
        colors.sort_by_key(|(c, _)| *c);
        for (fill, nodes) in &colors {
            ctx.begin_path();
            for &i in nodes {
                ctx.rect(f64::from(g.x[i as usize]), f64::from(g.y[i as usize]), f64::from(nw), f64::from(nh));
            }
            ctx.set_fill_style_str(fill);
            ctx.fill();
        }
        if c.scale * f64::from(nh) >= 6.0 {
            ctx.begin_path();
            for &i in &visible {
                if in_lineage(i) != faded {
                    ctx.rect(f64::from(g.x[i as usize]), f64::from(g.y[i as usize]), f64::from(nw), f64::from(nh));
                }
            }
            ctx.set_stroke_style_str("#64748b");
            ctx.set_line_width(px);
            ctx.stroke();
        }
    }
    ctx.set_global_alpha(1.0);

    // Search matches and the selection, outlined.
    let outline = |i: u32, color: &str, width: f64| {
        ctx.set_stroke_style_str(color);
        ctx.set_line_width(width * px);
        let pad = f64::from(3.0 * px as f32);
        ctx.stroke_rect(
            f64::from(g.x[i as usize]) - pad,
            f64::from(g.y[i as usize]) - pad,
            f64::from(nw) + 2.0 * pad,
            f64::from(nh) + 2.0 * pad,
        );
    };
    for &i in matches {
        outline(i, "#f59e0b", 3.0);
    }
    if let Some(i) = selected {
        outline(i, "#1d4ed8", 3.0);
    }

    // Labels, when readable and not too many.
    if c.scale * f64::from(nh) >= LABEL_MIN_PX && visible.len() <= MAX_LABELS {
        let _ = ctx.set_transform(dpr, 0.0, 0.0, dpr, 0.0, 0.0);
        let font_px = (c.scale * f64::from(nh) * 0.45).clamp(10.0, 15.0);
        ctx.set_font(&format!("{font_px:.0}px system-ui, sans-serif"));
        ctx.set_text_baseline("middle");
        let box_w = c.scale * f64::from(nw);
        let max_chars = ((box_w - 10.0) / (font_px * 0.56)).max(1.0) as usize;
        for &i in &visible {
            let (sx, sy) = (f64::from(g.x[i as usize]) * c.scale + c.tx, f64::from(g.y[i as usize]) * c.scale + c.ty);
            let fill = fills.get(i as usize).copied().unwrap_or("#ffffff");
            let dark = matches!(fill, "#16a34a" | "#dc2626" | "#0ea5e9" | "#8b5cf6" | "#f97316");
            ctx.set_global_alpha(if in_lineage(i) { 1.0 } else { 0.3 });
            ctx.set_fill_style_str(if dark { "#ffffff" } else { "#111827" });
            let id = &g.ids[i as usize];
            let text: String = if id.chars().count() > max_chars {
                id.chars().take(max_chars.saturating_sub(1)).chain(std::iter::once('…')).collect()
            } else {
                id.clone()
            };
            let _ = ctx.fill_text(&text, sx + 6.0, sy + c.scale * f64::from(nh) / 2.0);
        }
        ctx.set_global_alpha(1.0);
    }
}

/// Scale and offset that fit the whole graph into the minimap.
fn minimap_transform(g: &Graph, mw: f64, mh: f64) -> (f64, f64, f64) {
    let [x0, y0, x1, y1] = g.bounds.map(f64::from);
    let s = ((mw - 8.0) / (x1 - x0).max(1.0)).min((mh - 8.0) / (y1 - y0).max(1.0));
    (s, 4.0 - x0 * s, 4.0 - y0 * s)
}

fn paint_minimap(mini: &HtmlCanvasElement, g: &Graph, fills: &[&'static str], c: Camera, w: f64, h: f64) {
    let Some(ctx) = context(mini) else { return };
    let (mw, mh, dpr) = fit_backing(mini);
    let _ = ctx.set_transform(dpr, 0.0, 0.0, dpr, 0.0, 0.0);
    ctx.clear_rect(0.0, 0.0, mw, mh);
    let (s, ox, oy) = minimap_transform(g, mw, mh);
    let dot = (f64::from(g.h) * s).max(1.0);
    let mut by_color: HashMap<&'static str, Vec<usize>> = HashMap::new();
    for i in 0..g.ids.len() {
        by_color.entry(fills.get(i).copied().unwrap_or("#ffffff")).or_default().push(i);
    }
    for (fill, nodes) in by_color {
        ctx.begin_path();
        for i in nodes {
            ctx.rect(f64::from(g.x[i]) * s + ox, f64::from(g.y[i]) * s + oy, (f64::from(g.w) * s).max(1.0), dot);
        }
        ctx.set_fill_style_str(if fill == "#ffffff" { "#cbd5e1" } else { fill });
        ctx.fill();
    }
    ctx.set_stroke_style_str("#1d4ed8");
    ctx.set_line_width(1.5);
    ctx.stroke_rect(-c.tx / c.scale * s + ox, -c.ty / c.scale * s + oy, w / c.scale * s, h / c.scale * s);
}

//! The graph view: the laid-out DAG drawn on a 2D canvas (never one DOM element per task), so
//! it stays smooth at 100,000 tasks. Pan with drag or arrow keys, zoom with the wheel, pinch,
//! `+`/`-`, fit with `0`; level of detail (see `paint`); search a task and jump to it; click a
//! task to highlight its upstream and downstream, to a chosen depth, or show only that lineage;
//! collapse a folder (or id prefix) into one card with its state counts, in place; a minimap; a
//! list view as fallback. States recolour nodes in place, never re-laying out.

mod list;
pub mod model;
mod paint;

use std::collections::HashMap;
use std::sync::Arc;

use leptos::html::Canvas;
use leptos::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::Closure;
use web_sys::{CanvasRenderingContext2d, HtmlCanvasElement};

use crate::components::state::{RANKED, color};
use list::GraphList;
use model::{Collapse, GroupBy, Groups};
pub use model::{Graph, GraphJson};
use paint::{Camera, NodeStyle, PaintCache, Scene};

/// Smallest and largest zoom (screen px per world unit).
const MIN_SCALE: f64 = 0.000_05;
const MAX_SCALE: f64 = 4.0;
/// How much more elongated than the view a drawing must be to be stretched when zoomed out.
const STRETCH_ABOVE: f64 = 4.0;

/// What the view holds between frames.
#[derive(Default)]
struct ViewState {
    camera: Option<Camera>,
    drag: Option<(f64, f64, f64, f64, bool)>,
    frame_pending: bool,
    cache: PaintCache,
    /// Bumped when the lineage, "only lineage" or the collapsed groups change.
    version: u64,
    /// Bumped when the states change.
    style_version: u64,
    minimap: Option<MinimapPicture>,
}

/// The minimap's picture and what it was drawn for.
struct MinimapPicture {
    /// Scene version, states version, backing width and height.
    key: (u64, u64, u32, u32),
    /// RGBA pixels, `width` × `height`.
    pixels: (Vec<u8>, u32, u32),
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

/// The camera that shows the whole of `bounds`. A drawing more than [`STRETCH_ABOVE`] times
/// taller (or wider) than the view's proportions is pinned across its short side to fill the
/// view while zoomed out (see [`Camera`]).
fn fit_camera(bounds: [f32; 4], w: f64, h: f64) -> Camera {
    let [x0, y0, x1, y1] = bounds.map(f64::from);
    let pad = 30.0;
    let fit_x = ((w - 2.0 * pad) / (x1 - x0).max(1.0)).clamp(MIN_SCALE, 1.5);
    let fit_y = ((h - 2.0 * pad) / (y1 - y0).max(1.0)).clamp(MIN_SCALE, 1.5);
    let zoom = fit_x.min(fit_y);
    let mut c = Camera {
        zoom,
        pin_x: if fit_x > zoom * STRETCH_ABOVE { fit_x } else { 0.0 },
        pin_y: if fit_y > zoom * STRETCH_ABOVE { fit_y } else { 0.0 },
        tx: 0.0,
        ty: 0.0,
    };
    c.tx = pad - x0 * c.sx() + ((w - 2.0 * pad) - (x1 - x0) * c.sx()).max(0.0) / 2.0;
    c.ty = pad - y0 * c.sy() + ((h - 2.0 * pad) - (y1 - y0) * c.sy()).max(0.0) / 2.0;
    c
}

/// What a point of the canvas shows.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Target {
    Node(u32),
    /// A collapsed group's card: (group, anchor node).
    Card(u32, u32),
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
    let view = StoredValue::new_local(ViewState::default());
    let selected = RwSignal::new(None::<u32>);
    let depth = RwSignal::new(None::<u32>);
    let only = RwSignal::new(false);
    let group_by = RwSignal::new(GroupBy::Folder);
    let collapsed = RwSignal::new(HashMap::<u32, u32>::new());
    let list_mode = RwSignal::new(false);
    let search = RwSignal::new(String::new());

    let groups = Memo::new(move |_| {
        let by = group_by.get();
        Arc::new(graph.with(|g| g.as_ref().map(|g| g.groups(by)).unwrap_or_default()))
    });
    let collapse = Memo::new(move |_| {
        let collapsed = collapsed.get();
        groups.with(|groups| {
            Arc::new(graph.with(|g| g.as_ref().map(|g| g.collapse(groups, &collapsed)).unwrap_or_default()))
        })
    });
    // The selection's lineage: a task's, or every member's of a selected card.
    let lineage = Memo::new(move |_| {
        let node = selected.get()?;
        let depth = depth.get();
        let card = collapse.with(|c| c.card.get(node as usize).copied().flatten());
        graph.with(|g| {
            let g = g.as_ref()?;
            let lin = match card {
                Some(group) => groups.with(|gr| g.lineage_of(&gr.members[group as usize], depth)),
                None => g.lineage(node, depth),
            };
            Some(Arc::new(lin))
        })
    });
    // What is drawn: the graph, or only the lineage, packed (see `Graph::project`).
    let shown = Memo::new(move |_| {
        let g = graph.get()?;
        if only.get()
            && let Some(l) = lineage.get()
        {
            return Some(Arc::new(g.project(&l)));
        }
        Some(g)
    });
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
    // Every node's state and colour, recomputed when the states change (no re-layout).
    let style = Memo::new(move |_| {
        states
            .with(|states| Arc::new(graph.with(|g| g.as_ref().map(|g| NodeStyle::new(g, states)).unwrap_or_default())))
    });

    let draw = move || {
        let Some(canvas) = canvas_ref.get_untracked() else { return };
        let Some(ctx) = context(&canvas) else { return };
        let size = fit_backing(&canvas);
        let (w, h, _) = size;
        let start = web_sys::window().and_then(|w| w.performance()).map(|p| p.now());
        let drew = shown.with_untracked(|g| {
            let g = g.as_ref()?;
            let (style, groups, collapse, lineage) =
                (style.get_untracked(), groups.get_untracked(), collapse.get_untracked(), lineage.get_untracked());
            let matches = matches.get_untracked();
            view.update_value(|v| {
                let scene = Scene {
                    g,
                    style: &style,
                    groups: &groups,
                    collapse: &collapse,
                    lineage: lineage.as_deref().map(Vec::as_slice),
                    only: only.get_untracked() && lineage.is_some(),
                    selected: selected.get_untracked(),
                    matches: &matches,
                    version: v.version,
                };
                let camera = *v.camera.get_or_insert_with(|| {
                    let bounds = g.drawn_bounds(&collapse, if scene.only { scene.lineage } else { None });
                    fit_camera(bounds.unwrap_or(g.bounds), w, h)
                });
                paint::paint(&ctx, &scene, camera, size, &mut v.cache);
                if let Some(mini) = minimap_ref.get_untracked() {
                    draw_minimap(&mini, &scene, camera, (w, h), v);
                }
            });
            Some(())
        });
        if let (Some(start), Some(perf), Some(())) = (start, web_sys::window().and_then(|w| w.performance()), drew) {
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
    // A new graph resets the camera and what was chosen; anything else only redraws.
    Effect::new(move |_| {
        graph.track();
        view.update_value(|v| {
            v.camera = None;
            v.version += 1;
        });
        selected.set(None);
        collapsed.set(HashMap::new());
        only.set(false);
        request();
    });
    Effect::new(move |_| {
        lineage.track();
        only.track();
        collapse.track();
        shown.track();
        // Showing only a lineage packs it anew: fit it.
        let refit = only.get_untracked();
        view.update_value(|v| {
            v.version += 1;
            if refit {
                v.camera = None;
            }
        });
        request();
    });
    Effect::new(move |_| {
        style.track();
        view.update_value(|v| v.style_version += 1);
        request();
    });
    Effect::new(move |_| {
        matches.track();
        selected.track();
        list_mode.track();
        request();
    });
    let resize = window_event_listener(leptos::ev::resize, move |_| request());
    on_cleanup(move || resize.remove());

    let canvas_size = move || {
        canvas_ref.get_untracked().map_or((1.0, 1.0), |c| (f64::from(c.client_width()), f64::from(c.client_height())))
    };
    let zoom_at = move |factor: f64, sx: f64, sy: f64| {
        view.update_value(|v| {
            if let Some(c) = v.camera.as_mut() {
                c.zoom_at(factor, sx, sy, (MIN_SCALE, MAX_SCALE));
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
    let fit = move || {
        view.update_value(|v| v.camera = None);
        request();
    };
    // What is under a point of the canvas (CSS px).
    let target_at = move |sx: f64, sy: f64| -> Option<Target> {
        let c = view.with_value(|v| v.camera)?;
        let (x, y) = c.world(sx, sy);
        shown.with_untracked(|g| {
            let g = g.as_ref()?;
            // Boxes never shrink below a few pixels on screen: look around the point that much.
            let (rx, ry) = (((10.0 / c.sx()) as f32 - g.w).max(0.0), ((7.0 / c.sy()) as f32 - g.h).max(0.0));
            let mut candidates = Vec::new();
            g.visible(x - rx, y - ry, x, y, |i| candidates.push(i));
            let only_lineage = only.get_untracked();
            collapse.with_untracked(|col| {
                groups.with_untracked(|gr| {
                    lineage.with_untracked(|l| {
                        let shown_only = l.as_deref().map(Vec::as_slice).filter(|_| only_lineage);
                        let node = candidates.into_iter().find(|&n| paint::is_drawn(col, gr, shown_only, n))?;
                        Some(match col.card[node as usize] {
                            Some(group) => Target::Card(group, node),
                            None => Target::Node(node),
                        })
                    })
                })
            })
        })
    };
    // Shows a node: unfolds its group if it is folded away, centres it, selects it.
    let focus_on = move |node: u32| {
        let (w, h) = canvas_size();
        let folded =
            collapse.with_untracked(|c| c.hidden(node) || c.card.get(node as usize).copied().flatten().is_some());
        if folded && let Some(group) = groups.with_untracked(|g| g.of.get(node as usize).copied().flatten()) {
            collapsed.update(|c| {
                c.remove(&group);
            });
        }
        shown.with_untracked(|g| {
            let Some(g) = g else { return };
            let (x, y) = (f64::from(g.x[node as usize] + g.w / 2.0), f64::from(g.y[node as usize] + g.h / 2.0));
            view.update_value(|v| {
                let mut c = v.camera.unwrap_or_else(|| Camera::uniform(1.0, 0.0, 0.0));
                c.zoom = c.zoom.max(0.9);
                c.tx = w / 2.0 - x * c.sx();
                c.ty = h / 2.0 - y * c.sy();
                v.camera = Some(c);
            });
        });
        selected.set(Some(node));
        request();
    };
    let select_at = move |sx: f64, sy: f64| {
        let node = match target_at(sx, sy) {
            Some(Target::Node(n) | Target::Card(_, n)) => Some(n),
            None => None,
        };
        if node.is_some() && selected.get_untracked() != node {
            selected.set(node);
        } else {
            selected.set(None);
            only.set(false);
        }
    };
    let id_of = move |node: u32| graph.with_untracked(|g| g.as_ref().and_then(|g| g.ids.get(node as usize).cloned()));
    // Folds the group of `node` into a card in `node`'s box.
    let collapse_group_of = move |node: u32| {
        if let Some(group) = groups.with_untracked(|g| g.of.get(node as usize).copied().flatten()) {
            collapsed.update(|c| {
                c.insert(group, node);
            });
        }
    };
    let expand_group = move |group: u32| {
        collapsed.update(|c| {
            c.remove(&group);
        });
    };
    let collapse_all = move || {
        let anchor_for = selected.get_untracked();
        graph.with_untracked(|g| {
            let Some(g) = g else { return };
            groups.with_untracked(|gr| {
                collapsed.update(|c| {
                    for (group, members) in gr.members.iter().enumerate() {
                        let group = group as u32;
                        if c.contains_key(&group) {
                            continue;
                        }
                        let anchor = anchor_for
                            .filter(|s| gr.of.get(*s as usize).copied().flatten() == Some(group))
                            .or_else(|| g.default_anchor(members));
                        if let Some(anchor) = anchor {
                            c.insert(group, anchor);
                        }
                    }
                });
            });
        });
    };

    if !compact {
        install_test_hook(shown.into(), view, collapse, groups, target_at);
    }

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
        if let Some((_, _, _, _, false)) = drag {
            select_at(f64::from(ev.offset_x()), f64::from(ev.offset_y()));
        }
    };
    let on_dblclick =
        move |ev: leptos::ev::MouseEvent| match target_at(f64::from(ev.offset_x()), f64::from(ev.offset_y())) {
            Some(Target::Card(group, _)) => expand_group(group),
            Some(Target::Node(node)) => {
                if let (Some(open), Some(id)) = (on_open, id_of(node)) {
                    open.run(id);
                }
            }
            None => {}
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
        let (w, h) = canvas_size();
        match ev.key().as_str() {
            "ArrowLeft" => pan(80.0, 0.0),
            "ArrowRight" => pan(-80.0, 0.0),
            "ArrowUp" => pan(0.0, 80.0),
            "ArrowDown" => pan(0.0, -80.0),
            "+" | "=" => zoom_at(1.25, w / 2.0, h / 2.0),
            "-" | "_" => zoom_at(0.8, w / 2.0, h / 2.0),
            "0" => fit(),
            "Escape" => {
                selected.set(None);
                only.set(false);
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
        let (w, h) = canvas_size();
        shown.with_untracked(|g| {
            let Some(g) = g else { return };
            let (mw, mh) = (f64::from(mini.client_width()), f64::from(mini.client_height()));
            let m = paint::minimap_transform(g, mw, mh);
            let (wx, wy) = m.world(f64::from(ev.offset_x()), f64::from(ev.offset_y()));
            view.update_value(|v| {
                if let Some(c) = v.camera.as_mut() {
                    c.tx = w / 2.0 - f64::from(wx) * c.sx();
                    c.ty = h / 2.0 - f64::from(wy) * c.sy();
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
        let card = collapse.with(|c| c.card.get(node as usize).copied().flatten());
        let lineage_size = lineage.with(|l| l.as_ref().map_or(0, |l| l.iter().filter(|b| **b).count()));
        let lineage_controls = view! {
            <div class="row" style="margin-top: 8px; gap: 6px">
                <label class="muted" for="lineage-depth">"depth"</label>
                <select id="lineage-depth" data-testid="lineage-depth"
                    on:change=move |ev| depth.set(event_target_value(&ev).parse::<u32>().ok())>
                    {[("all", None), ("1", Some(1)), ("2", Some(2)), ("3", Some(3)), ("5", Some(5)), ("10", Some(10))]
                        .into_iter()
                        .map(|(label, d)| view! { <option value=label selected=move || depth.get() == d>{label}</option> })
                        .collect_view()}
                </select>
                <label class="check">
                    <input type="checkbox" data-testid="lineage-only" prop:checked=move || only.get()
                        on:change=move |ev| { only.set(event_target_checked(&ev)); fit(); }/>
                    " show only this lineage"
                </label>
            </div>
        };
        if let Some(group) = card {
            let (name, members) = groups.with(|g| (g.names[group as usize].clone(), g.members[group as usize].len()));
            let counts = style.with(|s| groups.with(|g| s.counts(&g.members[group as usize])));
            let by = group_by.get();
            return Some(view! {
                <div class="graph-side panel" data-testid="graph-selection">
                    <strong class="mono" data-testid="group-name">{name}</strong>
                    <div class="muted">{format!("{} · {members} tasks, collapsed", if by == GroupBy::Folder { "folder" } else { "prefix" })}</div>
                    <div class="counts" data-testid="group-counts">
                        {(0..RANKED.len()).rev().filter(|&r| counts[r] > 0).map(|r| {
                            let state = if r == 0 { "no state" } else { RANKED[r] };
                            view! { <span class="state" style=format!("--c: {}", color(RANKED[r]))>{format!("{state} {}", counts[r])}</span> }
                        }).collect_view()}
                    </div>
                    <div>{format!("lineage {lineage_size} nodes")}</div>
                    {lineage_controls}
                    <button class="small" style="margin-top: 8px" data-testid="group-expand" on:click=move |_| expand_group(group)>"Expand"</button>
                </div>
            }
            .into_any());
        }
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
        let grouped =
            groups.with(|g| g.of.get(node as usize).copied().flatten().map(|gi| g.names[gi as usize].clone()));
        let state = style.with(|s| s.state.get(node as usize).copied().unwrap_or_default());
        let open_id = id.clone();
        Some(view! {
            <div class="graph-side panel" data-testid="graph-selection">
                <strong class="mono">{id.clone()}</strong>
                <div class="muted">{if ext { "external table".to_owned() } else { format!("operator {}", op.unwrap_or_default()) }}</div>
                {group.map(|g| view! { <div class="muted">"folder " {g}</div> })}
                <div>{format!("{ups} upstream, {downs} downstream; lineage {lineage_size} nodes")}</div>
                <div>"state: " <span data-testid="selected-state">{if state.is_empty() { "none" } else { state }}</span></div>
                {lineage_controls}
                <div class="row" style="margin-top: 8px; gap: 6px">
                    {(!ext && on_open.is_some()).then(|| view! {
                        <button class="small" on:click=move |_| { if let Some(open) = on_open { open.run(open_id.clone()) } }>
                            "Open task instance"
                        </button>
                    })}
                    {grouped.map(|name| view! {
                        <button class="small" data-testid="group-collapse" title=format!("Fold {name} into one card here")
                            on:click=move |_| collapse_group_of(node)>{format!("Collapse {name}")}</button>
                    })}
                </div>
            </div>
        }
        .into_any())
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
                    <button class="small" title="Zoom in (+)" on:click=move |_| { let (w, h) = canvas_size(); zoom_at(1.25, w / 2.0, h / 2.0) }>"+"</button>
                    <button class="small" title="Zoom out (-)" on:click=move |_| { let (w, h) = canvas_size(); zoom_at(0.8, w / 2.0, h / 2.0) }>"−"</button>
                    <button class="small" title="Fit (0)" on:click=move |_| fit()>"Fit"</button>
                    <select aria-label="Group by" data-testid="group-by" title="What Collapse folds together"
                        on:change=move |ev| {
                            collapsed.set(HashMap::new());
                            group_by.set(if event_target_value(&ev) == "prefix" { GroupBy::Prefix } else { GroupBy::Folder });
                        }>
                        <option value="folder">"by folder"</option>
                        <option value="prefix">"by id prefix"</option>
                    </select>
                    <button class="small" data-testid="collapse-all" disabled=move || groups.with(|g| g.names.is_empty())
                        on:click=move |_| collapse_all()>"Collapse all"</button>
                    <button class="small" data-testid="expand-all" disabled=move || collapsed.with(HashMap::is_empty)
                        on:click=move |_| collapsed.set(HashMap::new())>"Expand all"</button>
                    <button class="small" data-testid="graph-list-toggle" class:active=move || list_mode.get()
                        on:click=move |_| list_mode.update(|l| *l = !*l)>{move || if list_mode.get() { "Graph" } else { "List" }}</button>
                    <Show when=move || !matches.with(Vec::is_empty) && !list_mode.get()>
                        <div class="suggest" data-testid="graph-suggest">
                            <For each=move || matches.get().into_iter().take(12) key=|i| *i let:node>
                                <div on:mousedown=move |ev| { ev.prevent_default(); focus_on(node) }>{move || id_of(node).unwrap_or_default()}</div>
                            </For>
                        </div>
                    </Show>
                </div>
            </Show>
            <canvas class="main" node_ref=canvas_ref tabindex="0" data-testid="graph-canvas" aria-label="DAG graph"
                style:visibility=move || if list_mode.get() { "hidden" } else { "visible" }
                on:pointerdown=on_pointerdown on:pointermove=on_pointermove on:pointerup=on_pointerup
                on:dblclick=on_dblclick on:wheel=on_wheel on:keydown=on_keydown></canvas>
            <Show when=move || !compact && list_mode.get()>
                <GraphList graph=graph style=style search=search
                    on_pick=Callback::new(move |node: u32| { list_mode.set(false); focus_on(node) })/>
            </Show>
            <Show when=move || !compact && !list_mode.get()>
                <canvas class="minimap" node_ref=minimap_ref on:click=on_minimap aria-label="minimap"></canvas>
                {side}
            </Show>
        </div>
    }
}

/// The minimap: the whole graph's picture (cached until the scene changes) and the viewport.
fn draw_minimap(mini: &HtmlCanvasElement, scene: &Scene, c: Camera, (w, h): (f64, f64), v: &mut ViewState) {
    let Some(ctx) = context(mini) else { return };
    let (mw, mh, dpr) = fit_backing(mini);
    let key = (scene.version, v.style_version, mini.width(), mini.height());
    if v.minimap.as_ref().is_none_or(|m| m.key != key) {
        v.minimap = Some(MinimapPicture { key, pixels: paint::minimap_pixels(scene, (mw, mh, dpr)) });
    }
    if let Some(MinimapPicture { pixels: (pixels, width, height), .. }) = &v.minimap {
        paint::put_pixels(&ctx, pixels, *width, *height);
    }
    let m = paint::minimap_transform(scene.g, mw, mh);
    let _ = ctx.set_transform(dpr, 0.0, 0.0, dpr, 0.0, 0.0);
    ctx.set_stroke_style_str("#1d4ed8");
    ctx.set_line_width(1.5);
    let ((ax, ay), (bx, by)) = (c.world(0.0, 0.0), c.world(w, h));
    let (vx, vy) = (m.x(ax).max(1.0), m.y(ay).max(1.0));
    let (vw, vh) = ((m.x(bx).min(mw - 1.0) - vx).max(3.0), (m.y(by).min(mh - 1.0) - vy).max(3.0));
    ctx.stroke_rect(vx, vy, vw, vh);
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

/// `window.__updraftGraph`, what the browser tests read of the drawing: `locate(id)` gives the
/// box (CSS px, relative to the canvas) that shows a task (its group's card when folded),
/// `at(x, y)` what is drawn at a point (`task:ID`, `group:NAME` or null).
fn install_test_hook(
    graph: Signal<Option<Arc<Graph>>>,
    view: StoredValue<ViewState, LocalStorage>,
    collapse: Memo<Arc<Collapse>>,
    groups: Memo<Arc<Groups>>,
    target_at: impl Fn(f64, f64) -> Option<Target> + Copy + 'static,
) {
    let Some(window) = web_sys::window() else { return };
    let hook = js_sys::Object::new();
    let locate = Closure::<dyn Fn(String) -> wasm_bindgen::JsValue>::new(move |id: String| {
        let found = graph.with_untracked(|g| {
            let g = g.as_ref()?;
            let node = *g.index.get(&id)?;
            let rep = collapse.with_untracked(|c| c.rep.get(node as usize).copied())?;
            let c = view.try_with_value(|v| v.camera).flatten()?;
            Some([c.x(g.x[rep as usize]), c.y(g.y[rep as usize]), f64::from(g.w) * c.sx(), f64::from(g.h) * c.sy()])
        });
        match found {
            Some(b) => js_sys::Array::of4(&b[0].into(), &b[1].into(), &b[2].into(), &b[3].into()).into(),
            None => wasm_bindgen::JsValue::NULL,
        }
    });
    let at = Closure::<dyn Fn(f64, f64) -> wasm_bindgen::JsValue>::new(move |x: f64, y: f64| match target_at(x, y) {
        Some(Target::Node(n)) => graph
            .with_untracked(|g| g.as_ref().and_then(|g| g.ids.get(n as usize)).map(|id| format!("task:{id}")))
            .map_or(wasm_bindgen::JsValue::NULL, |s| s.into()),
        Some(Target::Card(group, _)) => groups
            .with_untracked(|g| g.names.get(group as usize).map(|n| format!("group:{n}")))
            .map_or(wasm_bindgen::JsValue::NULL, |s| s.into()),
        None => wasm_bindgen::JsValue::NULL,
    });
    let _ = js_sys::Reflect::set(&hook, &"locate".into(), &locate.into_js_value());
    let _ = js_sys::Reflect::set(&hook, &"at".into(), &at.into_js_value());
    let _ = js_sys::Reflect::set(&window, &"__updraftGraph".into(), &hook);
    on_cleanup(move || {
        if let Some(window) = web_sys::window() {
            let _ = js_sys::Reflect::delete_property(&window, &"__updraftGraph".into());
        }
    });
}

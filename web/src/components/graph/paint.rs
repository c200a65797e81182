//! Drawing one frame of the graph view on a 2D canvas, with level of detail:
//!
//! - zoomed out (a box under [`RASTER_BELOW_PX`] tall), every task on screen is one or a few
//!   pixels written into an image buffer in wasm, the most urgent state winning a shared pixel
//!   (a failure stays visible at 100,000 tasks), then put on the canvas in one call;
//! - nearer, boxes are filled in one path per colour, outlined, and external tables dashed;
//! - labels once they are readable, and never more than [`MAX_LABELS`] per frame;
//! - edges as routed (through their bends) when boxes are large; zoomed out, edges between the
//!   same columns and nearby rows are merged into one line, and past a few thousand lines an
//!   even sample stands for the rest (cached per zoom step), so a frame never strokes hundreds
//!   of thousands;
//! - collapsed groups as stacked cards with a bar of their members' states.
//!
//! A drawing much taller than the view is wide (or wider than tall) is stretched across its short
//! side while zoomed out (see [`Camera`]), so the overview of 10,000 tasks in 20 columns shows
//! 20 bands of states, not a strip a few pixels wide. Everything is drawn in screen
//! coordinates, so lines stay one pixel wide whatever the stretch.

use std::collections::HashMap;

use wasm_bindgen::{Clamped, JsCast};
use web_sys::{CanvasRenderingContext2d, HtmlCanvasElement, ImageData};

use super::model::{Collapse, Graph, Groups};
use crate::components::state::{RANKED, color, rank};

/// Most labels drawn in one frame; past this many nodes on screen, boxes only.
pub const MAX_LABELS: usize = 2500;
/// Smallest on-screen node height (CSS px) at which labels are drawn.
pub const LABEL_MIN_PX: f64 = 13.0;
/// Below this on-screen node height (CSS px), nodes are pixels in an image buffer.
pub const RASTER_BELOW_PX: f64 = 4.0;
/// Below this on-screen node height (CSS px), edges are merged by rows.
pub const BUNDLE_BELOW_PX: f64 = 8.0;
/// Rows of merged edges are about this many CSS px apart; past [`MAX_BUNDLES`] lines, a sample
/// is drawn (software rasterisation strokes a few thousand lines per frame, not 100,000).
const BUNDLE_ROW_PX: f64 = 4.0;
const MAX_BUNDLES: usize = 6000;

const BACKGROUND: [u8; 3] = [0xfb, 0xfc, 0xfd];
const EXTERNAL_FILL: &str = "#eef2f7";
/// What a task with no state looks like as a pixel (white would vanish on the background).
const NO_STATE_PIXEL: [u8; 3] = [0xcb, 0xd5, 0xe1];
/// External tables as pixels: darker than any task without a state, so they stand apart.
const EXTERNAL_PIXEL: [u8; 3] = [0x64, 0x74, 0x8b];

/// Where the camera is: screen x = world x × `sx()` + `tx`, screen y = world y × `sy()` + `ty`,
/// in CSS pixels. `zoom` is the scale of both axes, except that neither goes below its pin: a
/// pin holds an axis at the scale that fits the drawing across the view's short side, so a tall
/// drawing zoomed out stretches sideways. Pins are 0 for drawings of ordinary proportions.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Camera {
    pub zoom: f64,
    pub pin_x: f64,
    pub pin_y: f64,
    pub tx: f64,
    pub ty: f64,
}

impl Camera {
    pub fn uniform(scale: f64, tx: f64, ty: f64) -> Camera {
        Camera { zoom: scale, pin_x: 0.0, pin_y: 0.0, tx, ty }
    }

    pub fn sx(&self) -> f64 {
        self.zoom.max(self.pin_x)
    }

    pub fn sy(&self) -> f64 {
        self.zoom.max(self.pin_y)
    }

    /// Screen x of a world x.
    pub fn x(&self, x: f32) -> f64 {
        f64::from(x) * self.sx() + self.tx
    }

    /// Screen y of a world y.
    pub fn y(&self, y: f32) -> f64 {
        f64::from(y) * self.sy() + self.ty
    }

    /// World point of a screen point.
    pub fn world(&self, x: f64, y: f64) -> (f32, f32) {
        (((x - self.tx) / self.sx()) as f32, ((y - self.ty) / self.sy()) as f32)
    }

    /// Zooms by `factor` (within `min`..`max`) keeping the screen point (`x`, `y`) still.
    pub fn zoom_at(&mut self, factor: f64, x: f64, y: f64, (min, max): (f64, f64)) {
        let (sx, sy) = (self.sx(), self.sy());
        self.zoom = (self.zoom * factor).clamp(min, max);
        self.tx = x - (x - self.tx) * (self.sx() / sx);
        self.ty = y - (y - self.ty) * (self.sy() / sy);
    }
}

/// Every node's state and how it is drawn, rebuilt when states change (never the layout).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct NodeStyle {
    pub state: Vec<&'static str>,
    pub fill: Vec<&'static str>,
    pub rgb: Vec<[u8; 3]>,
    pub rank: Vec<u8>,
}

fn parse_hex(color: &str) -> [u8; 3] {
    let byte = |i: usize| color.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok()).unwrap_or(0xff);
    [byte(1), byte(3), byte(5)]
}

impl NodeStyle {
    pub fn new(g: &Graph, states: &HashMap<String, String>) -> NodeStyle {
        let n = g.ids.len();
        let mut style = NodeStyle {
            state: Vec::with_capacity(n),
            fill: Vec::with_capacity(n),
            rgb: Vec::with_capacity(n),
            rank: Vec::with_capacity(n),
        };
        for (i, id) in g.ids.iter().enumerate() {
            let r = if g.external[i] { 0 } else { states.get(id).map_or(0, |s| rank(s)) };
            let state = RANKED[r as usize];
            let fill = if g.external[i] { EXTERNAL_FILL } else { color(state) };
            style.state.push(state);
            style.fill.push(fill);
            style.rgb.push(match (g.external[i], r) {
                (true, _) => EXTERNAL_PIXEL,
                (false, 0) => NO_STATE_PIXEL,
                _ => parse_hex(fill),
            });
            style.rank.push(r);
        }
        style
    }

    /// How many members of a group are in each state, indexed by rank.
    pub fn counts(&self, members: &[u32]) -> [u32; RANKED.len()] {
        let mut counts = [0; RANKED.len()];
        for &m in members {
            counts[self.rank.get(m as usize).copied().unwrap_or(0) as usize] += 1;
        }
        counts
    }
}

/// What a frame shows besides the camera.
pub struct Scene<'a> {
    pub g: &'a Graph,
    pub style: &'a NodeStyle,
    pub groups: &'a Groups,
    pub collapse: &'a Collapse,
    pub lineage: Option<&'a [bool]>,
    /// Draw only the lineage (the rest is not drawn at all).
    pub only: bool,
    pub selected: Option<u32>,
    pub matches: &'a [u32],
    /// Changes whenever the lineage, `only` or the collapsed groups change (merged edges are
    /// cached under it).
    pub version: u64,
}

impl Scene<'_> {
    /// Whether node `i` is lit (no lineage shown, or in it).
    fn lit(&self, i: u32) -> bool {
        self.lineage.is_none_or(|l| l[i as usize])
    }

    /// Whether a collapsed group has a member in the lineage.
    fn group_lit(&self, group: u32) -> bool {
        match self.lineage {
            None => true,
            Some(l) => self.groups.members[group as usize].iter().any(|&m| l[m as usize]),
        }
    }

    /// Whether node `i` is drawn at all (see [`is_drawn`]).
    pub fn drawn(&self, i: u32) -> bool {
        is_drawn(self.collapse, self.groups, if self.only { self.lineage } else { None }, i)
    }

    /// Whether node `i` (or the card it anchors) is highlighted.
    fn node_lit(&self, i: u32) -> bool {
        match self.collapse.card[i as usize] {
            Some(group) => self.group_lit(group),
            None => self.lit(i),
        }
    }
}

/// Whether node `i` is drawn: not folded into a card, and, when `only` (the lineage shown
/// alone) is given, in it (a card when one of its members is).
pub fn is_drawn(collapse: &Collapse, groups: &Groups, only: Option<&[bool]>, i: u32) -> bool {
    if collapse.hidden(i) {
        return false;
    }
    let Some(lineage) = only else { return true };
    match collapse.card[i as usize] {
        Some(group) => groups.members[group as usize].iter().any(|&m| lineage[m as usize]),
        None => lineage[i as usize],
    }
}

/// Buffers and caches kept between frames.
#[derive(Default)]
pub struct PaintCache {
    pixels: Vec<u8>,
    ranks: Vec<u8>,
    /// Merged edges: (row height, scene version) → lines.
    bundles: Option<(u64, u64, Vec<Bundle>)>,
    /// An off-screen canvas for the nodes' pixels, composited over the edges.
    layer: Option<HtmlCanvasElement>,
}

impl PaintCache {
    fn layer(&mut self) -> Option<HtmlCanvasElement> {
        if self.layer.is_none() {
            let document = web_sys::window()?.document()?;
            self.layer = document.create_element("canvas").ok()?.dyn_into::<HtmlCanvasElement>().ok();
        }
        self.layer.clone()
    }
}

#[derive(Debug, Clone, Copy)]
struct Bundle {
    x0: f32,
    y0: f32,
    x1: f32,
    y1: f32,
    lit: bool,
}

/// Draws a frame; returns how many nodes were on screen.
pub fn paint(
    ctx: &CanvasRenderingContext2d,
    scene: &Scene,
    c: Camera,
    (w, h, dpr): (f64, f64, f64),
    cache: &mut PaintCache,
) -> usize {
    let g = scene.g;
    let (x0, y0) = c.world(0.0, 0.0);
    let (x1, y1) = c.world(w, h);
    let mut visible = Vec::new();
    g.visible(x0, y0, x1, y1, |i| {
        if scene.drawn(i) {
            visible.push(i)
        }
    });
    let node_px = c.sy() * f64::from(g.h);
    let raster = node_px < RASTER_BELOW_PX;
    let _ = ctx.set_transform(dpr, 0.0, 0.0, dpr, 0.0, 0.0);
    ctx.set_fill_style_str("#fbfcfd");
    ctx.fill_rect(0.0, 0.0, w, h);
    if node_px < BUNDLE_BELOW_PX {
        draw_bundles(ctx, scene, c, [x0, y0, x1, y1], cache);
    } else {
        draw_edges(ctx, scene, c, [x0, y0, x1, y1]);
    }
    if raster {
        // The nodes' pixels over the edges: drawn on a canvas of their own (transparent where
        // there is no node), then composited.
        let (bw, bh) = ((w * dpr).round() as usize, (h * dpr).round() as usize);
        rasterize(scene, &visible, c, dpr, (bw, bh), 0, cache);
        if let Some(layer) = cache.layer() {
            if layer.width() != bw as u32 || layer.height() != bh as u32 {
                layer.set_width(bw as u32);
                layer.set_height(bh as u32);
            }
            if let Some(lctx) = super::context(&layer) {
                put_pixels(&lctx, &cache.pixels, bw as u32, bh as u32);
                let _ = ctx.set_transform(1.0, 0.0, 0.0, 1.0, 0.0, 0.0);
                let _ = ctx.draw_image_with_html_canvas_element(&layer, 0.0, 0.0);
                let _ = ctx.set_transform(dpr, 0.0, 0.0, dpr, 0.0, 0.0);
            }
        }
    } else {
        draw_boxes(ctx, scene, &visible, c, node_px);
    }
    draw_cards(ctx, scene, &visible, c);

    // Search matches and the selection, outlined.
    let outline = |i: u32, color: &str| {
        let i = scene.collapse.rep[i as usize] as usize;
        let (bw, bh) = ((f64::from(g.w) * c.sx()).max(10.0), (f64::from(g.h) * c.sy()).max(7.0));
        ctx.set_stroke_style_str(color);
        ctx.set_line_width(3.0);
        ctx.stroke_rect(c.x(g.x[i]) - 3.0, c.y(g.y[i]) - 3.0, bw + 6.0, bh + 6.0);
    };
    for &i in scene.matches {
        if !scene.only || scene.lit(i) {
            outline(i, "#f59e0b");
        }
    }
    if let Some(i) = scene.selected {
        outline(i, "#1d4ed8");
    }

    if node_px >= LABEL_MIN_PX && visible.len() <= MAX_LABELS {
        draw_labels(ctx, scene, &visible, c);
    }
    visible.len()
}

/// Writes the visible nodes into `cache.pixels` (RGBA, `bw` × `bh` device pixels) over a
/// background of alpha `background`.
fn rasterize(
    scene: &Scene,
    visible: &[u32],
    c: Camera,
    dpr: f64,
    (bw, bh): (usize, usize),
    background: u8,
    cache: &mut PaintCache,
) {
    let g = scene.g;
    cache.pixels.clear();
    cache.pixels.reserve(bw * bh * 4);
    for _ in 0..bw * bh {
        cache.pixels.extend_from_slice(&[BACKGROUND[0], BACKGROUND[1], BACKGROUND[2], background]);
    }
    cache.ranks.clear();
    cache.ranks.resize(bw * bh, 0);
    let fade = |v: u8, b: u8| ((u16::from(v) + 3 * u16::from(b)) / 4) as u8;
    let (sw, sh) = (f64::from(g.w) * c.sx() * dpr, f64::from(g.h) * c.sy() * dpr);
    for &i in visible {
        let n = i as usize;
        if scene.collapse.card[n].is_some() {
            continue; // drawn as a card
        }
        let lit = scene.lit(i);
        let mut rgb = scene.style.rgb[n];
        if !lit {
            rgb = [fade(rgb[0], BACKGROUND[0]), fade(rgb[1], BACKGROUND[1]), fade(rgb[2], BACKGROUND[2])];
        }
        let r = 1 + scene.style.rank[n] + if lit && scene.lineage.is_some() { 16 } else { 0 };
        let (sx, sy) = (c.x(g.x[n]) * dpr, c.y(g.y[n]) * dpr);
        let px0 = sx.floor().max(0.0) as usize;
        let py0 = sy.floor().max(0.0) as usize;
        let px1 = ((sx + sw).floor().max(sx.floor() + 1.0)).clamp(0.0, bw as f64) as usize;
        let py1 = ((sy + sh).floor().max(sy.floor() + 1.0)).clamp(0.0, bh as f64) as usize;
        for py in py0..py1 {
            let row = py * bw;
            for p in row + px0..row + px1 {
                if r >= cache.ranks[p] {
                    cache.ranks[p] = r;
                    cache.pixels[p * 4..p * 4 + 4].copy_from_slice(&[rgb[0], rgb[1], rgb[2], 255]);
                }
            }
        }
    }
}

/// The two ends of an edge as drawn: the right side of its source's box (or card) and the left
/// side of its target's, and whether it was routed through bends (not when folded into a card).
fn ends(scene: &Scene, source: u32, target: u32) -> Option<(u32, u32, bool)> {
    let (s, t) = (scene.collapse.rep[source as usize], scene.collapse.rep[target as usize]);
    if s == t {
        return None;
    }
    if scene.only && !(scene.lit(source) && scene.lit(target)) {
        return None;
    }
    Some((s, t, s == source && t == target))
}

fn draw_edges(ctx: &CanvasRenderingContext2d, scene: &Scene, c: Camera, [x0, y0, x1, y1]: [f32; 4]) {
    let g = scene.g;
    let (nw, nh) = (g.w, g.h);
    for pass in [false, true] {
        if pass && scene.lineage.is_none() {
            break;
        }
        ctx.begin_path();
        for e in &g.edges {
            let lit = scene.lineage.is_some_and(|l| l[e.source as usize] && l[e.target as usize]);
            if lit != pass {
                continue;
            }
            let Some((s, t, routed)) = ends(scene, e.source, e.target) else { continue };
            let (s, t) = (s as usize, t as usize);
            let (sx, sy) = (g.x[s] + nw, g.y[s] + nh / 2.0);
            let (tx, ty) = (g.x[t], g.y[t] + nh / 2.0);
            let (minx, maxx) = (sx.min(tx), sx.max(tx));
            let (mut miny, mut maxy) = (sy.min(ty), sy.max(ty));
            if routed {
                for p in &e.points {
                    miny = miny.min(p[1]);
                    maxy = maxy.max(p[1]);
                }
            }
            if maxx < x0 || minx > x1 || maxy < y0 || miny > y1 {
                continue;
            }
            ctx.move_to(c.x(sx), c.y(sy));
            if routed {
                for p in &e.points {
                    ctx.line_to(c.x(p[0]), c.y(p[1]));
                }
            }
            ctx.line_to(c.x(tx), c.y(ty));
        }
        let faded = scene.lineage.is_some() && !pass;
        ctx.set_global_alpha(if faded { 0.12 } else { 0.7 });
        ctx.set_stroke_style_str(if pass { "#1d4ed8" } else { "#94a3b8" });
        ctx.set_line_width(if pass { 2.0 } else { 1.0 });
        ctx.stroke();
    }
    ctx.set_global_alpha(1.0);
}

/// Edges zoomed out: straight, and merged when they join the same columns at nearby rows.
fn draw_bundles(ctx: &CanvasRenderingContext2d, scene: &Scene, c: Camera, view: [f32; 4], cache: &mut PaintCache) {
    let g = scene.g;
    // Rows a power of two of world units high, so panning and small zooms reuse the cache.
    let row = 2f64.powf((BUNDLE_ROW_PX / c.sy()).log2().ceil()).max(1.0);
    let row_bits = row.to_bits();
    let fresh = cache.bundles.as_ref().is_some_and(|(r, v, _)| *r == row_bits && *v == scene.version);
    if !fresh {
        let half = g.h / 2.0;
        let mut keys: Vec<(u32, i64, u32, i64, bool)> = Vec::with_capacity(g.edges.len());
        for e in &g.edges {
            let Some((s, t, _)) = ends(scene, e.source, e.target) else { continue };
            let lit = scene.lineage.is_some_and(|l| l[e.source as usize] && l[e.target as usize]);
            let bucket = |y: f32| (f64::from(y + half) / row).floor() as i64;
            keys.push((s, bucket(g.y[s as usize]), t, bucket(g.y[t as usize]), lit));
        }
        // One line per (source column, row, target column, row): the source's x stands for its
        // column, as every node of a column shares it. Past `MAX_BUNDLES` lines, an even sample
        // of them (every k-th in source order) stands for the rest; highlighted ones all stay.
        let mut lines: Vec<(u32, i64, u32, i64, bool)> = keys
            .into_iter()
            .map(|(s, sb, t, tb, lit)| (g.x[s as usize].to_bits(), sb, g.x[t as usize].to_bits(), tb, lit))
            .collect();
        lines.sort_unstable();
        lines.dedup();
        if lines.len() > MAX_BUNDLES {
            let stride = lines.len().div_ceil(MAX_BUNDLES);
            lines =
                lines.into_iter().enumerate().filter(|(k, line)| line.4 || k % stride == 0).map(|(_, l)| l).collect();
        }
        let bundles = lines
            .into_iter()
            .map(|(sx, sb, tx, tb, lit)| Bundle {
                x0: f32::from_bits(sx) + g.w,
                y0: ((sb as f64 + 0.5) * row) as f32,
                x1: f32::from_bits(tx),
                y1: ((tb as f64 + 0.5) * row) as f32,
                lit,
            })
            .collect();
        cache.bundles = Some((row_bits, scene.version, bundles));
    }
    let Some((_, _, bundles)) = cache.bundles.as_ref() else { return };
    let [x0, y0, x1, y1] = view;
    for pass in [false, true] {
        if pass && scene.lineage.is_none() {
            break;
        }
        ctx.begin_path();
        for b in bundles.iter().filter(|b| b.lit == pass) {
            if b.x0.max(b.x1) < x0 || b.x0.min(b.x1) > x1 || b.y0.max(b.y1) < y0 || b.y0.min(b.y1) > y1 {
                continue;
            }
            ctx.move_to(c.x(b.x0), c.y(b.y0));
            ctx.line_to(c.x(b.x1), c.y(b.y1));
        }
        let faded = scene.lineage.is_some() && !pass;
        let alpha = if faded {
            0.06
        } else if pass {
            0.9
        } else {
            0.18
        };
        ctx.set_global_alpha(alpha);
        ctx.set_stroke_style_str(if pass { "#1d4ed8" } else { "#64748b" });
        ctx.set_line_width(if pass { 1.5 } else { 1.0 });
        ctx.stroke();
    }
    ctx.set_global_alpha(1.0);
}

/// Boxes, filled in one path per colour, then outlined (external tables dashed).
fn draw_boxes(ctx: &CanvasRenderingContext2d, scene: &Scene, visible: &[u32], c: Camera, node_px: f64) {
    let g = scene.g;
    let (nw, nh) = (f64::from(g.w) * c.sx(), f64::from(g.h) * c.sy());
    let rect = |n: usize| ctx.rect(c.x(g.x[n]), c.y(g.y[n]), nw, nh);
    for faded in [true, false] {
        if faded && scene.lineage.is_none() {
            continue;
        }
        ctx.set_global_alpha(if faded { 0.18 } else { 1.0 });
        let mut by_color: HashMap<&'static str, Vec<u32>> = HashMap::new();
        for &i in visible {
            if scene.collapse.card[i as usize].is_none() && scene.lit(i) != faded {
                by_color.entry(scene.style.fill[i as usize]).or_default().push(i);
            }
        }
        let mut colors: Vec<_> = by_color.into_iter().collect();
        colors.sort_by_key(|(c, _)| *c);
        for (fill, nodes) in &colors {
            ctx.begin_path();
            for &i in nodes {
                rect(i as usize);
            }
            ctx.set_fill_style_str(fill);
            ctx.fill();
        }
        if node_px >= 6.0 {
            for external in [false, true] {
                ctx.begin_path();
                for &i in visible {
                    let n = i as usize;
                    if scene.collapse.card[n].is_none() && scene.lit(i) != faded && g.external[n] == external {
                        rect(n);
                    }
                }
                let dash = js_sys::Array::new();
                if external {
                    dash.push(&wasm_bindgen::JsValue::from_f64(5.0));
                    dash.push(&wasm_bindgen::JsValue::from_f64(3.0));
                }
                let _ = ctx.set_line_dash(&dash);
                ctx.set_stroke_style_str(if external { "#475569" } else { "#64748b" });
                ctx.set_line_width(1.0);
                ctx.stroke();
            }
            let _ = ctx.set_line_dash(&js_sys::Array::new());
        }
    }
    ctx.set_global_alpha(1.0);
}

/// Collapsed groups: a stack of cards in the anchor's box (never smaller than a few pixels),
/// with a bar of their members' states along the bottom.
fn draw_cards(ctx: &CanvasRenderingContext2d, scene: &Scene, visible: &[u32], c: Camera) {
    let g = scene.g;
    for &i in visible {
        let Some(group) = scene.collapse.card[i as usize] else { continue };
        let (x, y) = (c.x(g.x[i as usize]), c.y(g.y[i as usize]));
        let (w, h) = ((f64::from(g.w) * c.sx()).max(10.0), (f64::from(g.h) * c.sy()).max(7.0));
        ctx.set_global_alpha(if scene.node_lit(i) { 1.0 } else { 0.25 });
        for off in [6.0, 3.0] {
            ctx.set_fill_style_str("#e2e8f0");
            ctx.fill_rect(x + off, y - off, w, h);
            ctx.set_stroke_style_str("#94a3b8");
            ctx.set_line_width(1.0);
            ctx.stroke_rect(x + off, y - off, w, h);
        }
        ctx.set_fill_style_str("#ffffff");
        ctx.fill_rect(x, y, w, h);
        let counts = scene.style.counts(&scene.groups.members[group as usize]);
        let total: u32 = counts.iter().sum();
        let bar = if h >= 16.0 { h * 0.3 } else { h };
        let mut left = x;
        for r in (0..RANKED.len()).rev() {
            if counts[r] == 0 {
                continue;
            }
            let share = w * f64::from(counts[r]) / f64::from(total.max(1));
            ctx.set_fill_style_str(if r == 0 { "#cbd5e1" } else { color(RANKED[r]) });
            ctx.fill_rect(left, y + h - bar, share, bar);
            left += share;
        }
        ctx.set_stroke_style_str("#1e293b");
        ctx.set_line_width(1.5);
        ctx.stroke_rect(x, y, w, h);
    }
    ctx.set_global_alpha(1.0);
}

fn ellipsize(text: &str, max_chars: usize) -> String {
    if text.chars().count() > max_chars {
        text.chars().take(max_chars.saturating_sub(1)).chain(std::iter::once('…')).collect()
    } else {
        text.to_owned()
    }
}

fn draw_labels(ctx: &CanvasRenderingContext2d, scene: &Scene, visible: &[u32], c: Camera) {
    let g = scene.g;
    let box_h = c.sy() * f64::from(g.h);
    let font_px = (box_h * 0.45).clamp(10.0, 15.0);
    ctx.set_font(&format!("{font_px:.0}px system-ui, sans-serif"));
    ctx.set_text_baseline("middle");
    let max_chars = ((c.sx() * f64::from(g.w) - 10.0) / (font_px * 0.56)).max(1.0) as usize;
    for &i in visible {
        let n = i as usize;
        let (sx, sy) = (c.x(g.x[n]), c.y(g.y[n]));
        ctx.set_global_alpha(if scene.node_lit(i) { 1.0 } else { 0.3 });
        if let Some(group) = scene.collapse.card[n] {
            let members = scene.groups.members[group as usize].len();
            let name = &scene.groups.names[group as usize];
            ctx.set_fill_style_str("#0f172a");
            let text = ellipsize(&format!("▸ {name} · {members}"), max_chars);
            let _ = ctx.fill_text(&text, sx + 6.0, sy + box_h * 0.36);
            continue;
        }
        let fill = scene.style.fill[n];
        let dark = matches!(fill, "#16a34a" | "#dc2626" | "#0ea5e9" | "#8b5cf6" | "#f97316");
        ctx.set_fill_style_str(if dark { "#ffffff" } else { "#111827" });
        let _ = ctx.fill_text(&ellipsize(&g.ids[n], max_chars), sx + 6.0, sy + box_h / 2.0);
    }
    ctx.set_global_alpha(1.0);
}

/// The minimap's camera: the whole drawing, each axis stretched to fill the minimap.
pub fn minimap_transform(g: &Graph, mw: f64, mh: f64) -> Camera {
    let [x0, y0, x1, y1] = g.bounds.map(f64::from);
    let (sx, sy) = ((mw - 8.0) / (x1 - x0).max(1.0), (mh - 8.0) / (y1 - y0).max(1.0));
    Camera { zoom: sx.min(sy), pin_x: sx, pin_y: sy, tx: 4.0 - x0 * sx, ty: 4.0 - y0 * sy }
}

/// The minimap's picture of the whole graph (nodes as pixels, RGBA, `bw` × `bh`), drawn again
/// only when the states, the lineage or the collapsed groups change, and put back under the
/// viewport frame on every frame.
pub fn minimap_pixels(scene: &Scene, (mw, mh, dpr): (f64, f64, f64)) -> (Vec<u8>, u32, u32) {
    let g = scene.g;
    let c = minimap_transform(g, mw, mh);
    let all: Vec<u32> = (0..g.ids.len() as u32).filter(|&i| scene.drawn(i)).collect();
    let (bw, bh) = ((mw * dpr).round().max(1.0) as usize, (mh * dpr).round().max(1.0) as usize);
    let mut out = PaintCache::default();
    rasterize(scene, &all, c, dpr, (bw, bh), 255, &mut out);
    // Cards as a few pixels of their most urgent state.
    for &i in &all {
        let Some(group) = scene.collapse.card[i as usize] else { continue };
        let counts = scene.style.counts(&scene.groups.members[group as usize]);
        let top = (0..RANKED.len()).rev().find(|&r| counts[r] > 0).unwrap_or(0);
        let rgb = if top == 0 { NO_STATE_PIXEL } else { parse_hex(color(RANKED[top])) };
        let px = (c.x(g.x[i as usize]) * dpr).floor().clamp(0.0, bw as f64 - 1.0) as usize;
        let py = (c.y(g.y[i as usize]) * dpr).floor().clamp(0.0, bh as f64 - 1.0) as usize;
        for y in py..(py + 3).min(bh) {
            for x in px..(px + 3).min(bw) {
                let p = y * bw + x;
                out.pixels[p * 4..p * 4 + 3].copy_from_slice(&rgb);
            }
        }
    }
    (out.pixels, bw as u32, bh as u32)
}

/// Puts RGBA pixels on a canvas at its origin. The `ImageData` is a view of wasm memory, so
/// it is made and used at once, never kept.
pub fn put_pixels(ctx: &CanvasRenderingContext2d, pixels: &[u8], width: u32, height: u32) {
    if let Ok(image) = ImageData::new_with_u8_clamped_array_and_sh(Clamped(pixels), width, height) {
        let _ = ctx.put_image_data(&image, 0.0, 0.0);
    }
}

//! The graph as the canvas draws it: flat arrays built once from the graph JSON (positions from
//! the DAG model's layout), adjacency both ways for lineage, and a spatial index for hit-tests
//! and culling: nodes by layer column, each column sorted by `y`, so finding what is under the
//! pointer or on screen is a binary search, at any size. Groups (a task file's folder, or an id
//! prefix) collapse into one card drawn where one of their members was, so nothing else moves.

use std::collections::HashMap;

use serde::Deserialize;
use serde_json::Value;

/// The graph JSON as read, straight from the response text (no `Value` tree in between: at
/// 100,000 tasks that tree alone takes seconds to build), with the server's latest run and its
/// states when the API sends them.
#[derive(Debug, Deserialize)]
pub struct GraphJson {
    nodes: Vec<NodeJson>,
    edges: Vec<EdgeJson>,
    #[serde(default)]
    node_width: Option<f32>,
    #[serde(default)]
    node_height: Option<f32>,
    #[serde(default)]
    pub latest_run: Option<RunRef>,
    #[serde(default)]
    pub states: HashMap<String, Option<String>>,
}

/// The run whose states come with the graph.
#[derive(Debug, Deserialize)]
pub struct RunRef {
    pub dag_run_id: String,
}

#[derive(Debug, Deserialize)]
struct NodeJson {
    id: String,
    kind: String,
    layer: u32,
    #[serde(default)]
    x: Option<f32>,
    #[serde(default)]
    y: Option<f32>,
    #[serde(default)]
    group: Option<String>,
    #[serde(default)]
    operator: Option<String>,
}

#[derive(Debug, Deserialize)]
struct EdgeJson {
    source: String,
    target: String,
    #[serde(default)]
    points: Option<Vec<[f32; 2]>>,
}

/// An edge: its ends (node indices) and the bends between them.
#[derive(Debug, Clone, PartialEq)]
pub struct Edge {
    pub source: u32,
    pub target: u32,
    pub points: Vec<[f32; 2]>,
}

/// A laid-out graph; node `i`'s box is `(x[i], y[i], w, h)` (top-left corner, world units).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Graph {
    pub ids: Vec<String>,
    pub external: Vec<bool>,
    pub operator: Vec<Option<String>>,
    pub group: Vec<Option<String>>,
    pub x: Vec<f32>,
    pub y: Vec<f32>,
    pub w: f32,
    pub h: f32,
    pub edges: Vec<Edge>,
    pub up: Vec<Vec<u32>>,
    pub down: Vec<Vec<u32>>,
    /// Columns of nodes sharing an `x`, left to right; each sorted by `y`.
    pub columns: Vec<(f32, Vec<u32>)>,
    pub index: HashMap<String, u32>,
    /// The bounds of the drawing: (min x, min y, max x, max y).
    pub bounds: [f32; 4],
}

const DEFAULT_W: f32 = 180.0;
/// Most nodes [`Graph::project`] lays out anew (about a second of wasm at 50,000).
pub const RELAYOUT_MAX: usize = 20_000;
const DEFAULT_H: f32 = 28.0;

impl Graph {
    /// Reads the graph JSON (`/api/updraft/dags/{id}/graph`, or the editor's own from the DAG
    /// model). Nodes without a position are placed by layer (older servers).
    pub fn from_json(value: &Value) -> Result<Graph, String> {
        let json = GraphJson::deserialize(value).map_err(|e| format!("the graph is not understood: {e}"))?;
        Ok(Graph::from_parsed(json))
    }

    /// Builds the graph from its JSON, read already (its run and states are left out).
    pub fn from_parsed(json: GraphJson) -> Graph {
        let w = json.node_width.unwrap_or(DEFAULT_W);
        let h = json.node_height.unwrap_or(DEFAULT_H);
        let n = json.nodes.len();
        let mut graph = Graph { w, h, ..Graph::default() };
        let mut per_layer: HashMap<u32, u32> = HashMap::new();
        for (i, node) in json.nodes.into_iter().enumerate() {
            let (x, y) = match (node.x, node.y) {
                (Some(x), Some(y)) => (x, y),
                _ => {
                    let slot = per_layer.entry(node.layer).or_insert(0);
                    *slot += 1;
                    (node.layer as f32 * (w + 80.0), (*slot - 1) as f32 * (h + 14.0))
                }
            };
            graph.index.insert(node.id.clone(), i as u32);
            graph.ids.push(node.id);
            graph.external.push(node.kind == "external");
            graph.operator.push(node.operator);
            graph.group.push(node.group);
            graph.x.push(x);
            graph.y.push(y);
        }
        graph.up = vec![Vec::new(); n];
        graph.down = vec![Vec::new(); n];
        for edge in json.edges {
            let (Some(&s), Some(&t)) = (graph.index.get(&edge.source), graph.index.get(&edge.target)) else { continue };
            graph.down[s as usize].push(t);
            graph.up[t as usize].push(s);
            graph.edges.push(Edge { source: s, target: t, points: edge.points.unwrap_or_default() });
        }
        graph.build_index();
        graph
    }

    fn build_index(&mut self) {
        let mut order: Vec<u32> = (0..self.ids.len() as u32).collect();
        order.sort_by(|&a, &b| {
            let (a, b) = (a as usize, b as usize);
            self.x[a].total_cmp(&self.x[b]).then(self.y[a].total_cmp(&self.y[b]))
        });
        self.columns.clear();
        for i in order {
            let x = self.x[i as usize];
            match self.columns.last_mut() {
                Some((cx, members)) if *cx == x => members.push(i),
                _ => self.columns.push((x, vec![i])),
            }
        }
        let mut bounds = [f32::MAX, f32::MAX, f32::MIN, f32::MIN];
        for i in 0..self.ids.len() {
            bounds[0] = bounds[0].min(self.x[i]);
            bounds[1] = bounds[1].min(self.y[i]);
            bounds[2] = bounds[2].max(self.x[i] + self.w);
            bounds[3] = bounds[3].max(self.y[i] + self.h);
        }
        if self.ids.is_empty() {
            bounds = [0.0, 0.0, 1.0, 1.0];
        }
        self.bounds = bounds;
    }

    /// Calls `f` with every node whose box meets the rectangle (world units).
    pub fn visible(&self, x0: f32, y0: f32, x1: f32, y1: f32, mut f: impl FnMut(u32)) {
        let first = self.columns.partition_point(|(cx, _)| cx + self.w < x0);
        for (cx, members) in &self.columns[first..] {
            if *cx > x1 {
                break;
            }
            let start = members.partition_point(|&i| self.y[i as usize] + self.h < y0);
            for &i in &members[start..] {
                if self.y[i as usize] > y1 {
                    break;
                }
                f(i);
            }
        }
    }

    /// Every node upstream and downstream of `node` within `depth` steps (all when `None`),
    /// with `node`.
    pub fn lineage(&self, node: u32, depth: Option<u32>) -> Vec<bool> {
        self.lineage_of(&[node], depth)
    }

    /// Every node upstream and downstream of any of `nodes` within `depth` steps (all when
    /// `None`), with them: a breadth-first walk with an explicit queue, never recursion.
    pub fn lineage_of(&self, nodes: &[u32], depth: Option<u32>) -> Vec<bool> {
        let mut seen = vec![false; self.ids.len()];
        let start: Vec<u32> = nodes.iter().copied().filter(|&n| (n as usize) < seen.len()).collect();
        for &n in &start {
            seen[n as usize] = true;
        }
        for adjacency in [&self.up, &self.down] {
            let mut reached = vec![false; self.ids.len()];
            let mut frontier = start.clone();
            let mut step = 0;
            while !frontier.is_empty() && depth.is_none_or(|d| step < d) {
                let mut next = Vec::new();
                for &n in &frontier {
                    for &m in &adjacency[n as usize] {
                        if !reached[m as usize] {
                            reached[m as usize] = true;
                            seen[m as usize] = true;
                            next.push(m);
                        }
                    }
                }
                frontier = next;
                step += 1;
            }
        }
        seen
    }
}

/// What tasks are grouped by when collapsing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupBy {
    /// The folder of the task's file below the DAG's folder (`tasks/l05`).
    Folder,
    /// The id up to its last `_`, `.`, `-` or `/` (`orders_daily` of `orders_daily_load`).
    Prefix,
}

/// The groups of a graph: external tables and tasks without a folder (or prefix) are in none.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Groups {
    pub names: Vec<String>,
    /// Group of every node.
    pub of: Vec<Option<u32>>,
    /// Members of every group, in node order.
    pub members: Vec<Vec<u32>>,
}

/// The id prefix a task is grouped under, if its id has a separator.
pub fn id_prefix(id: &str) -> Option<&str> {
    id.rfind(['_', '.', '-', '/']).filter(|&i| i > 0).map(|i| &id[..i])
}

/// How collapsed groups change the drawing: each node is drawn as itself or as the card of its
/// collapsed group, which sits in the box of one member (its anchor).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Collapse {
    /// The node each node is drawn as: itself, or its group's anchor.
    pub rep: Vec<u32>,
    /// For an anchor of a collapsed group: that group.
    pub card: Vec<Option<u32>>,
    /// Whether anything is collapsed.
    pub any: bool,
}

impl Collapse {
    pub fn hidden(&self, node: u32) -> bool {
        self.rep.get(node as usize).is_some_and(|&r| r != node)
    }
}

impl Graph {
    pub fn groups(&self, by: GroupBy) -> Groups {
        let mut groups = Groups { of: vec![None; self.ids.len()], ..Groups::default() };
        let mut index: HashMap<&str, u32> = HashMap::new();
        for i in 0..self.ids.len() {
            if self.external[i] {
                continue;
            }
            let key = match by {
                GroupBy::Folder => self.group[i].as_deref(),
                GroupBy::Prefix => id_prefix(&self.ids[i]),
            };
            let Some(key) = key else { continue };
            let g = *index.entry(key).or_insert_with(|| {
                groups.names.push(key.to_owned());
                groups.members.push(Vec::new());
                (groups.names.len() - 1) as u32
            });
            groups.of[i] = Some(g);
            groups.members[g as usize].push(i as u32);
        }
        groups
    }

    /// The member of a group its card takes the place of when collapsed without a clicked
    /// member: the one nearest the middle of the group's members.
    pub fn default_anchor(&self, members: &[u32]) -> Option<u32> {
        let n = members.len() as f64;
        let (cx, cy) = members.iter().fold((0.0, 0.0), |(x, y), &i| {
            (x + f64::from(self.x[i as usize]) / n, y + f64::from(self.y[i as usize]) / n)
        });
        members.iter().copied().min_by(|&a, &b| {
            let d =
                |i: u32| (f64::from(self.x[i as usize]) - cx).powi(2) + (f64::from(self.y[i as usize]) - cy).powi(2);
            d(a).total_cmp(&d(b)).then(a.cmp(&b))
        })
    }

    /// The drawing with `collapsed` (group → anchor) folded into cards.
    pub fn collapse(&self, groups: &Groups, collapsed: &HashMap<u32, u32>) -> Collapse {
        let n = self.ids.len();
        let mut out = Collapse { rep: (0..n as u32).collect(), card: vec![None; n], any: false };
        for (&g, &anchor) in collapsed {
            let Some(members) = groups.members.get(g as usize) else { continue };
            if (anchor as usize) >= n {
                continue;
            }
            for &m in members {
                out.rep[m as usize] = anchor;
            }
            out.card[anchor as usize] = Some(g);
            out.any = true;
        }
        out
    }

    /// The drawing of only the `keep` nodes, laid out anew so a lineage scattered over the
    /// whole drawing is readable on its own: the DAG model's layout of the kept nodes and the
    /// edges between them (up to [`RELAYOUT_MAX`] nodes; past that, the kept nodes of each
    /// column are packed, columns side by side, edges straight). Node indices stay the same; the
    /// other nodes keep their positions and are not meant to be drawn.
    pub fn project(&self, keep: &[bool]) -> Graph {
        let kept = |i: u32| keep.get(i as usize).copied().unwrap_or(false);
        let members: Vec<u32> = (0..self.ids.len() as u32).filter(|&i| kept(i)).collect();
        let mut out = self.clone();
        let mut bounds = [f32::MAX, f32::MAX, f32::MIN, f32::MIN];
        let mut place = |out: &mut Graph, i: u32, x: f32, y: f32| {
            out.x[i as usize] = x;
            out.y[i as usize] = y;
            bounds = [bounds[0].min(x), bounds[1].min(y), bounds[2].max(x + self.w), bounds[3].max(y + self.h)];
        };
        if members.len() <= RELAYOUT_MAX {
            let mut local = vec![u32::MAX; self.ids.len()];
            for (k, &i) in members.iter().enumerate() {
                local[i as usize] = k as u32;
            }
            let inner: Vec<usize> =
                (0..self.edges.len()).filter(|&e| kept(self.edges[e].source) && kept(self.edges[e].target)).collect();
            let pairs: Vec<(u32, u32)> = inner
                .iter()
                .map(|&e| (local[self.edges[e].source as usize], local[self.edges[e].target as usize]))
                .collect();
            let layout = updraft_dag::layout::layout_edges(members.len(), &pairs);
            for (k, &i) in members.iter().enumerate() {
                if let Some(p) = layout.nodes.get(k) {
                    place(&mut out, i, p.x, p.y);
                }
            }
            for (route, &e) in layout.edges.iter().zip(&inner) {
                out.edges[e].points = route.points.clone();
            }
        } else {
            let (pitch_x, pitch_y) = (self.w + 80.0, self.h + 16.0);
            let mut column = 0.0;
            for (_, in_column) in &self.columns {
                let here: Vec<u32> = in_column.iter().copied().filter(|&i| kept(i)).collect();
                if here.is_empty() {
                    continue;
                }
                let top = -(here.len() as f32) * pitch_y / 2.0;
                for (k, &i) in here.iter().enumerate() {
                    place(&mut out, i, column * pitch_x, top + k as f32 * pitch_y);
                }
                column += 1.0;
            }
            for e in &mut out.edges {
                if kept(e.source) && kept(e.target) {
                    e.points.clear();
                }
            }
        }
        out.build_index();
        if !members.is_empty() {
            out.bounds = bounds;
        }
        out
    }

    /// The bounds of what is drawn: nodes that are not folded into a card and, when `only` is
    /// given, in it.
    pub fn drawn_bounds(&self, collapse: &Collapse, only: Option<&[bool]>) -> Option<[f32; 4]> {
        let mut bounds: Option<[f32; 4]> = None;
        for i in 0..self.ids.len() {
            if collapse.hidden(i as u32) || only.is_some_and(|o| !o[i]) {
                continue;
            }
            let b = bounds.get_or_insert([f32::MAX, f32::MAX, f32::MIN, f32::MIN]);
            b[0] = b[0].min(self.x[i]);
            b[1] = b[1].min(self.y[i]);
            b[2] = b[2].max(self.x[i] + self.w);
            b[3] = b[3].max(self.y[i] + self.h);
        }
        bounds
    }
}

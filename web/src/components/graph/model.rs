//! The graph as the canvas draws it: flat arrays built once from the graph JSON (positions from
//! the DAG model's layout), adjacency both ways for lineage, and a spatial index for hit-tests
//! and culling: nodes by layer column, each column sorted by `y`, so finding what is under the
//! pointer or on screen is a binary search, at any size.

use std::collections::HashMap;

use serde::Deserialize;
use serde_json::Value;

#[derive(Debug, Deserialize)]
struct GraphJson {
    nodes: Vec<NodeJson>,
    edges: Vec<EdgeJson>,
    #[serde(default)]
    node_width: Option<f32>,
    #[serde(default)]
    node_height: Option<f32>,
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
const DEFAULT_H: f32 = 28.0;

impl Graph {
    /// Reads the graph JSON (`/api/updraft/dags/{id}/graph`, or the editor's own from the DAG
    /// model). Nodes without a position are placed by layer (older servers).
    pub fn from_json(value: &Value) -> Result<Graph, String> {
        let json = GraphJson::deserialize(value).map_err(|e| format!("the graph is not understood: {e}"))?;
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
        Ok(graph)
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

    /// The node under a point (world units).
    pub fn hit(&self, x: f32, y: f32) -> Option<u32> {
        let mut found = None;
        self.visible(x, y, x, y, |i| found = Some(i));
        found
    }

    /// Every node upstream and downstream of `node` within `depth` steps (all when `None`),
    /// with `node`: a breadth-first walk with an explicit queue.
    pub fn lineage(&self, node: u32, depth: Option<u32>) -> Vec<bool> {
        let mut seen = vec![false; self.ids.len()];
        seen[node as usize] = true;
        for adjacency in [&self.up, &self.down] {
            let mut frontier = vec![node];
            let mut step = 0;
            while !frontier.is_empty() && depth.is_none_or(|d| step < d) {
                let mut next = Vec::new();
                for &n in &frontier {
                    for &m in &adjacency[n as usize] {
                        if !seen[m as usize] {
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

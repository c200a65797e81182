//! A layered drawing of a DAG, left to right (Sugiyama style), shared by the server and the
//! browser (compiled to wasm). Each node gets a column from its longest-path layer; an edge
//! spanning several columns passes through one dummy node per column in between; barycentric
//! sweeps order the nodes of each column to remove crossings (`order`); Brandes–Köpf alignment
//! gives them y positions that keep long edges straight (`coords`).
//!
//! The result depends on the DAG alone, ties broken by task order, and coordinates are computed
//! in integers, so the server and the browser draw the same picture. Everything is iterative, in
//! flat vectors indexed by `u32`, and `n log n` at worst in nodes plus dummies: a 100,000-task
//! DAG lays out in a fraction of a second and no input can overflow the stack.

mod coords;
mod order;
#[cfg(test)]
mod tests;

use crate::graph::Dag;

/// Width of a node's box.
pub const NODE_WIDTH: u32 = 160;
/// Height of a node's box.
pub const NODE_HEIGHT: u32 = 36;
/// Horizontal space between two columns, where edges run from one column to the next.
pub const LAYER_GAP: u32 = 80;
/// Least vertical space between two boxes of a column.
pub const NODE_GAP: u32 = 16;
/// Least vertical space between an edge crossing a column and its neighbours there (a box or
/// another edge): edges pack tighter than boxes.
pub const EDGE_GAP: u32 = 8;

/// Where every node and edge of a DAG is drawn. Coordinates are whole numbers with the origin
/// at the top-left corner of the drawing; y grows downwards.
#[derive(Debug, Clone, PartialEq)]
pub struct Layout {
    /// One per node: the tasks in `dag.tasks` order, then the external tables in
    /// `dag.external_tables` order.
    pub nodes: Vec<NodePosition>,
    /// One per edge: the task edges in [`Dag::edges`] order, then the readers of each external
    /// table, table by table.
    pub edges: Vec<EdgeRoute>,
    /// Size of the drawing: every box and bend point lies within it.
    pub width: f32,
    pub height: f32,
    /// Number of columns.
    pub layer_count: u32,
}

/// A node's box: `NODE_WIDTH` × `NODE_HEIGHT` from its top-left corner.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NodePosition {
    /// Left edge of the box: `layer * (NODE_WIDTH + LAYER_GAP)`.
    pub x: f32,
    /// Top edge of the box.
    pub y: f32,
    /// Column of the drawing. For tasks it is the longest-path layer of [`Dag::layers`], plus
    /// one when an external table feeds a task of layer 0; an external table sits one column
    /// left of its first reader.
    pub layer: u32,
}

/// An edge: from the right side of its source's box to the left side of its target's.
#[derive(Debug, Clone, PartialEq)]
pub struct EdgeRoute {
    /// Node indices, as in [`Layout::nodes`].
    pub source: u32,
    pub target: u32,
    /// Where the edge crosses each column between its ends, left to right: the column's centre
    /// x and the edge's y there. Empty for an edge between adjacent columns.
    pub points: Vec<[f32; 2]>,
}

/// Lays out a DAG; see [`Layout`] for what the numbers mean.
pub fn layout(dag: &Dag) -> Layout {
    let tasks = dag.tasks.len();
    let layers = node_layers(dag);
    let edges: Vec<(u32, u32)> = dag
        .edges()
        .chain(
            dag.external_tables
                .iter()
                .enumerate()
                .flat_map(|(i, e)| e.readers.iter().map(move |&r| ((tasks + i) as u32, r))),
        )
        .collect();
    lay_out(layers, &edges)
}

/// Lays out any DAG on nodes `0..nodes` given by its edges (source → target): each node's
/// column is its longest-path layer, then the same sweeps and positions as [`layout`]. The web
/// app uses it to draw a part of a DAG (a task's lineage) on its own. Edges with an end outside
/// `0..nodes`, and self-loops, are left out of [`Layout::edges`]; an edge that a cycle makes
/// point left gets no bend points.
pub fn layout_edges(nodes: usize, edges: &[(u32, u32)]) -> Layout {
    let edges: Vec<(u32, u32)> =
        edges.iter().copied().filter(|&(s, t)| (s as usize) < nodes && (t as usize) < nodes && s != t).collect();
    lay_out(longest_path_layers(nodes, &edges), &edges)
}

fn lay_out(layers: Vec<u32>, edges: &[(u32, u32)]) -> Layout {
    let mut graph = Proper::new(layers, edges);
    order::reduce_crossings(&mut graph);
    let centre = coords::assign(&graph);
    graph.place(edges, &centre)
}

/// Each node's longest-path layer (Kahn's order, no recursion); nodes on a cycle stay where the
/// walk leaves them, and the cycle's edges then point left and get no route.
fn longest_path_layers(nodes: usize, edges: &[(u32, u32)]) -> Vec<u32> {
    let mut indegree = vec![0u32; nodes];
    let mut out_start = vec![0u32; nodes + 1];
    for &(s, t) in edges {
        indegree[t as usize] += 1;
        out_start[s as usize + 1] += 1;
    }
    for i in 0..nodes {
        out_start[i + 1] += out_start[i];
    }
    let mut fill = out_start.clone();
    let mut out = vec![0u32; edges.len()];
    for &(s, t) in edges {
        out[fill[s as usize] as usize] = t;
        fill[s as usize] += 1;
    }
    let mut layer = vec![0u32; nodes];
    let mut ready: Vec<u32> = (0..nodes as u32).filter(|&v| indegree[v as usize] == 0).collect();
    while let Some(v) = ready.pop() {
        for &t in &out[out_start[v as usize] as usize..out_start[v as usize + 1] as usize] {
            layer[t as usize] = layer[t as usize].max(layer[v as usize] + 1);
            indegree[t as usize] -= 1;
            if indegree[t as usize] == 0 {
                ready.push(t);
            }
        }
    }
    layer
}

/// The column of every node: tasks (in order), then external tables.
fn node_layers(dag: &Dag) -> Vec<u32> {
    let first_reader = |e: &crate::graph::ExternalTable| e.readers.iter().map(|&r| dag.layers[r as usize]).min();
    let shift = u32::from(dag.external_tables.iter().any(|e| first_reader(e) == Some(0)));
    let mut layers: Vec<u32> = dag.layers.iter().map(|&l| l + shift).collect();
    // One column left of the first reader; that column exists, as `shift` made room for it.
    layers.extend(dag.external_tables.iter().map(|e| first_reader(e).map_or(0, |l| (l + shift).saturating_sub(1))));
    layers
}

/// The nodes an edge passes through: source, dummies, target; nothing for an edge that does not
/// point right.
fn chain((source, target): (u32, u32), first_dummy: u32, span: u32) -> impl Iterator<Item = u32> {
    let len = if span == 0 { 0 } else { span as usize + 1 };
    std::iter::once(source)
        .chain(first_dummy..first_dummy + span.saturating_sub(1))
        .chain(std::iter::once(target))
        .take(len)
}

/// The layered graph made "proper": every edge is cut into segments between adjacent columns,
/// through dummy nodes. Nodes `0..real` are the DAG's; dummies follow, those of one edge
/// consecutive and left to right.
struct Proper {
    real: u32,
    /// Column of every node.
    layer: Vec<u32>,
    /// Segments grouped by their right end: `up_index[v]..up_index[v + 1]` are the segments
    /// entering `v`. A segment's id is its place in this grouping.
    up_index: Vec<u32>,
    /// Left end of each segment.
    seg_left: Vec<u32>,
    /// Right end of each segment.
    seg_right: Vec<u32>,
    /// Segment ids grouped by their left end: `down_index[v]..down_index[v + 1]` in `down`.
    down_index: Vec<u32>,
    down: Vec<u32>,
    /// The nodes of column `l`, in drawing order, are `order[layer_start[l]..layer_start[l + 1]]`.
    layer_start: Vec<u32>,
    order: Vec<u32>,
    /// Place of each node within its column's slice of `order`.
    pos: Vec<u32>,
    /// First dummy of each input edge (it has `span - 1` of them).
    edge_dummies: Vec<u32>,
}

impl Proper {
    /// Adds the dummies of `edges` (pairs of node indices) and orders each column by node index.
    /// An edge that does not point right (impossible for layers from `assemble`) gets no
    /// segment, so it cannot break the column structure.
    fn new(mut layer: Vec<u32>, edges: &[(u32, u32)]) -> Proper {
        let real = layer.len() as u32;
        let mut edge_dummies = Vec::with_capacity(edges.len());
        let mut segments = 0usize;
        for &(s, t) in edges {
            let (from, to) = (layer[s as usize], layer[t as usize]);
            edge_dummies.push(layer.len() as u32);
            if to > from {
                layer.extend(from + 1..to);
                segments += (to - from) as usize;
            }
        }
        let n = layer.len();
        let spans: Vec<u32> = edges.iter().map(|&(s, t)| layer[t as usize].saturating_sub(layer[s as usize])).collect();
        let chain = |e: usize| chain(edges[e], edge_dummies[e], spans[e]);

        let mut up_index = vec![0u32; n + 1];
        for e in 0..edges.len() {
            for v in chain(e).skip(1) {
                up_index[v as usize + 1] += 1;
            }
        }
        for v in 0..n {
            up_index[v + 1] += up_index[v];
        }
        let mut seg_left = vec![0u32; segments];
        let mut seg_right = vec![0u32; segments];
        let mut cursor: Vec<u32> = up_index[..n].to_vec();
        for e in 0..edges.len() {
            let mut left = None;
            for v in chain(e) {
                if let Some(u) = left {
                    let s = cursor[v as usize] as usize;
                    cursor[v as usize] += 1;
                    seg_left[s] = u;
                    seg_right[s] = v;
                }
                left = Some(v);
            }
        }
        let mut down_index = vec![0u32; n + 1];
        for &u in &seg_left {
            down_index[u as usize + 1] += 1;
        }
        for v in 0..n {
            down_index[v + 1] += down_index[v];
        }
        let mut down = vec![0u32; segments];
        cursor.copy_from_slice(&down_index[..n]);
        for (s, &u) in seg_left.iter().enumerate() {
            down[cursor[u as usize] as usize] = s as u32;
            cursor[u as usize] += 1;
        }

        // Columns by counting sort: nodes of a column in index order, so task order first.
        let layer_count = layer.iter().max().map_or(0, |&l| l as usize + 1);
        let mut layer_start = vec![0u32; layer_count + 1];
        for &l in &layer {
            layer_start[l as usize + 1] += 1;
        }
        for l in 0..layer_count {
            layer_start[l + 1] += layer_start[l];
        }
        let mut order = vec![0u32; n];
        let mut pos = vec![0u32; n];
        let mut fill: Vec<u32> = layer_start[..layer_count].to_vec();
        for (v, &l) in layer.iter().enumerate() {
            let slot = fill[l as usize];
            fill[l as usize] += 1;
            order[slot as usize] = v as u32;
            pos[v] = slot - layer_start[l as usize];
        }
        Proper { real, layer, up_index, seg_left, seg_right, down_index, down, layer_start, order, pos, edge_dummies }
    }

    fn layer_count(&self) -> usize {
        self.layer_start.len() - 1
    }

    /// The nodes of column `l`, in drawing order.
    fn column(&self, l: usize) -> &[u32] {
        &self.order[self.layer_start[l] as usize..self.layer_start[l + 1] as usize]
    }

    /// Ids of the segments entering `v` from the column on its left.
    fn ups(&self, v: u32) -> std::ops::Range<usize> {
        self.up_index[v as usize] as usize..self.up_index[v as usize + 1] as usize
    }

    /// Ids of the segments leaving `v` to the column on its right.
    fn downs(&self, v: u32) -> &[u32] {
        &self.down[self.down_index[v as usize] as usize..self.down_index[v as usize + 1] as usize]
    }

    fn is_dummy(&self, v: u32) -> bool {
        v >= self.real
    }

    /// Half the height a node takes in its column: a box, or a point for a dummy.
    fn half_height(&self, v: u32) -> i64 {
        if self.is_dummy(v) { 0 } else { i64::from(NODE_HEIGHT / 2) }
    }

    /// Least distance between the centres of `a` and `b`, neighbours in a column.
    fn separation(&self, a: u32, b: u32) -> i64 {
        let gap = if self.is_dummy(a) || self.is_dummy(b) { EDGE_GAP } else { NODE_GAP };
        self.half_height(a) + self.half_height(b) + i64::from(gap)
    }

    /// Recomputes `pos` from `order`.
    fn refresh_pos(&mut self) {
        for l in 0..self.layer_count() {
            let (a, b) = (self.layer_start[l] as usize, self.layer_start[l + 1] as usize);
            for (i, &v) in self.order[a..b].iter().enumerate() {
                self.pos[v as usize] = i as u32;
            }
        }
    }

    /// Turns centre heights into the public layout, moved so the drawing starts at y = 0.
    fn place(&self, edges: &[(u32, u32)], centre: &[i64]) -> Layout {
        let top = (0..self.layer.len()).map(|v| centre[v] - self.half_height(v as u32)).min().unwrap_or(0);
        let bottom = (0..self.layer.len()).map(|v| centre[v] + self.half_height(v as u32)).max().unwrap_or(0);
        let column_x = |l: u32| (l * (NODE_WIDTH + LAYER_GAP)) as f32;
        let half = i64::from(NODE_HEIGHT / 2);
        let nodes = (0..self.real as usize)
            .map(|v| NodePosition {
                x: column_x(self.layer[v]),
                y: (centre[v] - half - top) as f32,
                layer: self.layer[v],
            })
            .collect();
        let edges = edges
            .iter()
            .zip(&self.edge_dummies)
            .map(|(&(source, target), &first)| {
                let span = self.layer[target as usize].saturating_sub(self.layer[source as usize]);
                let points = (first..first + span.saturating_sub(1))
                    .map(|d| {
                        let x = column_x(self.layer[d as usize]) + (NODE_WIDTH / 2) as f32;
                        [x, (centre[d as usize] - top) as f32]
                    })
                    .collect();
                EdgeRoute { source, target, points }
            })
            .collect();
        let layer_count = self.layer_count() as u32;
        let width = (layer_count * NODE_WIDTH + layer_count.saturating_sub(1) * LAYER_GAP) as f32;
        Layout { nodes, edges, width, height: (bottom - top) as f32, layer_count }
    }
}

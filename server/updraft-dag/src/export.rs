//! Views of a validated DAG: the graph JSON the web app draws (and `updraft dags show --format
//! json` prints), Graphviz DOT, and an indented tree for terminals.

use serde::Serialize;

use crate::graph::Dag;
use crate::layout::{self, Layout};

/// The graph JSON. Coordinates are whole numbers in the drawing's units, origin at the top left,
/// y downwards (see [`crate::layout`]).
#[derive(Debug, Serialize)]
pub struct GraphJson<'a> {
    pub dag_id: &'a str,
    pub task_count: usize,
    pub edge_count: usize,
    pub layer_count: u32,
    /// Size of the drawing.
    pub width: u32,
    pub height: u32,
    /// Size of every node's box.
    pub node_width: u32,
    pub node_height: u32,
    pub nodes: Vec<NodeJson<'a>>,
    pub edges: Vec<EdgeJson<'a>>,
    pub external_tables: Vec<&'a str>,
}

/// A task (or an external table) in the graph JSON, with its place in the drawing.
#[derive(Debug, Serialize)]
pub struct NodeJson<'a> {
    pub id: &'a str,
    /// `task` or `external` (a source table no task produces).
    pub kind: &'static str,
    /// Longest-path layer; external tables sit in layer 0 with the tasks that read only them
    /// one layer further right in the drawing (`x` says where each node is drawn).
    pub layer: u32,
    /// Top-left corner of the node's box.
    pub x: u32,
    pub y: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operator: Option<&'a str>,
    /// The task's file, relative to the DAG's folder (`tasks/l05/t00123.yaml`), so the JSON
    /// never shows where the server keeps its files.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<&'a str>,
    /// The folder of the task's file relative to the DAG's folder (`tasks/l05`); absent for a
    /// task at the top of the folder or in a one-file DAG.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<&'a str>,
}

/// An edge in the graph JSON, with the points where it bends.
#[derive(Debug, Serialize)]
pub struct EdgeJson<'a> {
    pub source: &'a str,
    pub target: &'a str,
    /// `task` for task → task, `external` for table → task.
    pub kind: &'static str,
    /// Bend points `[x, y]` where the edge crosses the columns between its ends; absent for an
    /// edge between adjacent columns.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub points: Vec<[u32; 2]>,
}

/// The graph as the web app draws it: task nodes, external-table nodes, edges, layers, and
/// where [`layout::layout`] places them.
pub fn graph_json(dag: &Dag) -> GraphJson<'_> {
    graph_json_with(dag, &layout::layout(dag))
}

/// [`graph_json`] with a layout already computed for `dag`.
pub fn graph_json_with<'a>(dag: &'a Dag, layout: &Layout) -> GraphJson<'a> {
    let tasks = dag.tasks.len();
    // Coordinates are whole and non-negative; the cast only drops the `.0`.
    let whole = |v: f32| v.round() as u32;
    let at = |i: usize| layout.nodes.get(i).map_or((0, 0), |p| (whole(p.x), whole(p.y)));
    let folder = folder_of(&dag.file);
    let mut nodes: Vec<NodeJson<'_>> = dag
        .tasks
        .iter()
        .zip(&dag.layers)
        .enumerate()
        .map(|(i, (t, &layer))| {
            let (x, y) = at(i);
            NodeJson {
                id: &t.id,
                kind: "task",
                layer,
                x,
                y,
                operator: Some(&t.operator),
                file: Some(t.file.strip_prefix(folder).unwrap_or(&t.file)),
                group: group(folder, &t.file),
            }
        })
        .collect();
    nodes.extend(dag.external_tables.iter().enumerate().map(|(i, e)| {
        let (x, y) = at(tasks + i);
        NodeJson { id: &e.name, kind: "external", layer: 0, x, y, operator: None, file: None, group: None }
    }));
    let name = |v: u32| {
        let v = v as usize;
        if v < tasks { dag.tasks[v].id.as_str() } else { dag.external_tables[v - tasks].name.as_str() }
    };
    let edges = layout
        .edges
        .iter()
        .map(|e| EdgeJson {
            source: name(e.source),
            target: name(e.target),
            kind: if (e.source as usize) < tasks { "task" } else { "external" },
            points: e.points.iter().map(|&[x, y]| [whole(x), whole(y)]).collect(),
        })
        .collect();
    GraphJson {
        dag_id: &dag.id,
        task_count: tasks,
        edge_count: dag.edge_count(),
        layer_count: dag.layer_count(),
        width: whole(layout.width),
        height: whole(layout.height),
        node_width: layout::NODE_WIDTH,
        node_height: layout::NODE_HEIGHT,
        nodes,
        edges,
        external_tables: dag.external_tables.iter().map(|e| e.name.as_str()).collect(),
    }
}

/// The folder part of a path, separator included (`dags/orders/` of `dags/orders/dag.yaml`).
fn folder_of(file: &str) -> &str {
    file.rfind(['/', '\\']).map_or("", |i| &file[..=i])
}

/// A task file's folder relative to the DAG's folder, when it is below it and not at its top.
fn group<'a>(dag_folder: &str, task_file: &'a str) -> Option<&'a str> {
    let relative = task_file.strip_prefix(dag_folder)?;
    let folder = folder_of(relative);
    (!folder.is_empty()).then(|| &folder[..folder.len() - 1])
}

fn dot_quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// Graphviz DOT: tasks as boxes ranked by layer, external tables as cylinders.
pub fn dot(dag: &Dag) -> String {
    let mut out = format!("digraph {} {{\n  rankdir=LR;\n  node [shape=box];\n", dot_quote(&dag.id));
    for e in &dag.external_tables {
        out.push_str(&format!("  {} [shape=cylinder, style=dashed];\n", dot_quote(&e.name)));
    }
    for t in &dag.tasks {
        out.push_str(&format!("  {};\n", dot_quote(&t.id)));
    }
    for (u, t) in dag.edges() {
        out.push_str(&format!(
            "  {} -> {};\n",
            dot_quote(&dag.tasks[u as usize].id),
            dot_quote(&dag.tasks[t as usize].id)
        ));
    }
    for e in &dag.external_tables {
        for &r in &e.readers {
            out.push_str(&format!(
                "  {} -> {} [style=dashed];\n",
                dot_quote(&e.name),
                dot_quote(&dag.tasks[r as usize].id)
            ));
        }
    }
    out.push_str("}\n");
    out
}

/// Tasks by layer, each with its upstream tasks: readable in a terminal at any size.
pub fn tree(dag: &Dag) -> String {
    let mut order: Vec<u32> = (0..dag.tasks.len() as u32).collect();
    order.sort_by_key(|&t| (dag.layers[t as usize], t));
    let mut out = String::new();
    let mut current = None;
    for t in order {
        let layer = dag.layers[t as usize];
        if current != Some(layer) {
            out.push_str(&format!("layer {layer}\n"));
            current = Some(layer);
        }
        let task = &dag.tasks[t as usize];
        let ups: Vec<&str> = dag.upstream(t).iter().map(|&u| dag.tasks[u as usize].id.as_str()).collect();
        if ups.is_empty() {
            out.push_str(&format!("  {} ({})\n", task.id, task.operator));
        } else {
            out.push_str(&format!("  {} ({}) ← {}\n", task.id, task.operator, ups.join(", ")));
        }
    }
    out
}

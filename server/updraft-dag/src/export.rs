//! Views of a validated DAG: the graph JSON the web app draws (and `updraft dags show --format
//! json` prints), Graphviz DOT, and an indented tree for terminals.

use serde::Serialize;

use crate::graph::Dag;

#[derive(Debug, Serialize)]
pub struct GraphJson<'a> {
    pub dag_id: &'a str,
    pub task_count: usize,
    pub edge_count: usize,
    pub layer_count: u32,
    pub nodes: Vec<NodeJson<'a>>,
    pub edges: Vec<EdgeJson<'a>>,
    pub external_tables: Vec<&'a str>,
}

#[derive(Debug, Serialize)]
pub struct NodeJson<'a> {
    pub id: &'a str,
    /// `task` or `external` (a source table no task produces).
    pub kind: &'static str,
    /// Longest-path layer; external tables sit in layer 0 with the tasks that read only them
    /// one layer further right in the drawing.
    pub layer: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operator: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<&'a str>,
}

#[derive(Debug, Serialize)]
pub struct EdgeJson<'a> {
    pub source: &'a str,
    pub target: &'a str,
    /// `task` for task → task, `external` for table → task.
    pub kind: &'static str,
}

/// The graph as the web app draws it: task nodes, external-table nodes, edges, layers.
pub fn graph_json(dag: &Dag) -> GraphJson<'_> {
    let mut nodes: Vec<NodeJson<'_>> = dag
        .tasks
        .iter()
        .zip(&dag.layers)
        .map(|(t, &layer)| NodeJson {
            id: &t.id,
            kind: "task",
            layer,
            operator: Some(&t.operator),
            file: Some(&t.file),
        })
        .collect();
    nodes.extend(dag.external_tables.iter().map(|e| NodeJson {
        id: &e.name,
        kind: "external",
        layer: 0,
        operator: None,
        file: None,
    }));
    let mut edges: Vec<EdgeJson<'_>> = dag
        .edges()
        .map(|(u, t)| EdgeJson { source: &dag.tasks[u as usize].id, target: &dag.tasks[t as usize].id, kind: "task" })
        .collect();
    for e in &dag.external_tables {
        edges.extend(e.readers.iter().map(|&r| EdgeJson {
            source: &e.name,
            target: &dag.tasks[r as usize].id,
            kind: "external",
        }));
    }
    GraphJson {
        dag_id: &dag.id,
        task_count: dag.tasks.len(),
        edge_count: dag.edge_count(),
        layer_count: dag.layer_count(),
        nodes,
        edges,
        external_tables: dag.external_tables.iter().map(|e| e.name.as_str()).collect(),
    }
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

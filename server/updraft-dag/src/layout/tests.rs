//! Tests of the layout: edges point right, nothing overlaps, the result is deterministic, long
//! edges run straight, crossings go, and 100,000 tasks fit in a 2 MiB stack.

use std::sync::Arc;

use super::{EDGE_GAP, LAYER_GAP, Layout, NODE_GAP, NODE_HEIGHT, NODE_WIDTH, Proper, layout, layout_edges, order};
use crate::{Dag, Options, SqlInput, TaskInput, assemble, parse_dag_file, parse_task_file};

/// A DAG of `noop` tasks: each `(id, depends_on)`; names no task has are external tables.
fn dag(tasks: &[(String, Vec<String>)]) -> Dag {
    let spec = parse_dag_file(&Arc::from("dag.yaml"), "dag: d\n").expect("dag");
    let inputs = tasks
        .iter()
        .map(|(id, deps)| {
            let text = format!("id: {id}\noperator: noop\ndepends_on: [{}]\n", deps.join(", "));
            let file: Arc<str> = Arc::from(format!("tasks/{id}.yaml"));
            TaskInput { spec: parse_task_file(&file, &text).expect("task"), sql: SqlInput::NotChecked }
        })
        .collect();
    let (dag, diagnostics) = assemble(spec, inputs, Options::default());
    assert_eq!(diagnostics, vec![]);
    dag.expect("valid")
}

fn named(tasks: &[(&str, &[&str])]) -> Dag {
    dag(&tasks
        .iter()
        .map(|(id, deps)| ((*id).to_owned(), deps.iter().map(|d| (*d).to_owned()).collect()))
        .collect::<Vec<_>>())
}

/// xorshift64*: the same numbers on every platform.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 33) as usize % n.max(1)
    }
}

/// The shape `make_seed.py` generates (not its exact graph): `n` tasks in `layers` layers; layer 0
/// reads 1–3 of 100 source tables; a task of layer L > 0 depends on one task of layer L - 1 and
/// up to two of any earlier layer.
fn seed_style(n: usize, layers: usize, seed: u64) -> Dag {
    let mut rng = Rng(seed);
    let start: Vec<usize> = (0..=layers).map(|l| (l * n).div_ceil(layers)).collect();
    let tasks: Vec<(String, Vec<String>)> = (0..n)
        .map(|i| {
            let l = i * layers / n;
            let k = 1 + rng.below(3);
            let mut deps: Vec<String> = Vec::new();
            if l == 0 {
                for _ in 0..k {
                    deps.push(format!("src_{:03}", rng.below(100)));
                }
            } else {
                deps.push(format!("t{:05}", start[l - 1] + rng.below(start[l] - start[l - 1])));
                for _ in 1..k {
                    deps.push(format!("t{:05}", rng.below(start[l])));
                }
            }
            deps.sort();
            deps.dedup();
            (format!("t{i:05}"), deps)
        })
        .collect();
    dag(&tasks)
}

/// `n` tasks, each depending on up to three random earlier ones or on one of a few tables.
fn random(n: usize, seed: u64) -> Dag {
    let mut rng = Rng(seed);
    let tasks: Vec<(String, Vec<String>)> = (0..n)
        .map(|i| {
            let mut deps: Vec<String> = (0..rng.below(4))
                .filter_map(|_| match rng.below(8) {
                    0 => Some(format!("ext_{}", rng.below(3))),
                    _ if i > 0 => Some(format!("t{}", rng.below(i))),
                    _ => None,
                })
                .collect();
            deps.sort();
            deps.dedup();
            (format!("t{i}"), deps)
        })
        .collect();
    dag(&tasks)
}

/// Checks every promise of [`Layout`] for `dag`.
fn check(dag: &Dag, layout: &Layout) {
    let tasks = dag.tasks.len();
    let reads: usize = dag.external_tables.iter().map(|e| e.readers.len()).sum();
    assert_eq!(layout.nodes.len(), tasks + dag.external_tables.len());
    assert_eq!(layout.edges.len(), dag.edge_count() + reads);
    let column = |l: u32| (l * (NODE_WIDTH + LAYER_GAP)) as f32;
    let (w, h) = (NODE_WIDTH as f32, NODE_HEIGHT as f32);
    for (i, node) in layout.nodes.iter().enumerate() {
        assert_eq!(node.x, column(node.layer), "node {i}");
        assert!(node.layer < layout.layer_count);
        assert!(node.y >= 0.0 && node.y + h <= layout.height, "node {i} at {} in {}", node.y, layout.height);
        assert!(node.x + w <= layout.width);
        assert_eq!(node.y.fract(), 0.0);
        if i < tasks {
            assert!(node.layer >= dag.layers[i]);
        }
    }
    for (i, e) in dag.external_tables.iter().enumerate() {
        let first = e.readers.iter().map(|&r| layout.nodes[r as usize].layer).min().expect("a reader");
        assert_eq!(layout.nodes[tasks + i].layer + 1, first, "{} sits just left of its first reader", e.name);
    }
    let expected = dag.edges().chain(
        dag.external_tables
            .iter()
            .enumerate()
            .flat_map(|(i, e)| e.readers.iter().map(move |&r| ((tasks + i) as u32, r))),
    );
    for (route, (source, target)) in layout.edges.iter().zip(expected) {
        assert_eq!((route.source, route.target), (source, target));
        let (s, t) = (layout.nodes[source as usize], layout.nodes[target as usize]);
        assert!(s.layer < t.layer, "edge {source} → {target} points right");
        assert!(s.x < t.x, "edge {source} → {target} points right");
        assert_eq!(route.points.len(), (t.layer - s.layer - 1) as usize);
        for (k, &[x, y]) in route.points.iter().enumerate() {
            assert_eq!(x, column(s.layer + 1 + k as u32) + w / 2.0);
            assert!(y >= 0.0 && y <= layout.height);
        }
    }
    // Column by column: boxes and bend points, sorted, keep their gaps.
    let mut items: Vec<(u32, f32, f32, bool)> = layout.nodes.iter().map(|n| (n.layer, n.y, n.y + h, true)).collect();
    for route in &layout.edges {
        let first = layout.nodes[route.source as usize].layer + 1;
        items.extend(route.points.iter().enumerate().map(|(k, &[_, y])| (first + k as u32, y, y, false)));
    }
    items.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)));
    for pair in items.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        if a.0 != b.0 {
            continue;
        }
        let gap = if a.3 && b.3 { NODE_GAP } else { EDGE_GAP } as f32;
        assert!(b.1 - a.2 >= gap, "column {}: {:?} and {:?} are closer than {gap}", a.0, a, b);
    }
}

#[test]
fn edges_point_right_and_nothing_overlaps() {
    check(&seed_style(300, 12, 7), &layout(&seed_style(300, 12, 7)));
    for seed in 1..=40 {
        let dag = random(5 + seed as usize * 3, seed);
        check(&dag, &layout(&dag));
    }
    let one = named(&[("a", &[])]);
    let placed = layout(&one);
    check(&one, &placed);
    assert_eq!((placed.nodes[0].x, placed.nodes[0].y, placed.width, placed.height), (0.0, 0.0, 160.0, 36.0));
}

#[test]
fn external_tables_sit_left_of_their_first_reader() {
    // `late` is read only by a layer-2 task; `raw` by a layer-0 one, which moves tasks right.
    let dag = named(&[("a", &["raw"]), ("b", &["a"]), ("c", &["b", "late", "raw"])]);
    let placed = layout(&dag);
    check(&dag, &placed);
    let layers: Vec<u32> = placed.nodes.iter().map(|n| n.layer).collect();
    assert_eq!(dag.external_tables.iter().map(|e| e.name.as_str()).collect::<Vec<_>>(), ["late", "raw"]);
    assert_eq!(layers, [1, 2, 3, 2, 0]);
    // Without a layer-0 reader, tasks keep their layers.
    let dag = named(&[("a", &[]), ("b", &["a", "late"])]);
    assert_eq!(layout(&dag).nodes.iter().map(|n| n.layer).collect::<Vec<_>>(), [0, 1, 0]);
}

#[test]
fn layout_is_deterministic() {
    let first = seed_style(2000, 20, 3);
    let again = seed_style(2000, 20, 3);
    assert_eq!(layout(&first), layout(&first));
    assert_eq!(layout(&first), layout(&again), "the same DAG parsed twice");
    let json = |dag: &Dag| serde_json::to_string(&crate::export::graph_json(dag)).expect("json");
    assert_eq!(json(&first), json(&again));
}

#[test]
fn chains_and_long_edges_run_straight() {
    let chain = named(&[("a", &[]), ("b", &["a"]), ("c", &["b"]), ("d", &["c"])]);
    let placed = layout(&chain);
    assert!(placed.nodes.iter().all(|n| n.y == 0.0), "{placed:?}");
    // a → e spans three columns beside the chain: its bend points line up.
    let dag = named(&[("a", &[]), ("b", &["a"]), ("c", &["b"]), ("d", &["c"]), ("e", &["a", "d"])]);
    let placed = layout(&dag);
    check(&dag, &placed);
    let long = placed.edges.iter().find(|e| e.points.len() == 3).expect("a → e");
    assert!(long.points.iter().all(|p| p[1] == long.points[0][1]), "{long:?}");
}

#[test]
fn sweeps_remove_avoidable_crossings() {
    // Task order puts b2 above a2 although a1 is above b1: one crossing until the sweeps.
    let dag = named(&[("a1", &[]), ("b1", &[]), ("b2", &["b1"]), ("a2", &["a1"])]);
    let placed = layout(&dag);
    let y = |i: usize| placed.nodes[i].y;
    assert_eq!(y(0) < y(1), y(3) < y(2), "{placed:?}");

    let dag = seed_style(1000, 10, 11);
    let tasks = dag.tasks.len();
    let edges: Vec<(u32, u32)> = dag
        .edges()
        .chain(
            dag.external_tables
                .iter()
                .enumerate()
                .flat_map(|(i, e)| e.readers.iter().map(move |&r| ((tasks + i) as u32, r))),
        )
        .collect();
    let mut graph = Proper::new(super::node_layers(&dag), &edges);
    let before = order::count_crossings(&graph);
    order::reduce_crossings(&mut graph);
    let after = order::count_crossings(&graph);
    assert!(after * 2 < before, "{before} crossings before the sweeps, {after} after");
}

#[test]
fn a_hundred_thousand_tasks_fit_in_a_small_stack() {
    // The default stack of a test thread, stated: nothing may recurse on the DAG's size.
    let worker = std::thread::Builder::new().stack_size(2 << 20).spawn(|| {
        let dag = seed_style(100_000, 20, 42);
        let placed = layout(&dag);
        check(&dag, &placed);
        placed.nodes.len()
    });
    assert_eq!(worker.expect("spawn").join().expect("no overflow"), 100_000 + 100);
}

#[test]
fn any_edge_list_lays_out_by_longest_path() {
    // A lineage on its own: 0 and 1 feed 2 (0 also through 1), 2 feeds 3 and 4.
    let edges = [(0, 2), (1, 2), (0, 1), (2, 3), (2, 4)];
    let placed = layout_edges(5, &edges);
    let layers: Vec<u32> = placed.nodes.iter().map(|n| n.layer).collect();
    assert_eq!(layers, vec![0, 1, 2, 3, 3]);
    assert_eq!(placed.edges.len(), edges.len());
    for (route, &(s, t)) in placed.edges.iter().zip(&edges) {
        assert_eq!((route.source, route.target), (s, t));
        assert_eq!(route.points.len(), (layers[t as usize] - layers[s as usize] - 1) as usize);
    }
    // The two targets of 2 share a column without overlapping; the same input, the same picture.
    let (a, b) = (placed.nodes[3].y, placed.nodes[4].y);
    assert!((a - b).abs() >= (NODE_HEIGHT + NODE_GAP) as f32);
    assert_eq!(layout_edges(5, &edges), placed);
    // Out-of-range ends and self-loops are dropped; a cycle gets no route and no panic.
    assert_eq!(layout_edges(2, &[(0, 1), (1, 1), (0, 9)]).edges.len(), 1);
    let cyclic = layout_edges(3, &[(0, 1), (1, 2), (2, 1)]);
    assert_eq!(cyclic.nodes.len(), 3);
}

//! Crossing reduction: the order of the nodes within each column. Sweeps go left to right and
//! back, at most `SWEEPS` times; each sorts a column by the barycentre of its nodes' neighbours
//! in the column just swept. The order with the fewest crossings seen is kept.
//!
//! Ties keep the current order, which starts as task order, so the result is deterministic.
//! A node with no neighbour on the swept side keeps its slot.

use super::Proper;

/// Most sweeps, alternately rightwards and leftwards. Most crossings go in the first two; the
/// sweeps stop early once a round of two removes less than 1% of the crossings left.
const SWEEPS: usize = 8;

/// Buffers reused across columns, so a sweep allocates nothing.
#[derive(Default)]
struct Scratch {
    /// (barycentre, current place, node) of the movable nodes of a column.
    keyed: Vec<(f64, u32, u32)>,
    /// Places in the right column of the segments leaving a column, in crossing-count order.
    sequence: Vec<u32>,
    fenwick: Vec<u32>,
}

/// Reorders the columns of `graph` to remove crossings; leaves `order` and `pos` in step.
pub(super) fn reduce_crossings(graph: &mut Proper) {
    let layer_count = graph.layer_count();
    let mut scratch = Scratch::default();
    let mut best = crossings(graph, &mut scratch);
    let mut best_order = graph.order.clone();
    let mut current_is_best = true;
    let mut round_start = best;
    for sweep in 0..SWEEPS {
        if best == 0 {
            break;
        }
        if sweep % 2 == 0 {
            for l in 1..layer_count {
                reorder(graph, l, Side::Left, &mut scratch);
            }
        } else {
            for l in (0..layer_count.saturating_sub(1)).rev() {
                reorder(graph, l, Side::Right, &mut scratch);
            }
        }
        let count = crossings(graph, &mut scratch);
        current_is_best = count < best;
        if current_is_best {
            best = count;
            best_order.copy_from_slice(&graph.order);
        }
        if sweep % 2 == 1 {
            if best.saturating_mul(100) > round_start.saturating_mul(99) {
                break;
            }
            round_start = best;
        }
    }
    if !current_is_best {
        graph.order = best_order;
        graph.refresh_pos();
    }
}

/// The column whose order a sweep follows.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    Left,
    Right,
}

/// Sorts column `l` by the mean place of each node's neighbours on `side`.
fn reorder(graph: &mut Proper, l: usize, side: Side, scratch: &mut Scratch) {
    let (a, b) = (graph.layer_start[l] as usize, graph.layer_start[l + 1] as usize);
    let keyed = &mut scratch.keyed;
    keyed.clear();
    for &v in &graph.order[a..b] {
        let (sum, count) = match side {
            Side::Left => graph
                .ups(v)
                .fold((0u64, 0u32), |(sum, n), s| (sum + u64::from(graph.pos[graph.seg_left[s] as usize]), n + 1)),
            Side::Right => graph.downs(v).iter().fold((0u64, 0u32), |(sum, n), &s| {
                (sum + u64::from(graph.pos[graph.seg_right[s as usize] as usize]), n + 1)
            }),
        };
        if count > 0 {
            keyed.push((sum as f64 / f64::from(count), graph.pos[v as usize], v));
        }
    }
    if keyed.is_empty() {
        return;
    }
    keyed.sort_unstable_by(|x, y| x.0.total_cmp(&y.0).then(x.1.cmp(&y.1)));
    // Movable nodes fill the slots of movable nodes, in barycentre order; the others stay.
    let mut next = keyed.iter();
    for slot in a..b {
        let v = graph.order[slot];
        let movable = match side {
            Side::Left => !graph.ups(v).is_empty(),
            Side::Right => !graph.downs(v).is_empty(),
        };
        if movable && let Some(&(_, _, w)) = next.next() {
            graph.order[slot] = w;
        }
    }
    for (i, &v) in graph.order[a..b].iter().enumerate() {
        graph.pos[v as usize] = i as u32;
    }
}

/// Crossings between all pairs of adjacent columns: for each pair, the segments listed by left
/// end then right end, and the inversions among their right ends counted with a Fenwick tree
/// (Barth, Jünger and Mutzel's method), in `E log V`.
fn crossings(graph: &Proper, scratch: &mut Scratch) -> u64 {
    let mut total = 0u64;
    for l in 0..graph.layer_count().saturating_sub(1) {
        let width = graph.column(l + 1).len();
        let sequence = &mut scratch.sequence;
        sequence.clear();
        for &u in graph.column(l) {
            let start = sequence.len();
            sequence.extend(graph.downs(u).iter().map(|&s| graph.pos[graph.seg_right[s as usize] as usize]));
            sequence[start..].sort_unstable();
        }
        let tree = &mut scratch.fenwick;
        tree.clear();
        tree.resize(width + 1, 0);
        for (seen, &p) in sequence.iter().enumerate() {
            // Segments seen so far whose right end lies strictly below this one's.
            let mut at_most = 0u64;
            let mut i = p as usize + 1;
            while i > 0 {
                at_most += u64::from(tree[i]);
                i &= i - 1;
            }
            total += seen as u64 - at_most;
            let mut i = p as usize + 1;
            while i <= width {
                tree[i] += 1;
                i += i & i.wrapping_neg();
            }
        }
    }
    total
}

#[cfg(test)]
pub(super) fn count_crossings(graph: &Proper) -> u64 {
    crossings(graph, &mut Scratch::default())
}

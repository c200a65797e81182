//! Positions within columns, by Brandes and Köpf ("Fast and Simple Horizontal Coordinate
//! Assignment", 2001, turned sideways): each node is aligned with a median neighbour in the
//! previous column unless that would cross an alignment already made, giving blocks that are
//! drawn at one height; blocks are then packed as tightly as the column orders allow. That is
//! done four times (aligning with left or right neighbours, packing upwards or downwards) and
//! each node takes the mean of its two median positions, which balances the drawing.
//!
//! Packing is a longest-path pass over the blocks in topological order, not the paper's
//! recursive `place_block`, so no input can overflow the stack. Positions are integers and each
//! of the four packings keeps every pair of column neighbours at least their separation apart,
//! so the balanced result does too: nothing overlaps.

use super::Proper;

/// Which neighbours a node is aligned with, and which way blocks are packed.
#[derive(Clone, Copy)]
struct Direction {
    /// Align with the column on the left (sweeping rightwards), or on the right.
    from_left: bool,
    /// Pack towards the top (small y), or towards the bottom.
    upwards: bool,
}

/// The centre y of every node (dummies included), in the units of the layout's constants.
pub(super) fn assign(graph: &Proper) -> Vec<i64> {
    let n = graph.layer.len();
    let lefts = sorted_neighbours(graph, true);
    let rights = sorted_neighbours(graph, false);
    let marked = mark_conflicts(graph);
    let mut candidates: Vec<(Vec<i64>, bool)> = Vec::with_capacity(4);
    for from_left in [true, false] {
        for upwards in [true, false] {
            let direction = Direction { from_left, upwards };
            let root = align(graph, if from_left { &lefts } else { &rights }, &marked, direction);
            candidates.push((pack(graph, &root, upwards), upwards));
        }
    }

    // Line the four up on the narrowest: packed-upwards ones by their top, the others by their
    // bottom; then each node takes the mean of its two median positions.
    let extent = |y: &[i64]| {
        let top = (0..n).map(|v| y[v] - graph.half_height(v as u32)).min().unwrap_or(0);
        let bottom = (0..n).map(|v| y[v] + graph.half_height(v as u32)).max().unwrap_or(0);
        (top, bottom)
    };
    let extents: Vec<(i64, i64)> = candidates.iter().map(|(y, _)| extent(y)).collect();
    let narrowest = (0..4).min_by_key(|&k| (extents[k].1 - extents[k].0, k)).unwrap_or(0);
    let shifts: Vec<i64> =
        (0..4)
            .map(|k| {
                if candidates[k].1 { extents[narrowest].0 - extents[k].0 } else { extents[narrowest].1 - extents[k].1 }
            })
            .collect();
    (0..n)
        .map(|v| {
            let mut ys = [0i64; 4];
            for (k, (y, _)) in candidates.iter().enumerate() {
                ys[k] = y[v] + shifts[k];
            }
            ys.sort_unstable();
            // Flooring keeps whole-unit separations whole (see the module's doc).
            (ys[1] + ys[2]).div_euclid(2)
        })
        .collect()
}

/// Segment ids per node, sorted by the place of the neighbour they lead to: the segments
/// entering each node from the left (`left`), or leaving it to the right. Grouped as `up_index`
/// or `down_index` group them.
fn sorted_neighbours(graph: &Proper, left: bool) -> Vec<u32> {
    let mut out: Vec<u32>;
    let index = if left {
        out = (0..graph.seg_left.len() as u32).collect();
        &graph.up_index
    } else {
        out = graph.down.clone();
        &graph.down_index
    };
    let other = if left { &graph.seg_left } else { &graph.seg_right };
    for v in 0..graph.layer.len() {
        let list = &mut out[index[v] as usize..index[v + 1] as usize];
        if list.len() > 1 {
            list.sort_unstable_by_key(|&s| (graph.pos[other[s as usize] as usize], s));
        }
    }
    out
}

/// Marks the segments that cross an inner segment (one between two dummies): aligning along
/// them would bend a long edge, so long edges win. Brandes and Köpf's Alg. 1, for every pair of
/// adjacent columns.
fn mark_conflicts(graph: &Proper) -> Vec<bool> {
    let mut marked = vec![false; graph.seg_left.len()];
    for l in 0..graph.layer_count().saturating_sub(1) {
        let upper_len = graph.column(l).len() as u32;
        let lower = graph.column(l + 1);
        let mut k0 = 0u32;
        let mut scanned = 0usize;
        for (l1, &v) in lower.iter().enumerate() {
            let inner = if graph.is_dummy(v) {
                graph.ups(v).map(|s| graph.seg_left[s]).find(|&u| graph.is_dummy(u))
            } else {
                None
            };
            if inner.is_none() && l1 + 1 < lower.len() {
                continue;
            }
            let k1 = inner.map_or(upper_len.saturating_sub(1), |u| graph.pos[u as usize]);
            for &w in &lower[scanned..=l1] {
                for s in graph.ups(w) {
                    let k = graph.pos[graph.seg_left[s] as usize];
                    if k < k0 || k > k1 {
                        marked[s] = true;
                    }
                }
            }
            scanned = l1 + 1;
            k0 = k1;
        }
    }
    marked
}

/// Vertical alignment: the root (first node) of every node's block.
fn align(graph: &Proper, neighbours: &[u32], marked: &[bool], direction: Direction) -> Vec<u32> {
    let mut root: Vec<u32> = (0..graph.layer.len() as u32).collect();
    let layer_count = graph.layer_count();
    let (index, other) =
        if direction.from_left { (&graph.up_index, &graph.seg_left) } else { (&graph.down_index, &graph.seg_right) };
    // Place of a node in the packing direction: from the top when packing upwards.
    let place = |v: u32| {
        let p = graph.pos[v as usize];
        if direction.upwards {
            i64::from(p)
        } else {
            graph.column(graph.layer[v as usize] as usize).len() as i64 - 1 - i64::from(p)
        }
    };
    for step in 0..layer_count {
        let l = if direction.from_left { step } else { layer_count - 1 - step };
        let column = graph.column(l);
        let mut r = -1i64;
        for k in 0..column.len() {
            let v = if direction.upwards { column[k] } else { column[column.len() - 1 - k] };
            let list = &neighbours[index[v as usize] as usize..index[v as usize + 1] as usize];
            let d = list.len();
            if d == 0 {
                continue;
            }
            // The lower and upper medians; packing downwards mirrors the list, so the upper one
            // comes first.
            let (lo, hi) = ((d - 1) / 2, d / 2);
            let medians = if direction.upwards { [lo, hi] } else { [hi, lo] };
            for (i, &m) in medians.iter().enumerate() {
                if i == 1 && lo == hi {
                    break;
                }
                let s = list[m];
                let u = other[s as usize];
                let p = place(u);
                if !marked[s as usize] && r < p {
                    root[v as usize] = root[u as usize];
                    r = p;
                    break;
                }
            }
        }
    }
    root
}

/// Horizontal compaction: each block as close to the packing side as its column neighbours
/// allow, by a longest path over the blocks. Returns every node's centre.
fn pack(graph: &Proper, root: &[u32], upwards: bool) -> Vec<i64> {
    let n = graph.layer.len();
    // Constraints "block b starts at least `sep` after block a", grouped by a.
    let mut head = vec![0u32; n + 1];
    let pairs = || {
        (0..graph.layer_count()).flat_map(move |l| {
            let column = graph.column(l);
            column.windows(2).map(move |w| if upwards { (w[0], w[1]) } else { (w[1], w[0]) })
        })
    };
    for (a, _) in pairs() {
        head[root[a as usize] as usize + 1] += 1;
    }
    for v in 0..n {
        head[v + 1] += head[v];
    }
    let mut targets = vec![(0u32, 0i64); head[n] as usize];
    let mut cursor: Vec<u32> = head[..n].to_vec();
    let mut pending = vec![0u32; n];
    for (a, b) in pairs() {
        let (ra, rb) = (root[a as usize] as usize, root[b as usize]);
        targets[cursor[ra] as usize] = (rb, graph.separation(a, b));
        cursor[ra] += 1;
        pending[rb as usize] += 1;
    }
    let mut at = vec![0i64; n];
    let mut ready: Vec<u32> = (0..n as u32).filter(|&v| root[v as usize] == v && pending[v as usize] == 0).collect();
    let mut placed = 0usize;
    while let Some(b) = ready.pop() {
        placed += 1;
        for &(c, sep) in &targets[head[b as usize] as usize..head[b as usize + 1] as usize] {
            at[c as usize] = at[c as usize].max(at[b as usize] + sep);
            pending[c as usize] -= 1;
            if pending[c as usize] == 0 {
                ready.push(c);
            }
        }
    }
    let roots = (0..n).filter(|&v| root[v] == v as u32).count();
    if placed < roots {
        // Alignments never cross, so the blocks cannot form a cycle; should they, stacking each
        // column still draws without overlaps.
        return stacked(graph);
    }
    let sign = if upwards { 1 } else { -1 };
    (0..n).map(|v| sign * at[root[v] as usize]).collect()
}

/// Each column stacked from the top, with no alignment.
fn stacked(graph: &Proper) -> Vec<i64> {
    let mut at = vec![0i64; graph.layer.len()];
    for l in 0..graph.layer_count() {
        for w in graph.column(l).windows(2) {
            at[w[1] as usize] = at[w[0] as usize] + graph.separation(w[0], w[1]);
        }
    }
    at
}

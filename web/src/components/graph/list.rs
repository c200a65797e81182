//! The graph as a list: every task and external table, filtered by the graph's search box, with
//! its state, folder and number of upstream and downstream nodes. Only the rows in view are in
//! the page (a fixed row height and a spacer), so it scrolls through 100,000 tasks as through 10;
//! a row opens its task in the graph.

use std::sync::Arc;

use leptos::prelude::*;

use super::Graph;
use super::paint::NodeStyle;
use crate::components::state::color;

const ROW_PX: f64 = 28.0;
/// Rows drawn above and below the visible ones.
const OVERSCAN: usize = 8;

#[component]
pub fn GraphList(
    graph: Signal<Option<Arc<Graph>>>,
    style: Memo<Arc<NodeStyle>>,
    search: RwSignal<String>,
    on_pick: Callback<u32>,
) -> impl IntoView {
    let scroll = RwSignal::new(0.0f64);
    let height = RwSignal::new(600.0f64);
    let rows = Memo::new(move |_| {
        let needle = search.get().to_lowercase();
        graph.with(|g| match g {
            Some(g) => (0..g.ids.len() as u32)
                .filter(|&i| needle.is_empty() || g.ids[i as usize].to_lowercase().contains(&needle))
                .collect::<Vec<u32>>(),
            None => Vec::new(),
        })
    });
    let window = move || {
        let first = (scroll.get() / ROW_PX) as usize;
        let count = (height.get() / ROW_PX) as usize + 1;
        let start = first.saturating_sub(OVERSCAN);
        rows.with(|r| {
            let end = (first + count + OVERSCAN).min(r.len());
            r.get(start.min(end)..end).map(|s| s.iter().enumerate().map(|(k, &n)| (start + k, n)).collect::<Vec<_>>())
        })
        .unwrap_or_default()
    };
    let row = move |(position, node): (usize, u32)| {
        let (id, external, folder, ups, downs) = graph.with_untracked(|g| {
            g.as_ref().map(|g| {
                let i = node as usize;
                (
                    g.ids[i].clone(),
                    g.external[i],
                    g.group[i].clone().unwrap_or_default(),
                    g.up[i].len(),
                    g.down[i].len(),
                )
            })
        })?;
        let state = move || style.with(|s| s.state.get(node as usize).copied().unwrap_or_default());
        let task = id.clone();
        Some(view! {
            <div class="graph-list-row" data-task=task style=format!("top: {}px", position as f64 * ROW_PX)
                on:click=move |_| on_pick.run(node)>
                <span class="mono id">{id}</span>
                <span class="state" data-state=state style=move || format!("--c: {}", color(state()))>
                    {move || if external { "external table" } else if state().is_empty() { "no state" } else { state() }}
                </span>
                <span class="muted">{folder}</span>
                <span class="muted">{format!("{ups} up · {downs} down")}</span>
            </div>
        })
    };
    view! {
        <div class="graph-list" data-testid="graph-list"
            on:scroll=move |ev| {
                let el = event_target::<web_sys::HtmlElement>(&ev);
                scroll.set(f64::from(el.scroll_top()));
                height.set(f64::from(el.client_height()));
            }>
            <div class="muted graph-list-count">{move || format!("{} nodes", rows.with(Vec::len))}</div>
            <div style=move || format!("position: relative; height: {}px", rows.with(Vec::len) as f64 * ROW_PX)>
                <For each=window key=|&(position, node)| (position, node) children=row/>
            </div>
        </div>
    }
}

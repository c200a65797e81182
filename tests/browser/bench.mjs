// The web app's benchmark, in Debian's headless Chromium (`node tests/browser/bench.mjs`, after
// `cargo build --release --bin updraft`): the bundle's compressed size, the DAG list's time to
// interactive with 1,000 DAGs, and the graph view's first frame for the 1,000-task seed DAG.
// Each figure is the median of several page loads with a warm cache; times are from the start
// of navigation to the app's performance marks (`dags-interactive`, `graph-frame`).

import { join } from "node:path";
import { Server, launchChromium, signIn, until, seedDir, repo } from "./harness.mjs";

const RUNS = Number(process.env.RUNS || 7);
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

process.env.UPDRAFT_BIN ||= join(process.env.CARGO_TARGET_DIR || join(repo, "target"), "release", "updraft");
const files = {};
for (let i = 0; i < 1000; i++) {
  const id = `dag_${String(i).padStart(4, "0")}`;
  files[`${id}.yaml`] = `dag: ${id}\nschedule: "${i % 60} * * * *"\nstart: 2026-01-01\ntags: [t${i % 7}]\nowner: team${i % 5}\ndefaults: {operator: noop}\ntasks:\n  - {id: a}\n  - {id: b, upstream: [a]}\n`;
}
const server = await Server.start({ dags: { folders: { seed: seedDir }, files } });
await server.waitForDag("seed_1000", 120_000);
await until("1,001 DAGs", async () => (await server.api("/api/updraft/dags")).body.total_entries === 1001, 120_000, 500);
// `standalone` runs every DAG once on its first start: measure once those runs are over.
await until("the first runs to end", async () => (await server.api("/api/updraft/dags")).body.dags.every(
  (d) => d.last_run && !["queued", "running"].includes(d.last_run.state)), 600_000, 1000);
const browser = await launchChromium();
try {
  const page = await (await browser.newContext({ viewport: { width: 1280, height: 800 } })).newPage();
  const sizes = {};
  page.on("response", async (r) => {
    const url = r.url();
    if (url.includes("/assets/")) {
      const body = await r.body().catch(() => null);
      const encoded = Number((await r.allHeaders())["content-length"] || 0);
      sizes[url.split(".").pop()] = { transferred: encoded, decoded: body ? body.length : 0 };
    }
  });
  await signIn(page, server.base, "admin", server.adminPassword);
  const list = [];
  for (let i = 0; i < RUNS; i++) {
    await page.goto(`${server.base}/dags`, { waitUntil: "commit" });
    const t = await until("the list", () =>
      page.evaluate(() => performance.getEntriesByName("dags-interactive")[0]?.startTime), 30_000, 20);
    list.push(t);
  }
  const rows = await page.locator("table.list tbody tr").count();
  const graph = [];
  for (let i = 0; i < RUNS; i++) {
    await page.goto(`${server.base}/dags/seed_1000?tab=graph`, { waitUntil: "commit" });
    const t = await until("the graph", () =>
      page.evaluate(() => performance.getEntriesByName("graph-frame")[0]?.startTime), 30_000, 20);
    graph.push(t);
  }
  const frames = await page.evaluate(() => window.__updraftFrames.slice());
  console.log(JSON.stringify({
    bundle: sizes,
    bundle_compressed_total: Object.values(sizes).reduce((a, s) => a + s.transferred, 0),
    dag_list_rows_drawn_first: rows,
    dag_list_interactive_ms: { median: median(list), all: list.map(Math.round) },
    graph_1000_first_frame_ms: { median: median(graph), all: graph.map(Math.round) },
    graph_frame_draw_ms_median: median(frames),
  }, null, 2));
} finally {
  await browser.close();
  server.stop();
}

// The web app's benchmark, in Debian's headless Chromium (`node tests/browser/bench.mjs`, after
// `cargo build --release --bin updraft`; `UPDRAFT_BIN` picks another binary, `BENCH=list` or
// `BENCH=graph` one half, `SIZES=1000,10000` other graph sizes).
//
// - list: the bundle's compressed size and the DAG list's time to interactive with 1,001 DAGs;
// - graph: for seed-style DAGs of 1,000, 10,000 and 100,000 tasks (../shared/workloads/
//   make_seed.py): the graph JSON's size as served (gzip), the time from navigation to the first
//   frame of the graph view with a warm cache, the mean frame time while a script zooms and
//   pans for 5 s, and the DAG model's layout timed in the page's wasm.
//
// Each time is the median of several page loads; times are from the start of navigation to the
// app's performance marks (`dags-interactive`, `graph-frame`).

import { request } from "node:http";
import { join, resolve, dirname } from "node:path";
import { fileURLToPath } from "node:url";

// The release binary unless told otherwise; set before the harness is loaded, as it reads it.
const repo = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
process.env.UPDRAFT_BIN ||= join(process.env.CARGO_TARGET_DIR || join(repo, "target"), "release", "updraft");
const { Server, launchChromium, makeSeed, signIn, until, seedDir, binary } = await import("./harness.mjs");
console.error(`server: ${binary}`);

const RUNS = Number(process.env.RUNS || 7);
const WHICH = process.env.BENCH || "all";
const SIZES = (process.env.SIZES || "1000,10000,100000").split(",").map(Number);
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const round = (x) => Math.round(x * 10) / 10;

async function newPage(browser, server) {
  const page = await (await browser.newContext({ viewport: { width: 1280, height: 800 } })).newPage();
  await signIn(page, server.base, "admin", server.adminPassword);
  return page;
}

async function listBench(browser) {
  const files = {};
  for (let i = 0; i < 1000; i++) {
    const id = `dag_${String(i).padStart(4, "0")}`;
    files[`${id}.yaml`] = `dag: ${id}\nschedule: "${i % 60} * * * *"\nstart: 2026-01-01\ntags: [t${i % 7}]\nowner: team${i % 5}\ndefaults: {operator: noop}\ntasks:\n  - {id: a}\n  - {id: b, upstream: [a]}\n`;
  }
  const server = await Server.start({ dags: { folders: { seed: seedDir }, files } });
  try {
    await server.waitForDag("seed_1000", 120_000);
    await until("1,001 DAGs", async () => (await server.api("/api/updraft/dags")).body.total_entries === 1001, 120_000, 500);
    // `standalone` runs every DAG once on its first start: measure once those runs are over.
    await until("the first runs to end", async () => (await server.api("/api/updraft/dags")).body.dags.every(
      (d) => d.last_run && !["queued", "running"].includes(d.last_run.state)), 600_000, 1000);
    const page = await newPage(browser, server);
    const sizes = {};
    page.on("response", async (r) => {
      const url = r.url();
      if (url.includes("/assets/")) {
        const body = await r.body().catch(() => null);
        const encoded = Number((await r.allHeaders())["content-length"] || 0);
        sizes[url.split(".").pop()] = { transferred: encoded, decoded: body ? body.length : 0 };
      }
    });
    await page.reload();
    await page.getByTestId("who").waitFor();
    const list = [];
    for (let i = 0; i < RUNS; i++) {
      await page.goto(`${server.base}/dags`, { waitUntil: "commit" });
      list.push(await until("the list", () =>
        page.evaluate(() => performance.getEntriesByName("dags-interactive")[0]?.startTime), 30_000, 20));
    }
    return {
      bundle: sizes,
      bundle_compressed_total: Object.values(sizes).reduce((a, s) => a + s.transferred, 0),
      dag_list_rows_drawn_first: await page.locator("table.list tbody tr").count(),
      dag_list_interactive_ms: { median: round(median(list)), all: list.map(Math.round) },
    };
  } finally {
    server.stop();
  }
}

/** The bytes of a response as sent, with `accept-encoding: gzip`. */
function servedSize(server, path) {
  return new Promise((ok, fail) => {
    const req = request(`${server.base}${path}`, { headers: { authorization: `Bearer ${server.token}`, "accept-encoding": "gzip" } }, (res) => {
      let n = 0;
      res.on("data", (chunk) => (n += chunk.length));
      res.on("end", () => ok({ bytes: n, encoding: res.headers["content-encoding"] || "identity" }));
    });
    req.on("error", fail);
    req.end();
  });
}

/** A one-file DAG with the same graph as the graph JSON (noop tasks, the same tables). */
function oneFileDag(graph) {
  const deps = new Map();
  for (const e of graph.edges) {
    if (!deps.has(e.target)) deps.set(e.target, []);
    deps.get(e.target).push(e.source);
  }
  const lines = ["dag: layout_bench", "defaults: {operator: noop}", "tasks:"];
  for (const n of graph.nodes) {
    if (n.kind !== "task") continue;
    const d = deps.get(n.id);
    lines.push(d ? `  - {id: ${n.id}, depends_on: [${d.join(", ")}]}` : `  - {id: ${n.id}}`);
  }
  return lines.join("\n") + "\n";
}

/** Zooms in and out around the centre and pans, one event per animation frame, for `ms`. */
const interact = (ms) => new Promise((done) => {
  const canvas = document.querySelector('[data-testid="graph-canvas"]');
  const r = canvas.getBoundingClientRect();
  const at = { clientX: r.x + r.width / 2, clientY: r.y + r.height / 2, bubbles: true, cancelable: true };
  window.__updraftFrames = [];
  const start = performance.now();
  let frames = 0;
  const step = (now) => {
    const t = now - start;
    if (t >= ms) return done({ frames, ms: t, draws: window.__updraftFrames.slice() });
    frames++;
    const zoomIn = Math.floor(t / 1250) % 2 === 0;
    canvas.dispatchEvent(new WheelEvent("wheel", { ...at, deltaY: zoomIn ? -40 : 40 }));
    canvas.dispatchEvent(new WheelEvent("wheel", { ...at, deltaX: 12, deltaY: 6 }));
    requestAnimationFrame(step);
  };
  requestAnimationFrame(step);
});

async function graphBench(browser) {
  const folders = {};
  for (const n of SIZES) folders[`seed-${n}`] = n === 1000 ? seedDir : makeSeed(n);
  const server = await Server.start({ dags: { folders } });
  const out = {};
  try {
    for (const n of SIZES) await server.waitForDag(`seed_${n}`, 1_200_000);
    await until("the first runs to end", async () => (await server.api("/api/updraft/dags")).body.dags.every(
      (d) => d.last_run && !["queued", "running"].includes(d.last_run.state)), 3_600_000, 2000);
    const page = await newPage(browser, server);
    for (const n of SIZES) {
      const dag = `seed_${n}`;
      const path = `/api/updraft/dags/${dag}/graph`;
      await server.api(path); // lays it out once: the cache is warm from here on
      const size = await servedSize(server, path);
      const first = [];
      for (let i = 0; i < RUNS; i++) {
        await page.goto(`${server.base}/dags/${dag}?tab=graph`, { waitUntil: "commit" });
        first.push(await until("the graph", () =>
          page.evaluate(() => performance.getEntriesByName("graph-frame")[0]?.startTime), 120_000, 20));
      }
      const run = await page.evaluate(interact, 5000);
      const graph = (await server.api(path)).body;
      const yaml = oneFileDag(graph);
      const layout = [];
      for (let i = 0; i < 5; i++) {
        const r = await page.evaluate((yaml) => window.__updraftLayout(yaml), yaml);
        if (r.error) throw new Error(`layout in wasm: ${r.error}`);
        layout.push(r.ms);
      }
      out[dag] = {
        tasks: graph.task_count,
        nodes_and_edges: [graph.nodes.length, graph.edges.length],
        graph_json_served: size,
        first_frame_ms: { median: round(median(first)), all: first.map(Math.round) },
        interaction_5s: {
          frames: run.frames,
          mean_frame_ms: round(run.ms / run.frames),
          draw_ms_mean: round(run.draws.reduce((a, b) => a + b, 0) / Math.max(1, run.draws.length)),
          draw_ms_median: round(median(run.draws)),
        },
        layout_wasm_ms: { median: round(median(layout)), all: layout.map(round) },
      };
      console.error(JSON.stringify({ [dag]: out[dag] }));
    }
  } finally {
    server.stop();
  }
  return out;
}

const browser = await launchChromium();
try {
  const result = {};
  if (WHICH === "all" || WHICH === "list") result.list = await listBench(browser);
  if (WHICH === "all" || WHICH === "graph") result.graph = await graphBench(browser);
  console.log(JSON.stringify(result, null, 2));
} finally {
  await browser.close();
}

// The graph view at 10,000 tasks, in Debian's headless Chromium: open the seed-style workload
// made by ../shared/workloads/make_seed.py, search a task and land on it, highlight its lineage
// (to a chosen depth, then only that lineage), collapse its folder into a card and expand it
// again with the card exactly where the task was and the rest unmoved, and see a state change
// recolour the task on the canvas. What is drawn is read from the canvas' pixels and from
// `window.__updraftGraph` (which box shows a task, what is drawn at a point).

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { Server, launchChromium, makeSeed, screenshot, signIn, until, outputDir } from "./harness.mjs";

const DAG = "seed_10000";
const TASK = "t05123";

let server;
let browser;
let graphJson;

before(async () => {
  server = await Server.start({ dags: { folders: { big: makeSeed(10_000) } } });
  await server.waitForDag(DAG, 300_000);
  // `standalone` runs every DAG once on its first start; with no source tables the first layer
  // fails and the rest is upstream_failed. Let that run end before the test changes a state.
  await until("the first run to end", async () => {
    const runs = (await server.api(`/api/v2/dags/${DAG}/dagRuns`)).body.dag_runs;
    return runs.length > 0 && runs.every((r) => ["success", "failed"].includes(r.state));
  }, 600_000, 1000);
  graphJson = (await server.api(`/api/updraft/dags/${DAG}/graph`)).body;
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  server?.stop();
  if (server) writeFileSync(join(outputDir, "server-10k.log"), server.log.join(""));
});

/** The colour of the canvas at a CSS-pixel point, as [r, g, b]. */
const pixel = (page, x, y) =>
  page.evaluate(([x, y]) => {
    const canvas = document.querySelector('[data-testid="graph-canvas"]');
    const d = window.devicePixelRatio || 1;
    return Array.from(canvas.getContext("2d").getImageData(Math.round(x * d), Math.round(y * d), 1, 1).data).slice(0, 3);
  }, [x, y]);
const hex = (c) => [1, 3, 5].map((i) => parseInt(c.slice(i, i + 2), 16));
const near = (a, b) => a.every((v, i) => Math.abs(v - b[i]) <= 6);
const locate = (page, id) => page.evaluate((id) => window.__updraftGraph.locate(id), id);
const at = (page, x, y) => page.evaluate(([x, y]) => window.__updraftGraph.at(x, y), [x, y]);
const centre = ([x, y, w, h]) => [x + w / 2, y + h / 2];

test("the 10,000-task graph: search, lineage, collapse in place, live state", async (t) => {
  const page = await (await browser.newContext({ viewport: { width: 1400, height: 900 } })).newPage();
  page.on("pageerror", (e) => console.error("page error:", e.message));
  await signIn(page, server.base, "admin", server.adminPassword, `/dags/${DAG}?tab=graph`);
  await page.getByTestId("graph-canvas").waitFor();
  await until("the graph's first frame", () => page.evaluate(() => (window.__updraftFrames || []).length > 0), 60_000);
  await screenshot(page, "graph-10k-zoomed-out");

  const ups = graphJson.edges.filter((e) => e.target === TASK).map((e) => e.source);
  const downs = graphJson.edges.filter((e) => e.source === TASK).map((e) => e.target);
  const folder = graphJson.nodes.find((n) => n.id === TASK).group;
  assert.equal(folder, "tasks/l10");

  await t.test("search a task and land on it", async () => {
    await page.getByTestId("graph-search").fill(TASK);
    await page.getByTestId("graph-search").press("Enter");
    await page.getByTestId("graph-selection").filter({ hasText: TASK }).waitFor();
    const canvas = await page.getByTestId("graph-canvas").boundingBox();
    const box = await locate(page, TASK);
    const [cx, cy] = centre(box);
    assert.ok(Math.abs(cx - canvas.width / 2) < 2 && Math.abs(cy - canvas.height / 2) < 2, `centred: ${box}`);
    assert.ok(box[3] >= 30, `zoomed in far enough to read: ${box}`);
    assert.equal(await at(page, cx, cy), `task:${TASK}`);
    await screenshot(page, "graph-10k-zoomed-in");
  });

  await t.test("highlight its lineage, to a depth, then only that lineage", async () => {
    const side = page.getByTestId("graph-selection");
    assert.match(await side.innerText(), new RegExp(`${ups.length} upstream, ${downs.length} downstream`));
    const all = Number((await side.innerText()).match(/lineage (\d+) nodes/)[1]);
    assert.ok(all > 1 + ups.length + downs.length, `the whole lineage (${all}) reaches past the neighbours`);
    await page.getByTestId("lineage-depth").selectOption("1");
    await until("the depth-1 lineage", async () =>
      Number((await side.innerText()).match(/lineage (\d+) nodes/)[1]) === 1 + new Set([...ups, ...downs]).size);
    // An upstream task is lit; a task of the same folder outside the lineage is faded.
    const up = await locate(page, ups[0]);
    const litColour = await pixel(page, up[0] + up[2] - 3, up[1] + 3);
    const other = graphJson.nodes.find((n) => n.group === folder && n.id !== TASK && !ups.includes(n.id) && !downs.includes(n.id));
    await page.getByTestId("lineage-only").check();
    // Only the lineage is drawn, packed and fitted: its tasks are readable, the rest is gone.
    await until("the lineage to be drawn on its own", async () => {
      const box = await locate(page, ups[0]);
      return box[3] >= 20 && (await at(page, ...centre(box))) === `task:${ups[0]}`;
    });
    for (const id of [TASK, ...ups, ...downs]) {
      const box = await locate(page, id);
      assert.equal(await at(page, ...centre(box)), `task:${id}`, `${id} is drawn`);
      assert.ok(box[3] >= 20, `${id} is readable: ${box}`);
    }
    assert.notEqual(await at(page, ...centre(await locate(page, other.id))), `task:${other.id}`, "a task outside the lineage is not drawn");
    await screenshot(page, "graph-10k-lineage-only");
    await page.getByTestId("lineage-only").uncheck();
    await page.getByTestId("lineage-depth").selectOption("all");
    assert.ok(litColour.some((v) => v < 240), `the upstream task is drawn in colour: ${litColour}`);
  });

  await t.test("collapse its folder into a card where it was, then expand it", async () => {
    // Put the task back in the middle, then remember where things are.
    await page.getByTestId("graph-search").fill(TASK);
    await page.getByTestId("graph-search").press("Enter");
    await page.getByTestId("graph-selection").filter({ hasText: TASK }).waitFor();
    const before = await locate(page, TASK);
    const neighbour = await locate(page, ups[0]);
    await page.getByTestId("group-collapse").click();
    await page.getByTestId("group-name").filter({ hasText: folder }).waitFor();
    const counts = await page.getByTestId("group-counts").innerText();
    assert.match(counts, /\d+/, "the card counts its members by state");
    assert.deepEqual(await locate(page, TASK), before, "the card is where the clicked task was");
    assert.deepEqual(await locate(page, ups[0]), neighbour, "the rest of the picture did not move");
    assert.equal(await at(page, ...centre(before)), `group:${folder}`);
    // A sibling of the folder is folded into the card: drawn nowhere else.
    const sibling = graphJson.nodes.find((n) => n.group === folder && n.id !== TASK);
    assert.deepEqual(await locate(page, sibling.id), before);
    await screenshot(page, "graph-10k-collapsed");
    await page.getByTestId("group-expand").click();
    await until("the task to be back", async () => (await at(page, ...centre(before))) === `task:${TASK}`);
    assert.deepEqual(await locate(page, TASK), before, "expanded in place");
    assert.deepEqual(await locate(page, ups[0]), neighbour);
    // Every folder at once, then back: nothing moves either.
    await page.getByTestId("collapse-all").click();
    assert.equal(await at(page, ...centre(before)), `group:${folder}`, "the selected task anchors its folder's card");
    await page.getByTestId("expand-all").click();
    assert.deepEqual(await locate(page, ups[0]), neighbour);
  });

  await t.test("a state change recolours the task, without a reload", async () => {
    await page.evaluate(() => (window.__noReload = true));
    await page.getByTestId("graph-search").fill(TASK);
    await page.getByTestId("graph-search").press("Enter");
    const side = page.getByTestId("graph-selection").filter({ hasText: TASK });
    await side.waitFor();
    const state = await page.getByTestId("selected-state").innerText();
    assert.equal(state, "upstream_failed");
    const box = await locate(page, TASK);
    // A corner inside the box, away from the label.
    const [px, py] = [box[0] + box[2] - 3, box[1] + 3];
    assert.ok(near(await pixel(page, px, py), hex("#f97316")), "drawn orange (upstream_failed)");
    const run = (await server.api(`/api/v2/dags/${DAG}/dagRuns`)).body.dag_runs[0].dag_run_id;
    const marked = await server.api(`/api/v2/dags/${DAG}/dagRuns/${encodeURIComponent(run)}/taskInstances/${TASK}`, {
      method: "PATCH",
      body: { new_state: "success" },
    });
    assert.equal(marked.status, 200, JSON.stringify(marked.body));
    await until("the task to turn green on the canvas", async () => near(await pixel(page, px, py), hex("#16a34a")), 30_000, 250);
    assert.equal(await page.getByTestId("selected-state").innerText(), "success");
    assert.deepEqual(await locate(page, TASK), box, "recoloured in place, no new layout");
    assert.equal(await page.evaluate(() => window.__noReload), true, "the page was never reloaded");
  });

  await t.test("the list view lists the tasks and opens one in the graph", async () => {
    await page.getByTestId("graph-search").fill("t0999");
    await page.getByTestId("graph-list-toggle").click();
    const list = page.getByTestId("graph-list");
    await list.waitFor();
    assert.match(await list.innerText(), /10 nodes/);
    await list.locator('[data-task="t09990"]').click();
    await page.getByTestId("graph-selection").filter({ hasText: "t09990" }).waitFor();
    const box = await locate(page, "t09990");
    assert.equal(await at(page, ...centre(box)), "task:t09990");
  });
});

// The web app, as a new user meets it, in Debian's headless Chromium: sign in, open the
// 1,000-task seed DAG, switch grid and graph, search a task, trigger a run and watch it turn
// green without a reload, open a task log (and follow a running one live), write a new DAG in
// the editor, see the inline error for a cycle, fix it, save it and find it in the list; a
// viewer sees no trigger button. Screenshots of each main page go to the test output folder.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { Server, launchChromium, screenshot, signIn, until, seedDir, outputDir } from "./harness.mjs";

const QUICK = `dag: browser_quick
schedule: null
start: 2026-01-01
tags: [browser]
tasks:
  - id: slow
    operator: sleep
    params: {seconds: 4}
  - id: after
    operator: noop
    upstream: [slow]
`;

let server;
let browser;

before(async () => {
  // (`standalone` runs every DAG once on its first start, before the tables below exist: the
  // seed's first run fails, and the run the test triggers is the second.)
  server = await Server.start({ dags: { folders: { seed: seedDir }, files: { "browser_quick.yaml": QUICK } } });
  await server.waitForDag("seed_1000");
  await server.waitForDag("browser_quick");
  // The seed's SQL reads 100 source tables: create them in the demo warehouse.
  const graph = (await server.api("/api/updraft/dags/seed_1000/graph")).body;
  const ddl = graph.external_tables.map((t) => `CREATE TABLE IF NOT EXISTS ${t} (ds TEXT);`).join("\n");
  execFileSync("python3", ["-c", "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.executescript(sys.argv[2]); c.commit()", join(server.dataDir, "warehouse.db"), ddl]);
  for (const dag of ["seed_1000", "browser_quick"]) {
    await server.api(`/api/v2/dags/${dag}`, { method: "PATCH", body: { is_paused: false } });
  }
  server.createUser("vera", "viewer-password-1", "viewer");
  browser = await launchChromium();
  console.log(`screenshots: ${join(outputDir, "screenshots")}`);
});

after(async () => {
  await browser?.close();
  server?.stop();
  if (server) writeFileSync(join(outputDir, "server.log"), server.log.join(""));
});

test("a new user signs in, runs the seed DAG, reads a log and writes a DAG", async (t) => {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));

  await t.test("sign in", async () => {
    await signIn(page, server.base, "admin", server.adminPassword);
    await page.locator('tr[data-dag="seed_1000"]').waitFor();
    assert.match(await page.getByTestId("who").innerText(), /admin/);
    await screenshot(page, "dag-list");
  });

  await t.test("a reload on a deep URL keeps the page", async () => {
    await page.goto(`${server.base}/dags/browser_quick?tab=grid`);
    await page.getByTestId("dag-title").waitFor();
    assert.equal(await page.getByTestId("dag-title").innerText(), "browser_quick");
  });

  await t.test("open the seed DAG and switch between grid and graph", async () => {
    await page.goto(`${server.base}/dags`);
    await page.getByTestId("dag-search").fill("seed");
    await page.locator('tr[data-dag="seed_1000"] a', { hasText: "seed_1000" }).click();
    await page.getByTestId("dag-title").waitFor();
    await page.getByTestId("grid").waitFor();
    assert.equal(await page.locator("table.grid tbody tr").count(), 1000, "the grid has a row per task");
    await page.getByTestId("tab-graph").click();
    await page.getByTestId("graph-canvas").waitFor();
    await until("the graph's first frame", () => page.evaluate(() => (window.__updraftFrames || []).length > 0));
    await screenshot(page, "graph");
    await page.getByTestId("tab-grid").click();
    await page.getByTestId("grid").waitFor();
    await page.getByTestId("tab-graph").click();
    await page.getByTestId("graph-run").filter({ hasText: "States of run" }).waitFor();
  });

  await t.test("search a task in the graph and highlight its lineage", async () => {
    await page.getByTestId("graph-search").fill("t00704");
    await page.getByTestId("graph-search").press("Enter");
    const side = page.getByTestId("graph-selection");
    await side.waitFor();
    const text = await side.innerText();
    assert.match(text, /t00704/);
    assert.match(text, /1 upstream/);
    assert.match(text, /lineage \d+ nodes/);
    await screenshot(page, "graph-search");
  });

  await t.test("trigger a run and watch it turn green live", async () => {
    await page.evaluate(() => (window.__noReload = true));
    await page.getByTestId("trigger").click();
    await page.getByTestId("conf").fill('{"reason": "browser test"}');
    await page.getByTestId("trigger-confirm").click();
    await page.getByTestId("toast").filter({ hasText: "Triggered seed_1000" }).waitFor();
    // The graph follows the new run: the selected task's state changes on screen.
    await until("the searched task to turn success", async () => (await page.getByTestId("selected-state").innerText()) === "success", 180_000, 500);
    await screenshot(page, "graph-success");
    await page.getByTestId("tab-grid").click();
    const bar = page.locator("table.grid .runbar").last();
    await until("the run to turn success in the grid", async () => (await bar.getAttribute("data-state")) === "success", 60_000, 500);
    assert.equal(await page.evaluate(() => window.__noReload), true, "the page was never reloaded");
    await screenshot(page, "grid");
  });

  await t.test("open a task log", async () => {
    await page.locator('table.grid td[data-task="t00704"]').last().click();
    await page.getByTestId("task-title").waitFor();
    await until("the log", async () => {
      const log = await page.getByTestId("log").innerText();
      return log.length > 0 && !log.includes("empty log") && !log.includes("loading");
    });
    assert.match(await page.getByTestId("task-state").innerText(), /success/);
    await screenshot(page, "task-log");
  });

  await t.test("follow a running task's log live", async () => {
    const run = await server.api("/api/v2/dags/browser_quick/dagRuns", { method: "POST", body: { logical_date: null } });
    assert.equal(run.status, 200, JSON.stringify(run.body));
    const runId = run.body.dag_run_id;
    const ti = `/api/v2/dags/browser_quick/dagRuns/${encodeURIComponent(runId)}/taskInstances/slow`;
    await until("the sleep task to start", async () => (await server.api(ti)).body?.state === "running", 60_000);
    await page.goto(`${server.base}/dags/browser_quick/runs/${encodeURIComponent(runId)}/tasks/slow`);
    await until("the live tail", async () => (await page.getByTestId("log-state").innerText()).includes("live"));
    // The sleep operator logs each second: lines appear while the try still runs.
    await until("a line written while running", async () => (await page.getByTestId("log").innerText()).includes("slept 1.0 of 4 s"), 20_000);
    assert.match(await page.getByTestId("task-state").innerText(), /running/, "the line came before the end");
    await until("the try to finish on screen", async () => /success/.test(await page.getByTestId("task-state").innerText()), 60_000);
    await until("the end of the log", async () => !(await page.getByTestId("log-state").innerText()).includes("live"), 20_000);
    const log = await page.getByTestId("log").innerText();
    assert.match(log, /slept 4\.0 of 4 s/);
    assert.match(log, /success/);
    await screenshot(page, "task-live-log");
  });

  await t.test("write a new DAG: a cycle is shown at its line, then fixed and saved", async () => {
    await page.goto(`${server.base}/dags`);
    await page.getByRole("link", { name: "New DAG" }).click();
    const editor = page.getByTestId("editor");
    await editor.waitFor();
    await until("the template to validate", async () => (await page.getByTestId("check-status").innerText()).includes("✓ valid"));
    const cyclic = `dag: made_in_browser
schedule: null
start: 2026-01-01
tags: [browser]
defaults:
  operator: noop
tasks:
  - id: extract
    upstream: [load]
  - id: transform
    upstream: [extract]
  - id: load
    upstream: [transform]
`;
    await editor.fill(cyclic);
    await until("the cycle error", async () => (await page.getByTestId("check-status").innerText()).includes("error"));
    const problems = await page.getByTestId("problems").innerText();
    assert.match(problems, /cycle/i);
    const marked = await page.locator(".editor pre .line.err").count();
    assert.ok(marked >= 1, "the erroneous line is marked in the editor");
    assert.match(await page.locator(".editor pre .line.err .inline-msg").first().innerText(), /cycle/i);
    assert.ok(await page.locator(".editor .gutter div.err").count() >= 1, "the gutter marks the line");
    assert.equal(await page.getByTestId("save").isDisabled(), true, "a DAG with errors cannot be saved");
    await screenshot(page, "editor");
    await editor.fill(cyclic.replace("    upstream: [load]\n", ""));
    await until("the fixed DAG to validate", async () => (await page.getByTestId("check-status").innerText()).includes("✓ valid"));
    assert.equal(await page.getByTestId("preview").getAttribute("data-tasks"), "3", "the preview draws the three tasks");
    assert.match(await page.getByTestId("hints").innerText(), /noop/);
    await page.getByTestId("save").click();
    await page.getByTestId("toast").filter({ hasText: "Created made_in_browser" }).waitFor();
    await page.locator('tr[data-dag="made_in_browser"]').waitFor({ timeout: 30_000 });
  });

  await t.test("import errors and plugins pages", async () => {
    await page.getByRole("link", { name: "Import errors" }).click();
    await page.getByRole("heading", { name: "Import errors" }).waitFor();
    await page.getByTestId("no-import-errors").waitFor();
    await screenshot(page, "import-errors");
    await page.getByRole("link", { name: "Plugins" }).click();
    await page.locator('tr[data-operator="sql"]').waitFor();
    assert.ok(await page.locator('tr[data-operator="kubernetes_pod"]').count() === 1);
    await screenshot(page, "plugins");
  });

  assert.deepEqual(errors, [], "no uncaught errors in the page");
  await context.close();
});

test("a viewer sees no trigger button and no editor", async () => {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  await signIn(page, server.base, "vera", "viewer-password-1");
  await page.locator('tr[data-dag="seed_1000"]').waitFor();
  assert.equal(await page.getByTestId("trigger").count(), 0, "no trigger button in the list");
  assert.equal(await page.getByRole("link", { name: "New DAG" }).count(), 0, "no editor link");
  await page.goto(`${server.base}/dags/seed_1000`);
  await page.getByTestId("dag-title").waitFor();
  assert.equal(await page.getByTestId("trigger").count(), 0, "no trigger button on the DAG page");
  await screenshot(page, "viewer-dag");
  await context.close();
});

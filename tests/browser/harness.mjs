// The browser tests' harness: an `updraft standalone` server on a free port over a temporary
// data folder and DAGs folder, the users the tests sign in as, and Debian's Chromium
// (/usr/bin/chromium) driven headless by playwright-core, which downloads no browser.

import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync, mkdirSync, cpSync, writeFileSync, existsSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

export const repo = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const targetDir = process.env.CARGO_TARGET_DIR ? resolve(process.env.CARGO_TARGET_DIR) : join(repo, "target");
export const binary = process.env.UPDRAFT_BIN || join(targetDir, "debug", "updraft");
/** Where the screenshots and other outputs go. */
export const outputDir = process.env.UPDRAFT_TEST_OUTPUT || join(targetDir, "browser-tests");
export const seedDir = resolve(repo, "../shared/workloads/seed-1k");

/** A seed-style DAG folder of `tasks` tasks (`seed_<tasks>`), made by the shared generator. */
export function makeSeed(tasks) {
  const out = join(mkdtempSync(join(tmpdir(), "updraft-seed-")), `seed-${tasks}`);
  execFileSync("python3", [resolve(repo, "../shared/workloads/make_seed.py"), "--tasks", String(tasks), "--out", out], { stdio: "pipe" });
  return out;
}

export function freePort() {
  return new Promise((ok, fail) => {
    const server = createServer();
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => ok(port));
    });
    server.on("error", fail);
  });
}

export const sleep = (ms) => new Promise((ok) => setTimeout(ok, ms));

/** Calls `fn` until it returns a truthy value; fails with `what` after `ms`. */
export async function until(what, fn, ms = 30_000, every = 200) {
  const deadline = Date.now() + ms;
  let last;
  while (Date.now() < deadline) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    await sleep(every);
  }
  throw new Error(`timed out waiting for ${what} (last: ${last})`);
}

/** A running `updraft standalone` with its own folders. */
export class Server {
  static async start({ dags }) {
    if (!existsSync(binary)) {
      throw new Error(`${binary} is missing: run \`cargo build --bin updraft\` first (the README's test command does)`);
    }
    const root = mkdtempSync(join(tmpdir(), "updraft-browser-"));
    const dagsDir = join(root, "dags");
    mkdirSync(dagsDir);
    for (const [name, source] of Object.entries(dags.folders || {})) cpSync(source, join(dagsDir, name), { recursive: true });
    for (const [name, text] of Object.entries(dags.files || {})) writeFileSync(join(dagsDir, name), text);
    const port = await freePort();
    const server = new Server(root, dagsDir, port);
    server.adminPassword = "admin-password-for-tests";
    server.log = [];
    server.child = spawn(
      binary,
      ["standalone", "--dags", dagsDir, "--data-dir", join(root, "data"), "--port", String(port), "--parallelism", "8"],
      { env: { ...process.env, UPDRAFT_ADMIN_PASSWORD: server.adminPassword, RUST_LOG: "warn" }, stdio: ["ignore", "pipe", "pipe"] },
    );
    for (const stream of [server.child.stdout, server.child.stderr]) {
      stream.on("data", (chunk) => {
        server.log.push(chunk.toString());
        if (server.log.length > 400) server.log.shift();
      });
    }
    await until("the API server to answer", async () => (await fetch(`${server.base}/api/v2/monitor/health`)).ok, 60_000);
    server.token = await server.tokenFor("admin", server.adminPassword);
    return server;
  }

  constructor(root, dagsDir, port) {
    this.root = root;
    this.dagsDir = dagsDir;
    this.port = port;
    this.base = `http://127.0.0.1:${port}`;
  }

  get dataDir() {
    return join(this.root, "data");
  }

  async tokenFor(username, password) {
    const r = await fetch(`${this.base}/auth/token`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ username, password }),
    });
    if (!r.ok) throw new Error(`token for ${username}: ${r.status} ${await r.text()}`);
    return (await r.json()).access_token;
  }

  /** An API call as the admin. */
  async api(path, { method = "GET", body } = {}) {
    const r = await fetch(`${this.base}${path}`, {
      method,
      headers: { authorization: `Bearer ${this.token}`, "content-type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await r.text();
    return { status: r.status, body: text ? JSON.parse(text) : null };
  }

  /** Waits until the scheduler has parsed `dagId`. */
  async waitForDag(dagId, ms = 60_000) {
    await until(`DAG ${dagId} to be parsed`, async () => (await this.api(`/api/v2/dags/${dagId}`)).status === 200, ms);
  }

  createUser(username, password, role) {
    execFileSync(binary, ["users", "create", "--username", username, "--password", password, "--role", role, "--data-dir", this.dataDir], {
      stdio: "pipe",
    });
  }

  stop() {
    if (this.child && this.child.exitCode === null) this.child.kill("SIGTERM");
  }
}

/** Debian's Chromium, headless. */
export async function launchChromium() {
  // playwright gives every launch a new temporary profile (--user-data-dir) of its own.
  return chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--no-first-run",
    ],
  });
}

export async function screenshot(page, name) {
  mkdirSync(join(outputDir, "screenshots"), { recursive: true });
  const path = join(outputDir, "screenshots", `${name}.png`);
  await page.screenshot({ path });
  return path;
}

/** Signs in through the form the app shows on any URL. */
export async function signIn(page, base, username, password, path = "/dags") {
  await page.goto(`${base}${path}`);
  await page.getByLabel("Username").fill(username);
  await page.getByLabel("Password").fill(password);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByTestId("who").waitFor();
}

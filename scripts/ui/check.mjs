// Drives headless Chromium (the Debian package) with playwright-core against a devnet's /ui
// page; started by scripts/checks/ui.sh, which owns the devnet and the processes to kill.
//
//   node check.mjs --url URL --out DIR --regions eu,na,asia --stop asia --pids 12,34
//
// Checks, each a bounded wait that polls: every region and the head height render; the
// height advances without a reload (heads come over the WebSocket); a search by height and
// by block hash finds the block; after the --pids are killed (SIGKILL, so the region is
// missing, not gone) the --stop region shows missing; the page fits 375 px; no console
// error, page error or failed request. Screenshots go to DIR.
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { chromium } from "playwright-core";

const { values: opt } = parseArgs({
  options: {
    url: { type: "string" },
    out: { type: "string" },
    regions: { type: "string" },
    stop: { type: "string" },
    pids: { type: "string" },
    chromium: { type: "string", default: "/usr/bin/chromium" },
  },
});
for (const key of ["url", "out", "regions", "stop", "pids"]) {
  if (!opt[key]) {
    console.error(`missing --${key}`);
    process.exit(2);
  }
}
const regions = opt.regions.split(",");
const pids = opt.pids.split(",").map(Number);
mkdirSync(opt.out, { recursive: true });

let failures = 0;
const pass = (what) => console.log(`PASS ${what}`);
const fail = (what) => {
  failures += 1;
  console.log(`FAIL ${what}`);
};

// Polls `probe` (returns a truthy value when done) every 250 ms for up to `seconds`.
async function until(seconds, probe) {
  const deadline = Date.now() + seconds * 1000;
  for (;;) {
    const value = await probe().catch(() => null);
    if (value) return value;
    if (Date.now() > deadline) return null;
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

// Everything the browser reports as wrong, for both pages.
const problems = [];
function watch(page, name) {
  page.on("console", (msg) => {
    if (msg.type() === "error" || msg.type() === "warning") {
      problems.push(`${name} console ${msg.type()}: ${msg.text()}`);
    }
  });
  page.on("pageerror", (err) => problems.push(`${name} page error: ${err.message}`));
  page.on("requestfailed", (req) => {
    // a WebSocket or fetch cut by closing the page at the end is not the page's fault
    if (!page.isClosed()) problems.push(`${name} request failed: ${req.url()} ${req.failure()?.errorText}`);
  });
}

const headHeight = (page) =>
  page.$eval("#head-height", (n) => (/^\d+$/.test(n.textContent) ? Number(n.textContent) : null));
const regionState = (page, region) =>
  page.$eval(`#regions [data-region="${region}"]`, (n) => n.dataset.state);

const browser = await chromium.launch({
  executablePath: opt.chromium,
  headless: true,
  // root in CI: Chromium's sandbox needs user namespaces the container may not give
  args: ["--no-sandbox"],
});
try {
  const wide = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  watch(wide, "1400px");
  let navigations = 0;
  wide.on("framenavigated", (frame) => {
    if (frame === wide.mainFrame()) navigations += 1;
  });
  await wide.goto(opt.url);

  const shown = await until(60, async () => {
    for (const region of regions) {
      if ((await wide.$(`#regions [data-region="${region}"]`)) === null) return false;
    }
    return true;
  });
  if (shown) pass(`every region renders: ${regions.join(", ")}`);
  else fail(`regions ${regions.join(", ")} not all rendered in 60 s`);

  const first = await until(30, () => headHeight(wide));
  if (first !== null) pass(`head height renders: ${first}`);
  else fail("head height not rendered in 30 s");

  const live = await until(20, async () =>
    (await wide.textContent("#heads-source")) === "live over the WebSocket");
  if (live) pass("new heads subscribed over the WebSocket");
  else fail(`no WebSocket subscription: ${await wide.textContent("#heads-source")}`);

  const later = await until(20, async () => {
    const h = await headHeight(wide);
    return h !== null && first !== null && h > first ? h : null;
  });
  if (later !== null && navigations === 1) pass(`height advances without a reload: ${first} -> ${later}`);
  else fail(`height did not advance without a reload (from ${first}, navigations ${navigations})`);

  // the node's data-plane connections open: its links list shows one open (the API's state)
  const openLink = await until(30, async () =>
    (await wide.$$eval("#links li .link-open", (nodes) => nodes.length)) > 0);
  if (openLink) pass("a link shows open (its connection is up)");
  else fail("no link shown open in 30 s");

  await wide.fill("#search-input", String(first));
  await wide.press("#search-input", "Enter");
  const byHeight = await until(10, async () => (await wide.textContent("#result-title")) === `Block ${first}`);
  if (byHeight) pass(`search by height finds block ${first}`);
  else fail(`search by height: ${await wide.textContent("#result-title")}`);
  const hash = await wide.$eval("#result dd code", (n) => n.textContent).catch(() => "");
  await wide.fill("#search-input", hash);
  await wide.press("#search-input", "Enter");
  const byHash = await until(10, async () =>
    hash.length === 64 && (await wide.textContent("#result-title")) === `Block ${first}`);
  if (byHash) pass(`search by block hash finds block ${first}`);
  else fail(`search by block hash ${hash}: ${await wide.textContent("#result-title")}`);
  await wide.click("#result-close");
  await wide.fill("#search-input", "");
  await wide.locator("#search-input").blur();

  await wide.screenshot({ path: join(opt.out, "ui-1400.png"), fullPage: true });

  for (const pid of pids) process.kill(pid, "SIGKILL");
  pass(`killed ${opt.stop} (pids ${pids.join(", ")})`);
  const missing = await until(120, async () => (await regionState(wide, opt.stop)) === "missing");
  if (missing) pass(`${opt.stop} shows missing`);
  else fail(`${opt.stop} not shown missing in 120 s (state ${await regionState(wide, opt.stop).catch(() => "?")})`);
  // one more poll, so the failover card has caught up with the check that saw it
  await wide.waitForTimeout(2500);
  await wide.screenshot({ path: join(opt.out, "ui-1400-missing.png"), fullPage: true });
  if (navigations === 1) pass("no reload during the whole run");
  else fail(`the page navigated ${navigations} times`);

  const phone = await browser.newPage({ viewport: { width: 375, height: 812 }, isMobile: true });
  watch(phone, "375px");
  await phone.goto(opt.url);
  const phoneShown = await until(30, async () =>
    (await phone.$(`#regions [data-region="${opt.stop}"]`)) !== null && (await headHeight(phone)) !== null);
  const width = await phone.evaluate(() => document.documentElement.scrollWidth);
  if (phoneShown && width <= 375) pass(`375 px: regions and head render, page ${width} px wide`);
  else fail(`375 px: rendered ${Boolean(phoneShown)}, page ${width} px wide`);
  await phone.screenshot({ path: join(opt.out, "ui-375.png"), fullPage: true });
  await phone.close();
  await wide.close();
} catch (err) {
  fail(`driver error: ${err.stack || err}`);
} finally {
  await browser.close();
}

if (problems.length === 0) pass("no console errors, page errors or failed requests");
else for (const p of problems) fail(p);
console.log(`screenshots in ${opt.out}`);
process.exit(failures === 0 ? 0 : 1);

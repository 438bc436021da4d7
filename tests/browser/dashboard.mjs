// Drives the dashboard as a user would, in headless Chromium (Debian's
// /usr/bin/chromium, or CHROMIUM), through playwright-core (no browser
// download). tests/dashboard_browser.rs runs it:
//
//   node tests/browser/dashboard.mjs <url with ?token=> <screenshot dir>
//
// It checks through the DOM that the overview shows figures, the failed
// jobs are listed, one job's detail shows its payload and error, clicking
// "Retry" takes the job off the failed list; it screenshots each screen,
// and prints `result: {"retried": old id, "new_id": ...}` for the Rust side
// to check through the backend. Any error on the page's console (a CSP
// refusal, a script error) fails it.
import { chromium } from "playwright-core";
import { mkdirSync } from "node:fs";
import { join } from "node:path";

const [url, shots = "screenshots"] = process.argv.slice(2);
if (!url) {
  console.error("usage: node dashboard.mjs <dashboard url with ?token=> [screenshot dir]");
  process.exit(2);
}
mkdirSync(shots, { recursive: true });

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
  ],
});
const problems = [];
function check(ok, words) {
  if (!ok) throw new Error(words);
}
try {
  const context = await browser.newContext({ viewport: { width: 1360, height: 860 }, deviceScaleFactor: 1 });
  const page = await context.newPage();
  page.setDefaultTimeout(15000);
  page.on("console", (m) => { if (m.type() === "error") problems.push("console: " + m.text()); });
  page.on("pageerror", (e) => problems.push("page error: " + e.message));
  page.on("dialog", (d) => d.accept());
  const shot = async (name) => {
    await page.mouse.move(5, 400);
    await page.locator('[data-testid="toast"]').evaluateAll((toasts) => toasts.forEach((t) => t.remove()));
    await page.waitForTimeout(150);
    await page.screenshot({ path: join(shots, name + ".png"), fullPage: true });
    console.log("screenshot: " + join(shots, name + ".png"));
  };
  const text = async (sel) => (await page.locator(sel).first().textContent()).trim();

  // The token is traded for a cookie, and the address loses it.
  await page.goto(url);
  await page.waitForSelector('[data-testid="figure-jobs-last-hour"]');
  check(!page.url().includes("token="), "the token is still in the address: " + page.url());
  await page.waitForSelector('[data-testid="live"].on');
  const figures = {
    jobs_last_hour: await text('[data-testid="figure-jobs-last-hour"]'),
    failed_7_days: await text('[data-testid="figure-failed-7-days"]'),
    reserved: await text('[data-testid="total-reserved"] b'),
    delayed: await text('[data-testid="total-delayed"] b'),
    ready: await text('[data-testid="total-ready"] b'),
  };
  console.log("overview: " + JSON.stringify(figures));
  // (Throughput fills in from the workers' reports; the counts are the backend's.)
  check(/^[0-9][0-9,.]*$/.test(figures.jobs_last_hour), "the jobs of the last hour are not a number: " + figures.jobs_last_hour);
  check(Number(figures.failed_7_days) >= 1, "the overview shows no failed job");
  for (const k of ["reserved", "delayed", "ready"]) check(Number(figures[k]) >= 1, `the overview shows no ${k} job`);
  await shot("overview");

  await page.click('[data-testid="nav-queues"]');
  await page.waitForSelector('[data-testid="queue-row"][data-queue="payments"]');
  for (const queue of ["payments", "reports", "mail"]) {
    check((await page.locator(`[data-testid="queue-row"][data-queue="${queue}"] svg[data-testid="queue-chart"]`).count()) === 1,
      `the ${queue} queue is not listed with its chart`);
  }
  await shot("queues");

  await page.click('[data-testid="nav-listeners"]');
  await page.waitForSelector('[data-testid="listener-row"][data-listener$="::charge_card"]');
  await shot("listeners");

  await page.goto(new URL("#/jobs/pending", page.url()).href);
  await page.waitForSelector('[data-testid="job-row"][data-state="delayed"]');

  await page.goto(new URL("#/jobs/failed", page.url()).href);
  await page.waitForSelector('[data-testid="failed-row"]');
  const failedRows = page.locator('[data-testid="failed-row"]');
  const failed = await failedRows.count();
  check(failed >= 1, "no failed job is listed");
  const id = await failedRows.first().getAttribute("data-job-id");
  console.log(`failed: ${failed} listed, retrying ${id}`);
  await shot("failed");

  // One job's detail: payload, error, tries.
  await failedRows.first().locator('[data-testid="job-link"]').click();
  await page.waitForSelector(`[data-testid="job-detail"][data-job-id="${id}"]`);
  check((await text('[data-testid="job-payload"]')).includes('"card"'), "the payload is not shown");
  check((await text('[data-testid="job-error"]')).includes("declined"), "the error is not shown");
  await shot("job");

  // Retry from the failed list: the row leaves it.
  await page.goto(new URL("#/jobs/failed", page.url()).href);
  const row = page.locator(`[data-testid="failed-row"][data-job-id="${id}"]`);
  await row.waitFor();
  await row.locator('[data-testid="retry-button"]').click();
  const toast = page.locator(`[data-testid="toast"][data-retried="${id}"]`);
  await toast.waitFor();
  const newId = await toast.getAttribute("data-new-id");
  await row.waitFor({ state: "detached" });
  await page.waitForFunction((n) => document.querySelectorAll('[data-testid="failed-row"]').length === n, failed - 1)
    .catch(() => { throw new Error(`after the retry the failed list does not hold ${failed - 1} jobs`); });
  console.log(`retried: ${id} is off the failed list, back as ${newId}`);

  await page.click('[data-testid="nav-events"]');
  await page.waitForSelector('[data-testid="graph-svg"]');
  check((await page.locator('[data-testid="edge-sync"]').count()) >= 1, "the graph has no solid (sync) arrow");
  check((await page.locator('[data-testid="edge-queued"]').count()) >= 1, "the graph has no dashed (queued) arrow");
  check((await text('[data-testid="mermaid"]')).includes("-->"), "no Mermaid text");
  await shot("events");

  check(problems.length === 0, "the page reported errors:\n" + problems.join("\n"));
  console.log("result: " + JSON.stringify({ retried: id, new_id: newId }));
} catch (error) {
  console.error("dashboard test failed: " + error.message);
  if (problems.length) console.error(problems.join("\n"));
  process.exitCode = 1;
} finally {
  await browser.close();
}

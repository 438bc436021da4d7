// Two people in the chat example's room, in headless Chromium (Debian's
// /usr/bin/chromium, or CHROMIUM) through playwright-core. The Rust side
// (tests/chat_browser.rs) runs it:
//
//   node tests/browser/chat.mjs <chat url> <screenshot dir>
//
// It prints `step NAME JSON` lines as it goes; after `step posted` it waits
// for the line `dispatched` on stdin (the Rust side dispatched a message of
// its own). Both pages must see both members, ann's "typing…" and message
// reach bob (and not come back to ann), the message dispatched from Rust
// reach both, and bob leaving reach ann. Any error on a page's console (a
// CSP refusal, a script error) fails it; so does any failure: `failed: ..`
// and exit 1.
import { chromium } from "playwright-core";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { createInterface } from "node:readline";

const [url, shots = "screenshots"] = process.argv.slice(2);
if (!url) {
  console.error("usage: node chat.mjs <chat url> [screenshot dir]");
  process.exit(2);
}
mkdirSync(shots, { recursive: true });

const step = (name, data = {}) => console.log(`step ${name} ${JSON.stringify(data)}`);
const stdin = createInterface({ input: process.stdin });
const lines = stdin[Symbol.asyncIterator]();
const expectLine = async (want) => {
  const { value, done } = await lines.next();
  if (done || value.trim() !== want) throw new Error(`expected \`${want}\` on stdin, got ${done ? "the end" : value}`);
};
const check = (ok, words) => {
  if (!ok) throw new Error(words);
};

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
  ],
});
const problems = [];
let failed = false;
try {
  const open = async (name) => {
    const context = await browser.newContext({ viewport: { width: 1000, height: 640 }, deviceScaleFactor: 1 });
    const page = await context.newPage();
    page.setDefaultTimeout(15000);
    page.on("console", (m) => { if (m.type() === "error") problems.push(`${name}'s console: ${m.text()}`); });
    page.on("pageerror", (e) => problems.push(`${name}'s page: ${e.message}`));
    page.on("response", (r) => { if (r.status() >= 400) problems.push(`${name}'s page got ${r.status()} for ${r.url()}`); });
    await page.goto(`${url}/?name=${name}`);
    await page.waitForFunction(
      (n) => document.querySelector('[data-testid="status"]').textContent === `connected as ${n}`,
      name,
    );
    return { context, page };
  };
  const members = (page) =>
    page.locator('[data-testid="members"] li').evaluateAll((items) => items.map((li) => li.dataset.member).sort());
  const messages = (page) =>
    page.locator('[data-testid="messages"] li').evaluateAll((items) =>
      items.map((li) => ({ user: li.dataset.user, text: li.lastChild.textContent })));

  const ann = await open("ann");
  const bob = await open("bob");
  for (const [who, { page }] of [["ann", ann], ["bob", bob]]) {
    await page.waitForFunction(() => document.querySelector('[data-testid="count"]').textContent === "2");
    const here = await members(page);
    check(JSON.stringify(here) === '["ann","bob"]', `${who} sees ${JSON.stringify(here)} in the room`);
  }
  step("joined", { members: await members(ann.page) });

  // ann types: bob sees it (a client event, through the server).
  await ann.page.locator('[data-testid="text"]').pressSequentially("hello bob", { delay: 20 });
  await bob.page.waitForFunction(
    () => document.querySelector('[data-testid="typing"]').textContent === "ann is typing…",
  );
  const annTyping = await ann.page.locator('[data-testid="typing"]').textContent();
  check(annTyping === "", `ann sees her own typing: ${annTyping}`);

  // ann sends: bob receives the broadcast; ann shows hers once (to_others).
  await ann.page.locator('[data-testid="send"]').click();
  await bob.page.waitForSelector('[data-testid="messages"] li[data-user="ann"]');
  await ann.page.waitForSelector('[data-testid="messages"] li.mine');
  await ann.page.waitForTimeout(500);
  const annSees = await messages(ann.page);
  const bobSees = await messages(bob.page);
  check(JSON.stringify(bobSees) === '[{"user":"ann","text":"hello bob"}]', `bob sees ${JSON.stringify(bobSees)}`);
  check(JSON.stringify(annSees) === '[{"user":"ann","text":"hello bob"}]', `ann sees ${JSON.stringify(annSees)}`);
  step("posted", { ann: annSees, bob: bobSees });

  // The Rust side dispatches a message of its own: both receive it.
  await expectLine("dispatched");
  for (const { page } of [ann, bob]) {
    await page.waitForSelector('[data-testid="messages"] li[data-user="rust"]');
  }
  const fromRust = {
    ann: (await messages(ann.page)).at(-1),
    bob: (await messages(bob.page)).at(-1),
  };
  await ann.page.screenshot({ path: join(shots, "chat-ann.png") });
  await bob.page.screenshot({ path: join(shots, "chat-bob.png") });
  console.log("screenshot: " + join(shots, "chat-ann.png"));
  step("received", fromRust);

  // bob leaves: ann sees him go.
  await bob.context.close();
  await ann.page.waitForFunction(() => document.querySelector('[data-testid="count"]').textContent === "1");
  step("left", { members: await members(ann.page) });
  check(problems.length === 0, "errors on the pages:\n" + problems.join("\n"));
} catch (error) {
  failed = true;
  console.log(`failed: ${error && error.stack ? error.stack : error}`);
  if (problems.length) console.log("and on the pages:\n" + problems.join("\n"));
} finally {
  stdin.close();
  await browser.close();
}
process.exit(failed ? 1 : 0);

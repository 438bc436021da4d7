// The events dashboard: plain JavaScript, no framework, no build step.
//
// Every piece of text from the server (job payloads, errors, names) goes in
// through textContent or an attribute set with setAttribute: the page never
// parses server data as HTML. The screens are chosen by the URL's hash
// (#/overview, #/queues, #/listeners, #/jobs/failed, #/jobs/<id>, #/events);
// the Overview and Queues figures, and the job list, follow the live feed
// (api/live, server-sent events).
"use strict";

(function () {
  const SVG = "http://www.w3.org/2000/svg";
  const TABS = ["recent", "pending", "reserved", "failed", "all"];
  const PAGE = 25;

  // ------------------------------------------------------------ building

  /** An element: h("td.num", {dataset: {..}, onclick}, "text", child, ..). */
  function h(spec, props, ...children) {
    const [tag, ...classes] = spec.split(".");
    const el = document.createElement(tag || "div");
    if (classes.length) el.className = classes.join(" ");
    apply(el, props);
    append(el, children);
    return el;
  }

  function s(tag, attrs, ...children) {
    const el = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
    append(el, children);
    return el;
  }

  function apply(el, props) {
    if (!props) return;
    for (const [k, v] of Object.entries(props)) {
      if (v === undefined || v === null || v === false) continue;
      if (k === "dataset") for (const [d, dv] of Object.entries(v)) el.dataset[d] = String(dv);
      else if (k === "testid") el.dataset.testid = v;
      else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
      else if (k === "class") el.className = v;
      else if (k in el && k !== "list") el[k] = v;
      else el.setAttribute(k, String(v));
    }
  }

  function append(el, children) {
    for (const c of children.flat()) {
      if (c === undefined || c === null || c === false) continue;
      el.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
  }

  function clear(el) {
    while (el.firstChild) el.removeChild(el.firstChild);
    return el;
  }

  // ------------------------------------------------------------ formatting

  function num(n) {
    if (n === null || n === undefined) return "–";
    if (typeof n === "number" && !Number.isInteger(n)) return n.toLocaleString(undefined, { maximumFractionDigits: 1 });
    return Number(n).toLocaleString();
  }

  function ms(v) {
    if (v === null || v === undefined) return "–";
    if (v < 1) return v.toFixed(2) + " ms";
    if (v < 1000) return Math.round(v) + " ms";
    if (v < 60000) return (v % 1000 === 0 ? v / 1000 : (v / 1000).toFixed(v < 10000 ? 2 : 1)) + " s";
    return duration(v / 1000);
  }

  function duration(seconds) {
    if (seconds === null || seconds === undefined) return "–";
    seconds = Math.max(0, Math.round(seconds));
    if (seconds < 60) return seconds + " s";
    const m = Math.floor(seconds / 60), sec = seconds % 60;
    if (m < 60) return m + " min" + (sec ? " " + sec + " s" : "");
    const hr = Math.floor(m / 60), min = m % 60;
    if (hr < 48) return hr + " h" + (min ? " " + min + " min" : "");
    return Math.floor(hr / 24) + " d " + (hr % 24) + " h";
  }

  function when(msEpoch) {
    if (msEpoch === null || msEpoch === undefined) return "–";
    const d = new Date(msEpoch);
    return d.toLocaleString(undefined, { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", second: "2-digit" });
  }

  function ago(msEpoch) {
    if (msEpoch === null || msEpoch === undefined) return "–";
    const delta = (Date.now() - msEpoch) / 1000;
    if (delta >= 0) return duration(delta) + " ago";
    return "in " + duration(-delta);
  }

  function timeCell(msEpoch) {
    return h("td.nowrap", { title: msEpoch ? new Date(msEpoch).toISOString() : "" }, ago(msEpoch));
  }

  /** A listener's name without its module path (`shop::mail::send` is
   * `send`; a subscriber's `Type::method` keeps its type); the full name
   * goes in the title. */
  function short(name) {
    const parts = String(name || "").split("::");
    const type = parts.findIndex((p) => /^[A-Z]/.test(p));
    return (type >= 0 ? parts.slice(type) : parts.slice(-1)).join("::");
  }

  function nameCell(name) {
    return h("td", { title: name }, h("span.mono.nowrap", null, short(name)));
  }

  /** A job id, shortened in lists (the full one in the title and the link). */
  function idLink(id, testid) {
    const head = id.split("-")[0];
    const text = head.length < id.length ? head + "…" : id;
    return h("td", { title: id }, h("a.mono.nowrap", { href: "#/jobs/" + encodeURIComponent(id), testid }, text));
  }

  /** The error without the "listener `x` failed: " every one starts with. */
  function errorText(error, listener) {
    const prefix = "listener `" + listener + "` failed: ";
    return error && error.startsWith(prefix) ? error.slice(prefix.length) : error || "";
  }

  function badge(kind, text) {
    return h("span.badge." + String(kind).replace(/[^a-z_-]/gi, ""), { testid: "badge" }, text || kind);
  }

  function count(n, cls) {
    const cell = h("td.num", null, num(n));
    if (!n) cell.classList.add("zero");
    else if (cls) cell.classList.add(cls);
    return cell;
  }

  // ------------------------------------------------------------ the API

  async function api(path, options) {
    const init = Object.assign({ credentials: "same-origin", headers: {} }, options || {});
    init.headers = Object.assign({ accept: "application/json" }, init.headers);
    if (init.method && init.method !== "GET") init.headers["x-events-dashboard"] = "1";
    const response = await fetch(path, init);
    let body = null;
    try { body = await response.json(); } catch (_) { body = null; }
    if (!response.ok) {
      const words = body && body.error ? body.error : response.status + " " + response.statusText;
      const error = new Error(words);
      error.status = response.status;
      throw error;
    }
    return body;
  }

  function post(path) {
    return api(path, { method: "POST" });
  }

  // ------------------------------------------------------------ state

  const state = {
    overview: null,
    queues: null,
    route: null,
    jobsKey: null,
    countsKey: null,
    render: 0,
  };

  const main = () => document.getElementById("main");

  function toast(text, opts) {
    const el = h("div.toast", { testid: "toast", dataset: (opts && opts.data) || {} }, text);
    if (opts && opts.bad) el.classList.add("bad");
    el.addEventListener("click", () => el.remove());
    document.getElementById("toasts").append(el);
    setTimeout(() => el.remove(), (opts && opts.ms) || 6000);
    return el;
  }

  function banner(text) {
    const el = document.getElementById("banner");
    el.textContent = text || "";
    el.hidden = !text;
  }

  function problem(error) {
    return h("div.panel", null, h("p.empty", { testid: "error" }, error.message || String(error)));
  }

  // ------------------------------------------------------------ routing

  function parseRoute() {
    const raw = location.hash.replace(/^#\/?/, "");
    const [path, query] = raw.split("?");
    const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
    const params = new URLSearchParams(query || "");
    const screen = parts[0] || "overview";
    if (screen === "jobs") {
      const arg = parts[1] || "recent";
      if (TABS.includes(arg)) return { screen: "jobs", tab: arg, params };
      return { screen: "job", id: parts.slice(1).join("/"), params };
    }
    return { screen, params };
  }

  function jobsHash(tab, params) {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(params)) if (v !== "" && v !== undefined && v !== null && !(k === "page" && v === 1)) q.set(k, v);
    const qs = q.toString();
    return "#/jobs/" + tab + (qs ? "?" + qs : "");
  }

  function route() {
    const r = parseRoute();
    state.route = r;
    const token = ++state.render;
    for (const a of document.querySelectorAll("#nav a")) {
      a.classList.toggle("active", a.dataset.screen === (r.screen === "job" ? "jobs" : r.screen));
    }
    const screens = { overview, queues, listeners, jobs, job, events };
    const draw = screens[r.screen];
    if (!draw) {
      clear(main()).append(problem(new Error("No screen is called “" + r.screen + "”.")));
      return;
    }
    document.title = "events · " + (r.screen === "job" ? "job " + r.id : r.screen);
    Promise.resolve(draw(r, token)).catch((error) => {
      if (token === state.render) clear(main()).append(problem(error));
    });
  }

  function current(token) {
    return token === state.render;
  }

  // ------------------------------------------------------------ overview

  async function overview(r, token) {
    if (!state.overview) state.overview = await api("api/overview");
    if (!current(token)) return;
    drawOverview();
  }

  function drawOverview() {
    const o = state.overview;
    const root = clear(main());
    root.append(h("h2", null, "Overview"));
    const card = (label, value, sub, cls, id) =>
      h("div.card" + (cls ? "." + cls : ""), { testid: "card-" + id },
        h("div.label", null, label),
        h("div.value", { testid: "figure-" + id }, value),
        h("div.sub", null, sub || ""));
    const workers = o.workers || [];
    const running = workers.length;
    root.append(h("div.cards", { testid: "overview-cards" },
      card("Status", running ? "Running" : "Inactive",
        running ? running + " worker" + (running === 1 ? "" : "s") + " reporting" : "no worker has reported lately",
        running ? "ok" : "idle", "status"),
      card("Jobs per minute", num(o.jobs_per_minute), "tries, last two minutes", null, "jobs-per-minute"),
      card("Jobs past hour", num(o.jobs_last_hour), num(o.failed_last_hour) + " failed", null, "jobs-last-hour"),
      card("Failed past 7 days", num(o.failed_last_7_days), "in the failed store", o.failed_last_7_days ? "bad" : null, "failed-7-days"),
      card("Longest wait", o.longest_wait ? duration(o.longest_wait.seconds) : "–",
        o.longest_wait ? "queue " + o.longest_wait.queue : "nothing waiting", null, "longest-wait"),
      card("Busiest queue", o.busiest_queue ? o.busiest_queue.queue : "–",
        o.busiest_queue ? num(o.busiest_queue.jobs_last_hour) + " jobs past hour" : "no job ran this hour", null, "busiest-queue")));
    const t = o.totals || {};
    const total = (label, n, cls, tab) => h("a.total", { href: "#/jobs/" + tab, testid: "total-" + label },
      h("b", { class: n ? cls || "" : "zero" }, num(n)), h("span.muted", null, label));
    root.append(h("div.totals", null,
      total("ready", t.ready, "", "pending"),
      total("delayed", t.delayed, "", "pending"),
      total("reserved", t.reserved, "n-reserved", "reserved"),
      total("failed", t.failed, "n-failed", "failed")));
    if (!o.activity_kept) {
      root.append(h("p.note", null, "This backend keeps no worker activity: throughput, runtimes and workers stay empty."));
    }

    root.append(h("h3", null, "Workers"));
    const panel = h("div.panel", { testid: "workers" });
    if (!workers.length) {
      panel.append(h("p.empty", null, "No worker has reported in the last minutes. Start one with `work`, or Worker::run."));
    } else {
      const body = h("tbody");
      for (const w of workers) {
        body.append(h("tr", { testid: "worker-row", dataset: { workerId: w.id } },
          h("td", null, h("span.mono", null, w.host || "–")),
          h("td.num", null, w.pid === undefined ? "–" : String(w.pid)),
          h("td", null, (w.queues || []).join(", ")),
          h("td.num", null, num(w.concurrency)),
          h("td", { title: new Date(w.started_at).toISOString() }, ago(w.started_at)),
          h("td", null, ago(w.seen_at)),
          count(w.running, "n-reserved"),
          h("td.num", null, num(w.processed)),
          count(w.failed, "n-failed")));
      }
      panel.append(h("table", null,
        h("thead", null, h("tr", null, h("th", null, "Host"), h("th.num", null, "PID"), h("th", null, "Queues"),
          h("th.num", null, "Concurrency"), h("th", null, "Since"), h("th", null, "Last seen"),
          h("th.num", null, "Running"), h("th.num", null, "Processed"), h("th.num", null, "Failed"))),
        body));
    }
    root.append(panel);
  }

  // ------------------------------------------------------------ queues

  async function queues(r, token) {
    if (!state.queues) state.queues = await api("api/queues");
    if (!current(token)) return;
    drawQueues();
  }

  function spark(perMinute) {
    const w = 180, hgt = 34, n = perMinute.length || 60, bw = w / n;
    const max = Math.max(1, ...perMinute.map((m) => m.jobs));
    const svg = s("svg", { class: "spark", width: w, height: hgt, viewBox: `0 0 ${w} ${hgt}`, role: "img", "data-testid": "queue-chart" });
    const total = perMinute.reduce((a, m) => a + m.jobs, 0);
    svg.append(s("title", null, total + " jobs in the last hour, per minute"));
    perMinute.forEach((m, i) => {
      if (!m.jobs) return;
      const full = Math.max(1.5, (m.jobs / max) * (hgt - 2));
      const bad = Math.min(full, (m.failed / max) * (hgt - 2));
      const x = i * bw + 0.5, width = Math.max(1, bw - 1);
      const bar = s("rect", { class: "bar", x, y: hgt - 1 - full, width, height: full - bad });
      bar.append(s("title", null, new Date(m.minute).toLocaleTimeString() + ": " + m.jobs + " jobs, " + m.failed + " failed or retried" +
        (m.runtime_avg_ms !== null ? ", avg " + ms(m.runtime_avg_ms) : "")));
      svg.append(bar);
      if (bad > 0) svg.append(s("rect", { class: "bar failed", x, y: hgt - 1 - bad, width, height: bad }));
    });
    svg.append(s("line", { class: "base", x1: 0, x2: w, y1: hgt - 0.5, y2: hgt - 0.5 }));
    return svg;
  }

  function drawQueues() {
    const root = clear(main());
    root.append(h("h2", null, "Queues"));
    const rows = state.queues || [];
    const panel = h("div.panel", { testid: "queues" });
    if (!rows.length) {
      panel.append(h("p.empty", null, "No queue holds jobs or ran any in the last hour."));
    } else {
      const body = h("tbody");
      for (const q of rows) {
        const hr = q.last_hour || {};
        body.append(h("tr", { testid: "queue-row", dataset: { queue: q.queue } },
          h("td", null, h("a", { href: jobsHash("all", { queue: q.queue }) }, h("b", null, q.queue))),
          count(q.ready), count(q.delayed), count(q.reserved, "n-reserved"),
          h("td.num", null, h("a", { href: jobsHash("failed", { queue: q.queue }), class: q.failed ? "n-failed" : "zero" }, num(q.failed))),
          h("td.num", { title: `${hr.succeeded} succeeded, ${hr.retried} retried, ${hr.failed} failed` }, num(hr.jobs),
            hr.failed || hr.retried ? h("div.small.n-failed", null, num(hr.failed + hr.retried) + " failed/retried") : null),
          h("td.num", null, ms(hr.runtime_avg_ms)),
          h("td.num", null, ms(hr.wait_avg_ms), hr.wait_max_ms ? h("div.small.muted", null, "max " + ms(hr.wait_max_ms)) : null),
          h("td", null, spark(q.per_minute || [])),
          h("td.num", { testid: "wait-estimate" }, q.wait_estimate_seconds === null ? (q.ready ? "no pace yet" : "–") : "~" + duration(q.wait_estimate_seconds))));
      }
      panel.append(h("table", null,
        h("thead", null, h("tr", null, h("th", null, "Queue"), h("th.num", null, "Ready"), h("th.num", null, "Delayed"),
          h("th.num", null, "Reserved"), h("th.num", null, "Failed"), h("th.num", null, "Jobs past hour"),
          h("th.num", null, "Avg runtime"), h("th.num", null, "Avg wait"), h("th", null, "Per minute, past hour"),
          h("th.num", null, "Wait estimate"))),
        body));
    }
    root.append(panel);
    root.append(h("p.note", null, "Wait estimate: the ready jobs at the last hour's pace. Bars: jobs per minute; red, the failed or retried tries."));
  }

  // ------------------------------------------------------------ listeners

  async function listeners(r, token) {
    const data = await api("api/listeners");
    if (!current(token)) return;
    const root = clear(main());
    root.append(h("h2", null, "Listeners"));
    const body = h("tbody");
    for (const l of data.listeners) {
      body.append(h("tr", { testid: "listener-row", dataset: { listener: l.listener } },
        h("td", { title: l.listener }, h("span.mono.nowrap", null, short(l.listener)), l.registered ? null : h("div.small.muted", null, "not registered in this program")),
        h("td", null, h("span.mono.nowrap", null, l.event || "–")),
        h("td", null, badge(l.mode), l.queue ? h("span.muted.small", null, " on " + l.queue) : null),
        h("td.num", null, num(l.runs)),
        count(l.succeeded),
        count(l.retried),
        count(l.failed, "n-failed"),
        h("td.num", null, ms(l.runtime_avg_ms)),
        h("td.num", null, ms(l.p50_ms)),
        h("td.num", null, ms(l.p95_ms))));
    }
    root.append(h("div.panel", { testid: "listeners" }, data.listeners.length ? h("table", null,
      h("thead", null, h("tr", null, h("th", null, "Listener"), h("th", null, "Event"), h("th", null, "Mode"),
        h("th.num", null, "Runs"), h("th.num", null, "Succeeded"), h("th.num", null, "Retried"), h("th.num", null, "Failed"),
        h("th.num", null, "Avg"), h("th.num", null, "p50"), h("th.num", null, "p95"))),
      body) : h("p.empty", null, "No listener is registered.")));
    root.append(h("p.note", null, "The last hour. p50 and p95 are read from runtime buckets (" +
      data.buckets_ms.map((b) => ms(b)).join(", ") + "), so they are upper bounds of a bucket. Sync listeners are timed only when this process dispatches them."));
  }

  // ------------------------------------------------------------ jobs

  function tabCounts() {
    const t = (state.overview && state.overview.totals) || null;
    if (!t) return {};
    return { pending: t.ready + t.delayed, reserved: t.reserved, failed: t.failed, all: t.ready + t.delayed + t.reserved + t.failed };
  }

  async function jobs(r, token) {
    const tab = r.tab;
    const q = r.params.get("q") || "";
    const queue = r.params.get("queue") || "";
    const page = Math.max(1, parseInt(r.params.get("page") || "1", 10) || 1);
    try {
      if (!state.overview) { state.overview = await api("api/overview"); state.countsKey = countsKey(state.overview); }
      if (!state.queues) state.queues = await api("api/queues");
    } catch (_) { /* the list below says what is wrong */ }
    if (!current(token)) return;
    const root = clear(main());
    root.append(h("h2", null, "Jobs"));
    const counts = tabCounts();
    const tabs = h("div.tabs", { testid: "job-tabs" });
    for (const name of TABS) {
      tabs.append(h("a", { href: jobsHash(name, { q, queue }), class: name === tab ? "active" : "", testid: "tab-" + name },
        name[0].toUpperCase() + name.slice(1),
        counts[name] !== undefined ? h("span.count", null, num(counts[name])) : null));
    }
    root.append(tabs);

    const search = h("input", { type: "search", placeholder: "Search id, listener, event or payload text", value: q, testid: "job-search", "aria-label": "Search" });
    const select = h("select", { testid: "queue-filter", "aria-label": "Queue" }, h("option", { value: "" }, "All queues"));
    const names = new Set((state.queues || []).map((x) => x.queue));
    if (queue) names.add(queue);
    for (const name of [...names].sort()) select.append(h("option", { value: name, selected: name === queue }, name));
    const go = () => { location.hash = jobsHash(tab, { q: search.value.trim(), queue: select.value }); };
    let timer = null;
    search.addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(go, 400); });
    search.addEventListener("keydown", (e) => { if (e.key === "Enter") { clearTimeout(timer); go(); } });
    select.addEventListener("change", go);
    const toolbar = h("div.toolbar", null, search, select);
    if (tab === "failed") {
      toolbar.append(h("span.spacer"),
        h("button.primary", { testid: "retry-all-button", onclick: () => all("retry") }, "Retry all"),
        h("button.danger", { testid: "forget-all-button", onclick: () => all("forget") }, "Forget all"));
    }
    root.append(toolbar);
    const list = h("div", { id: "job-list", testid: "job-list" }, h("div.panel", null, h("p.empty", null, "Loading…")));
    root.append(list);
    state.jobsKey = { tab, q, queue, page };
    await loadJobs(token);
    if (current(token) && q && document.activeElement === document.body) {
      search.focus();
      search.setSelectionRange(q.length, q.length);
    }
  }

  async function loadJobs(token) {
    const { tab, q, queue, page } = state.jobsKey;
    const params = new URLSearchParams({ state: tab, limit: String(PAGE), offset: String((page - 1) * PAGE) });
    if (q) params.set("q", q);
    if (queue) params.set("queue", queue);
    let data;
    try {
      data = await api("api/jobs?" + params.toString());
    } catch (error) {
      if (current(token)) clear(document.getElementById("job-list")).append(problem(error));
      return;
    }
    const list = document.getElementById("job-list");
    if (!current(token) || !list) return;
    clear(list).append(jobTable(tab, data, page, q, queue));
  }

  function jobTable(tab, data, page, q, queue) {
    const panel = h("div.panel", { testid: tab + "-jobs", dataset: { total: data.total } });
    if (!data.jobs.length) {
      const what = tab === "recent" ? "No try finished lately" : tab === "all" ? "No job" : "No " + tab + " job";
      panel.append(h("p.empty", { testid: "no-jobs" }, what + (q || queue ? " matches." : ".")));
    } else {
      const body = h("tbody");
      if (tab === "recent") {
        for (const j of data.jobs) {
          body.append(h("tr", { testid: "recent-row", dataset: { jobId: j.id } },
            idLink(j.id, "job-link"),
            h("td", null, badge(j.outcome)),
            h("td", null, j.queue), nameCell(j.listener), h("td", null, h("span.mono.nowrap", null, j.event)),
            h("td.num", null, String(j.attempt)), h("td.num", null, ms(j.took_ms)), timeCell(j.finished_at),
            h("td", null, h("span.mono.small", null, j.worker))));
        }
        panel.append(h("table", null, h("thead", null, h("tr", null, h("th", null, "Job"), h("th", null, "Outcome"), h("th", null, "Queue"),
          h("th", null, "Listener"), h("th", null, "Event"), h("th.num", null, "Try"), h("th.num", null, "Took"), h("th", null, "Finished"),
          h("th", null, "Worker"))), body));
      } else {
        for (const j of data.jobs) {
          const row = h("tr", { testid: j.state === "failed" ? "failed-row" : "job-row", dataset: { jobId: j.id, state: j.state } },
            idLink(j.id, "job-link"),
            h("td", null, badge(j.state)),
            h("td", null, j.queue), nameCell(j.listener), h("td", null, h("span.mono.nowrap", null, j.event)),
            h("td.num.nowrap", null, j.attempt + " / " + j.max_tries),
            j.state === "failed" ? timeCell(j.failed_at) : timeCell(j.state === "delayed" ? j.available_at : j.first_enqueued_at),
            h("td.err", { title: j.error || "" }, errorText(j.error, j.listener)),
            h("td.actions", null, j.state === "failed" ? actions(j.id) : null));
          body.append(row);
        }
        const timeHead = tab === "failed" ? "Failed" : tab === "pending" || tab === "reserved" ? "Queued / due" : "When";
        panel.append(h("table", null, h("thead", null, h("tr", null, h("th", null, "Job"), h("th", null, "State"), h("th", null, "Queue"),
          h("th", null, "Listener"), h("th", null, "Event"), h("th.num", null, "Tries"), h("th", null, timeHead),
          h("th", null, "Error"), h("th"))), body));
      }
    }
    const from = data.total ? data.offset + 1 : 0;
    const to = data.offset + data.jobs.length;
    const pager = h("div.pager", { testid: "pager" },
      h("span", null, data.total ? `${num(from)}–${num(to)} of ${num(data.total)}` : ""),
      data.searched ? h("span", { testid: "searched" }, "searched the newest " + num(data.searched)) : null,
      h("button", { disabled: page <= 1, testid: "prev-page", onclick: () => { location.hash = jobsHash(tab, { q, queue, page: page - 1 }); } }, "‹ Newer"),
      h("button", { disabled: to >= data.total, testid: "next-page", onclick: () => { location.hash = jobsHash(tab, { q, queue, page: page + 1 }); } }, "Older ›"));
    panel.append(pager);
    return panel;
  }

  function actions(id) {
    return [
      h("button.primary", { testid: "retry-button", dataset: { jobId: id }, onclick: (e) => retry(id, e.currentTarget) }, "Retry"),
      h("button.danger", { testid: "forget-button", dataset: { jobId: id }, onclick: (e) => forget(id, e.currentTarget) }, "Forget"),
    ];
  }

  async function retry(id, button) {
    if (button) button.disabled = true;
    try {
      const answer = await post("api/jobs/" + encodeURIComponent(id) + "/retry");
      toast("Job " + id + " is back on its queue as " + answer.id + ".", { data: { retried: id, newId: answer.id } });
      await afterChange();
    } catch (error) {
      if (button) button.disabled = false;
      toast("Retry failed: " + error.message, { bad: true });
    }
  }

  async function forget(id, button) {
    if (!window.confirm("Forget failed job " + id + "? Its payload and error are deleted.")) return;
    if (button) button.disabled = true;
    try {
      await post("api/jobs/" + encodeURIComponent(id) + "/forget");
      toast("Job " + id + " is forgotten.", { data: { forgotten: id } });
      await afterChange();
    } catch (error) {
      if (button) button.disabled = false;
      toast("Forget failed: " + error.message, { bad: true });
    }
  }

  async function all(what) {
    const n = tabCounts().failed;
    const words = what === "retry"
      ? "Put every failed job" + (n ? " (" + n + ")" : "") + " back on its queue?"
      : "Forget every failed job" + (n ? " (" + n + ")" : "") + "? Their payloads and errors are deleted.";
    if (!window.confirm(words)) return;
    try {
      const answer = await post("api/failed/" + what);
      toast(what === "retry" ? num(answer.retried) + " failed jobs are back on their queues." : num(answer.forgotten) + " failed jobs are forgotten.");
      await afterChange();
    } catch (error) {
      toast((what === "retry" ? "Retry all" : "Forget all") + " failed: " + error.message, { bad: true });
    }
  }

  /** After a retry or forget: fresh counts, then the screen again. */
  async function afterChange() {
    try { state.overview = await api("api/overview"); } catch (_) { /* the live feed will tell */ }
    if (state.route.screen === "job") { location.hash = "#/jobs/failed"; return; }
    if (state.route.screen === "jobs") { updateTabCounts(); await loadJobs(state.render); return; }
    route();
  }

  function updateTabCounts() {
    for (const [name, n] of Object.entries(tabCounts())) {
      const c = document.querySelector(`[data-testid="tab-${name}"] .count`);
      if (c) c.textContent = num(n);
    }
  }

  // ------------------------------------------------------------ one job

  async function job(r, token) {
    let j;
    try {
      j = await api("api/jobs/" + encodeURIComponent(r.id));
    } catch (error) {
      if (!current(token)) return;
      const root = clear(main());
      root.append(h("div.detail-head", null, h("a", { href: "#/jobs/recent" }, "‹ Jobs"), h("h2", null, "Job " + r.id)));
      root.append(problem(error));
      return;
    }
    if (!current(token)) return;
    const root = clear(main());
    root.append(h("div.detail-head", { testid: "job-detail", dataset: { jobId: j.id, state: j.state } },
      h("a", { href: "#/jobs/" + (j.state === "ready" || j.state === "delayed" ? "pending" : j.state) }, "‹ Jobs"),
      h("h2", null, h("span.mono", null, j.id)), badge(j.state),
      h("span.spacer"),
      j.state === "failed" ? actions(j.id) : null));
    const row = (label, value) => [h("dt", null, label), h("dd", null, value)];
    root.append(h("div.panel", null, h("div.panel-title", null, "Job"), h("dl.detail", { testid: "job-fields" },
      row("Queue", j.queue),
      row("Listener", h("span.mono", null, j.listener)),
      row("Event", h("span.mono", null, j.event)),
      row("Tries", j.state === "failed" ? `${j.attempt} of ${j.max_tries} (all used)` : `${j.attempt} of ${j.max_tries} so far`),
      row("Available at", when(j.available_at) + " (" + ago(j.available_at) + ")"),
      row("First enqueued", when(j.first_enqueued_at) + " (" + ago(j.first_enqueued_at) + ")"),
      j.failed_at ? row("Failed at", when(j.failed_at) + " (" + ago(j.failed_at) + ")") : null,
      row("Event id", h("span.mono", null, j.event_id)),
      row("Occurred at", when(j.occurred_at)))));
    if (j.error) {
      root.append(h("div.panel", null, h("div.panel-title", null, "Error (last try)"), h("pre.error", { testid: "job-error" }, j.error)));
    }
    const payload = typeof j.payload === "string" ? j.payload : JSON.stringify(j.payload, null, 2);
    root.append(h("div.panel", null, h("div.panel-title", null, "Payload"), h("pre", { testid: "job-payload" }, payload)));
    const meta = Object.entries(j.metadata || {}).sort(([a], [b]) => a.localeCompare(b));
    root.append(h("div.panel", null, h("div.panel-title", null, "Metadata"),
      meta.length
        ? h("table", { testid: "job-metadata" }, h("tbody", null, meta.map(([k, v]) => h("tr", null, h("td", null, h("span.mono", null, k)), h("td", null, h("span.mono", null, v))))))
        : h("p.empty", null, "No metadata.")));
  }

  // ------------------------------------------------------------ events

  async function events(r, token) {
    const reg = await api("api/registry");
    if (!current(token)) return;
    const root = clear(main());
    root.append(h("h2", null, "Events"));
    const byName = new Map(reg.listeners.map((l) => [l.name, l]));

    const evBody = h("tbody");
    for (const e of reg.events) {
      evBody.append(h("tr", { testid: "event-row", dataset: { event: e.name } },
        h("td", null, h("b.mono", null, e.name)),
        h("td", null, h("span.mono.small.muted", null, e.type || "(wildcard only)")),
        h("td", null, e.listeners.map((name) => {
          const l = byName.get(name);
          return h("div", { title: name }, badge(l ? l.mode : "unknown"), " ", h("span.mono", null, short(name)));
        }))));
    }
    root.append(h("div.panel", { testid: "registry-events" }, reg.events.length
      ? h("table", null, h("thead", null, h("tr", null, h("th", null, "Event"), h("th", null, "Type"), h("th", null, "Listeners, in dispatch order"))), evBody)
      : h("p.empty", null, "No event has a listener.")));

    root.append(h("h3", null, "Listeners"));
    const lBody = h("tbody");
    for (const l of reg.listeners) {
      const opts = [];
      if (l.queue) {
        opts.push("queue " + l.queue.queue, "tries " + l.queue.tries);
        if (l.queue.backoff_ms && l.queue.backoff_ms.length) opts.push("backoff " + l.queue.backoff_ms.map(ms).join(", "));
        if (l.queue.delay_ms) opts.push("delay " + ms(l.queue.delay_ms));
        if (l.queue.timeout_ms) opts.push("timeout " + ms(l.queue.timeout_ms));
      }
      if (l.conditional) opts.push("when = …");
      lBody.append(h("tr", { testid: "registry-listener-row", dataset: { listener: l.name } },
        nameCell(l.name),
        h("td", null, h("span.mono.nowrap", null, l.pattern ? l.pattern + " (pattern)" : l.event)),
        h("td", null, badge(l.mode)),
        h("td.num", null, String(l.priority)),
        h("td.small", null, opts.join(" · ") || "–"),
        h("td", null, h("span.mono.small.muted.nowrap", null, l.file + ":" + l.line))));
    }
    root.append(h("div.panel", { testid: "registry-listeners" }, h("table", null,
      h("thead", null, h("tr", null, h("th", null, "Listener"), h("th", null, "Hears"), h("th", null, "Mode"),
        h("th.num", null, "Priority"), h("th", null, "Options"), h("th", null, "Source"))), lBody)));

    root.append(h("h3", null, "Graph"));
    root.append(h("div.panel", { testid: "graph" }, graph(reg, byName),
      h("div.legend", null,
        h("span", null, legendLine(false), "sync: runs inside dispatch"),
        h("span", null, legendLine(true), "queued: a job for a worker"))));

    root.append(h("h3", null, "Mermaid"));
    const pre = h("pre", { testid: "mermaid" }, reg.mermaid);
    const copy = h("button", {
      testid: "copy-mermaid",
      onclick: async () => {
        try { await navigator.clipboard.writeText(reg.mermaid); toast("Copied the Mermaid text."); }
        catch (_) { const range = document.createRange(); range.selectNodeContents(pre); const sel = getSelection(); sel.removeAllRanges(); sel.addRange(range); toast("Selected: press Ctrl-C to copy."); }
      },
    }, "Copy");
    root.append(h("div.panel", null, h("div.panel-title", null, h("span", null, "Paste into GitHub, GitLab or mermaid.live"), copy), pre));
  }

  function legendLine(dashed) {
    const svg = s("svg", { width: 36, height: 10 });
    svg.append(s("line", { x1: 0, x2: 36, y1: 5, y2: 5, stroke: dashed ? "#2563eb" : "#16a34a", "stroke-width": 2, "stroke-dasharray": dashed ? "6 4" : "none" }));
    return svg;
  }

  /** Events on the left, listeners on the right, an edge for each hearing. */
  function graph(reg, byName) {
    const rowH = 34, boxH = 24, pad = 16;
    const evW = Math.min(320, Math.max(160, 12 + 7.6 * Math.max(0, ...reg.events.map((e) => e.name.length)))) + 16;
    // Listeners in the order of the first event they hear: fewer crossings.
    const rank = new Map();
    reg.events.forEach((e, i) => e.listeners.forEach((n, j) => { if (!rank.has(n)) rank.set(n, i * 1000 + j); }));
    const ordered = [...reg.listeners].sort((a, b) => (rank.has(a.name) ? rank.get(a.name) : 1e9) - (rank.has(b.name) ? rank.get(b.name) : 1e9));
    const liNames = ordered.map((l) => l.name);
    const liW = Math.min(420, Math.max(180, 12 + 7.6 * Math.max(0, ...reg.listeners.map((l) => short(l.name).length + (l.mode === "queued" && l.queue ? 4 + l.queue.queue.length : 0))))) + 16;
    const gap = 220;
    const width = pad * 2 + evW + gap + liW;
    const rows = Math.max(reg.events.length, liNames.length, 1);
    const height = pad * 2 + rows * rowH;
    const svg = s("svg", { class: "graph", viewBox: `0 0 ${width} ${height}`, width, height, role: "img", "data-testid": "graph-svg" });
    svg.append(s("title", null, "Events and their listeners"));
    const defs = s("defs");
    for (const [id, colour] of [["arrow-sync", "#16a34a"], ["arrow-queued", "#2563eb"]]) {
      const marker = s("marker", { id, viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" });
      marker.append(s("path", { d: "M 0 0 L 10 5 L 0 10 z", fill: colour }));
      defs.append(marker);
    }
    svg.append(defs);
    const offset = (n) => pad + ((rows - n) * rowH) / 2;
    const evY = new Map(), liY = new Map();
    const x2 = pad + evW + gap;
    reg.events.forEach((e, i) => evY.set(e.name, offset(reg.events.length) + i * rowH + (rowH - boxH) / 2));
    liNames.forEach((n, i) => liY.set(n, offset(liNames.length) + i * rowH + (rowH - boxH) / 2));
    const edges = s("g");
    for (const e of reg.events) {
      for (const name of e.listeners) {
        if (!liY.has(name)) continue;
        const l = byName.get(name);
        const queued = l && l.mode === "queued";
        const y1 = evY.get(e.name) + boxH / 2, y2 = liY.get(name) + boxH / 2;
        const xa = pad + evW, xb = x2 - 2;
        const path = s("path", { class: "edge" + (queued ? " queued" : ""), d: `M ${xa} ${y1} C ${xa + gap / 2} ${y1}, ${xb - gap / 2} ${y2}, ${xb} ${y2}`, "marker-end": `url(#arrow-${queued ? "queued" : "sync"})`, "data-testid": queued ? "edge-queued" : "edge-sync" });
        path.append(s("title", null, e.name + " → " + name + (queued ? " (queued)" : " (sync)")));
        edges.append(path);
      }
    }
    svg.append(edges);
    for (const e of reg.events) {
      const g = s("g", { class: "event" });
      g.append(s("rect", { x: pad, y: evY.get(e.name), width: evW, height: boxH, rx: 6 }));
      g.append(s("text", { x: pad + 10, y: evY.get(e.name) + 16 }, e.name));
      svg.append(g);
    }
    for (const l of ordered) {
      const g = s("g", { class: "listener " + l.mode });
      g.append(s("rect", { x: x2, y: liY.get(l.name), width: liW, height: boxH, rx: 6 }));
      const text = s("text", { x: x2 + 10, y: liY.get(l.name) + 16 }, short(l.name));
      g.append(s("title", null, l.name));
      if (l.mode === "queued" && l.queue) text.append(s("tspan", { class: "note", dx: 8 }, "on " + l.queue.queue));
      g.append(text);
      svg.append(g);
    }
    return svg;
  }

  // ------------------------------------------------------------ live

  function countsKey(o) {
    const t = (o && o.totals) || {};
    return [t.ready, t.delayed, t.reserved, t.failed, o && o.jobs_last_hour].join("/");
  }

  function live() {
    if (!window.EventSource) return;
    const badgeEl = document.getElementById("live");
    const source = new EventSource("api/live", { withCredentials: true });
    source.addEventListener("open", () => { badgeEl.className = "live on"; badgeEl.textContent = "live"; });
    source.addEventListener("snapshot", (message) => {
      let data;
      try { data = JSON.parse(message.data); } catch (_) { return; }
      badgeEl.className = "live on"; badgeEl.textContent = "live";
      banner("");
      const before = state.countsKey;
      state.overview = data.overview;
      state.queues = data.queues;
      state.countsKey = countsKey(data.overview);
      showQueueUrl();
      const r = state.route;
      if (!r) return;
      if (r.screen === "overview") drawOverview();
      else if (r.screen === "queues") drawQueues();
      else if (r.screen === "jobs") {
        updateTabCounts();
        if (before !== state.countsKey) loadJobs(state.render);
      }
    });
    source.addEventListener("error", (message) => {
      if (message.data) {
        try { banner("The backend does not answer: " + JSON.parse(message.data).error); } catch (_) { /* not ours */ }
      } else {
        badgeEl.className = "live off"; badgeEl.textContent = "reconnecting";
      }
    });
  }

  function showQueueUrl() {
    const el = document.getElementById("queue-url");
    if (state.overview && el) { el.textContent = state.overview.queue_url; el.title = state.overview.queue_url; }
  }

  window.addEventListener("hashchange", route);
  document.addEventListener("DOMContentLoaded", () => {
    if (!location.hash) history.replaceState(null, "", "#/overview");
    route();
    live();
    if (!state.overview) api("api/overview").then((o) => { state.overview = o; state.countsKey = countsKey(o); showQueueUrl(); }).catch(() => {});
  });
})();

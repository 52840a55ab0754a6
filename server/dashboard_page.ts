/**
 * The dashboard's one page: HTML with inline CSS and JavaScript, no build step. The script
 * builds every element from run data with `textContent` (never `innerHTML`), and the page is
 * served under a Content-Security-Policy that allows only its own nonce'd script and style.
 *
 * @module
 */

const STYLE = `
:root {
  color-scheme: light dark;
  --bg: #f4f6f8; --panel: #fff; --text: #1c2430; --muted: #5d6978; --line: #dde2e8;
  --hover: #eef3fb; --selected: #e2ecfb; --track: #edf0f3; --accent: #2463d1;
  --running: #0a78b8; --completed: #1d8748; --skipped: #1d8748; --failed: #c42b2b;
  --retrying: #b4700f; --cancelled: #8748b0; --pending: #8b95a2;
  --server: #2463d1; --remote: #a3388f;
}
@media (prefers-color-scheme: dark) {
  :root {
    --bg: #101317; --panel: #181d23; --text: #e5e9ee; --muted: #98a3b0; --line: #2b323b;
    --hover: #1f2732; --selected: #22324a; --track: #232a33; --accent: #6ea1ff;
    --running: #41a9e8; --completed: #4cc27b; --skipped: #4cc27b; --failed: #ff6b6b;
    --retrying: #f0b04a; --cancelled: #c28ae6; --pending: #7d8794;
    --server: #6ea1ff; --remote: #e07ad0;
  }
}
* { box-sizing: border-box; }
body {
  margin: 0; background: var(--bg); color: var(--text);
  font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
}
header {
  position: sticky; top: 0; z-index: 2; display: flex; align-items: center; gap: .75rem;
  padding: .7rem 1.25rem; background: var(--panel); border-bottom: 1px solid var(--line);
}
header h1 { margin: 0; font-size: 1.05rem; }
#counts { color: var(--muted); font-size: .85rem; }
#live { margin-left: auto; color: var(--muted); font-size: .8rem; white-space: nowrap; }
#live::before { content: "\\25CF"; margin-right: .35em; color: var(--pending); }
#live.on::before { color: var(--completed); }
main {
  display: grid; grid-template-columns: minmax(0, 1fr) minmax(0, 1fr); gap: 1rem;
  max-width: 1600px; margin: 0 auto; padding: 1rem 1.25rem; align-items: start;
}
section {
  min-width: 0; background: var(--panel); border: 1px solid var(--line); border-radius: 10px;
  padding: .85rem 1rem;
}
h2 { margin: 0; font-size: 1rem; overflow-wrap: anywhere; }
.filters { display: flex; gap: .5rem; flex-wrap: wrap; margin-bottom: .6rem; }
.filters select, .filters input, button {
  font: inherit; font-size: .9rem; color: inherit; background: var(--panel);
  border: 1px solid var(--line); border-radius: 6px; padding: .3rem .55rem;
}
.filters input { flex: 1; min-width: 8rem; }
button { cursor: pointer; }
button:hover { background: var(--hover); }
button.danger { color: var(--failed); border-color: var(--failed); }
button:disabled { opacity: .5; cursor: default; }
.table { overflow-x: auto; }
table { width: 100%; border-collapse: collapse; font-size: .9rem; }
th {
  text-align: left; font-weight: 600; color: var(--muted); font-size: .78rem;
  text-transform: uppercase; letter-spacing: .03em; padding: .35rem .4rem;
  border-bottom: 1px solid var(--line);
}
td { padding: .45rem .4rem; border-bottom: 1px solid var(--line); vertical-align: middle; }
tbody tr { cursor: pointer; }
tbody tr:hover { background: var(--hover); }
tbody tr.selected { background: var(--selected); }
td.key { min-width: 9rem; }
td.key a { color: inherit; text-decoration: none; font-weight: 600; overflow-wrap: anywhere; }
td.muted, .muted { color: var(--muted); }
td.count, td.when, td.status { white-space: nowrap; font-variant-numeric: tabular-nums; }
td.count progress { width: 3.2rem; margin-left: .4rem; vertical-align: middle; }
.badge {
  display: inline-block; white-space: nowrap; font-size: .78rem; font-weight: 600;
  padding: .05rem .45rem; border-radius: 999px; border: 1px solid currentColor;
}
.st-pending { color: var(--pending); } .st-running { color: var(--running); }
.st-completed { color: var(--completed); } .st-skipped { color: var(--skipped); }
.st-failed { color: var(--failed); } .st-retrying { color: var(--retrying); }
.st-cancelled { color: var(--cancelled); }
.side {
  font-size: .72rem; font-weight: 600; text-transform: uppercase; letter-spacing: .04em;
  padding: .05rem .4rem; border-radius: 4px; color: #fff;
}
.side-server { background: var(--server); } .side-remote { background: var(--remote); }
.run-head { display: flex; align-items: center; gap: .6rem; flex-wrap: wrap; }
.run-head .grow { flex: 1; }
#run-meta { margin: .35rem 0 .6rem; color: var(--muted); font-size: .88rem; }
pre.error {
  margin: .4rem 0 0; padding: .45rem .6rem; border-radius: 6px; white-space: pre-wrap;
  overflow-wrap: anywhere; font: .82rem/1.4 ui-monospace, SFMono-Regular, Menlo, monospace;
  color: var(--failed); background: color-mix(in srgb, var(--failed) 9%, transparent);
}
pre.error.old { color: var(--muted); background: var(--track); }
ol#timeline { list-style: none; margin: .4rem 0 0; padding: 0; }
li.task {
  display: grid; grid-template-columns: minmax(17rem, 3fr) minmax(6rem, 2fr); gap: .15rem 1rem;
  padding: .6rem 0; border-top: 1px solid var(--line); align-items: center;
}
.task-head { display: flex; align-items: center; gap: .45rem; flex-wrap: wrap; min-width: 0; }
.task-head .idx { color: var(--muted); font-variant-numeric: tabular-nums; min-width: 1.3rem; }
.task-head .name { font-weight: 600; overflow-wrap: anywhere; }
.task-meta { grid-column: 1; color: var(--muted); font-size: .8rem; }
.track {
  grid-column: 2; grid-row: 1 / span 2; position: relative; height: 1.1rem;
  background: var(--track); border-radius: 4px; overflow: hidden;
}
.track .bar {
  position: absolute; top: 0; bottom: 0; min-width: 3px; border-radius: 4px;
  background: currentColor; opacity: .8;
}
li.st-running .bar, li.st-retrying .bar { opacity: .55; }
.progress {
  grid-column: 1 / -1; display: flex; align-items: center; gap: .5rem; font-size: .82rem;
}
.progress progress { flex: 0 0 10rem; }
.progress .note { color: var(--muted); overflow-wrap: anywhere; }
li.task pre.error { grid-column: 1 / -1; }
.placeholder { color: var(--muted); margin: 2rem 0; text-align: center; }
#run { scroll-margin-top: 4rem; }
@media (max-width: 1200px) { .mid, td.count progress { display: none; } }
#notice {
  position: fixed; left: 50%; bottom: 1rem; transform: translateX(-50%); z-index: 3;
  max-width: 90vw; padding: .5rem .9rem; border-radius: 8px; background: var(--text);
  color: var(--panel); font-size: .9rem;
}
#notice.bad { background: var(--failed); color: #fff; }
#more { margin-top: .6rem; }
@media (max-width: 860px) {
  main { grid-template-columns: minmax(0, 1fr); padding: .6rem; gap: .6rem; }
  header { padding: .6rem .8rem; }
  .wide, td.count progress { display: none; }
  li.task { grid-template-columns: minmax(0, 1fr); }
  .task-meta, .track { grid-column: 1; grid-row: auto; }
  .progress progress { flex: 1 1 auto; }
}
`;

const SCRIPT = `"use strict";
(() => {
  const MARK = {
    pending: "\\u00B7", running: "\\u25B6", completed: "\\u2714", skipped: "\\u21B7",
    failed: "\\u2718", retrying: "\\u21BB", cancelled: "\\u25A0",
  };
  const $ = (id) => document.getElementById(id);
  const enc = encodeURIComponent;
  const state = { status: "", prefix: "", runs: [], next: null, selected: null, run: null,
    missing: "" };

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  const known = (status) => Object.hasOwn(MARK, status) ? status : "pending";
  function badge(status) {
    const s = known(status);
    return el("span", "badge st-" + s, MARK[s] + " " + String(status));
  }
  function duration(ms) {
    if (ms < 1) return Math.round(ms * 1000) + " \\u00B5s";
    if (ms < 1000) return (ms < 10 ? ms.toFixed(1) : Math.round(ms)) + " ms";
    if (ms < 60000) return (ms / 1000).toFixed(2) + " s";
    const m = Math.floor(ms / 60000);
    if (m < 60) return m + " min " + Math.round((ms % 60000) / 1000) + " s";
    return Math.floor(m / 60) + " h " + (m % 60) + " min";
  }
  function time(ms) {
    const d = new Date(ms);
    return d.toDateString() === new Date().toDateString()
      ? d.toLocaleTimeString([], { hourCycle: "h23" })
      : d.toLocaleString([], { hourCycle: "h23", dateStyle: "short", timeStyle: "short" });
  }
  let noticeTimer;
  function notify(text, bad) {
    const n = $("notice");
    n.textContent = text;
    n.className = bad ? "bad" : "";
    n.hidden = false;
    clearTimeout(noticeTimer);
    noticeTimer = setTimeout(() => { n.hidden = true; }, 5000);
  }
  async function api(path, init) {
    const options = init || {};
    const response = await fetch(path, { ...options,
      headers: { accept: "application/json", ...(options.headers || {}) } });
    let body = null;
    try { body = await response.json(); } catch { body = null; }
    if (!response.ok) {
      throw new Error((body && body.error) || response.status + " " + response.statusText);
    }
    return body;
  }
  // Runs fn, one call at a time; calls made meanwhile fold into one more run.
  function serial(fn) {
    let running = false;
    let again = false;
    return async () => {
      if (running) { again = true; return; }
      running = true;
      try {
        do {
          again = false;
          try { await fn(); } catch (e) { notify(e.message, true); }
        } while (again);
      } finally { running = false; }
    };
  }
  let frame = 0;
  function scheduleRender() {
    if (frame) return;
    frame = requestAnimationFrame(() => { frame = 0; renderRun(); });
  }

  const loadRuns = serial(async () => {
    const q = new URLSearchParams();
    if (state.status) q.set("status", state.status);
    if (state.prefix) q.set("prefix", state.prefix);
    q.set("limit", String(Math.min(1000, Math.max(100, state.runs.length))));
    const body = await api("/api/runs?" + q);
    state.runs = body.runs;
    state.next = body.next;
    renderRuns();
  });
  const loadRun = serial(async () => {
    const key = state.selected;
    if (key === null) return;
    let run = null;
    let missing = "";
    try { run = await api("/api/runs/" + enc(key)); } catch (e) { missing = e.message; }
    if (state.selected !== key) return;
    state.run = run;
    state.missing = missing;
    renderRun();
  });

  function renderRuns() {
    const rows = state.runs.map((run) => {
      const tr = el("tr");
      tr.dataset.key = run.key;
      if (run.key === state.selected) tr.className = "selected";
      const key = el("td", "key");
      const a = el("a", "", run.key);
      a.href = "#run=" + enc(run.key);
      key.append(a);
      const status = el("td", "status");
      status.append(badge(run.status));
      const count = el("td", "count", run.done + "/" + run.total);
      const bar = el("progress");
      bar.max = Math.max(1, run.total);
      bar.value = run.done;
      count.append(bar);
      tr.append(key, el("td", "muted wide mid", run.definition), status, count,
        el("td", "muted wide when", time(run.updatedAt)));
      tr.addEventListener("click", (e) => {
        if (e.target.tagName !== "A") location.hash = "run=" + enc(run.key);
        // On a phone the run shows below the list: bring it into view.
        if (matchMedia("(max-width: 860px)").matches) {
          requestAnimationFrame(() => $("run").scrollIntoView({ block: "start" }));
        }
      });
      return tr;
    });
    $("runs-body").replaceChildren(...rows);
    $("runs-empty").hidden = rows.length > 0;
    $("runs-empty").textContent = state.status || state.prefix ? "No runs match." : "No runs yet.";
    $("more").hidden = state.next === null;
    const running = state.runs.filter((r) => r.status === "running").length;
    $("counts").textContent = state.runs.length + (state.next === null ? "" : "+") + " runs" +
      (running ? ", " + running + " running" : "");
  }

  function renderRun() {
    const key = state.selected;
    $("placeholder").hidden = key !== null;
    $("run").hidden = key === null;
    if (key === null) return;
    $("run-key").textContent = key;
    const run = state.run;
    const error = $("run-error");
    if (!run) {
      $("run-status").replaceChildren();
      $("run-meta").textContent = state.missing || "Loading\\u2026";
      $("timeline").replaceChildren();
      $("cancel").hidden = true;
      error.hidden = true;
      return;
    }
    $("run-status").replaceChildren(badge(run.status));
    const now = Date.now();
    const end = run.status === "running" ? Math.max(now, run.updatedAt) : run.updatedAt;
    const span = Math.max(1, end - run.createdAt);
    $("run-meta").textContent = run.definition.name + " v" + run.definition.version + " \\u00B7 " +
      run.done + "/" + run.total + " tasks \\u00B7 started " + time(run.createdAt) + " \\u00B7 " +
      (run.status === "running" ? "running for " : "took ") + duration(end - run.createdAt);
    error.hidden = !run.error;
    if (run.error) {
      error.textContent = (run.error.task ? "task " + run.error.task + ": " : "") +
        run.error.code + ": " + run.error.message;
    }
    $("cancel").hidden = run.status !== "running";
    const items = run.tasks.map((task, i) => {
      const status = known(task.status);
      const live = status === "running" || status === "retrying";
      const li = el("li", "task st-" + status);
      li.dataset.task = task.name;
      li.dataset.status = task.status;
      const head = el("div", "task-head");
      const side = task.side === "remote" ? "remote" : "server";
      head.append(el("span", "idx", i + 1), el("span", "name", task.name),
        el("span", "side side-" + side, side), badge(task.status));
      const meta = [];
      if (task.attempts > 0) meta.push(task.attempts === 1 ? "1 attempt" : task.attempts + " attempts");
      if (task.startedAt) meta.push("started " + time(task.startedAt));
      if (task.startedAt && task.finishedAt) meta.push(duration(task.finishedAt - task.startedAt));
      else if (task.startedAt && live) meta.push(duration(now - task.startedAt) + " so far");
      const track = el("div", "track");
      if (task.startedAt) {
        const finish = task.finishedAt || (live ? end : task.startedAt);
        const from = Math.min(100, Math.max(0, (task.startedAt - run.createdAt) / span * 100));
        const width = Math.min(100 - from, Math.max(0.6, (finish - task.startedAt) / span * 100));
        const bar = el("div", "bar");
        bar.style.left = from + "%";
        bar.style.width = width + "%";
        track.append(bar);
      }
      li.append(head, track, el("div", "task-meta", meta.join(" \\u00B7 ") || "not started"));
      if (task.progress && live) {
        const row = el("div", "progress");
        const bar = el("progress");
        bar.max = 1;
        bar.value = task.progress.fraction;
        row.append(bar, el("span", "", Math.round(task.progress.fraction * 100) + "%"));
        if (task.progress.note) row.append(el("span", "note", task.progress.note));
        li.append(row);
      }
      if (task.error) {
        const old = status === "completed" || status === "skipped";
        li.append(el("pre", old ? "error old" : "error",
          (old ? "an earlier attempt failed: " : "") + task.error.code + ": " + task.error.message));
      }
      return li;
    });
    $("timeline").replaceChildren(...items);
  }

  function applyProgress(event) {
    const run = state.run;
    const task = run && run.tasks.find((t) => t.name === event.task);
    if (!task) return loadRun();
    task.progress = { fraction: event.fraction, note: event.note };
    scheduleRender();
  }

  function select(key) {
    state.selected = key;
    state.run = null;
    state.missing = "";
    document.title = key === null ? "Workflow runs" : key + " \\u2014 workflow runs";
    for (const tr of $("runs-body").children) {
      tr.classList.toggle("selected", tr.dataset.key === key);
    }
    renderRun();
    loadRun();
  }
  function fromHash() {
    const match = /^#run=(.*)$/.exec(location.hash);
    let key = null;
    if (match) {
      try { key = decodeURIComponent(match[1]); } catch { key = null; }
    }
    if (key !== state.selected) select(key);
  }

  function listen() {
    const source = new EventSource("/api/events");
    source.onopen = () => {
      $("live").className = "on";
      $("live").textContent = "live";
      loadRuns();
      loadRun();
    };
    source.onerror = () => {
      $("live").className = "";
      $("live").textContent = "reconnecting\\u2026";
    };
    source.onmessage = (message) => {
      let event;
      try { event = JSON.parse(message.data); } catch { return; }
      if (event.type !== "task.progress") loadRuns();
      if (event.key !== state.selected) return;
      if (event.type === "task.progress") applyProgress(event);
      else loadRun();
    };
  }

  $("status").addEventListener("change", (e) => {
    state.status = e.target.value;
    state.runs = [];
    loadRuns();
  });
  $("prefix").addEventListener("input", (e) => {
    state.prefix = e.target.value;
    state.runs = [];
    loadRuns();
  });
  $("more").addEventListener("click", async () => {
    if (state.next === null) return;
    const q = new URLSearchParams({ after: state.next, limit: "100" });
    if (state.status) q.set("status", state.status);
    if (state.prefix) q.set("prefix", state.prefix);
    try {
      const body = await api("/api/runs?" + q);
      state.runs = state.runs.concat(body.runs);
      state.next = body.next;
      renderRuns();
    } catch (e) { notify(e.message, true); }
  });
  $("close").addEventListener("click", () => { location.hash = ""; });
  $("cancel").addEventListener("click", async () => {
    const key = state.selected;
    if (key === null) return;
    if (!confirm("Cancel run \\u201C" + key + "\\u201D? The task in flight is aborted and " +
      "rollback hooks run.")) return;
    const button = $("cancel");
    button.disabled = true;
    try {
      await api("/api/runs/" + enc(key) + "/cancel", {
        method: "POST",
        headers: { "content-type": "application/json", "X-Workflow-Request": "1" },
        body: JSON.stringify({ reason: "cancelled from the dashboard" }),
      });
      notify("Cancelled \\u201C" + key + "\\u201D");
    } catch (e) { notify(e.message, true); }
    button.disabled = false;
    loadRun();
    loadRuns();
  });
  window.addEventListener("hashchange", fromHash);
  setInterval(() => { if (state.run && state.run.status === "running") scheduleRender(); }, 1000);
  fromHash();
  renderRun();
  loadRuns();
  listen();
})();
`;

/**
 * The page's HTML, with `nonce` on its one script and one style.
 *
 * @param nonce A fresh random value, also sent in the Content-Security-Policy.
 */
export function dashboardPage(nonce: string): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark">
<title>Workflow runs</title>
<link rel="icon" href="data:,">
<style nonce="${nonce}">${STYLE}</style>
</head>
<body>
<header>
  <h1>Workflow runs</h1>
  <span id="counts"></span>
  <span id="live">connecting\u2026</span>
</header>
<main>
  <section aria-label="Runs">
    <div class="filters">
      <select id="status" aria-label="Status">
        <option value="">any status</option>
        <option value="running">running</option>
        <option value="completed">completed</option>
        <option value="failed">failed</option>
        <option value="cancelled">cancelled</option>
      </select>
      <input id="prefix" type="search" placeholder="key prefix" aria-label="Key prefix"
        autocomplete="off" spellcheck="false">
    </div>
    <div class="table"><table>
      <thead><tr>
        <th>key</th><th class="wide mid">workflow</th><th>status</th><th>tasks</th>
        <th class="wide">updated</th>
      </tr></thead>
      <tbody id="runs-body"></tbody>
    </table></div>
    <p id="runs-empty" class="placeholder">No runs yet.</p>
    <button id="more" hidden>Load more</button>
  </section>
  <section aria-label="Run">
    <p id="placeholder" class="placeholder">Select a run to see its tasks.</p>
    <div id="run" hidden>
      <div class="run-head">
        <h2 id="run-key"></h2>
        <span id="run-status"></span>
        <span class="grow"></span>
        <button id="cancel" class="danger" hidden>Cancel run</button>
        <button id="close" aria-label="Close">\u2715</button>
      </div>
      <p id="run-meta"></p>
      <pre id="run-error" class="error" hidden></pre>
      <ol id="timeline"></ol>
    </div>
  </section>
</main>
<div id="notice" role="status" hidden></div>
<script nonce="${nonce}">${SCRIPT}</script>
</body>
</html>
`;
}

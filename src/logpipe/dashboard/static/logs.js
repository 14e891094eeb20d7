// logpipe's logs page: single rows from /api/logs (newest first, more as you scroll) and /api/logs/tail.
"use strict";

const FILTERS = ["text", "trace_id", "user_id", "event_id", "service", "endpoint", "host", "level", "status_class",
  "kind", "source"];
const TAIL_MS = 1000;
const state = { columns: [], next: null, loading: false, generation: 0, tailCursor: 0, tailTimer: null, shown: 0 };

function window_() {
  if ($("range").value === "custom") {
    const from = Date.parse($("from").value), to = Date.parse($("to").value);
    if (Number.isFinite(from) && Number.isFinite(to) && from < to) return { from, to };
  }
  const to = Date.now() + 60000;  // a minute ahead: clocks of senders run a little fast
  return { from: Date.now() - (Number($("range").value) || 3600000), to };
}

function query(extra = {}) {
  const { from, to } = window_();
  const params = new URLSearchParams({ from: String(from), to: String(to) });
  for (const name of FILTERS) if ($(name).value && $(name).value !== "0") params.set(name, $(name).value.trim());
  for (const [k, v] of Object.entries(extra)) params.set(k, String(v));
  return params;
}

function record(row) {
  return Object.fromEntries(state.columns.map((name, i) => [name, row[i]]));
}

function rowElement(row) {
  const r = record(row);
  const tr = document.createElement("tr");
  tr.className = "log";
  tr.dataset.eventId = r.event_id;
  tr.append(cell(new Date(r.ts).toISOString().replace("T", " ").slice(0, 23)), cell(r.service), cell(r.level),
    cell(r.status || ""), cell(r.host), cell(r.message));
  tr.addEventListener("click", () => toggleDetail(tr, 6, (td) => showRecord(td, r)));
  return tr;
}

function showRecord(td, r) {
  const pre = document.createElement("pre");
  const shown = { ...r, ts: new Date(r.ts).toISOString(), ingest_ts: new Date(r.ingest_ts).toISOString() };
  pre.textContent = JSON.stringify(shown, null, 2);
  td.append(pre);
}

async function loadPage(first) {
  if (!first && (state.loading || !state.next)) return;  // a new search never waits for an old one's page
  state.loading = true;
  const generation = state.generation;
  try {
    const body = await fetchJson(`/api/logs?${query(first ? {} : state.next)}`);
    if (generation !== state.generation) return;  // a newer search replaced this one
    state.columns = body.columns;
    state.next = body.next;
    const tbody = $("rows").tBodies[0];
    for (const row of body.rows) tbody.append(rowElement(row));
    state.shown += body.rows.length;
    const ingest = state.columns.indexOf("ingest_ts");
    if (first) state.tailCursor = Math.max(Date.now() - 5000, ...body.rows.map((row) => row[ingest]));
    $("more").textContent = state.next ? "scroll for more" : (state.shown ? "no older rows" : "no rows match");
    document.body.dataset.rows = String(state.shown);
    setStatus(`${state.shown} rows`);
  } catch (error) {
    setStatus(String(error.message || error), true);
  } finally {
    if (generation === state.generation) state.loading = false;
  }
}

function search() {
  state.generation += 1;
  state.next = null;
  state.shown = 0;
  $("rows").tBodies[0].replaceChildren();
  const params = query();
  params.delete("from");
  params.delete("to");
  params.set("range", $("range").value);
  history.replaceState(null, "", `/logs?${params}`);
  loadPage(true);
}

async function tail() {
  if ($("tail").checked === false || document.hidden) return;
  try {
    const body = await fetchJson(`/api/logs/tail?${query({ after_ingest: state.tailCursor, limit: 500 })}`);
    state.columns = body.columns;
    state.tailCursor = body.after_ingest;
    const tbody = $("rows").tBodies[0];
    for (const row of body.rows) tbody.prepend(rowElement(row));  // oldest first: the newest ends on top
    state.shown += body.rows.length;
    document.body.dataset.rows = String(state.shown);
    document.body.dataset.tailed = String(Number(document.body.dataset.tailed || 0) + 1);
  } catch (error) {
    setStatus(String(error.message || error), true);
  }
}

function fromAddress() {
  const params = new URLSearchParams(location.search);
  for (const name of FILTERS) if (params.has(name)) $(name).value = params.get(name);
  if (params.has("from") && params.has("to")) {
    $("range").value = "custom";
    $("custom").hidden = false;
    const local = (ms) => new Date(Number(ms) - new Date().getTimezoneOffset() * 60000).toISOString().slice(0, 16);
    $("from").value = local(params.get("from"));
    $("to").value = local(Number(params.get("to")) + 60000);
  } else if (params.has("range")) {
    $("range").value = params.get("range");
  }
}

function main() {
  document.documentElement.dataset.theme = theme();
  fillRanges($("range"));
  fromAddress();
  $("search").addEventListener("submit", search);
  $("range").addEventListener("change", () => { $("custom").hidden = $("range").value !== "custom"; search(); });
  for (const name of ["level", "status_class", "kind"]) $(name).addEventListener("change", search);
  $("tail").addEventListener("change", () => {
    clearInterval(state.tailTimer);
    state.tailTimer = $("tail").checked ? setInterval(tail, TAIL_MS) : null;  // unchecked: paused
  });
  new IntersectionObserver((entries) => {
    if (entries.some((e) => e.isIntersecting)) loadPage(false);
  }).observe($("more"));
  search();
}

main();

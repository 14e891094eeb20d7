// logpipe's built-in dashboard: panels from /api/panels, data from /api/panels/{id}, drawn with ECharts.
"use strict";

const REFRESH_MS = 5000;
const state = { panels: [], charts: new Map(), timer: null, inflight: false };

function applyTheme() {
  document.documentElement.dataset.theme = theme();
  for (const [id, chart] of state.charts) {  // ECharts takes its theme at init: rebuild the charts
    chart.dispose();
    state.charts.delete(id);
  }
  refresh();
}

function range() {
  const choice = $("range").value;
  if (choice === "custom") {
    const from = Date.parse($("from").value), to = Date.parse($("to").value);
    if (Number.isFinite(from) && Number.isFinite(to) && from < to) return { from, to };
  }
  const span = Number(choice) || 3600000;
  const to = Date.now();
  return { from: to - span, to };
}

// At the first load, the smallest preset range that holds the data of the last day, so a store with
// minutes of data is not drawn as an hour that is mostly empty. The last hour is read first, by the
// minute; the day only when the data is older than that.
async function earliestData(span) {
  const to = Date.now();
  const query = new URLSearchParams({ from: String(to - span), to: String(to) });
  const response = await fetch(`/api/panels/eps?${query}`);
  if (!response.ok) return null;
  const times = (await response.json()).rows.map((row) => row[0]);
  return times.length ? Math.min(...times) : null;
}

async function fitRange() {
  const hour = 3600000;
  let earliest = await earliestData(hour);
  if (earliest === null) earliest = await earliestData(24 * hour);
  else if (earliest <= Date.now() - hour + 60000) earliest = (await earliestData(24 * hour)) ?? earliest;
  if (earliest === null) return;
  const span = Date.now() - earliest;
  const presets = [...$("range").options].map((o) => Number(o.value)).filter(Number.isFinite).sort((a, b) => a - b);
  const fitting = presets.find((preset) => preset >= span);
  if (fitting) $("range").value = String(fitting);
}

function layout() {
  const grid = $("grid");
  grid.replaceChildren();
  for (const panel of state.panels) {
    const card = document.createElement("section");
    card.className = "panel" + (panel.width > 1 ? " wide" : "");
    card.id = `panel-${panel.id}`;
    card.dataset.chart = panel.chart;
    const title = document.createElement("h2");
    title.textContent = panel.title + (panel.unit ? ` (${panel.unit})` : "");
    card.append(title);
    if (panel.description) {
      const hint = document.createElement("p");
      hint.className = "hint";
      hint.textContent = panel.description;
      card.append(hint);
    }
    const body = document.createElement("div");
    body.className = "body";
    card.append(body);
    grid.append(card);
  }
}

function chartFor(panel, body) {
  let chart = state.charts.get(panel.id);
  if (!chart) {
    body.replaceChildren();
    chart = echarts.init(body, theme() === "dark" ? "dark" : null, { renderer: "canvas" });
    state.charts.set(panel.id, chart);
    if (LINKED[panel.id]) chart.on("click", (point) => openLogs(LINKED[panel.id](point.seriesName), point, body));
  }
  return chart;
}

// The panels whose points open the logs page: a series name -> the logs page's filters.
const LINKED = {
  eps: (series) => (series === "total" ? {} : { service: series }),
  error_rate: (series) => {
    const [service, kind] = series.split(" ");
    return kind === "5xx" ? { service, status_class: "5" } : { service, level: "ERROR" };
  },
};
const LINKED_TABLES = ["slow_endpoints", "error_endpoints"];  // a row (service, endpoint) opens its logs

function logsAddress(filters, from, to) {
  const params = new URLSearchParams({ from: String(from), to: String(to), ...filters });
  if ($("source").value) params.set("source", $("source").value);
  return `/logs?${params}`;
}

function openLogs(filters, point, body) {
  const bucket = Number(body.parentElement.dataset.bucketMs) || 60000;
  const t = Array.isArray(point.value) ? point.value[0] : point.data[0];
  location.assign(logsAddress(filters, t, t + bucket));
}

function seriesOf(rows, keyIndex, xIndex, valueIndex) {
  const groups = new Map();
  for (const row of rows) {
    const key = String(row[keyIndex]);
    if (!groups.has(key)) groups.set(key, []);
    groups.get(key).push([row[xIndex], row[valueIndex]]);
  }
  return groups;
}

// A bucket that ends after now is still filling: drawn after whole ones, it would look like a drop, so
// it is left out of a series that has whole buckets (a series of only that bucket keeps it).
function withoutFillingBucket(points, bucketMs, now) {
  const whole = points.filter((point) => point[0] + bucketMs <= now);
  return whole.length ? whole : points;
}

function drawTimeseries(panel, data, body, window) {
  const now = Date.now();
  const groups = seriesOf(data.rows, 1, 0, 2);
  for (const [name, points] of groups) {
    points.sort((a, b) => a[0] - b[0]);
    if (panel.source !== "metrics") groups.set(name, withoutFillingBucket(points, data.bucket_s * 1000, now));
  }
  const card = body.parentElement;
  card.dataset.bucketMs = String(data.bucket_s * 1000);
  card.dataset.drawnAt = String(now);
  chartFor(panel, body).setOption({
    backgroundColor: "transparent",
    tooltip: { trigger: "axis" },
    legend: { type: "scroll", top: 0 },
    grid: { left: 50, right: 16, top: 36, bottom: 28 },
    xAxis: { type: "time", min: window.from, max: window.to },  // the chosen range, however sparse the data
    yAxis: { type: "value", name: panel.unit },
    series: [...groups].map(([name, points]) => ({
      // a linked panel's points are drawn, to be clicked
      name, type: "line", data: points, showSymbol: points.length < 3 || panel.id in LINKED, symbolSize: 6,
    })),
  }, { notMerge: true });
}

function drawBar(panel, data, body) {
  const labels = [...new Set(data.rows.map((r) => String(r[0])))];
  const groups = seriesOf(data.rows, 1, 0, 2);
  chartFor(panel, body).setOption({
    backgroundColor: "transparent",
    tooltip: { trigger: "axis" },
    grid: { left: 60, right: 16, top: 24, bottom: 28 },
    xAxis: { type: "category", data: labels },
    yAxis: { type: "value", name: panel.unit },
    series: [...groups].map(([name, points]) => {
      const byLabel = new Map(points.map(([label, value]) => [String(label), value]));
      return { name, type: "bar", data: labels.map((l) => byLabel.get(l) ?? 0) };
    }),
  }, { notMerge: true });
}

function drawTable(panel, data, body) {
  const old = state.charts.get(panel.id);
  if (old) { old.dispose(); state.charts.delete(panel.id); }
  const table = document.createElement("table");
  const head = table.createTHead().insertRow();
  for (const column of data.columns) {
    const th = document.createElement("th");
    th.textContent = column;
    head.append(th);
  }
  const tbody = table.createTBody();
  const linked = LINKED_TABLES.includes(panel.id);
  for (const row of data.rows) {
    const tr = tbody.insertRow();
    if (linked) {
      const record = Object.fromEntries(data.columns.map((c, i) => [c, row[i]]));
      const { from, to } = range();
      tr.className = "linked";
      tr.title = "Open these logs";
      tr.addEventListener("click", () => location.assign(logsAddress(
        { service: record.service, endpoint: record.endpoint }, from, to)));
    }
    for (const value of row) {
      const td = tr.insertCell();
      td.textContent = value === null ? "" : String(value);
      if (typeof value === "number") td.className = "num";
    }
  }
  body.replaceChildren(table);
}

function drawEmpty(panel, body) {
  const old = state.charts.get(panel.id);
  if (old) { old.dispose(); state.charts.delete(panel.id); }
  const note = document.createElement("div");
  note.className = "empty";
  note.textContent = "No data in this range";
  body.replaceChildren(note);
}

const DRAW = { timeseries: drawTimeseries, bar: drawBar, table: drawTable };

async function refreshPanel(panel, query, window) {
  const card = $(`panel-${panel.id}`);
  const body = card.querySelector(".body");
  const response = await fetch(`/api/panels/${panel.id}?${query}`);
  if (!response.ok) throw new Error(`${panel.title}: HTTP ${response.status}`);
  const data = await response.json();
  card.dataset.rows = String(data.rows.length);
  if (data.rows.length === 0) drawEmpty(panel, body);
  else (DRAW[panel.chart] || drawTable)(panel, data, body, window);
  card.dataset.rendered = String(Date.now());
}

async function refresh() {
  if (state.inflight || !state.panels.length) return;
  state.inflight = true;
  const window = range();
  const query = new URLSearchParams({
    from: String(window.from), to: String(window.to), service: $("service").value, source: $("source").value,
  });
  try {
    await Promise.all(state.panels.map((panel) => refreshPanel(panel, query, window)));
    setStatus(`updated ${new Date().toLocaleTimeString()}`);
    document.body.dataset.refreshes = String(Number(document.body.dataset.refreshes || 0) + 1);
  } catch (error) {
    setStatus(String(error.message || error), true);
  } finally {
    state.inflight = false;
  }
}

function schedule() {
  clearInterval(state.timer);
  state.timer = null;
  if ($("live").checked && !document.hidden) state.timer = setInterval(refresh, REFRESH_MS);
}

async function loadChoices(url, id) {
  const response = await fetch(url);
  if (!response.ok) return;
  const select = $(id);
  const current = select.value;
  for (const name of await response.json()) {
    if (![...select.options].some((o) => o.value === name)) select.add(new Option(name, name));
  }
  select.value = current;
}

async function loadFilters() {
  await Promise.all([loadChoices("/api/services", "service"), loadChoices("/api/sources", "source")]);
}

async function main() {
  if (typeof echarts === "undefined") {
    setStatus("The charting library did not load (/static/vendor/echarts.min.js): see the gateway's log.", true);
    return;
  }
  document.documentElement.dataset.theme = theme();
  fillRanges($("range"));
  state.panels = await (await fetch("/api/panels")).json();
  layout();
  await loadFilters();
  await fitRange();
  $("range").addEventListener("change", () => { $("custom").hidden = $("range").value !== "custom"; refresh(); });
  $("from").addEventListener("change", refresh);
  $("to").addEventListener("change", refresh);
  $("service").addEventListener("change", refresh);
  $("source").addEventListener("change", refresh);
  $("live").addEventListener("change", schedule);
  $("theme").addEventListener("click", () => {
    localStorage.setItem("logpipe-theme", theme() === "dark" ? "light" : "dark");
    applyTheme();
  });
  document.addEventListener("visibilitychange", () => { schedule(); if (!document.hidden) refresh(); });
  window.addEventListener("resize", () => { for (const chart of state.charts.values()) chart.resize(); });
  setInterval(loadFilters, 60000);
  await refresh();
  schedule();
}

main();

// What the dashboard's pages share: the element lookup, the theme, the preset time ranges, JSON requests,
// table cells, the status line and rows that open to a detail row.
"use strict";

const RANGES = [[300000, "Last 5 minutes"], [900000, "Last 15 minutes"], [3600000, "Last hour"],
  [86400000, "Last 24 hours"]];
const DEFAULT_RANGE = 3600000;
const $ = (id) => document.getElementById(id);

function theme() {
  const saved = localStorage.getItem("logpipe-theme");
  if (saved) return saved;
  return window.matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light";
}

function fillRanges(select) {
  for (const [ms, label] of RANGES) select.add(new Option(label, String(ms), false, ms === DEFAULT_RANGE));
  select.add(new Option("Custom…", "custom"));
}

async function fetchJson(url, options = {}) {
  const response = await fetch(url, options);
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(typeof body.detail === "string" ? body.detail : `HTTP ${response.status}`);
  return body;
}

function cell(text, className = "") {
  const td = document.createElement("td");
  td.textContent = text === null || text === undefined ? "–" : String(text);
  if (className) td.className = className;
  return td;
}

function setStatus(text, error = false) {
  $("status").textContent = text;
  $("status").classList.toggle("error", error);
}

// Opens a detail row under tr, filled by fill(td), or closes the one that is open.
function toggleDetail(tr, colSpan, fill) {
  const open = tr.nextElementSibling;
  if (open && open.classList.contains("detail")) { open.remove(); return; }
  const detail = document.createElement("tr");
  detail.className = "detail";
  const td = document.createElement("td");
  td.colSpan = colSpan;
  fill(td);
  detail.append(td);
  tr.after(detail);
}

// What the dashboard's pages share: the element lookup, the theme and the preset time ranges.
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

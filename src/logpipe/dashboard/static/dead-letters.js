// logpipe's dead-letter page: reasons and dead letters from /api/dead-letters, replay through
// /api/dead-letters/replay (admin role), with a corrected raw record or as it is.
"use strict";

const state = { reason: "", next: null, loading: false, generation: 0, selected: new Set() };

function window_() {
  return { from: Date.now() - (Number($("range").value) || 86400000), to: Date.now() + 60000 };
}

function utc(ms) {
  return ms ? new Date(ms).toISOString().replace("T", " ").slice(0, 19) : "";
}

async function loadReasons() {
  const { from, to } = window_();
  const reasons = await fetchJson(`/api/dead-letters/reasons?from=${from}&to=${to}`);
  const tbody = $("reasons").tBodies[0];
  tbody.replaceChildren();
  for (const r of reasons) {
    const tr = document.createElement("tr");
    tr.className = "linked reason" + (r.reason === state.reason ? " chosen" : "");
    tr.append(cell(r.reason), cell(String(r.open), "num"), cell(String(r.letters), "num"), cell(utc(r.last_ms)));
    tr.addEventListener("click", () => { state.reason = state.reason === r.reason ? "" : r.reason; refresh(); });
    tbody.append(tr);
  }
  if (!reasons.length) tbody.append(Object.assign(document.createElement("tr"), { innerHTML: "<td colspan=4>no dead letters in this range</td>" }));
}

function letterRow(letter) {
  const tr = document.createElement("tr");
  tr.className = "letter";
  tr.dataset.id = letter.id;
  const box = document.createElement("input");
  box.type = "checkbox";
  box.disabled = letter.state !== "open";
  box.checked = state.selected.has(letter.id);
  box.setAttribute("aria-label", "select");
  box.addEventListener("click", (event) => {
    event.stopPropagation();
    if (box.checked) state.selected.add(letter.id); else state.selected.delete(letter.id);
    buttons();
  });
  const pick = document.createElement("td");
  pick.append(box);
  const shownState = letter.state === "failed" ? `failed again: ${letter.replay_reason}` : letter.state;
  tr.append(pick, cell(utc(letter.ingest_ms)), cell(letter.source), cell(letter.reason), cell(String(letter.copies), "num"),
    cell(shownState));
  tr.addEventListener("click", () => toggleDetail(tr, 6, (td) => showLetter(td, letter)));
  return tr;
}

function showLetter(td, letter) {
  const raw = document.createElement("textarea");
  raw.className = "raw";
  raw.value = letter.raw;
  raw.rows = Math.min(12, 2 + Math.ceil(letter.raw.length / 100));
  raw.readOnly = letter.state !== "open";
  raw.setAttribute("aria-label", "raw record");
  const where = document.createElement("p");
  where.className = "hint";
  where.textContent = `id ${letter.id} · ${letter.source}` + (letter.topic ? ` · ${letter.topic}[${letter.partition}]@${letter.offset}` : "");
  td.append(where, raw);
  if (letter.state === "open") {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "replay-one";
    button.textContent = "Replay this record";
    button.addEventListener("click", () => {
      const body = { ids: [letter.id] };
      if (raw.value !== letter.raw) body.fixes = { [letter.id]: raw.value };
      replay(body);
    });
    td.append(button);
  }
}

async function loadLetters(first) {
  if (!first && (state.loading || !state.next)) return;
  state.loading = true;
  const generation = state.generation;
  try {
    const { from, to } = window_();
    const params = new URLSearchParams({ from: String(from), to: String(to), state: $("state").value, reason: state.reason });
    if (!first) for (const [k, v] of Object.entries(state.next)) params.set(k, String(v));
    const body = await fetchJson(`/api/dead-letters?${params}`);
    if (generation !== state.generation) return;
    state.next = body.next;
    const tbody = $("letters").tBodies[0];
    for (const letter of body.letters) tbody.append(letterRow(letter));
    const shown = tbody.querySelectorAll("tr.letter").length;
    document.body.dataset.letters = String(shown);
    $("more").textContent = state.next ? "scroll for more" : (shown ? "" : "no dead letters match");
  } catch (error) {
    setStatus(String(error.message || error), true);
  } finally {
    if (generation === state.generation) state.loading = false;
  }
}

function buttons() {
  $("replay-selected").disabled = state.selected.size === 0;
  $("replay-reason").disabled = !state.reason;
}

async function replay(body) {
  setStatus("replaying…");
  try {
    const { from, to } = window_();
    const outcome = await fetchJson("/api/dead-letters/replay", {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ from, to, ...body }) });
    const parts = [`stored ${outcome.stored}`, `failed again ${outcome.failed}`];
    if (outcome.unsent.length) parts.push(`left open ${outcome.unsent.length}: ${outcome.unsent[0].reason}`);
    if (outcome.not_open.length) parts.push(`${outcome.not_open.length} replayed before`);
    if (outcome.errors.length) parts.push(`new reason: ${outcome.errors[0].reason}`);
    if (outcome.more) parts.push("more remain: replay again");
    state.selected.clear();
    await refresh();
    setStatus(`replay: ${parts.join(" · ")}`, outcome.failed > 0);
    document.body.dataset.replayed = String(Number(document.body.dataset.replayed || 0) + 1);
  } catch (error) {
    setStatus(`replay refused: ${error.message || error}`, true);
  }
}

async function refresh() {
  state.generation += 1;
  state.next = null;
  $("letters").tBodies[0].replaceChildren();
  $("letters-title").textContent = state.reason ? `Dead letters: ${state.reason}` : "Dead letters";
  buttons();
  history.replaceState(null, "", `/dead-letters?${new URLSearchParams({ range: $("range").value, state: $("state").value, reason: state.reason })}`);
  try {
    await loadReasons();
  } catch (error) {
    setStatus(String(error.message || error), true);
  }
  await loadLetters(true);
}

function main() {
  document.documentElement.dataset.theme = theme();
  fillRanges($("range"));
  $("range").querySelector('option[value="custom"]').remove();  // the presets are enough to pick letters from
  $("range").add(new Option("Last 7 days", "604800000"));
  $("range").add(new Option("Last 30 days", "2592000000"));
  $("range").value = "86400000";
  const params = new URLSearchParams(location.search);
  if (params.has("range")) $("range").value = params.get("range");
  if (params.has("state")) $("state").value = params.get("state");
  state.reason = params.get("reason") || "";
  $("range").addEventListener("change", refresh);
  $("state").addEventListener("change", refresh);
  $("replay-selected").addEventListener("click", () => replay({ ids: [...state.selected] }));
  $("replay-reason").addEventListener("click", () => replay({ reason: state.reason }));
  new IntersectionObserver((entries) => {
    if (entries.some((e) => e.isIntersecting)) loadLetters(false);
  }).observe($("more"));
  refresh();
}

main();

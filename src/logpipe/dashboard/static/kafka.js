// logpipe's Kafka page, read-only: /api/kafka/topics and /api/kafka/dead-letters, refreshed every 5 s.
"use strict";

const REFRESH_MS = 5000;

function row(...cells) {
  const tr = document.createElement("tr");
  tr.append(...cells);
  return tr;
}

function number(value) {
  return cell(value === null || value === undefined ? null : Number(value).toLocaleString("en-US"), "num");
}

async function refresh() {
  if (document.hidden) return;
  try {
    const [overview, letters] = await Promise.all([fetchJson("/api/kafka/topics"),
      fetchJson("/api/kafka/dead-letters?limit=20")]);
    $("summary").textContent = `${overview.bootstrap} · ${overview.brokers} broker(s) · group ${overview.group}`;
    const topics = $("topics").tBodies[0], partitions = $("partitions").tBodies[0];
    topics.replaceChildren(...overview.topics.map((t) => Object.assign(
      row(cell(t.topic), number(t.partitions.length), number(t.messages), number(t.end), number(t.lag)),
      { className: "topic" })));
    partitions.replaceChildren(...overview.topics.flatMap((t) => t.partitions.map((p) => row(cell(t.topic),
      number(p.partition), number(p.leader), number(p.earliest), number(p.end), number(p.committed), number(p.lag)))));
    const dlq = $("dlq").tBodies[0];
    dlq.replaceChildren(...letters.map((m) => {
      const from = m.headers.origin_topic ? `${m.headers.origin_topic}[${m.headers.origin_partition}]@${m.headers.origin_offset}` : "";
      const tr = row(cell(new Date(m.timestamp_ms).toISOString().replace("T", " ").slice(0, 19)),
        cell(`${m.partition}@${m.offset}`), cell(m.headers.error || ""), cell(from),
        cell(m.value + (m.truncated ? " … (cut at 64 KiB)" : "")));
      tr.className = "dlq-message";
      return tr;
    }));
    if (!letters.length) dlq.append(row(Object.assign(cell("no dead letters in the topic"), { colSpan: 5 })));
    setStatus(`updated ${new Date().toLocaleTimeString()}`);
    document.body.dataset.refreshed = String(Number(document.body.dataset.refreshed || 0) + 1);
  } catch (error) {
    setStatus(String(error.message || error), true);
  }
}

function main() {
  document.documentElement.dataset.theme = theme();
  let timer = setInterval(refresh, REFRESH_MS);
  $("live").addEventListener("change", () => {
    clearInterval(timer);
    timer = $("live").checked ? setInterval(refresh, REFRESH_MS) : null;
  });
  refresh();
}

main();

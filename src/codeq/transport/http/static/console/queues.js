// The Queues page: one row per command with its counts, polled every 2 s, and a sparkline
// of each queue's completion rate (or, on servers without the overview, its ready depth).
import { API, call, enc, hasRoute } from "./api.js";
import { h, replace, svg } from "./dom.js";

const POLL_MS = 2000;
const SAMPLES = 30;
const COLUMNS = [
  ["ready", "Ready"], ["delayed", "Delayed"], ["inProgress", "In progress"],
  ["deadLettered", "Dead-lettered"], ["completed1h", "Completed (1h)"], ["failed1h", "Failed (1h)"],
];
// `GET /admin/queues` labels: codeq:q:<command>:<tenant>:pending:<priority>|inprog|delayed|dlq
const LABEL = /^codeq:q:(.+):[^:]+:(pending:\d+|inprog|delayed|dlq)$/;
const LABEL_FIELD = { inprog: "inProgress", delayed: "delayed", dlq: "deadLettered" };

export async function queuesView(ctx) {
  const overview = await hasRoute(`${API}/admin/overview`);
  const state = { rows: new Map(), history: new Map(), overview };
  const tbody = h("tbody");
  const empty = h("p", { class: "muted", hidden: true }, "No queues yet: create a task and its command shows up here.");
  replace(ctx.view,
    h("h1", { tabindex: -1 }, "Queues"),
    h("div", { class: "table-wrap" },
      h("table", { id: "queues" },
        h("caption", {}, "Tasks per command in your tenant, refreshed every 2 seconds"),
        h("thead", {}, h("tr", {},
          h("th", { scope: "col" }, "Command"),
          COLUMNS.map(([, title]) => h("th", { scope: "col", class: "num" }, title)),
          h("th", { scope: "col" }, overview ? "Rate (completed/min)" : "Ready depth"))),
        tbody)),
    empty);
  const refresh = async () => {
    const queues = overview ? (await call("admin/overview")).queues : await fromLabels();
    update(state, tbody, queues);
    empty.hidden = queues.length > 0;
  };
  await refresh();
  return ctx.every(POLL_MS, refresh);
}

async function fromLabels() {
  const labels = await call("admin/queues");
  const byCommand = new Map();
  for (const [label, count] of Object.entries(labels)) {
    const match = LABEL.exec(label);
    if (!match) continue;
    const [, command, kind] = match;
    if (!byCommand.has(command)) {
      byCommand.set(command, { command, ready: 0, delayed: 0, inProgress: 0, deadLettered: 0 });
    }
    const field = kind.startsWith("pending") ? "ready" : LABEL_FIELD[kind];
    byCommand.get(command)[field] += count;
  }
  return [...byCommand.values()];
}

// Cells are updated in place, so a focused link survives the refresh.
function update(state, tbody, queues) {
  const seen = new Set();
  for (const queue of [...queues].sort((a, b) => a.command.localeCompare(b.command))) {
    seen.add(queue.command);
    let row = state.rows.get(queue.command);
    if (!row) {
      row = newRow(queue.command);
      state.rows.set(queue.command, row);
    }
    tbody.append(row.tr); // appending in sorted order keeps the rows sorted
    for (const [key] of COLUMNS) row.cells[key].textContent = queue[key] ?? "—";
    const series = push(state.history, queue.command, state.overview ? queue.completed1m : queue.ready);
    replace(row.spark, sparkline(series, state.overview ? "completed per minute" : "ready"));
  }
  for (const [command, row] of state.rows) {
    if (!seen.has(command)) {
      row.tr.remove();
      state.rows.delete(command);
    }
  }
}

function newRow(command) {
  const cells = {};
  const tr = h("tr", { "data-command": command },
    h("th", { scope: "row" }, h("a", { href: `#/queues/${enc(command)}/tasks` }, command)));
  for (const [key] of COLUMNS) {
    const td = h("td", { class: "num", "data-col": key });
    cells[key] = td;
    if (key === "deadLettered") {
      cells[key] = h("a", { href: `#/queues/${enc(command)}/dlq`, title: `Dead letters of ${command}` });
      td.append(cells[key]);
    }
    tr.append(td);
  }
  const spark = h("td", { class: "spark" });
  tr.append(spark);
  return { tr, cells, spark };
}

function push(history, command, value) {
  const series = history.get(command) || [];
  series.push(Number(value) || 0);
  if (series.length > SAMPLES) series.shift();
  history.set(command, series);
  return series;
}

function sparkline(series, what) {
  const width = 120;
  const height = 24;
  const top = Math.max(1, ...series);
  const step = width / (SAMPLES - 1);
  const offset = (SAMPLES - series.length) * step;
  const points = series.map((v, i) => `${(offset + i * step).toFixed(1)},${(height - 2 - (v / top) * (height - 4)).toFixed(1)}`);
  if (points.length === 1) points.unshift(`${width - step},${points[0].split(",")[1]}`); // a dash, not nothing
  const latest = series[series.length - 1];
  return svg("svg", {
    viewBox: `0 0 ${width} ${height}`, width, height, role: "img", "aria-label": `${what}: ${latest}`,
  }, svg("polyline", { points: points.join(" "), fill: "none", stroke: "currentColor", "stroke-width": 1.5 }));
}

// A queue's tasks by state (paged), and one task's page with its Cancel and Requeue actions.
import { API, call, enc, hasRoute } from "./api.js";
import { h, pretty, replace, table } from "./dom.js";

const PAGE = 25;
const STATES = [
  ["ready", "Ready"], ["delayed", "Delayed"], ["in_progress", "In progress"],
  ["completed", "Completed"], ["failed", "Failed"], ["dead_lettered", "Dead-lettered"],
];
const OPEN = new Set(["PENDING", "IN_PROGRESS"]);

export async function tasksView(ctx, [command], query) {
  const state = STATES.some(([s]) => s === query.get("state")) ? query.get("state") : "ready";
  const order = query.get("order") === "oldest" ? "oldest" : "newest";
  const cursor = query.get("cursor") || "";
  const link = (params) => `#/queues/${enc(command)}/tasks?${new URLSearchParams({ state, order, ...params })}`;
  const heading = [
    h("h1", { tabindex: -1 }, `Tasks of ${command}`),
    h("nav", { class: "tabs", "aria-label": "Task states" }, STATES.map(([s, title]) =>
      h("a", { href: link({ state: s }), "aria-current": s === state ? "page" : null }, title))),
  ];
  if (!(await hasRoute(`${API}/admin/queues/{command}/tasks`))) {
    replace(ctx.view, heading, h("p", { class: "muted" }, "This server cannot list tasks; open a task by its id instead."));
    return;
  }
  const params = new URLSearchParams({ state, order, limit: PAGE });
  if (cursor) params.set("cursor", cursor);
  const page = await call(`admin/queues/${enc(command)}/tasks?${params}`);
  const orderSelect = h("select", { id: "order", onchange: (e) => ctx.go(link({ order: e.target.value })) },
    h("option", { value: "newest", selected: order === "newest" }, "Newest first"),
    h("option", { value: "oldest", selected: order === "oldest" }, "Oldest first"));
  const rows = page.tasks.map((task) => h("tr", { "data-task": task.id },
    h("th", { scope: "row" }, h("a", { href: `#/tasks/${enc(task.id)}`, class: "mono" }, task.id)),
    h("td", {}, task.status), h("td", { class: "num" }, task.priority ?? 0),
    h("td", { class: "num" }, task.attempts ?? 0), h("td", {}, task.updatedAt)));
  replace(ctx.view, heading,
    h("p", { class: "controls" }, h("label", { for: "order" }, "Order"), orderSelect),
    table(`${STATES.find(([s]) => s === state)[1]} tasks`, ["ID", "Status", "Priority", "Attempts", "Updated"], rows),
    page.tasks.length ? null : h("p", { class: "muted" }, "No tasks in this state."),
    h("p", { class: "pager" },
      cursor ? h("a", { href: link({}) }, "First page") : null,
      page.nextCursor ? h("a", { href: link({ cursor: page.nextCursor }) }, "Next page") : null));
}

export async function taskView(ctx, [id]) {
  const task = await call(`tasks/${enc(id)}`);
  const result = task.resultKey ? await call(`tasks/${enc(id)}/result`) : null;
  const canCancel = OPEN.has(task.status) && !task.cancelRequested && (await hasRoute(`${API}/tasks/{id}/cancel`));
  const deadLettered = task.lastKnownLocation === "DLQ_SET";
  const rerender = async () => { await taskView(ctx, [id]); };
  const cancel = async () => {
    const updated = await call(`tasks/${enc(id)}/cancel`, { method: "POST" });
    ctx.say(updated.cancelRequested && updated.status === "IN_PROGRESS"
      ? "Cancel requested: the worker holding it is told at its next heartbeat." : "Task cancelled.");
    await rerender();
  };
  const requeue = async () => {
    await call(`admin/dlq/${enc(task.command)}/requeue`, { method: "POST", body: { taskIds: [id] } });
    ctx.say("Task requeued.");
    await rerender();
  };
  replace(ctx.view,
    h("h1", { tabindex: -1 }, "Task ", h("span", { class: "mono" }, task.id)),
    h("p", { class: "actions" },
      canCancel ? h("button", { type: "button", onclick: guard(ctx, cancel) }, "Cancel") : null,
      deadLettered ? h("button", { type: "button", onclick: guard(ctx, requeue) }, "Requeue") : null,
      h("a", { href: `#/queues/${enc(task.command)}/tasks` }, `All tasks of ${task.command}`)),
    h("dl", { class: "facts" }, facts(task).map(([term, value]) =>
      [h("dt", {}, term), h("dd", { "data-fact": term }, value === "" || value === undefined ? "—" : value)])),
    h("h2", {}, "Payload"), h("pre", { id: "payload", tabindex: 0 }, pretty(task.payload)),
    h("h2", {}, "Result"),
    result
      ? [h("p", {}, `${result.status} at ${result.completedAt}`, result.error ? ` — ${result.error}` : ""),
        h("pre", { id: "result", tabindex: 0 }, pretty(result.result) || "(no result body)")]
      : h("p", { class: "muted" }, "No result yet."));
}

function facts(task) {
  return [
    ["ID", task.id], ["Command", task.command],
    ["Status", task.cancelRequested ? `${task.status} (cancel requested)` : task.status],
    ["Attempts", `${task.attempts ?? 0} of ${task.maxAttempts ?? "?"}`], ["Priority", task.priority ?? 0],
    ["Lease holder", task.workerId], ["Lease expires", task.leaseUntil],
    ["Where", task.lastKnownLocation], ["Error", task.error],
    ["Webhook", task.webhook ? `${task.webhook} (result callback ${task.resultKey ? "due" : "waits for the result"})` : "none"],
    ["Created", task.createdAt], ["Updated", task.updatedAt],
  ];
}

// One click at a time: the button is disabled while its request runs, errors go to the status line.
export function guard(ctx, action) {
  return async (event) => {
    const button = event.currentTarget;
    button.disabled = true;
    try {
      await action();
    } catch (error) {
      ctx.fail(error);
    } finally {
      button.disabled = false;
    }
  };
}

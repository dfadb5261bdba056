// Dead letters of one queue: requeue or purge one task or all of them (purge asks first).
import { call, enc } from "./api.js";
import { h, replace, table } from "./dom.js";
import { guard } from "./tasks.js";

const PAGE = 25;

export async function dlqView(ctx, [command], query) {
  const after = query.get("after") || "";
  const params = new URLSearchParams({ limit: PAGE });
  if (after) params.set("after", after);
  const page = await call(`admin/dlq/${enc(command)}?${params}`);
  const reload = async () => { await dlqView(ctx, [command], query); };
  const act = (verb, body, what) => guard(ctx, async () => {
    if (verb === "purge" && !(await ctx.confirm(`Purge ${what}? Purged tasks are gone for good.`))) return;
    const done = await call(`admin/dlq/${enc(command)}/${verb}`, { method: "POST", body });
    ctx.say(verb === "purge" ? `Purged ${done.purged ?? 0}.` : `Requeued ${done.requeued ?? 0}.`);
    await reload();
  });
  const rows = page.tasks.map((task) => h("tr", { "data-task": task.id },
    h("th", { scope: "row" }, h("a", { href: `#/tasks/${enc(task.id)}`, class: "mono" }, task.id)),
    h("td", { class: "num" }, task.attempts ?? 0), h("td", {}, task.error || "—"), h("td", {}, task.updatedAt),
    h("td", { class: "actions" },
      h("button", { type: "button", onclick: act("requeue", { taskIds: [task.id] }), "aria-label": `Requeue ${task.id}` }, "Requeue"),
      h("button", { type: "button", class: "danger", onclick: act("purge", { taskIds: [task.id] }, `task ${task.id}`), "aria-label": `Purge ${task.id}` }, "Purge"))));
  const any = page.tasks.length > 0;
  replace(ctx.view,
    h("h1", { tabindex: -1 }, `Dead letters of ${command}`),
    h("p", { class: "actions" },
      h("button", { type: "button", disabled: !any, onclick: act("requeue", { all: true }) }, "Requeue all"),
      h("button", { type: "button", class: "danger", disabled: !any, onclick: act("purge", { all: true }, `all dead letters of ${command}`) }, "Purge all"),
      h("a", { href: `#/queues/${enc(command)}/tasks` }, `All tasks of ${command}`)),
    table("Dead-lettered tasks", ["ID", "Attempts", "Last error", "Dead-lettered at", "Actions"], rows),
    any ? null : h("p", { class: "muted" }, "No dead letters."),
    h("p", { class: "pager" },
      after ? h("a", { href: `#/queues/${enc(command)}/dlq` }, "First page") : null,
      page.nextAfter ? h("a", { href: `#/queues/${enc(command)}/dlq?after=${enc(page.nextAfter)}` }, "Next page") : null));
}

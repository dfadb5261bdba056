// The Cluster page: each Raft group's leader and term, and every node's applied index and
// readiness; in single-node mode, the shards and their commit latency from /metrics.
import { ApiError, call } from "./api.js";
import { h, replace, table } from "./dom.js";

const POLL_MS = 2000;

export async function clusterView(ctx) {
  const render = async () => {
    const [status, ready] = await Promise.all([call("raft/status"), readiness()]);
    const body = status.enabled ? raftTable(status.groups, ready) : await shardTable();
    replace(ctx.view,
      h("h1", { tabindex: -1 }, "Cluster"),
      h("p", { id: "readiness", class: ready.ok ? "ok" : "error" },
        ready.ok ? "This node is ready." : `This node is not ready: ${ready.why}`),
      h("p", { class: "muted" }, status.enabled
        ? `Raft: ${status.numGroups} group(s), as seen from this node.`
        : "Single-node mode: no Raft; each shard commits to its own store."),
      body);
  };
  await render();
  return ctx.every(POLL_MS, render);
}

async function readiness() {
  try {
    await call("/readyz");
    return { ok: true };
  } catch (error) {
    if (error instanceof ApiError) return { ok: false, why: error.message };
    throw error;
  }
}

// One row per voter of each group. A peer's applied index is what the group's leader knows
// of it (null on a follower); a peer's readiness is this node's last probe of its /readyz.
function raftTable(groups, ready) {
  const rows = groups.map((g) => {
    const nodes = g.nodes || [{ id: g.selfId, addr: g.selfAddr, appliedIndex: g.appliedIndex, ready: ready.ok }];
    return nodes.map((node) => h("tr", { "data-shard": g.shardIdx, "data-node": node.id },
      h("th", { scope: "row" }, g.shardIdx),
      h("td", {}, g.hasLeader ? `${g.leaderId} (${g.leaderAddr})` : "none"),
      h("td", { class: "num" }, g.term ?? "—"),
      h("td", {}, `${node.id} (${node.addr})`, node.id === g.leaderId ? " — leader" : ""),
      appliedCell(node),
      readinessCell(node)));
  });
  return [
    table("Raft groups", ["Group", "Leader", "Term", "Node", "Applied index", "Readiness"], rows),
    h("p", { class: "muted" },
      "A peer's applied index is known only on its group's leader (the entries the leader knows it holds); "
      + "a peer's readiness is this node's last check of its /readyz."),
  ];
}

function appliedCell(node) {
  if (node.appliedIndex === null || node.appliedIndex === undefined) {
    return h("td", { class: "num muted", title: "known only on this group's leader" }, "—");
  }
  return h("td", { class: "num" }, node.appliedIndex);
}

function readinessCell(node) {
  if (node.ready === null || node.ready === undefined) return h("td", { class: "muted" }, "unknown");
  return h("td", { class: node.ready ? "ok" : "error" }, node.ready ? "ready" : "not ready");
}

// codeq_commit_latency_seconds{shard} is a Prometheus histogram: mean = _sum / _count.
// With a process per shard the page carries a shard_process label too (ADR 0009).
async function shardTable() {
  const text = await call("/metrics");
  const shards = new Map();
  const line = /^codeq_commit_latency_seconds_(sum|count)\{(?:[^}]*,)?shard="([^"]*)"[^}]*\} (\S+)$/;
  for (const row of String(text).split("\n")) {
    const match = line.exec(row);
    if (!match) continue;
    const [, kind, shard, value] = match;
    if (!shards.has(shard)) shards.set(shard, { sum: 0, count: 0 });
    shards.get(shard)[kind] = Number(value);
  }
  const rows = [...shards.entries()].sort(([a], [b]) => Number(a) - Number(b)).map(([shard, m]) =>
    h("tr", { "data-shard": shard },
      h("th", { scope: "row" }, shard),
      h("td", { class: "num" }, m.count),
      h("td", { class: "num" }, m.count ? `${((m.sum / m.count) * 1000).toFixed(2)} ms` : "—")));
  return [
    table("Shards", ["Shard", "Group commits", "Mean commit latency"], rows),
    rows.length ? null : h("p", { class: "muted" }, "No commits yet: shards appear after their first write."),
  ];
}

// The console's shell: sign-in, the hash routes, the status line, polling and confirmations.
import { ApiError, call, session } from "./api.js";
import { clusterView } from "./cluster.js";
import { dlqView } from "./dlq.js";
import { h, replace } from "./dom.js";
import { queuesView } from "./queues.js";
import { taskView, tasksView } from "./tasks.js";

const view = document.getElementById("view");
const nav = document.getElementById("nav");
const statusLine = document.getElementById("status");
const dialog = document.getElementById("confirm");
let stopView = () => {};
let navigation = 0; // counts route changes, so a slow page cannot outlive a newer one

const ROUTES = [
  [/^\/?$/, queuesView],
  [/^\/queues$/, queuesView],
  [/^\/queues\/([^/]+)\/tasks$/, tasksView],
  [/^\/queues\/([^/]+)\/dlq$/, dlqView],
  [/^\/tasks\/([^/]+)$/, taskView],
  [/^\/cluster$/, clusterView],
];

function say(message, kind = "info") {
  statusLine.textContent = message;
  statusLine.className = `status ${kind}`;
}

// 401 and a token that no longer passes the check: sign in again. 403, or a 401 for a token
// that still passes (admin routes answer a worker token 401): its role may not see this page;
// other pages may still work, so it stays signed in.
async function fail(error) {
  if (error instanceof ApiError && error.status === 401 && !(await tokenWorks())) {
    session.signOut();
    showSignIn(`Your token was not accepted (${error.message}). Sign in again.`);
  } else if (error instanceof ApiError && (error.status === 401 || error.status === 403)) {
    stopView();
    replace(view,
      h("h1", { tabindex: -1 }, "Not allowed"),
      h("p", { class: "error", role: "alert" }, `This token's role may not see this page: ${error.message}.`),
      h("button", { type: "button", onclick: () => { session.signOut(); showSignIn(); } },
        "Sign in with another token"));
  } else {
    say(error instanceof Error ? error.message : String(error), "error");
  }
}

// Any valid token, producer or worker, may read the Raft status: a cheap check of the token.
async function tokenWorks() {
  try {
    await call("raft/status");
    return true;
  } catch {
    return false;
  }
}

// Runs `fn` now and then every `ms` after each run ends, so slow answers never pile up.
function every(ms, fn) {
  let timer = null;
  let stopped = false;
  const tick = async () => {
    try {
      await fn();
    } catch (error) {
      await fail(error);
      if (error instanceof ApiError && (error.status === 401 || error.status === 403)) return;
    }
    if (!stopped) timer = window.setTimeout(tick, ms);
  };
  timer = window.setTimeout(tick, ms);
  return () => { stopped = true; window.clearTimeout(timer); };
}

function confirm(text) {
  document.getElementById("confirm-text").textContent = text;
  dialog.returnValue = "";
  dialog.showModal();
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
  });
}

const ctx = { view, say, fail, every, confirm, go: (hash) => { window.location.hash = hash; } };

async function route(focus) {
  stopView();
  stopView = () => {};
  const current = ++navigation;
  if (!session.token) return showSignIn();
  nav.hidden = false;
  const [path, query] = window.location.hash.replace(/^#/, "").split("?");
  const found = ROUTES.find(([pattern]) => pattern.test(path));
  if (!found) {
    replace(view, h("h1", { tabindex: -1 }, "Not found"), h("p", {}, h("a", { href: "#/queues" }, "Go to Queues")));
    return;
  }
  const [pattern, render] = found;
  const args = path.match(pattern).slice(1).map(decodeURIComponent);
  say("");
  try {
    const stop = (await render(ctx, args, new URLSearchParams(query || ""))) || (() => {});
    if (current === navigation) stopView = stop;
    else stop();
  } catch (error) {
    await fail(error);
  }
  if (focus) view.querySelector("h1")?.focus();
}

function showSignIn(message) {
  stopView();
  stopView = () => {};
  nav.hidden = true;
  say("");
  const input = h("input", {
    id: "token", name: "token", type: "password", autocomplete: "off", required: true,
    spellcheck: "false", "aria-describedby": message ? "sign-in-error" : null,
  });
  const submit = async (event) => {
    event.preventDefault();
    const token = input.value.trim();
    if (!token) return;
    session.signIn(token);
    if (!(await tokenWorks())) {
      session.signOut();
      return showSignIn("That token was not accepted. Check it and sign in again.");
    }
    await route(true);
  };
  replace(view,
    h("form", { class: "sign-in", onsubmit: submit },
      h("h1", {}, "Sign in"),
      message ? h("p", { id: "sign-in-error", class: "error", role: "alert" }, message) : null,
      h("p", { class: "muted" },
        "Paste an API token. It is kept for this browser session only and sent as a bearer token."),
      h("label", { for: "token" }, "Token"),
      input,
      h("button", { type: "submit" }, "Sign in")));
}

document.getElementById("sign-out").addEventListener("click", () => {
  session.signOut();
  showSignIn();
});
window.addEventListener("hashchange", () => route(true));
route(false);

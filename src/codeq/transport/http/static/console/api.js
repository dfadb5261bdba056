// The public HTTP API with the session's bearer token. The token lives in sessionStorage
// only, so it is gone when the browser session ends.

const TOKEN_KEY = "codeq.token";
export const API = "/v1/codeq";

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

export const session = {
  get token() { return window.sessionStorage.getItem(TOKEN_KEY); },
  signIn(token) { window.sessionStorage.setItem(TOKEN_KEY, token); },
  signOut() { window.sessionStorage.removeItem(TOKEN_KEY); },
};

export async function call(path, { method = "GET", body } = {}) {
  const headers = { Authorization: `Bearer ${session.token}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const url = path.startsWith("/") ? path : `${API}/${path}`;
  const response = await fetch(url, {
    method, headers, body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  const type = response.headers.get("content-type") || "";
  const data = type.startsWith("application/json") && text ? JSON.parse(text) : text;
  if (!response.ok) {
    const message = data && data.error ? data.error : `${response.status} ${response.statusText}`;
    throw new ApiError(response.status, message);
  }
  return data;
}

let routes = null;

// Which API routes this server has, from its OpenAPI document: the console asks for a
// newer route only where it exists, instead of probing and logging 404s.
export async function hasRoute(path) {
  routes ??= fetch("/openapi.json")
    .then((response) => (response.ok ? response.json() : { paths: {} }))
    .then((doc) => new Set(Object.keys(doc.paths || {})));
  return (await routes).has(path);
}

export const enc = encodeURIComponent;

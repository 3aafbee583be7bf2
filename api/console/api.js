// The public JSON API with the key in a header (never in a URL), and server-sent events
// read through fetch() so the same header goes with them.
const KEY = "gw.key";

export const auth = {
  get key() { return sessionStorage.getItem(KEY) || ""; },
  set(key) { sessionStorage.setItem(KEY, key.trim()); },
  clear() { sessionStorage.removeItem(KEY); },
};

// A person logged in (POST /auth/login) is known by the HttpOnly session cookie, which the
// browser sends by itself; changes made with it carry the session's CSRF token (issue 15).
let csrfToken = "";
export const session = {
  get csrf() { return csrfToken; },
  set(token) { csrfToken = token || ""; },
};

export class ApiError extends Error {
  constructor(status, detail) {
    super(formatDetail(detail));
    this.status = status;
  }
}

function formatDetail(detail) {
  if (Array.isArray(detail)) {  // FastAPI validation errors: [{loc, msg}, ...]
    return detail.map((d) => `${(d.loc || []).slice(1).join(".")}: ${d.msg}`).join("\n");
  }
  return typeof detail === "string" ? detail : JSON.stringify(detail);
}

function headers(extra = {}, method = "GET") {
  const h = { ...extra };
  if (auth.key) h.Authorization = `Bearer ${auth.key}`;
  else if (csrfToken && method !== "GET" && method !== "HEAD") h["X-CSRF-Token"] = csrfToken;
  return h;
}

export async function api(path, { method = "GET", body, raw = false, text, type = "text/plain" } = {}) {
  // ``text``: a body sent as is with Content-Type ``type`` (a CSV import); ``body``: JSON
  const extra = text !== undefined ? { "Content-Type": type } : body === undefined ? {} : { "Content-Type": "application/json" };
  const init = { method, headers: headers(extra, method), cache: "no-store" };
  if (body !== undefined) init.body = JSON.stringify(body);
  else if (text !== undefined) init.body = text;
  const r = await fetch(path, init);
  if (!r.ok) {
    let detail = r.statusText;
    try { detail = (await r.json()).detail ?? detail; } catch { /* not JSON */ }
    throw new ApiError(r.status, detail);
  }
  if (raw) return r;
  return r.status === 204 ? null : r.json();
}

/** Log in as a person: the session cookie is set by the answer; keeps its CSRF token. */
export async function login(username, password) {
  auth.clear();
  const me = await api("/auth/login", { method: "POST", body: { username, password } });
  session.set(me.csrf_token);
  return me;
}

/** GET a picture or clip with the key and return an object URL for <img>/<video>. */
export async function objectUrl(path) {
  const r = await api(path, { raw: true });
  return URL.createObjectURL(await r.blob());
}

const sleep = (ms) => new Promise((ok) => setTimeout(ok, ms));

/**
 * Server-sent events over fetch: like EventSource (reconnects, sends Last-Event-ID), but with
 * the Authorization header. onMessage gets each `data:` parsed as JSON. A 401 answer ends it
 * and calls onUnauthorized (when given) instead of reconnecting.
 */
export function eventStream(url, onMessage, { onState = () => {}, onUnauthorized = null } = {}) {
  let lastId = null;
  let retry = 3000;
  let stopped = false;
  let ctrl = null;

  function dispatch(block) {
    let data = null;
    for (const line of block.split("\n")) {
      if (!line || line.startsWith(":")) continue;
      const i = line.indexOf(":");
      const field = i < 0 ? line : line.slice(0, i);
      const value = i < 0 ? "" : line.slice(i + 1).replace(/^ /, "");
      if (field === "id") lastId = value;
      else if (field === "retry" && /^\d+$/.test(value)) retry = Number(value);
      else if (field === "data") data = data === null ? value : `${data}\n${value}`;
    }
    if (data !== null) {
      try { onMessage(JSON.parse(data)); } catch (e) { console.warn("bad event", e); }
    }
  }

  (async () => {
    while (!stopped) {
      ctrl = new AbortController();
      try {
        const h = headers({ Accept: "text/event-stream" });
        if (lastId !== null) h["Last-Event-ID"] = lastId;
        const r = await fetch(url, { headers: h, signal: ctrl.signal, cache: "no-store" });
        if (r.status === 401 && onUnauthorized) {  // the key was revoked or the session ended: retrying cannot help
          stopped = true;
          onState(false);
          onUnauthorized();
          return;
        }
        if (!r.ok) throw new ApiError(r.status, r.statusText);
        onState(true);
        const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
        let buf = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buf += value.replace(/\r\n?/g, "\n");
          let i;
          while ((i = buf.indexOf("\n\n")) >= 0) {
            dispatch(buf.slice(0, i));
            buf = buf.slice(i + 2);
          }
        }
      } catch (e) {
        if (stopped) return;
        console.warn("event stream", e);
      }
      onState(false);
      await sleep(retry);
    }
  })();
  return { close() { stopped = true; ctrl?.abort(); } };
}

// Load a vendored script or stylesheet (api/console/vendor/) once, when a view first needs it:
// the wall does not pay for the chart and map libraries. Same origin only (the CSP allows 'self').
const loaded = new Map();

function once(url, make) {
  if (!loaded.has(url)) {
    loaded.set(url, new Promise((ok, fail) => {
      const node = make();
      node.addEventListener("load", () => ok(), { once: true });
      node.addEventListener("error", () => { loaded.delete(url); fail(new Error(`cannot load ${url}`)); }, { once: true });
      document.head.append(node);
    }));
  }
  return loaded.get(url);
}

/** A classic script (a UMD bundle that sets a global), in order after those before it. */
export function loadScript(url) {
  return once(url, () => Object.assign(document.createElement("script"), { src: url, async: false }));
}

/** A stylesheet. */
export function loadStyle(url) {
  return once(url, () => Object.assign(document.createElement("link"), { rel: "stylesheet", href: url }));
}

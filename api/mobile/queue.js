/* The phone page's outbox: actions (accept, handle with photos, reject) are kept in IndexedDB
   (photos are Blobs; localStorage cannot hold them) and sent in order when the connection
   allows. Each action has its own Idempotency-Key, made once when it is queued, so a retry after
   a lost answer does nothing twice on the server. */
"use strict";
const PhoneQueue = (() => {
  let dbp = null;
  function db() {
    if (!dbp) {
      dbp = new Promise((resolve, reject) => {
        const req = indexedDB.open("gw-phone", 1);
        req.onupgradeneeded = () => req.result.createObjectStore("actions", { keyPath: "key" });
        req.onsuccess = () => resolve(req.result);
        req.onerror = () => reject(req.error);
      });
    }
    return dbp;
  }
  async function run(mode, fn) {
    const d = await db();
    return new Promise((resolve, reject) => {
      const tx = d.transaction("actions", mode);
      const out = fn(tx.objectStore("actions"));
      tx.oncomplete = () => resolve(out && "result" in out ? out.result : undefined);
      tx.onerror = () => reject(tx.error);
    });
  }
  function newKey() {
    const bytes = new Uint8Array(16);
    crypto.getRandomValues(bytes);
    return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }
  return {
    /* Queue {kind, id, note?, photos?}; returns the stored action. */
    async add(action) {
      const stored = { ...action, key: newKey(), queued_at: Date.now() };
      await run("readwrite", (s) => s.put(stored));
      return stored;
    },
    async all() {
      const items = (await run("readonly", (s) => s.getAll())) || [];
      return items.sort((a, b) => a.queued_at - b.queued_at);
    },
    async remove(key) { await run("readwrite", (s) => s.delete(key)); },
  };
})();

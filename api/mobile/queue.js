/* The phone page's outbox: actions (accept, handle with photos, reject) are kept in IndexedDB
   (photos are Blobs; localStorage cannot hold them) and sent in order when the connection
   allows. Each action has its own Idempotency-Key, made once when it is queued, so a retry after
   a lost answer does nothing twice on the server.

   Each action carries the person who queued it ({person: id, person_name: username}): a duty
   phone is shared, and an action is only ever sent in its own person's session (phone.js). An
   action the server refused for good stays here, marked `refused: {status, reason}`, until its
   person has read why and removed it; another person's actions are removed only when someone
   discards them explicitly. The photos of an action live in its record, so they go with it.

   The outbox is bounded: at most MAX actions (everyone's, waiting or refused, together), each
   with at most MAX_PHOTOS photos (what one POST /workorders/{id}/photos takes). */
"use strict";
const PhoneQueue = (() => {
  const MAX = 20;
  const MAX_PHOTOS = 4;
  class Full extends Error {}
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
      tx.onabort = () => reject(tx.error || new Error("aborted"));
    });
  }
  function newKey() {
    const bytes = new Uint8Array(16);
    crypto.getRandomValues(bytes);
    return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }
  return {
    MAX, MAX_PHOTOS, Full,
    /* Queue {kind, id, person, person_name, note?, photos?}; returns the stored action. Throws
       Full when the outbox holds MAX actions already (counted and added in one transaction). */
    async add(action) {
      if (typeof action.person !== "number") throw new Error("an action needs the person who queued it");
      if ((action.photos || []).length > MAX_PHOTOS) throw new Error(`at most ${MAX_PHOTOS} photos`);
      const stored = { ...action, key: newKey(), queued_at: Date.now() };
      let full = false;
      await run("readwrite", (s) => {
        const c = s.count();
        c.onsuccess = () => { if (c.result < MAX) s.put(stored); else full = true; };
      });
      if (full) throw new Full(`the outbox holds ${MAX} actions`);
      return stored;
    },
    async all() {
      const items = (await run("readonly", (s) => s.getAll())) || [];
      return items.sort((a, b) => a.queued_at - b.queued_at);
    },
    /* Mark an action as refused for good (it is not sent again; its person sees why). */
    async refuse(key, status, reason) {
      await run("readwrite", (s) => {
        const g = s.get(key);
        g.onsuccess = () => { if (g.result) s.put({ ...g.result, refused: { status, reason, at: Date.now() } }); };
      });
    },
    async remove(key) { await run("readwrite", (s) => s.delete(key)); },
    /* Remove these actions (with their photos), in one transaction. */
    async removeAll(keys) { await run("readwrite", (s) => { for (const k of keys) s.delete(k); }); },
  };
})();

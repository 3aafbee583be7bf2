// The evidence clip with its triggering objects boxed: the clip is the camera's own video
// (never re-encoded), and GET /incidents/{id}/clip/tracks gives where the objects that
// triggered the incident were over it; a canvas over the <video> draws them in the trigger
// colour (the snapshot's red) at the playing time.
import { api } from "./api.js";

const TRIGGER = "#ff0000";
const HOLD_S = 0.6; // a box stays drawn this long after its analysed frame (analysis runs at a few fps)

export function clipWithTracks(src, incidentId) {
  const video = document.createElement("video");
  Object.assign(video, { src, controls: true, muted: true, playsInline: true });
  const canvas = document.createElement("canvas");
  canvas.className = "tracks";
  canvas.dataset.boxes = "0";
  const box = document.createElement("div");
  box.className = "trackview";
  box.append(video, canvas);
  let frames = [];
  api(`/incidents/${incidentId}/clip/tracks`)
    .then((r) => { frames = r.frames; canvas.dataset.frames = String(frames.length); draw(); })
    .catch(() => { canvas.dataset.frames = "0"; }); // none: the plain clip

  function at(time) { // the newest analysed frame at or before `time`, if recent enough
    let found = null;
    for (const f of frames) { if (f.t <= time + 1e-3) found = f; else break; }
    return found && time - found.t <= HOLD_S ? found : null;
  }

  function draw() {
    const w = video.clientWidth, h = video.clientHeight;
    if (canvas.width !== w || canvas.height !== h) { canvas.width = w; canvas.height = h; }
    const ctx = canvas.getContext("2d");
    ctx.clearRect(0, 0, w, h);
    const frame = video.videoWidth ? at(video.currentTime) : null;
    canvas.dataset.boxes = String(frame ? frame.boxes.length : 0);
    if (!frame) return;
    // the picture inside the element (the video is letterboxed to keep its aspect)
    const scale = Math.min(w / video.videoWidth, h / video.videoHeight);
    const pw = video.videoWidth * scale, ph = video.videoHeight * scale, ox = (w - pw) / 2, oy = (h - ph) / 2;
    ctx.strokeStyle = TRIGGER;
    ctx.lineWidth = Math.max(2, Math.round(w / 320));
    ctx.fillStyle = TRIGGER;
    ctx.font = "12px sans-serif";
    for (const [id, x1, y1, x2, y2] of frame.boxes) {
      ctx.strokeRect(ox + x1 * pw, oy + y1 * ph, (x2 - x1) * pw, (y2 - y1) * ph);
      ctx.fillText(`#${id}`, ox + x1 * pw + 2, Math.max(12, oy + y1 * ph - 3));
    }
  }

  let raf = 0;
  const loop = () => { draw(); raf = video.paused || video.ended ? 0 : requestAnimationFrame(loop); };
  video.addEventListener("play", () => { if (!raf) raf = requestAnimationFrame(loop); });
  for (const ev of ["seeked", "loadeddata", "pause", "timeupdate"]) video.addEventListener(ev, draw);
  return box;
}

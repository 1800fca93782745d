// rtsp2jpg dashboard: plain JS, no build step, no third-party code.
// Every value from the service goes into the page with textContent or a checked attribute, never
// as HTML: camera names and errors are user input.
"use strict";

const LIST_EVERY_MS = 2000;
const GRID_WIDTH = 480;
const state = {
  key: sessionStorage.getItem("rtsp2jpg.key") || "",
  rate: Number(localStorage.getItem("rtsp2jpg.rate")) || 2000,
  cameras: new Map(),  // id -> {data, card, etag, url, busy}
  view: null,          // camera id shown in the camera view, or null for the grid
};

const $ = (id) => document.getElementById(id);

function el(tag, cls, text) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}

function headers(extra) {
  const h = Object.assign({}, extra || {});
  if (state.key) h["Authorization"] = "Bearer " + state.key;
  return h;
}

async function api(path, options) {
  const opts = Object.assign({}, options || {});
  // Every change is sent as JSON: the service refuses other bodies (415) and cross-site requests (403).
  const mutating = opts.method && !["GET", "HEAD"].includes(opts.method.toUpperCase());
  opts.headers = headers(Object.assign(mutating ? { "Content-Type": "application/json" } : {}, opts.headers));
  opts.cache = "no-store";
  const resp = await fetch(path, opts);
  let body = null;
  const type = resp.headers.get("Content-Type") || "";
  if (type.startsWith("application/json")) body = await resp.json().catch(() => null);
  if (!resp.ok) {
    const detail = body && typeof body.detail === "string" ? body.detail : resp.status + " " + resp.statusText;
    const err = new Error(detail);
    err.status = resp.status;
    throw err;
  }
  return body;
}

function say(text, isError) {
  const box = $("message");
  box.hidden = !text;
  box.textContent = text || "";
  box.classList.toggle("error", Boolean(isError));
}

function age(epoch) {
  if (!epoch) return "no frame yet";
  const s = Math.max(0, Date.now() / 1000 - epoch);
  if (s < 2) return "now";
  if (s < 120) return Math.round(s) + " s ago";
  if (s < 7200) return Math.round(s / 60) + " min ago";
  return Math.round(s / 3600) + " h ago";
}

const camPath = (id) => encodeURIComponent(id);

// --- grid ----------------------------------------------------------------------------------------

function makeCard(id) {
  const card = el("article", "card");
  card.dataset.cameraId = id;
  const link = el("a", "frame");
  link.href = "#camera/" + camPath(id);
  const img = el("img", "snap");
  img.alt = "latest frame";
  link.append(img);
  const body = el("div", "body");
  const title = el("div", "title");
  title.append(el("span", "name"), el("span", "badge"));
  const meta = el("div", "meta");
  const err = el("div", "error-text");
  const actions = el("div", "actions");
  const open = el("a", null, "details");
  open.href = link.href;
  const remove = el("button", "subtle remove", "remove");
  remove.type = "button";
  remove.addEventListener("click", () => removeCamera(id, remove));
  actions.append(open, remove);
  body.append(title, meta, err, actions);
  card.append(link, body);
  return card;
}

function fillCard(entry) {
  const { data, card } = entry;
  card.querySelector(".name").textContent = data.name || data.id;
  card.querySelector(".name").title = data.id;
  const badge = card.querySelector(".badge");
  badge.textContent = data.status;
  badge.className = "badge " + (["active", "degraded", "connecting", "error", "inactive"].includes(data.status) ? data.status : "unknown");
  const size = Array.isArray(data.size) ? data.size.join("x") : "";
  const parts = [age(data.last_seen), data.backend || "", data.fps ? data.fps + " fps" : "", size];
  card.querySelector(".meta").textContent = parts.filter(Boolean).join(" · ");
  card.querySelector(".error-text").textContent = (data.status === "error" || data.status === "degraded") && data.error ? data.error : "";
  card.querySelector(".remove").hidden = data.source === "config";
  card.classList.toggle("down", data.status !== "active" && data.status !== "degraded");  // the picture shown is the last one it had
}

async function refreshList() {
  let list;
  try {
    list = await api("/cameras");
  } catch (e) {
    say(e.status === 401 ? "This service needs its API key: enter it above." : "Cannot list cameras: " + e.message, true);
    return;
  }
  say("");
  const seen = new Set();
  const grid = $("grid");
  const counts = { active: 0, degraded: 0, connecting: 0, error: 0 };
  for (const data of list) {
    seen.add(data.id);
    let entry = state.cameras.get(data.id);
    if (!entry) {
      entry = { data, card: makeCard(data.id), etag: null, url: null, busy: false, due: 0 };
      state.cameras.set(data.id, entry);
      grid.append(entry.card);
    }
    entry.data = data;
    if (data.status in counts) counts[data.status] += 1;
    fillCard(entry);
  }
  for (const [id, entry] of state.cameras) {
    if (!seen.has(id)) {
      entry.card.remove();
      if (entry.url) URL.revokeObjectURL(entry.url);
      state.cameras.delete(id);
    }
  }
  $("empty").hidden = list.length > 0;
  $("summary").textContent = list.length + " camera(s): " + counts.active + " active, " +
    (counts.degraded ? counts.degraded + " degraded, " : "") + counts.connecting + " connecting, " +
    counts.error + " error";
  if (state.view) showFacts(state.view);
}

// Fetch a new frame only when the last one was shown; swap it in after it decoded (no flicker).
async function refreshSnapshot(entry) {
  if (entry.busy || !entry.data.last_seen) return;
  entry.busy = true;
  try {
    const h = headers(entry.etag ? { "If-None-Match": entry.etag } : {});
    const resp = await fetch("/snapshot/" + camPath(entry.data.id) + "?width=" + GRID_WIDTH, { headers: h, cache: "no-store" });
    if (resp.status !== 200) return;
    entry.etag = resp.headers.get("ETag");
    const url = URL.createObjectURL(await resp.blob());
    const img = entry.card.querySelector("img.snap");
    const next = new Image();
    next.src = url;
    await next.decode().catch(() => null);
    img.src = url;
    if (entry.url) URL.revokeObjectURL(entry.url);
    entry.url = url;
  } catch (e) {
    // the next round tries again; the status badge says why frames stopped
  } finally {
    entry.busy = false;
  }
}

function snapshotTick() {
  if (state.view === null && !document.hidden) {
    for (const entry of state.cameras.values()) refreshSnapshot(entry);
  }
  setTimeout(snapshotTick, state.rate);
}

function listTick() {
  refreshList().finally(() => setTimeout(listTick, LIST_EVERY_MS));
}

function ageTick() {
  for (const entry of state.cameras.values()) fillCard(entry);
}

// --- add / remove --------------------------------------------------------------------------------

async function addCamera(ev) {
  ev.preventDefault();
  const url = $("add-url").value.trim();
  const name = $("add-name").value.trim();
  try {
    const body = { rtsp_url: url };
    if (name) body.name = name;
    const res = await api("/register", {
      method: "POST", body: JSON.stringify(body),
    });
    $("add-url").value = "";
    $("add-name").value = "";
    say("Added camera " + res.id + " (" + res.status + ").");
    refreshList();
  } catch (e) {
    say("Could not add the camera: " + e.message, true);
  }
}

async function removeCamera(id, button) {
  if (button.dataset.armed !== "1") {  // two clicks instead of a confirm() dialog
    button.dataset.armed = "1";
    button.textContent = "really remove?";
    button.className = "danger remove";
    setTimeout(() => { button.dataset.armed = ""; button.textContent = "remove"; button.className = "subtle remove"; }, 4000);
    return;
  }
  try {
    await api("/cameras/" + camPath(id), { method: "DELETE" });
    say("Removed camera " + id + ".");
    refreshList();
  } catch (e) {
    say("Could not remove " + id + ": " + e.message, true);
  }
}

// --- camera view ---------------------------------------------------------------------------------

function row(table, label, value) {
  const tr = el("tr");
  tr.append(el("td", null, label), el("td", null, value === null || value === undefined ? "–" : value));
  table.append(tr);
}

async function showFacts(id) {
  let s;
  let history;
  try {
    s = await api("/status/" + camPath(id));
    history = await api("/cameras/" + camPath(id) + "/history");
  } catch (e) {
    say("Cannot read camera " + id + ": " + e.message, true);
    return;
  }
  if (state.view !== id) return;
  $("cam-name").textContent = s.name || s.id;
  const facts = $("cam-facts");
  facts.replaceChildren();
  row(facts, "id", s.id);
  row(facts, "status", s.status + " since " + new Date(s.since * 1000).toLocaleString());
  row(facts, "last frame", age(s.last_seen));
  row(facts, "source", s.backend);
  row(facts, "size", s.width ? s.width + "x" + s.height : null);
  for (const [name, st] of Object.entries(s.streams || {})) {  // a camera with a main and a sub stream
    const bits = [st.width ? st.width + "x" + st.height : "", st.status, st.decode === "adaptive" ? "decoded when read" : ""];
    row(facts, name + " stream", bits.filter(Boolean).join(", "));
  }
  row(facts, "fps", s.fps);
  row(facts, "frames", s.frames);
  row(facts, "reconnects", s.reconnects);
  row(facts, "error", s.error);
  const list = $("cam-history");
  list.replaceChildren();
  for (const h of history) {
    const li = el("li", null, new Date(h.since * 1000).toLocaleString() + ": " + h.previous + " → " + h.status);
    if (h.error) li.append(el("div", "error-text", h.error));
    list.append(li);
  }
}

function showView() {
  const m = /^#camera\/(.+)$/.exec(location.hash);
  const live = $("cam-live");
  live.onerror = null;
  live.removeAttribute("src");  // ends the previous MJPEG stream and frees its server worker
  state.view = m ? decodeURIComponent(m[1]) : null;
  $("grid-view").hidden = state.view !== null;
  $("camera-view").hidden = state.view === null;
  if (state.view === null) return;
  $("cam-name").textContent = state.view;
  $("cam-live-hint").textContent = "MJPEG stream (GET /stream/" + state.view + ")";
  const id = state.view;
  // An <img> cannot send the API key: if the stream needs it (http.protect_snapshots) or all
  // stream places are taken, fall back to snapshots fetched with the key.
  live.onerror = () => {
    live.onerror = null;
    if (state.view !== id) return;
    $("cam-live-hint").textContent = "the stream is not available to this page (API key needed, or too many viewers); showing snapshots";
    const loop = async () => {
      if (state.view !== id) return;
      const resp = await fetch("/snapshot/" + camPath(id) + "?width=960", { headers: headers(), cache: "no-store" }).catch(() => null);
      if (resp && resp.ok) {
        const old = live.src;
        live.src = URL.createObjectURL(await resp.blob());
        if (old.startsWith("blob:")) URL.revokeObjectURL(old);
      }
      setTimeout(loop, state.rate);
    };
    loop();
  };
  live.src = "/stream/" + camPath(id) + "?width=960";
  showFacts(state.view);
}

// --- start ---------------------------------------------------------------------------------------

function start() {
  $("rate").value = String(state.rate);
  $("rate").addEventListener("change", () => {
    state.rate = Number($("rate").value) || 2000;
    localStorage.setItem("rtsp2jpg.rate", String(state.rate));
  });
  $("key").value = state.key;
  $("key-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    state.key = $("key").value;
    sessionStorage.setItem("rtsp2jpg.key", state.key);
    refreshList();
  });
  $("add-form").addEventListener("submit", addCamera);
  window.addEventListener("hashchange", showView);
  showView();
  listTick();
  snapshotTick();
  setInterval(ageTick, 1000);
}

document.addEventListener("DOMContentLoaded", start);

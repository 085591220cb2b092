// Dispatcher console: plain JS + SVG, no external resources (works offline).
"use strict";

const TOKEN_KEY = "rescueToken";
const SVG_NS = "http://www.w3.org/2000/svg";
const LON0 = 73, LAT1 = 54, COS = Math.cos((36 * Math.PI) / 180), K = 19.4;
const state = { stations: new Map(), vans: [], requests: [], view: { x: 0, y: 0, w: 1000, h: 700 } };
let refreshTimer = null;
let liveAbort = null;

const $ = (id) => document.getElementById(id);
const token = () => sessionStorage.getItem(TOKEN_KEY);

function project(lat, lon) {
  return [(lon - LON0) * COS * K, (LAT1 - lat) * K];
}

function message(text, isError) {
  const el = $("message");
  el.textContent = text || "";
  el.className = isError ? "error" : "";
}

async function api(path, options = {}) {
  const headers = Object.assign({ Accept: "application/json" }, options.headers || {});
  if (token()) headers.Authorization = "Bearer " + token();
  if (options.body !== undefined) headers["Content-Type"] = "application/json";
  const res = await fetch(path, {
    method: options.method || "GET",
    headers,
    body: options.body !== undefined ? JSON.stringify(options.body) : undefined,
  });
  if (res.status === 401) {
    sessionStorage.removeItem(TOKEN_KEY);
    showLogin("Token missing, invalid or revoked.");
    throw new Error("unauthorized");
  }
  const data = res.headers.get("content-type")?.includes("json") ? await res.json() : null;
  if (!res.ok) throw new Error((data && data.detail) || res.statusText);
  return data;
}

function el(name, attrs, parent) {
  const node = document.createElementNS(SVG_NS, name);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  if (parent) parent.appendChild(node);
  return node;
}

// -- map -------------------------------------------------------------------------------------

async function drawProvinces() {
  const geo = await api("/v1/geo/provinces");
  const layer = $("layer-provinces");
  layer.textContent = "";
  for (const f of geo.features) {
    let d = "";
    for (const polygon of f.geometry.coordinates) {
      for (const ring of polygon) {
        ring.forEach(([lon, lat], i) => {
          const [x, y] = project(lat, lon);
          d += (i ? "L" : "M") + x.toFixed(1) + " " + y.toFixed(1);
        });
        d += "Z";
      }
    }
    const p = el("path", { d, "data-adcode": f.properties.adcode }, layer);
    el("title", {}, p).textContent = f.properties.name;
  }
}

function markerScale() {
  return Math.max(0.15, state.view.w / 1000);
}

function drawMarkers() {
  const s = markerScale();
  const stations = $("layer-stations"), vans = $("layer-vans");
  const requests = $("layer-requests"), lines = $("layer-lines");
  for (const layer of [stations, vans, requests, lines]) layer.textContent = "";
  for (const st of state.stations.values()) {
    const [x, y] = project(st.lat, st.lon);
    const c = el("circle", { cx: x, cy: y, r: 2.2 * s, class: "station", "data-id": st.id }, stations);
    el("title", {}, c).textContent = `${st.name} (${st.grade})`;
  }
  const vanPos = new Map();
  state.vans.forEach((v, i) => {
    const st = state.stations.get(v.station_id);
    let lat = v.lat, lon = v.lon;
    if (lat === null || lon === null) {
      if (!st) return;
      const a = (i % 6) * (Math.PI / 3);
      lat = st.lat + 0.06 * Math.sin(a);
      lon = st.lon + 0.06 * Math.cos(a);
    }
    vanPos.set(v.id, [lat, lon]);
    const [x, y] = project(lat, lon);
    const cls = v.status === "available" ? "van-available"
      : (v.status === "off_shift" || v.status === "maintenance") ? "van-off" : "van-busy";
    const c = el("circle", { cx: x, cy: y, r: 1.6 * s, class: "van " + cls, "data-id": v.id }, vans);
    el("title", {}, c).textContent = `${v.id} ${v.capability} ${v.status}`;
  });
  for (const r of state.requests) {
    const [x, y] = project(r.location.lat, r.location.lon);
    if (r.van && vanPos.has(r.van.id)) {
      const [vlat, vlon] = vanPos.get(r.van.id);
      const [vx, vy] = project(vlat, vlon);
      el("line", { x1: vx, y1: vy, x2: x, y2: y, class: "line", "data-request": r.id }, lines);
    }
    const c = el("circle", {
      cx: x, cy: y, r: 4 * s,
      class: "request" + (r.status === "received" ? "" : " assigned"),
      "data-id": r.id, "data-status": r.status,
    }, requests);
    el("title", {}, c).textContent = `${r.id.slice(0, 8)} ${r.vehicle.vehicle_class} ${r.status}`;
  }
}

function applyView() {
  const v = state.view;
  $("map").setAttribute("viewBox", `${v.x} ${v.y} ${v.w} ${v.h}`);
}

function setupPanZoom() {
  const svg = $("map");
  svg.addEventListener("wheel", (ev) => {
    ev.preventDefault();
    const rect = svg.getBoundingClientRect();
    const v = state.view;
    const px = v.x + ((ev.clientX - rect.left) / rect.width) * v.w;
    const py = v.y + ((ev.clientY - rect.top) / rect.height) * v.h;
    const f = ev.deltaY < 0 ? 0.8 : 1.25;
    const w = Math.min(1500, Math.max(30, v.w * f)), h = (w * 700) / 1000;
    state.view = { x: px - ((px - v.x) * w) / v.w, y: py - ((py - v.y) * h) / v.h, w, h };
    applyView();
    drawMarkers();
  }, { passive: false });
  let drag = null;
  svg.addEventListener("mousedown", (ev) => { drag = { x: ev.clientX, y: ev.clientY, v: { ...state.view } }; });
  window.addEventListener("mouseup", () => { drag = null; });
  window.addEventListener("mousemove", (ev) => {
    if (!drag) return;
    const rect = svg.getBoundingClientRect();
    state.view = { ...drag.v,
      x: drag.v.x - ((ev.clientX - drag.x) / rect.width) * drag.v.w,
      y: drag.v.y - ((ev.clientY - drag.y) / rect.height) * drag.v.h };
    applyView();
  });
}

// -- queue and KPIs --------------------------------------------------------------------------

function fmtMinutes(m) {
  if (m === null || m === undefined) return "–";
  return m < 90 ? `${Math.round(m)} min` : `${(m / 60).toFixed(1)} h`;
}

function drawQueue() {
  const body = $("queue").querySelector("tbody");
  body.textContent = "";
  $("queue-count").textContent = `(${state.requests.length} open)`;
  for (const r of state.requests) {
    const tr = document.createElement("tr");
    tr.className = "status-" + r.status;
    tr.dataset.id = r.id;
    tr.dataset.status = r.status;
    const cells = [
      r.id.slice(0, 8),
      r.status,
      `${r.vehicle.vehicle_class}${r.estimate.needs_replacement ? " ⇄" : ""}`,
      fmtMinutes(r.waited_minutes),
      r.van ? fmtMinutes(r.van.eta_minutes) : "–",
      [r.van ? r.van.id : "", r.replacement ? r.replacement.truck_id : ""].filter(Boolean).join(" / ") || "–",
    ];
    for (const text of cells) {
      const td = document.createElement("td");
      td.textContent = text;
      tr.appendChild(td);
    }
    const actions = document.createElement("td");
    const add = (label, fn) => {
      const b = document.createElement("button");
      b.type = "button"; b.className = "small"; b.textContent = label;
      b.addEventListener("click", () => fn(r).catch((e) => message(e.message, true)));
      actions.appendChild(b);
    };
    if (["received", "assigned", "en_route"].includes(r.status)) add(r.van ? "Override" : "Assign", assign);
    if (["received", "assigned", "en_route", "on_site", "towing"].includes(r.status)) add("Diagnose", diagnose);
    const next = { assigned: "en_route", en_route: "on_site", on_site: "repaired", repaired: "closed",
      replacement_assigned: "cargo_transferred", cargo_transferred: "delivered", delivered: "closed" }[r.status];
    if (next) add("→ " + next, (req) => setStatus(req, next));
    tr.appendChild(actions);
    body.appendChild(tr);
  }
}

async function assign(r) {
  const vanId = prompt(`Van for request ${r.id.slice(0, 8)} (${r.vehicle.vehicle_class}):`, r.van ? r.van.id : "");
  if (!vanId) return;
  const reason = prompt("Reason (recorded):", r.van ? "dispatcher override" : "manual assignment");
  if (!reason) return;
  await api(`/v1/requests/${r.id}/assignment`, { method: "POST", body: { van_id: vanId.trim(), reason } });
  message(`Van ${vanId} assigned to ${r.id.slice(0, 8)}.`);
  await refresh();
}

async function diagnose(r) {
  const hours = prompt(`Estimated repair hours for ${r.id.slice(0, 8)}:`, "8");
  if (hours === null) return;
  const h = Number(hours);
  if (!Number.isFinite(h) || h < 0) { message("Hours must be a number >= 0.", true); return; }
  const res = await api(`/v1/requests/${r.id}/diagnosis`, { method: "POST", body: { estimated_repair_hours: h } });
  message(`Diagnosis recorded: ${res.status}${res.estimate.needs_replacement ? ", replacement needed" : ""}.`);
  await refresh();
}

async function setStatus(r, status) {
  await api(`/v1/requests/${r.id}/status`, { method: "POST", body: { status } });
  await refresh();
}

async function runDispatch() {
  const button = $("run-dispatch");
  button.disabled = true;
  try {
    const res = await api("/v1/dispatch/runs", { method: "POST" });
    $("last-run").textContent = res.ran
      ? [`${res.assigned.length} assigned, ${res.unassigned.length} waiting, ${res.booked.length} trucks booked (${res.seconds.toFixed(2)} s, ${res.provider})`,
        ...res.assigned.map((a) => `  ${a.request_id.slice(0, 8)} → ${a.van_id}  ETA ${Math.round(a.eta_minutes)} min`),
        ...res.unassigned.map((u) => `  ${u.request_id.slice(0, 8)}: ${u.reason} — ${u.suggestion}`),
        ...res.booked.map((b) => `  ${b.request_id.slice(0, 8)} ⇄ ${b.truck_id} (${Math.round(b.cost_cny)} CNY)`),
        ...res.conflicts.map((c) => "  conflict: " + c)].join("\n")
      : `skipped: ${res.skipped_reason}`;
    message(res.ran ? "Dispatch run finished." : "Another dispatch run is in progress.");
    await refresh();
  } finally {
    button.disabled = false;
  }
}

function drawKpis(k) {
  $("kpi-open").textContent = k.open;
  $("kpi-received").textContent = k.received;
  $("kpi-assigned").textContent = k.assigned;
  $("kpi-within").textContent = k.within_promise === null ? "–" : `${Math.round(k.within_promise * 100)}%`;
  $("kpi-eta").textContent = fmtMinutes(k.mean_eta_minutes);
  $("kpi-vans").textContent = k.vans_available;
}

async function refresh() {
  const [vans, requests, kpis] = await Promise.all([
    api("/v1/vans"), api("/v1/requests?open=true&limit=2000"), api("/v1/kpis"),
  ]);
  state.vans = vans;
  state.requests = requests;
  drawMarkers();
  drawQueue();
  drawKpis(kpis);
  document.body.dataset.refreshed = String(Date.now());
}

function scheduleRefresh() {
  if (refreshTimer) return;
  refreshTimer = setTimeout(() => {
    refreshTimer = null;
    refresh().catch((e) => message(e.message, true));
  }, 300);
}

// -- live updates (fetch stream: EventSource cannot send the Bearer header) -----------------

async function live() {
  while (token()) {
    liveAbort = new AbortController();
    try {
      const res = await fetch("/v1/live", {
        headers: { Authorization: "Bearer " + token(), Accept: "text/event-stream" },
        signal: liveAbort.signal,
      });
      if (!res.ok || !res.body) throw new Error("live stream " + res.status);
      $("live-state").textContent = "live";
      $("live-state").className = "live on";
      const reader = res.body.getReader();
      const decoder = new TextDecoder();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true });
        let cut;
        while ((cut = buffer.indexOf("\n\n")) >= 0) {
          const chunk = buffer.slice(0, cut);
          buffer = buffer.slice(cut + 2);
          if (/^event: (?!hello)/m.test(chunk)) scheduleRefresh();
        }
      }
    } catch (e) {
      if (e.name === "AbortError") return;
    }
    $("live-state").textContent = "reconnecting";
    $("live-state").className = "live off";
    await new Promise((r) => setTimeout(r, 2000));
  }
}

// -- sign-in and start -----------------------------------------------------------------------

function showLogin(error) {
  $("login-error").textContent = error || "";
  if (!$("login").open) $("login").showModal();
}

async function start() {
  try {
    const stations = await api("/v1/stations");
    state.stations = new Map(stations.map((s) => [s.id, s]));
    await refresh();
    document.body.dataset.ready = "true";
    live();
  } catch (e) {
    if (e.message !== "unauthorized") message(e.message, true);
  }
}

document.addEventListener("DOMContentLoaded", async () => {
  setupPanZoom();
  $("run-dispatch").addEventListener("click", () => runDispatch().catch((e) => message(e.message, true)));
  $("logout").addEventListener("click", () => {
    sessionStorage.removeItem(TOKEN_KEY);
    if (liveAbort) liveAbort.abort();
    showLogin();
  });
  $("login-form").addEventListener("submit", () => {
    const value = $("token-input").value.trim();
    if (!value) return;
    sessionStorage.setItem(TOKEN_KEY, value);
    $("token-input").value = "";
    start();
  });
  try {
    await drawProvinces();
  } catch (e) {
    message("map: " + e.message, true);
  }
  if (token()) start(); else showLogin();
  setInterval(() => { if (token() && document.body.dataset.ready) scheduleRefresh(); }, 15000);
});

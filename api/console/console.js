// Dispatcher console: plain JS + SVG, no external resources (works offline).
// What needs a human comes first (attention panel, from the automatic cycle's recorded
// reasons); the queue is sorted by urgency; a click opens the whole story of a request.
"use strict";

const TOKEN_KEY = "rescueToken";
const SVG_NS = "http://www.w3.org/2000/svg";
const LON0 = 73, LAT1 = 54, COS = Math.cos((36 * Math.PI) / 180), K = 19.4;
const NEXT_STEPS = {
  assigned: ["en_route", "on_site"], en_route: ["on_site"], on_site: ["repaired", "towing"],
  towing: ["repaired"], repaired: ["closed"], replacement_assigned: ["cargo_transferred"],
  cargo_transferred: ["delivered"], delivered: ["closed"],
};
const CANCELLABLE = ["received", "assigned", "en_route", "awaiting_replacement", "replacement_assigned"];
const DIAGNOSABLE = ["assigned", "en_route", "on_site", "towing"];
const state = {
  stations: new Map(), vans: [], requests: [], trucks: new Map(), faults: new Map(),
  places: [], attention: [], attentionById: new Map(), kpis: null, promise: 120,
  view: { x: 0, y: 0, w: 1000, h: 700 }, detailId: null, detail: null,
};
let refreshTimer = null;
let liveAbort = null;

const $ = (id) => document.getElementById(id);
const token = () => sessionStorage.getItem(TOKEN_KEY);

function project(lat, lon) {
  return [(lon - LON0) * COS * K, (LAT1 - lat) * K];
}

function message(text, kind) {
  const node = $("message");
  node.textContent = text || "";
  node.className = kind === true ? "error" : kind || "";
}

function detailMessage(text, kind) {
  const node = $("detail-message");
  node.textContent = text || "";
  node.className = kind || "";
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

function svgEl(name, attrs, parent) {
  const node = document.createElementNS(SVG_NS, name);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  if (parent) parent.appendChild(node);
  return node;
}

function htmlEl(name, attrs, text) {
  const node = document.createElement(name);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

// -- formatting ------------------------------------------------------------------------------

function fmtMinutes(m) {
  if (m === null || m === undefined || !Number.isFinite(m)) return "–";
  const sign = m < 0 ? "-" : "";
  const a = Math.abs(m);
  return a < 90 ? `${sign}${Math.round(a)} min` : `${sign}${(a / 60).toFixed(1)} h`;
}

function fmtTime(iso) {
  if (!iso) return "–";
  const d = new Date(iso);
  return d.toLocaleString([], { month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit" });
}

function minutesUntil(iso) {
  return iso ? (new Date(iso).getTime() - Date.now()) / 60000 : null;
}

function maskName(name) {
  return name ? name.slice(0, 1) + "**" : "–";
}

function maskPhone(phone) {
  const d = (phone || "").replace(/[\s-]/g, "");
  return d.length <= 7 ? "*".repeat(d.length) : d.slice(0, 3) + "*".repeat(d.length - 7) + d.slice(-4);
}

function placeName(lat, lon) {
  let best = null, bestD = Infinity;
  const c = Math.cos((lat * Math.PI) / 180);
  for (const p of state.places) {
    const dy = p[0] - lat, dx = (p[1] - lon) * c;
    const d = dx * dx + dy * dy;
    if (d < bestD) { bestD = d; best = p; }
  }
  if (!best) return `${lat.toFixed(2)}, ${lon.toFixed(2)}`;
  return best[3] && best[3] !== best[2] ? `${best[2]}, ${best[3]}` : best[2];
}

function faultLabel(r) {
  const f = state.faults.get(r.fault.code || r.estimate.fault_code);
  return f ? `${f.name} (${f.grade})` : (r.fault.code || r.estimate.fault_code || "–");
}

function stationName(id) {
  const s = state.stations.get(id);
  return s ? s.name : id;
}

// -- derived request state -------------------------------------------------------------------

const BEFORE_ARRIVAL = ["received", "assigned", "en_route"];

function promiseLeft(r) {
  return BEFORE_ARRIVAL.includes(r.status) ? state.promise - r.waited_minutes : null;
}

function etaMinutes(r) {
  if (!r.van) return null;
  if (r.van.eta_minutes !== undefined && r.van.eta_minutes !== null) return r.van.eta_minutes;
  return minutesUntil(r.van.eta_at);
}

function isAtRisk(r) {
  if (r.at_risk) return true;
  const items = state.attentionById.get(r.id) || [];
  return items.length > 0;
}

function isUrgent(r) {
  return (state.attentionById.get(r.id) || []).some((i) => i.urgent);
}

function urgency(r) {
  const left = promiseLeft(r);
  return (isUrgent(r) ? 2e6 : 0) + (isAtRisk(r) ? 1e6 : 0) + r.estimate.priority * 1e4
    + (left === null ? 0 : 5000 - left);
}

function vanOrPartner(r) {
  if (r.van) return `${r.van.id} (${stationName(r.van.station_id)})`;
  if (r.partner) return r.partner.status === "accepted" ? `partner ${r.partner.partner_name}` : "looking for a partner";
  return r.status === "received" ? "no van" : "–";
}

function replacementState(r) {
  if (r.replacement) return `${r.replacement.partner_name || r.replacement.partner_id} ${r.replacement.truck_type}`;
  if (r.status === "awaiting_replacement") return "waiting for a truck";
  return r.estimate.needs_replacement ? "needed" : "–";
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
    const p = svgEl("path", { d, "data-adcode": f.properties.adcode, "data-name": f.properties.name }, layer);
    svgEl("title", {}, p).textContent = f.properties.name;
  }
}

function markerScale() {
  return Math.max(0.15, state.view.w / 1000);
}

function named(node, name) {
  node.setAttribute("data-name", name);
  svgEl("title", {}, node).textContent = name;
  return node;
}

function drawMarkers() {
  const s = markerScale();
  const layers = ["layer-stations", "layer-vans", "layer-requests", "layer-lines", "layer-trucks"].map($);
  const [stations, vans, requests, lines, trucks] = layers;
  for (const layer of layers) layer.textContent = "";
  for (const st of state.stations.values()) {
    const [x, y] = project(st.lat, st.lon);
    named(svgEl("circle", { cx: x, cy: y, r: 2.2 * s, class: "station", "data-id": st.id }, stations),
      `${st.name} (${st.grade} station)`);
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
    named(svgEl("circle", { cx: x, cy: y, r: 1.6 * s, class: "van " + cls, "data-id": v.id }, vans),
      `van ${v.id} · ${stationName(v.station_id)} · ${v.capability.replaceAll("_", " ")} · ${v.status}`);
  });
  for (const r of state.requests) {
    const [x, y] = project(r.location.lat, r.location.lon);
    if (r.van && vanPos.has(r.van.id)) {
      const [vx, vy] = project(...vanPos.get(r.van.id));
      svgEl("line", { x1: vx, y1: vy, x2: x, y2: y, class: "line", "data-request": r.id }, lines);
    }
    if (r.replacement) {
      const t = state.trucks.get(r.replacement.truck_id);
      if (t) {
        const [tx, ty] = project(t.depot_lat, t.depot_lon);
        svgEl("line", { x1: tx, y1: ty, x2: x, y2: y, class: "leg pickup", "data-request": r.id }, trucks);
        named(svgEl("rect", { x: tx - 2.5 * s, y: ty - 2.5 * s, width: 5 * s, height: 5 * s, class: "truck", "data-id": t.id }, trucks),
          `truck ${t.id} · ${r.replacement.partner_name} · pickup ${fmtTime(r.replacement.pickup_eta_at)}`);
      }
      if (r.cargo) {
        const [dx, dy] = project(r.cargo.destination.lat, r.cargo.destination.lon);
        svgEl("line", { x1: x, y1: y, x2: dx, y2: dy, class: "leg delivery", "data-request": r.id }, trucks);
        named(svgEl("rect", { x: dx - 2 * s, y: dy - 2 * s, width: 4 * s, height: 4 * s, class: "truck" }, trucks),
          `delivery to ${placeName(r.cargo.destination.lat, r.cargo.destination.lon)} · ETA ${fmtTime(r.replacement.delivery_eta_at)}`);
      }
    }
    const c = svgEl("circle", {
      cx: x, cy: y, r: 4 * s,
      class: "request" + (r.status === "received" ? "" : " assigned") + (isAtRisk(r) ? " at-risk" : ""),
      "data-id": r.id, "data-status": r.status,
    }, requests);
    named(c, `${r.vehicle.plate} · ${r.vehicle.vehicle_class} · ${placeName(r.location.lat, r.location.lon)} · ${r.status}`);
    c.addEventListener("click", () => openDetail(r.id).catch((e) => message(e.message, true)));
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
  const hover = $("hover");
  svg.addEventListener("mousemove", (ev) => {
    const name = ev.target.getAttribute && ev.target.getAttribute("data-name");
    if (!name || drag) { hover.hidden = true; return; }
    const pane = $("map-pane").getBoundingClientRect();
    hover.textContent = name;
    hover.style.left = `${Math.min(ev.clientX - pane.left + 12, pane.width - 260)}px`;
    hover.style.top = `${ev.clientY - pane.top + 12}px`;
    hover.hidden = false;
  });
  svg.addEventListener("mouseleave", () => { hover.hidden = true; });
}

// -- attention panel -------------------------------------------------------------------------

function drawAttention() {
  const list = $("attention");
  list.textContent = "";
  $("attention-count").textContent = `(${state.attention.length})`;
  for (const item of state.attention) {
    const li = htmlEl("li", { class: item.urgent ? "urgent" : "", "data-id": item.request_id, "data-kind": item.kind });
    li.appendChild(htmlEl("span", { class: "what" },
      `${item.title} · ${item.plate} · ${item.vehicle_class} · waited ${fmtMinutes(item.waited_minutes)}`));
    li.appendChild(htmlEl("span", { class: "why" }, item.detail + (item.since ? ` (${fmtTime(item.since)})` : "")));
    const b = htmlEl("button", { type: "button", class: "small", "data-action": item.action }, item.action_label);
    b.addEventListener("click", () => openDetail(item.request_id, item.action === "choose_van").catch((e) => message(e.message, true)));
    li.appendChild(b);
    list.appendChild(li);
  }
}

// -- move-up suggestions (GET /v1/dispatch/move-ups; a dispatcher confirms each) --------------

function pct(x) {
  return `${(100 * x).toFixed(1)}%`;
}

async function loadMoveUps() {
  const button = $("load-move-ups");
  button.disabled = true;
  try {
    const res = await api("/v1/dispatch/move-ups");
    drawMoveUps(res);
  } finally {
    button.disabled = false;
  }
}

function drawMoveUps(res) {
  const list = $("move-ups");
  list.textContent = "";
  $("move-up-count").textContent = `(${res.suggestions.length})`;
  $("move-up-coverage").textContent = `expected within promise: ${pct(res.expected_coverage)} now, `
    + `${pct(res.expected_coverage_after)} after the moves, ${pct(res.expected_coverage_all_idle)} `
    + `with every van home; ${pct(res.busy_share)} of vans busy`;
  if (!res.suggestions.length) {
    list.appendChild(htmlEl("li", { class: "muted", "data-empty": "true" }, "No move suggested: no hole worth a move."));
  }
  for (const s of res.suggestions) {
    const li = htmlEl("li", { "data-van": s.van_id, "data-to": s.to_station_id });
    li.appendChild(htmlEl("span", { class: "what" },
      `van ${s.van_id}: ${stationName(s.from_station_id)} → ${stationName(s.to_station_id)}`));
    li.appendChild(htmlEl("span", { class: "why" },
      `${s.km.toFixed(0)} km, +${(100 * s.expected_coverage_gain).toFixed(2)} pp expected coverage`));
    const b = htmlEl("button", { type: "button", class: "small", "data-action": "confirm_move_up" }, "Confirm move");
    b.addEventListener("click", () => confirmMoveUp(s, b).catch((e) => message(e.message, true)));
    li.appendChild(b);
    list.appendChild(li);
  }
}

async function confirmMoveUp(s, button) {
  button.disabled = true;
  try {
    const res = await api("/v1/dispatch/move-ups/confirm", {
      method: "POST", body: { van_id: s.van_id, to_station_id: s.to_station_id },
    });
    message(`Van ${res.van_id} moved to ${stationName(res.to_station_id)}`
      + `${res.km === null ? "" : ` (${res.km.toFixed(0)} km)`}.`, "ok");
    await Promise.all([refresh(), loadMoveUps()]);
  } finally {
    button.disabled = false;
  }
}

// -- queue -----------------------------------------------------------------------------------

const STATUS_GROUPS = {
  waiting: ["received"], van: ["assigned", "en_route"], site: ["on_site", "towing", "repaired"],
  replacement: ["awaiting_replacement", "replacement_assigned", "cargo_transferred", "delivered"],
};

function queueRows() {
  const text = $("queue-filter").value.trim().toLowerCase();
  const group = STATUS_GROUPS[$("queue-status").value];
  let rows = state.requests.filter((r) => !group || group.includes(r.status));
  if (text) {
    rows = rows.filter((r) => [r.id, r.vehicle.plate, r.vehicle.vehicle_class, r.customer.name, r.status,
      faultLabel(r), r.fault.description, placeName(r.location.lat, r.location.lon), r.van && r.van.id]
      .some((v) => v && String(v).toLowerCase().includes(text)));
  }
  const sort = $("queue-sort").value;
  const key = {
    urgency: (r) => -urgency(r),
    waited: (r) => -r.waited_minutes,
    promise: (r) => { const left = promiseLeft(r); return left === null ? 1e9 : left; },
    priority: (r) => -r.estimate.priority * 1e6 - r.waited_minutes,
  }[sort];
  return rows.map((r) => [key(r), r]).sort((a, b) => a[0] - b[0]).map(([, r]) => r);
}

function drawQueue() {
  const body = $("queue").querySelector("tbody");
  body.textContent = "";
  const rows = queueRows();
  $("queue-count").textContent = `(${rows.length} of ${state.requests.length} open)`;
  for (const r of rows) {
    const left = promiseLeft(r);
    const eta = etaMinutes(r);
    const tr = htmlEl("tr", {
      class: `status-${r.status}` + (isUrgent(r) ? " urgent" : isAtRisk(r) ? " late" : ""),
      "data-id": r.id, "data-status": r.status,
    });
    const cells = [
      [r.estimate.priority.toFixed(0)],
      [faultLabel(r)],
      [`${r.vehicle.plate} ${r.vehicle.vehicle_class.replace("_", " ")}${r.vehicle.model ? " " + r.vehicle.model : ""}`],
      [placeName(r.location.lat, r.location.lon)],
      [fmtMinutes(r.waited_minutes)],
      [left === null ? "–" : left < 0 ? `over by ${fmtMinutes(-left)}` : fmtMinutes(left), left !== null && left < 0 ? "overdue" : ""],
      [vanOrPartner(r)],
      [r.late_by_minutes ? `${fmtMinutes(eta)} (late ${fmtMinutes(r.late_by_minutes)})` : fmtMinutes(eta)],
      [replacementState(r)],
    ];
    for (const [text, cls] of cells) tr.appendChild(htmlEl("td", cls ? { class: cls, title: text } : { title: text }, text));
    tr.addEventListener("click", () => openDetail(r.id).catch((e) => message(e.message, true)));
    body.appendChild(tr);
  }
}

// -- KPIs ------------------------------------------------------------------------------------

function drawKpis(k) {
  $("kpi-open").textContent = k.open;
  $("kpi-received").textContent = k.received;
  $("kpi-attention").textContent = state.attention.length;
  $("kpi-assigned").textContent = k.assigned;
  // Counted: requests whose outcome against the promise is known (their van arrived, or they
  // still wait for one past the promise); those still within their promise are not yet.
  const pending = k.waiting_for_van - k.overdue;
  $("kpi-within").textContent = k.within_promise === null ? "–" : `${Math.round(k.within_promise * 100)}%`;
  $("kpi-within-box").title = `Share within the ${k.promise_minutes} min promise of ${k.arrived + k.overdue} requests: ` +
    `arrived ${k.arrived} (${k.within_promise_count} within), overdue ${k.overdue} (waiting for a van past the promise, already late); ` +
    `${pending} still within their promise not counted yet`;
  $("kpi-overdue").textContent = `· ${k.overdue} overdue`;
  $("kpi-overdue").hidden = !k.overdue;
  $("kpi-eta").textContent = fmtMinutes(k.mean_eta_minutes);
  $("kpi-vans").textContent = k.vans_available;
  $("kpi-trucks").textContent = k.trucks_booked;
}

// -- request detail --------------------------------------------------------------------------

function fact(grid, label, text) {
  const d = htmlEl("div");
  d.appendChild(htmlEl("b", {}, label));
  d.appendChild(document.createTextNode(text));
  grid.appendChild(d);
}

function drawDetail(r) {
  $("detail-title").textContent = `${r.vehicle.plate} · ${r.status.replaceAll("_", " ")}`;
  $("detail-id").textContent = r.id;
  const grid = $("detail-facts");
  grid.textContent = "";
  const left = promiseLeft(r);
  fact(grid, "Waited / promise", `${fmtMinutes(r.waited_minutes)}` + (left === null ? "" : left < 0 ? `, promise missed by ${fmtMinutes(-left)}` : `, ${fmtMinutes(left)} left`));
  fact(grid, "Priority", `${r.estimate.priority}`);
  fact(grid, "Customer", `${maskName(r.customer.name)} · ${maskPhone(r.customer.phone)}`);
  fact(grid, "Vehicle", `${r.vehicle.plate} · ${r.vehicle.vehicle_class} ${r.vehicle.model || ""}`);
  fact(grid, "Fault", `${faultLabel(r)}${r.fault.description ? " — " + r.fault.description : ""}`);
  fact(grid, "Repair estimate", `${r.estimate.expected_repair_hours.toFixed(1)} h (${r.estimate.source}), threshold ${r.estimate.threshold_hours} h${r.estimate.needs_tow ? ", needs a tow" : ""}`);
  fact(grid, "Place", `${placeName(r.location.lat, r.location.lon)} (${r.location.lat.toFixed(3)}, ${r.location.lon.toFixed(3)})`);
  fact(grid, "Van", r.van
    ? `${r.van.id} from ${stationName(r.van.station_id)}, ETA ${fmtMinutes(etaMinutes(r))}${r.van.travel_km !== null ? `, ${r.van.travel_km} km` : ""} (${r.van.source}${r.van.reason ? ": " + r.van.reason : ""})`
    : r.partner ? vanOrPartner(r) + (r.partner.eta_at ? `, ETA ${fmtTime(r.partner.eta_at)}` : "") : "none");
  if (r.cargo) {
    fact(grid, "Cargo", `${r.cargo.weight_t} t ${r.cargo.kind} to ${placeName(r.cargo.destination.lat, r.cargo.destination.lon)}`);
    fact(grid, "Deadline", r.cargo.deadline ? fmtTime(r.cargo.deadline) : "none");
  } else {
    fact(grid, "Cargo", "none");
  }
  if (r.replacement) {
    const rp = r.replacement;
    const slack = r.cargo && r.cargo.deadline && rp.delivery_eta_at
      ? (new Date(r.cargo.deadline) - new Date(rp.delivery_eta_at)) / 3600000 : null;
    fact(grid, "Replacement", `${rp.partner_name} · truck ${rp.truck_id} (${rp.truck_type}, ${rp.capacity_t} t)`);
    fact(grid, "Pickup / delivery", `${fmtTime(rp.pickup_eta_at)} / ${fmtTime(rp.delivery_eta_at)}`);
    fact(grid, "Cost / deadline slack", `${rp.cost_cny === null ? "–" : Math.round(rp.cost_cny) + " CNY"} / ${slack === null ? "–" : slack.toFixed(1) + " h"}`);
  } else {
    fact(grid, "Replacement", replacementState(r));
  }
  const steps = $("status-steps");
  steps.textContent = "";
  for (const next of NEXT_STEPS[r.status] || []) {
    const b = htmlEl("button", { type: "button", class: "small", "data-status": next }, `→ ${next.replaceAll("_", " ")}`);
    b.addEventListener("click", () => setStatus(r, next).catch((e) => detailMessage(e.message, "error")));
    steps.appendChild(b);
  }
  if (!steps.childElementCount) steps.appendChild(htmlEl("span", { class: "muted" }, "No manual step from here."));
  $("diagnosis-form").hidden = !DIAGNOSABLE.includes(r.status);
  $("cancel-form").hidden = !CANCELLABLE.includes(r.status);
  const assignable = ["received", "assigned", "en_route"].includes(r.status);
  $("candidates").hidden = !assignable;
}

function drawTimeline(events) {
  const list = $("timeline");
  list.textContent = "";
  for (const e of events) {
    const li = htmlEl("li", { "data-kind": e.kind });
    li.appendChild(htmlEl("time", { datetime: e.created_at }, fmtTime(e.created_at)));
    const data = Object.entries(e.data || {})
      .filter(([k, v]) => k !== "cycle_id" && v !== null && v !== "" && v !== undefined)
      .map(([k, v]) => `${k.replaceAll("_", " ")}: ${typeof v === "object" ? JSON.stringify(v) : v}`);
    li.appendChild(document.createTextNode(
      `${e.kind.replaceAll("_", " ")}${e.van_id ? " · van " + e.van_id : ""}${e.truck_id ? " · truck " + e.truck_id : ""} · by ${e.actor}${data.length ? " — " + data.join(", ") : ""}`));
    list.appendChild(li);
  }
}

async function loadDetail(id) {
  const [r, events] = await Promise.all([api(`/v1/requests/${id}`), api(`/v1/requests/${id}/events`)]);
  if (state.detailId !== id) return;
  state.detail = r;
  drawDetail(r);
  drawTimeline(events);
  $("detail").dataset.loaded = id;
}

async function openDetail(id, withCandidates) {
  state.detailId = id;
  $("detail").dataset.loaded = "";
  $("detail").dataset.id = id;
  detailMessage("");
  resetCandidates();
  if (!$("detail").open) $("detail").showModal();
  await loadDetail(id);
  if (withCandidates && !$("candidates").hidden) await loadCandidates();
}

function closeDetail() {
  state.detailId = null;
  state.detail = null;
  $("detail").close();
}

function resetCandidates() {
  const box = $("candidates");
  box.textContent = "";
  const b = htmlEl("button", { type: "button", id: "load-candidates", class: "small" }, "Show candidate vans");
  b.addEventListener("click", () => loadCandidates().catch((e) => detailMessage(e.message, "error")));
  box.appendChild(b);
}

async function loadCandidates() {
  const id = state.detailId;
  const res = await api(`/v1/requests/${id}/candidates`);
  if (state.detailId !== id) return;
  const box = $("candidates");
  box.textContent = "";
  const table = htmlEl("table", { id: "candidate-table" });
  table.innerHTML = "<thead><tr><th>Van</th><th>Station</th><th>Road km</th><th>ETA</th><th>Free in</th><th>Note</th><th></th></tr></thead>";
  const body = htmlEl("tbody");
  for (const c of res.vans) {
    const tr = htmlEl("tr", {
      "data-van": c.van_id,
      class: c.feasible ? "feasible" : c.assignable ? "beyond" : "excluded",
    });
    const note = c.current ? "assigned now" : c.excluded_reason || (c.feasible ? "feasible" : "");
    for (const text of [`${c.van_id} (${c.capability.replaceAll("_", " ")})`, c.station_name,
      c.road_km === null ? "–" : c.road_km.toFixed(0), fmtMinutes(c.eta_minutes),
      fmtMinutes(c.free_in_minutes), note]) tr.appendChild(htmlEl("td", {}, text));
    const td = htmlEl("td");
    if (c.assignable && !c.current) {
      const b = htmlEl("button", { type: "button", class: "small", "data-van": c.van_id }, c.feasible ? "Assign" : "Assign (override)");
      b.addEventListener("click", () => assign(c).catch((e) => detailMessage(e.message, "error")));
      td.appendChild(b);
    }
    tr.appendChild(td);
    body.appendChild(tr);
  }
  table.appendChild(body);
  box.appendChild(table);
  if (res.not_listed) box.appendChild(htmlEl("p", { class: "muted" }, `${res.not_listed} vans farther away not listed.`));
  const form = htmlEl("div", { class: "inline" });
  const reason = htmlEl("input", { id: "override-reason", type: "text", maxlength: "2000", placeholder: "needed beyond the service radius" });
  const label = htmlEl("label", {}, "Override reason ");
  label.appendChild(reason);
  form.appendChild(label);
  box.appendChild(form);
}

async function assign(c) {
  const r = state.detail;
  const override = ($("override-reason") || {}).value?.trim() || "";
  const body = { van_id: c.van_id, reason: r.van ? "dispatcher override from candidates" : "chosen from candidates" };
  if (!c.feasible) {
    if (!override) {
      detailMessage(`Van ${c.van_id}: ${c.excluded_reason}. Give an override reason to send it anyway.`, "error");
      $("override-reason").focus();
      return;
    }
    body.override_reason = override;
  }
  const res = await api(`/v1/requests/${r.id}/assignment`, { method: "POST", body });
  detailMessage(`Van ${c.van_id} assigned to ${res.vehicle.plate}, ETA ${fmtMinutes(res.van && res.van.eta_minutes)}.`, "ok");
  resetCandidates();
  await Promise.all([loadDetail(r.id), refresh()]);
}

async function setStatus(r, next) {
  await api(`/v1/requests/${r.id}/status`, { method: "POST", body: { status: next } });
  detailMessage(`${r.vehicle.plate}: status ${r.status} → ${next} recorded.`, "ok");
  await Promise.all([loadDetail(r.id), refresh()]);
}

async function diagnose(ev) {
  ev.preventDefault();
  const r = state.detail;
  const h = Number($("diagnosis-hours").value);
  if (!Number.isFinite(h) || h < 0) { detailMessage("Repair hours must be a number >= 0.", "error"); return; }
  const res = await api(`/v1/requests/${r.id}/diagnosis`, { method: "POST", body: { estimated_repair_hours: h } });
  detailMessage(`Diagnosis ${h} h recorded: ${res.status.replaceAll("_", " ")}${res.estimate.needs_replacement ? ", replacement truck needed" : ""}.`, "ok");
  $("diagnosis-hours").value = "";
  await Promise.all([loadDetail(r.id), refresh()]);
}

async function cancelRequest(ev) {
  ev.preventDefault();
  const r = state.detail;
  const reason = $("cancel-reason").value.trim();
  if (!reason) { detailMessage("Give the reason for cancelling.", "error"); return; }
  await api(`/v1/requests/${r.id}/cancel`, { method: "POST", body: { reason } });
  detailMessage(`${r.vehicle.plate} cancelled (${reason}).`, "ok");
  message(`Request ${r.vehicle.plate} (${r.id}) cancelled.`, "ok");
  $("cancel-reason").value = "";
  await Promise.all([loadDetail(r.id), refresh()]);
}

// -- dispatch runs and refresh ---------------------------------------------------------------

async function runDispatch() {
  const button = $("run-dispatch");
  button.disabled = true;
  try {
    const res = await api("/v1/dispatch/runs", { method: "POST" });
    const plate = (id) => (state.requests.find((r) => r.id === id) || { vehicle: { plate: id } }).vehicle.plate;
    $("last-run").textContent = res.ran
      ? [`${res.assigned.length} assigned, ${res.unassigned.length} waiting, ${res.booked.length} trucks booked (${res.seconds.toFixed(2)} s, ${res.provider})`,
        ...res.assigned.map((a) => `  ${plate(a.request_id)} → ${a.van_id}  ETA ${Math.round(a.eta_minutes)} min`),
        ...res.unassigned.map((u) => `  ${plate(u.request_id)}: ${u.reason} — ${u.suggestion}`),
        ...res.booked.map((b) => `  ${plate(b.request_id)} ⇄ ${b.truck_id} (${Math.round(b.cost_cny)} CNY)`),
        ...res.conflicts.map((c) => "  conflict: " + c)].join("\n")
      : `skipped: ${res.skipped_reason}`;
    $("last-run-box").open = true;
    message(res.ran ? `Dispatch run: ${res.assigned.length} assigned, ${res.unassigned.length} still waiting.` : "Another dispatch run is in progress.", "ok");
    await refresh();
  } finally {
    button.disabled = false;
  }
}

async function refresh() {
  const [vans, requests, kpis, attention] = await Promise.all([
    api("/v1/vans"), api("/v1/requests?open=true&limit=2000"), api("/v1/kpis"), api("/v1/attention"),
  ]);
  state.vans = vans;
  state.requests = requests;
  state.kpis = kpis;
  state.promise = attention.promise_minutes;
  state.attention = attention.items;
  state.attentionById = new Map();
  for (const item of attention.items) {
    if (!state.attentionById.has(item.request_id)) state.attentionById.set(item.request_id, []);
    state.attentionById.get(item.request_id).push(item);
  }
  if (requests.some((r) => r.replacement && !state.trucks.has(r.replacement.truck_id))) {
    state.trucks = new Map((await api("/v1/replacement-trucks")).map((t) => [t.id, t]));
  }
  drawMarkers();
  drawAttention();
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

function onLiveChunk(chunk) {
  if (!/^event: (?!hello)/m.test(chunk)) return;
  scheduleRefresh();
  const line = chunk.split("\n").find((l) => l.startsWith("data: "));
  if (!line || !state.detailId) return;
  try {
    const payload = JSON.parse(line.slice(6));
    if (payload.request_id === state.detailId) loadDetail(state.detailId).catch(() => {});
  } catch (e) {
    // a malformed message changes nothing: the periodic refresh catches up
  }
}

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
          onLiveChunk(buffer.slice(0, cut));
          buffer = buffer.slice(cut + 2);
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
    const [stations, faults, places, trucks] = await Promise.all([
      api("/v1/stations"), api("/v1/fault-codes"), api("/v1/geo/places"), api("/v1/replacement-trucks"),
    ]);
    state.stations = new Map(stations.map((s) => [s.id, s]));
    state.faults = new Map(faults.map((f) => [f.code, f]));
    state.places = places.places;
    state.trucks = new Map(trucks.map((t) => [t.id, t]));
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
  $("load-move-ups").addEventListener("click", () => loadMoveUps().catch((e) => message(e.message, true)));
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
  for (const id of ["queue-filter", "queue-status", "queue-sort"]) $(id).addEventListener("input", drawQueue);
  $("detail-close").addEventListener("click", closeDetail);
  $("detail").addEventListener("close", () => { state.detailId = null; });
  $("copy-id").addEventListener("click", () => {
    navigator.clipboard?.writeText($("detail-id").textContent).then(
      () => detailMessage("Request id copied.", "ok"), () => detailMessage("Select the id to copy it."));
  });
  $("diagnosis-form").addEventListener("submit", (ev) => diagnose(ev).catch((e) => detailMessage(e.message, "error")));
  $("cancel-form").addEventListener("submit", (ev) => cancelRequest(ev).catch((e) => detailMessage(e.message, "error")));
  try {
    await drawProvinces();
  } catch (e) {
    message("map: " + e.message, true);
  }
  if (token()) start(); else showLogin();
  setInterval(() => { if (token() && document.body.dataset.ready) scheduleRefresh(); }, 15000);
});

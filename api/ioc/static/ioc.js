// TourPulse IOC console: login, live map, sparklines, flows and the alert queue.
// Vanilla JS on purpose (no build step in a control room's supply chain); all data goes
// into the page through textContent, never innerHTML, so a hostile site or alert field
// cannot inject markup.
"use strict";

const CONFIG = JSON.parse(document.getElementById("ioc-config").textContent);
const TOKEN_KEY = "tourpulse-ioc-token";
const STALE_MS = 120000;        // a site with nothing newer than this is shown grey
const SPARK_POINTS = 180;        // ~30 min at one fused update per 10 s
const state = {
  token: sessionStorage.getItem(TOKEN_KEY), me: null, sites: new Map(), alerts: new Map(),
  source: null, lastEventId: null, map: null, flowLines: [], selected: null,
};

const $ = (id) => document.getElementById(id);
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k === "dataset") Object.assign(node.dataset, v);
    else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return node;
}

async function api(path, options = {}) {
  const headers = Object.assign({ Authorization: `Bearer ${state.token}` }, options.headers || {});
  const response = await fetch(path, Object.assign({}, options, { headers }));
  if (response.status === 401) { logout("Your session ended; please log in again."); throw new Error("unauthorized"); }
  const body = response.headers.get("content-type")?.includes("json") ? await response.json() : null;
  if (!response.ok) throw new Error(body?.error?.message || `HTTP ${response.status}`);
  return body;
}

// ---- login ---------------------------------------------------------------------------

$("login-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = new FormData(event.target);
  $("login-error").textContent = "";
  const response = await fetch("/api/v1/auth/token", { method: "POST", body: new URLSearchParams(form) });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) { $("login-error").textContent = body?.error?.message || "login failed"; return; }
  state.token = body.access_token;
  sessionStorage.setItem(TOKEN_KEY, state.token);
  start();
});
$("logout").addEventListener("click", () => logout(""));

function logout(message) {
  sessionStorage.removeItem(TOKEN_KEY);
  state.token = null;
  if (state.source) state.source.close();
  $("console").hidden = true; $("logout").hidden = true; $("whoami").textContent = "";
  $("login").hidden = false; $("login-error").textContent = message;
  setStatus(false);
}

function setStatus(live, text) {
  $("feed-status").textContent = text || (live ? "live" : "offline");
  $("feed-status").classList.toggle("live", live);
}

// ---- sites, map, sparklines ------------------------------------------------------------

function loadClass(site) {
  if (!site.updated || Date.now() - site.updated > STALE_MS) return "stale";
  const share = site.people / site.capacity;
  return share >= 0.9 ? "full" : share >= 0.6 ? "busy" : "ok";
}
const COLOURS = { ok: "#2ea043", busy: "#d29922", full: "#f85149", stale: "#6e7681" };

function initMap(features) {
  state.map = L.map("map", { zoomControl: true, attributionControl: Boolean(CONFIG.tileUrl) });
  if (CONFIG.tileUrl) L.tileLayer(CONFIG.tileUrl, { attribution: CONFIG.tileAttribution, maxZoom: 18 }).addTo(state.map);
  const bounds = [];
  for (const f of features) {
    const [lon, lat] = f.geometry.coordinates;
    const site = state.sites.get(f.id);
    site.marker = L.circleMarker([lat, lon], { radius: 9, weight: 2, color: "#0b0f14", fillOpacity: 0.9 })
      .addTo(state.map)
      .bindTooltip(f.properties.name_en, { permanent: features.length <= 25, direction: "right", className: "site-label" });
    site.latlng = [lat, lon];
    bounds.push([lat, lon]);
  }
  if (bounds.length) state.map.fitBounds(bounds, { padding: [30, 30] });
}

function renderSite(site) {
  const cls = loadClass(site);
  site.marker?.setStyle({ fillColor: COLOURS[cls] });
  const share = site.people == null ? 0 : Math.min(1, site.people / site.capacity);
  const row = site.row;
  row.className = cls === "stale" ? "stale" : "";
  row.dataset.load = cls;
  row.cells[1].textContent = site.people == null ? "–" : Math.round(site.people);
  renderBand(site, row.cells[2]);
  const bar = row.cells[3].firstChild.firstChild;
  bar.style.width = `${Math.round(share * 100)}%`;
  bar.style.background = COLOURS[cls];
  row.cells[3].title = site.people == null ? `capacity ${site.capacity}` :
    `${Math.round(share * 100)} % of ${site.capacity} (band ${bandShare(site)})`;
  row.cells[5].textContent = site.wifi == null ? "–" : site.wifi;
  row.cells[6].textContent = site.updated ? new Date(site.updated).toLocaleTimeString() : "never";
  const points = site.history;
  if (points.length > 1) {
    const max = Math.max(...points, 1);
    const coords = points.map((v, i) => `${(i / (SPARK_POINTS - 1)) * 120},${24 - (v / max) * 22}`).join(" ");
    row.cells[4].querySelector("polyline").setAttribute("points", coords);
  }
}

// What the number rests on, in the words an operator uses.
const SOURCES = { wifi_calibrated: "Wi-Fi × camera ratio", wifi_prior: "Wi-Fi × site ratio", camera: "cameras only" };
const FLAG_TEXT = { wifi_silent: "Wi-Fi silent", camera_disagrees: "camera disagrees with Wi-Fi",
  camera_offline: "camera offline", detector_fallback: "detector fallback" };

function flagText(flag) {
  const [kind, device] = flag.split(":");
  return device ? `${FLAG_TEXT[kind] || kind} (${device})` : (FLAG_TEXT[kind] || kind);
}

function bandShare(site) {
  return `${Math.round((100 * site.low) / site.capacity)}–${Math.round((100 * site.high) / site.capacity)} %`;
}

// The band, the source and the confidence; sensor-health flags are spelled out, so a
// weaker number is visibly weaker (confidence drops one step per flag).
function renderBand(site, cell) {
  if (site.people == null || site.low == null) { cell.replaceChildren("–"); return; }
  const conf = site.confidence || "medium";
  cell.dataset.confidence = conf;
  cell.dataset.source = site.source || "";
  const flags = site.flags || [];
  const detail = el("small", { class: "source" },
    `${SOURCES[site.source] || "fused"} · `, el("span", { class: `conf ${conf}` }, `${conf} confidence`));
  const children = [el("span", { class: "range" }, `${Math.round(site.low)}–${Math.round(site.high)}`), detail];
  if (flags.length) children.push(el("small", { class: "flags" }, `⚠ ${flags.map(flagText).join(", ")}`));
  cell.replaceChildren(...children);
  cell.title = `${SOURCES[site.source] || "fused"}` +
    (site.people_per_client ? `, ${site.people_per_client} people per Wi-Fi client` : "");
}

function buildSites(features) {
  const tbody = $("sites").tBodies[0];
  tbody.replaceChildren();
  for (const f of features) {
    const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
    svg.setAttribute("class", "spark");
    svg.setAttribute("viewBox", "0 0 120 24");
    svg.append(document.createElementNS("http://www.w3.org/2000/svg", "polyline"));
    const day = document.createElementNS("http://www.w3.org/2000/svg", "polyline");
    day.setAttribute("class", "day");
    svg.append(day);
    const row = el("tr", { dataset: { site: f.id } },
      el("td", {}, f.properties.name_en), el("td", { class: "num people" }, "–"),
      el("td", { class: "band" }, "–"),
      el("td", {}, el("span", { class: "load" }, el("span"))), el("td", {}, svg),
      el("td", { class: "num" }, "–"), el("td", {}, "never"));
    tbody.append(row);
    state.sites.set(f.id, { id: f.id, name: f.properties.name_en, capacity: f.properties.capacity_persons,
      people: null, wifi: null, updated: 0, history: [], row, marker: null, latlng: null });
  }
}

function onFused(data) {
  const site = state.sites.get(data.site);
  if (!site) return;
  site.people = data.people;
  site.low = data.low; site.high = data.high;
  site.source = data.source; site.confidence = data.confidence; site.flags = data.flags;
  site.people_per_client = data.people_per_client;
  site.capacity = data.capacity || site.capacity;
  site.updated = Date.parse(data.emitted_at) || Date.now();
  site.history.push(data.people);
  if (site.history.length > SPARK_POINTS) site.history.shift();
  renderSite(site);
}

function onOccupancy(data) {
  const site = state.sites.get(data.site);
  if (!site) return;
  site.wifi = data.connected;
  if (site.people == null || Date.now() - site.updated > STALE_MS) {
    site.updated = Date.parse(data.emitted_at) || Date.now();  // Wi-Fi alone keeps it live
  }
  renderSite(site);
}

function onFreshness(data) {
  for (const [id, kinds] of Object.entries(data.sites)) {
    const site = state.sites.get(id);
    if (!site) continue;
    const newest = Math.max(...Object.values(kinds).map((t) => Date.parse(t)));
    if (newest > site.updated) site.updated = newest;
    renderSite(site);
  }
}

// ---- flows -------------------------------------------------------------------------------

const inflows = new Map();  // destination -> [{origin, clients}]

function onFlows(data) {
  inflows.set(data.site, data.inflows || []);
  drawFlowLines();
}

function drawFlowLines() {
  for (const line of state.flowLines) line.remove();
  state.flowLines = [];
  for (const [destination, list] of inflows) {
    for (const { origin, clients } of list) {
      const a = state.sites.get(origin)?.latlng, b = state.sites.get(destination)?.latlng;
      if (!a || !b) continue;
      state.flowLines.push(L.polyline([a, b], { color: "#58a6ff", weight: Math.min(10, 1 + Math.log2(clients)), opacity: 0.6 })
        .bindTooltip(`${state.sites.get(origin).name} → ${state.sites.get(destination).name}: ${clients}`)
        .addTo(state.map));
    }
  }
}

async function loadOd() {
  try {
    const od = await api("/api/v1/flows/od");
    $("od-note").textContent = `(cells under ${od.min_count} visitors hidden)`;
    $("od").tBodies[0].replaceChildren(...od.cells.slice(0, 30).map((c) => el("tr", {},
      el("td", {}, state.sites.get(c.origin)?.name || c.origin),
      el("td", {}, state.sites.get(c.destination)?.name || c.destination),
      el("td", { class: "num" }, c.clients))));
  } catch (err) { $("od-note").textContent = `(unavailable: ${err.message})`; }
}

// ---- alerts ------------------------------------------------------------------------------

const canAct = () => state.me && (state.me.role === "operator" || state.me.role === "admin");

async function loadAlerts() {
  const { alerts } = await api(`/api/v1/alerts?limit=200${$("show-cleared").checked ? "" : "&state=active"}`);
  state.alerts = new Map(alerts.map((a) => [a.id, a]));
  renderAlerts();
}
$("show-cleared").addEventListener("change", () => loadAlerts());

function onAlert(change) {
  const alert = change.alert;
  const visible = $("show-cleared").checked || alert.state.startsWith("ACTIVE");
  if (visible) state.alerts.set(alert.id, alert); else state.alerts.delete(alert.id);
  renderAlerts();
  if (state.selected === alert.id) showDetail(alert.id);
}

const SEVERITY = { CRITICAL: 4, MAJOR: 3, MINOR: 2, WARNING: 1 };
function renderAlerts() {
  const list = [...state.alerts.values()].sort((a, b) =>
    (b.state.startsWith("ACTIVE") - a.state.startsWith("ACTIVE")) ||
    (SEVERITY[b.severity] - SEVERITY[a.severity]) || b.updated_at.localeCompare(a.updated_at));
  $("alert-count").textContent = list.filter((a) => a.state === "ACTIVE_UNACK").length;
  $("alert-queue").replaceChildren(...list.map(alertItem));
}

function alertItem(a) {
  const site = state.sites.get(a.site)?.name || a.site;
  const item = el("li", { class: `${a.severity} ${a.state.startsWith("CLEARED") ? "cleared" : ""}`,
                          dataset: { alertId: a.id, state: a.state } },
    el("strong", {}, `${a.severity} · ${a.type}`), " ", el("span", { class: "state" }, a.state),
    el("div", { class: "meta" }, `${site} · ${a.originator} · ${new Date(a.last_triggered_at).toLocaleTimeString()}`
      + (a.assignee ? ` · assigned to ${a.assignee}` : "") + (a.trigger_count > 1 ? ` · ×${a.trigger_count}` : "")));
  const actions = el("div", { class: "actions" });
  actions.append(button("History", () => showDetail(a.id)));
  if (canAct()) {
    if (!a.state.endsWith("_ACK")) actions.append(button("Ack", () => act(a.id, "ack")));
    if (a.state.startsWith("ACTIVE")) actions.append(button("Clear", () => act(a.id, "clear", {})));
    const who = el("input", { "aria-label": "Assign to", placeholder: "assign to…" });
    actions.append(who, button("Assign", () => act(a.id, "assign", { assignee: who.value || null })));
  }
  item.append(actions);
  return item;
}

function button(label, onClick) {
  const b = el("button", { type: "button" }, label);
  b.addEventListener("click", onClick);
  return b;
}

async function act(id, action, body) {
  try {
    const options = { method: "POST" };
    if (body !== undefined) { options.body = JSON.stringify(body); options.headers = { "Content-Type": "application/json" }; }
    const result = await api(`/api/v1/alerts/${id}/${action}`, options);
    onAlert({ alert: result.alert });
  } catch (err) { window.alert(`${action} failed: ${err.message}`); }
}

async function showDetail(id) {
  state.selected = id;
  const detail = await api(`/api/v1/alerts/${id}`);
  $("alert-detail").hidden = false;
  $("detail-title").textContent = `#${id} ${detail.alert.type} at ${state.sites.get(detail.alert.site)?.name || detail.alert.site}`;
  $("audit").replaceChildren(...detail.history.map((h) => el("li", { dataset: { action: h.action } },
    `${new Date(h.at).toLocaleTimeString()} ${h.actor} ${h.action}`
    + (h.from_state && h.from_state !== h.to_state ? ` ${h.from_state} → ${h.to_state}` : "")
    + (h.note ? ` — ${h.note}` : ""))));
}

// ---- camera tile ---------------------------------------------------------------------------

function initCamera() {
  if (!CONFIG.cameras.length) return;
  $("camera-panel").hidden = false;
  const select = $("camera-select");
  select.replaceChildren(...CONFIG.cameras.map((c) => el("option", { value: c.id }, `${state.sites.get(c.site)?.name || c.site} — ${c.name}`)));
  const show = () => { $("camera-frame").src = `/tours/${encodeURIComponent(select.value)}`; };
  select.addEventListener("change", show);
  show();
}

// ---- live feed -----------------------------------------------------------------------------

// EventSource cannot send headers, and a JWT in the URL would end up in logs: each connection
// gets a one-time ticket instead. The browser's own retry would reuse the spent ticket, so
// errors close the source and reconnect with a fresh ticket, resuming by the last event id.
async function connect() {
  if (state.source) state.source.close();
  state.source = null;
  let ticket;
  try {
    ticket = (await api("/api/v1/auth/stream-ticket", { method: "POST" })).ticket;
  } catch (error) {
    if (state.token) { setStatus(false, "reconnecting…"); setTimeout(connect, 5000); }
    return;
  }
  const resume = state.lastEventId ? `&last_event_id=${encodeURIComponent(state.lastEventId)}` : "";
  const source = new EventSource(`/api/v1/ioc/live?ticket=${encodeURIComponent(ticket)}${resume}`);
  state.source = source;
  const on = (name, fn) => source.addEventListener(name, (e) => {
    if (e.lastEventId) state.lastEventId = e.lastEventId;
    fn(JSON.parse(e.data));
  });
  on("fused", onFused); on("occupancy", onOccupancy); on("flows", onFlows);
  on("alert", onAlert); on("freshness", onFreshness);
  source.onopen = () => { setStatus(true); loadAlerts().catch(() => {}); };
  source.onerror = () => {
    source.close();
    if (state.source !== source) return;
    setStatus(false, "reconnecting…");
    setTimeout(connect, 3000);
  };
}

// The last 24 hours per site from the hourly series (the continuous aggregate behind
// /api/v1/sites/{site}/occupancy with step=1h): the faint line under the live one.
async function loadDayTrend() {
  const to = new Date();
  const from = new Date(to.getTime() - 24 * 3600 * 1000);
  const query = `from=${encodeURIComponent(from.toISOString())}&to=${encodeURIComponent(to.toISOString())}&step=1h`;
  await Promise.all([...state.sites.values()].map(async (site) => {
    const response = await fetch(`/api/v1/sites/${encodeURIComponent(site.id)}/occupancy?${query}`);
    if (!response.ok) return;
    const values = (await response.json()).buckets.map((b) => b.connected_avg ?? 0);
    const max = Math.max(...values, 1);
    const coords = values.map((v, i) => `${(i / Math.max(values.length - 1, 1)) * 120},${24 - (v / max) * 22}`).join(" ");
    const line = site.row.cells[4].querySelector("polyline.day");
    line.setAttribute("points", coords);
    site.row.cells[4].title = `24 h: Wi-Fi clients per hour, peak hour ${Math.round(max)}`;
  }));
}

async function start() {
  try {
    state.me = await api("/api/v1/auth/me");
  } catch { return; }
  $("login").hidden = true; $("console").hidden = false; $("logout").hidden = false;
  $("whoami").textContent = `${state.me.username} (${state.me.role})`;
  if (!state.map) {
    const sites = await (await fetch("/api/v1/sites")).json();
    buildSites(sites.features);
    initMap(sites.features);
    initCamera();
    setInterval(() => state.sites.forEach(renderSite), 10000);
    setInterval(loadOd, 60000);
    setInterval(loadDayTrend, 300000);
  }
  loadDayTrend();
  for (const site of state.sites.values()) renderSite(site);
  loadOd();
  await loadAlerts();
  connect();
}

if (state.token) start(); else $("login").hidden = false;

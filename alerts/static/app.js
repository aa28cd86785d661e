// wardstream command-centre dashboard. No external resources: the map is SVG
// drawn from the zones and live positions; live updates come over /api/live.
"use strict";
(function () {
  const $ = (id) => document.getElementById(id);
  const SVGNS = "http://www.w3.org/2000/svg";
  const SEV = ["red", "orange", "yellow", "blue"];
  const state = {
    token: sessionStorage.getItem("wardstream.token"), me: null,
    alerts: new Map(), persons: new Map(), zones: [], prefix: null,
    ws: null, wsDelay: 500, view: { x: 0, y: 0, k: 1 }, origin: null, timelinePerson: null,
  };

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") node.className = v; else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, v);
    }
    for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(c == null ? "" : String(c)));
    return node;
  }
  function svg(tag, attrs) {
    const node = document.createElementNS(SVGNS, tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    return node;
  }

  async function api(path, options) {
    const opts = Object.assign({ headers: {} }, options || {});
    if (state.token) opts.headers.Authorization = "Bearer " + state.token;
    if (opts.json !== undefined) { opts.body = JSON.stringify(opts.json); opts.headers["Content-Type"] = "application/json"; }
    const resp = await fetch(path, opts);
    if (resp.status === 401 && !path.endsWith("/login")) { logout(); throw new Error("signed out"); }
    const body = await resp.json().catch(() => ({}));
    if (!resp.ok) throw new Error(body.detail || body.error || resp.statusText);
    return body;
  }

  // ---------------------------------------------------------------- login
  $("login-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    $("login-error").textContent = "";
    try {
      const body = await api("/api/auth/login", { method: "POST", json: { username: $("username").value, password: $("password").value } });
      state.token = body.token;
      sessionStorage.setItem("wardstream.token", body.token);
      $("password").value = "";
      await start();
    } catch (err) { $("login-error").textContent = err.message; }
  });
  $("logout").addEventListener("click", async () => {
    try { await api("/api/auth/logout", { method: "POST" }); } catch (e) { /* already gone */ }
    logout();
  });
  function logout() {
    state.token = null; sessionStorage.removeItem("wardstream.token");
    if (state.ws) { state.ws.onclose = null; state.ws.close(); state.ws = null; }
    $("app").hidden = true; $("login").hidden = false; $("logout").hidden = true; $("whoami").textContent = "";
    setLive(false);
  }

  async function start() {
    state.me = await api("/api/me");
    $("whoami").textContent = `${state.me.username} · ${state.me.role} · ${state.me.jurisdiction || "national"}`;
    $("login").hidden = true; $("app").hidden = false; $("logout").hidden = false;
    state.prefix = state.me.jurisdiction;
    await Promise.all([loadZones(), loadAlerts(), loadPersons(), loadCounts()]);
    fitView();
    connectLive();
    loadResponse();
    setInterval(loadResponse, 30000);
  }

  // ---------------------------------------------------------------- response times, failed pages
  const mins = (f) => (f.median_s == null ? "—" : `${(f.median_s / 60).toFixed(1)} / ${(f.p90_s / 60).toFixed(1)}`);
  async function loadResponse() {
    try {
      const body = await api("/api/response-times");
      $("response-times").tBodies[0].replaceChildren(...body.response_times.map((r) => el("tr", {},
        el("td", {}, el("span", { class: "mini " + r.severity }, r.alerts)), el("td", {}, r.jurisdiction),
        el("td", {}, mins(r.to_acknowledge)), el("td", {}, mins(r.to_on_scene)), el("td", {}, mins(r.to_resolve)))));
    } catch (err) { /* figures are optional on the dashboard */ }
    if (!state.me || !["operator", "supervisor", "admin"].includes(state.me.role)) return;
    try {
      const body = await api("/api/notify/deliveries?status=failed&limit=20");
      $("failed-pages-box").hidden = body.deliveries.length === 0;
      $("failed-pages").replaceChildren(...body.deliveries.map((d) => el("li", { class: "failed-page" },
        el("span", { class: "badge " + (d.severity || "blue") }, d.channel), ` ${d.recipient} · ${d.alert_id} · ${d.step}`,
        el("div", { class: "meta" }, `${d.attempts} attempts · ${d.error || ""} · ${fmt(d.last_at)}`))));
    } catch (err) { /* the delivery log is optional on the dashboard */ }
  }

  // ---------------------------------------------------------------- alerts
  async function loadAlerts() {
    const status = $("show-closed").checked ? "" : "&status=open,acknowledged,cleared";
    const body = await api("/api/alerts?limit=300" + status);
    state.alerts.clear();
    for (const a of body.alerts) state.alerts.set(a.alert_id, a);
    renderAlerts();
  }
  $("show-closed").addEventListener("change", loadAlerts);

  function sortAlerts(a, b) {
    const rank = (x) => (x.status === "open" ? 0 : x.status === "cleared" ? 1 : x.status === "acknowledged" ? 2 : 3);
    return rank(a) - rank(b) || SEV.indexOf(a.severity) - SEV.indexOf(b.severity) || (b.opened_at > a.opened_at ? 1 : -1);
  }

  function renderAlerts() {
    const list = $("alerts");
    const items = [...state.alerts.values()].filter((a) => $("show-closed").checked || a.status !== "resolved").sort(sortAlerts);
    list.replaceChildren(...items.map(alertItem));
    $("alert-count").textContent = `(${items.filter((a) => a.status === "open").length} open)`;
    renderAlertMarks();
  }

  function alertItem(a) {
    const li = el("li", { class: "alert", "data-alert-id": a.alert_id, "data-status": a.status });
    const who = a.person_id ? el("a", { href: "#", class: "person-link", onclick: (e) => { e.preventDefault(); openTimeline(a.person_id); } }, a.person_id) : "facility";
    li.append(
      el("div", { class: "row1" },
        el("span", { class: "badge " + a.severity }, a.severity),
        el("span", { class: "kind" }, a.kind),
        el("span", { class: "status " + a.status }, a.status)),
      el("div", { class: "meta" }, who, ` · ${a.jurisdiction || "—"} · opened ${fmt(a.opened_at)}`,
        a.cleared_at ? ` · cleared ${fmt(a.cleared_at)}` : "", a.late ? " · late" : ""),
    );
    if (a.tier && a.tier !== "county") li.append(el("div", { class: "tier" }, `escalated to ${a.tier}`));
    if (a.acknowledged_by) li.append(el("div", { class: "meta" }, `acknowledged by ${a.acknowledged_by}`));
    if (a.resolution_note) li.append(el("div", { class: "meta" }, `note: ${a.resolution_note}`));
    const canAct = state.me && ["operator", "supervisor", "admin"].includes(state.me.role);
    const more = el("button", { type: "button", class: "details", onclick: () => { state.openDetail = state.openDetail === a.alert_id ? null : a.alert_id; renderAlerts(); } },
      state.openDetail === a.alert_id ? "Hide dispatch and notes" : "Dispatch and notes");
    li.append(el("div", { class: "actions" }, more));
    if (state.openDetail === a.alert_id) { const box = el("div", { class: "detail" }); li.append(box); fillDetail(box, a, canAct); }
    if (canAct && a.status !== "resolved") {
      const note = el("input", { class: "note", placeholder: needsNote(a) ? "note (required)" : "note (optional)", "aria-label": "resolution note" });
      const ack = el("button", { type: "button", class: "ack", onclick: () => act(a.alert_id, "ack") }, "Acknowledge");
      if (a.status === "acknowledged") ack.disabled = true;
      const res = el("button", { type: "button", class: "resolve", onclick: () => act(a.alert_id, "resolve", note.value) }, "Resolve");
      li.append(el("div", { class: "actions" }, ack, note, res));
    }
    return li;
  }
  const NEXT = { dispatched: "en_route", en_route: "on_scene", on_scene: "resolved" };
  async function fillDetail(box, a, canAct) {
    const path = `/api/alerts/${encodeURIComponent(a.alert_id)}`;
    let body;
    try { body = await api(path + "/dispatch"); } catch (err) { box.replaceChildren(el("div", { class: "meta" }, err.message)); return; }
    const d = body.dispatch;
    const parts = [el("div", { class: "meta dispatch" }, d ? `dispatched ${d.assignee}${d.unit ? " (" + d.unit + ")" : ""} · ${d.status.replace("_", " ")}` +
      ` · sent ${fmt(d.dispatched_at)}${d.on_scene_at ? " · on scene " + fmt(d.on_scene_at) : ""}${d.resolved_at ? " · done " + fmt(d.resolved_at) : ""}` : "not dispatched")];
    const again = () => renderAlerts();
    const run = async (fn) => { try { await fn(); again(); } catch (err) { alert(err.message); } };
    if (canAct && (!d || d.status !== "resolved")) {
      const who = el("input", { class: "assignee", placeholder: "officer", "aria-label": "officer to dispatch" });
      const row = [who, el("button", { type: "button", class: "dispatch", onclick: () => run(() => api(path + "/dispatch", { method: "POST", json: { assignee: who.value } })) }, d ? "Reassign" : "Dispatch")];
      if (d && NEXT[d.status]) row.push(el("button", { type: "button", class: "advance", onclick: () => run(() => api(path + "/dispatch/status", { method: "POST", json: { status: NEXT[d.status] } })) }, NEXT[d.status].replace("_", " ")));
      parts.push(el("div", { class: "actions" }, ...row));
    }
    parts.push(el("ol", { class: "notes" }, ...body.notes.map((n) => el("li", {}, el("span", { class: "meta" }, `${fmt(n.at)} ${n.operator}: `), n.body))));
    if (canAct) {
      const text = el("input", { class: "note-text", placeholder: "add a note", "aria-label": "note" });
      parts.push(el("div", { class: "actions" }, text, el("button", { type: "button", class: "add-note", onclick: () => run(() => api(path + "/notes", { method: "POST", json: { body: text.value } })) }, "Add note")));
    }
    box.replaceChildren(...parts);
  }
  const needsNote = (a) => a.kind === "tamper" || a.kind === "removed" || a.rule_id === "tamper" || a.rule_id === "removed";

  async function act(id, what, note) {
    try {
      const body = await api(`/api/alerts/${encodeURIComponent(id)}/${what}`, { method: "POST", json: what === "resolve" ? { note: note || null } : {} });
      state.alerts.set(id, Object.assign(state.alerts.get(id) || {}, body.alert));
      renderAlerts();
    } catch (err) { alert(err.message); }
  }

  function onRecord(rec) {
    const a = rec.alert; if (!a || !a.alert_id) return;
    const prev = state.alerts.get(a.alert_id) || {};
    const merged = Object.assign({}, prev, a);
    // workflow state only moves forward: a late worker record must not reopen an acknowledged alert
    const rank = { open: 0, cleared: 1, acknowledged: 2, resolved: 3 };
    if (prev.status && rank[prev.status] > rank[a.status]) merged.status = prev.status;
    if (rec.event === "acknowledged") { merged.status = "acknowledged"; merged.acknowledged_by = rec.operator; }
    if (rec.event === "resolved") { merged.status = "resolved"; merged.resolution_note = rec.note; }
    if (rec.event === "escalated") merged.tier = rec.tier;
    state.alerts.set(a.alert_id, merged);
    renderAlerts();
    const item = document.querySelector(`#alerts li[data-alert-id="${CSS.escape(a.alert_id)}"]`);
    if (item) item.classList.add("fresh");
    if (state.timelinePerson && a.person_id === state.timelinePerson) openTimeline(a.person_id);
    scheduleCounts();
  }

  // ---------------------------------------------------------------- persons
  async function loadPersons() {
    const body = await api("/api/persons?limit=5000");
    state.persons.clear();
    for (const p of body.persons) state.persons.set(p.person_id, p);
    renderPersons(); renderPositions();
  }
  $("person-filter").addEventListener("input", renderPersons);
  function renderPersons() {
    const f = $("person-filter").value.trim().toLowerCase();
    const items = [...state.persons.values()].filter((p) => !f || p.person_id.toLowerCase().includes(f))
      .sort((a, b) => SEV.indexOf(a.risk) - SEV.indexOf(b.risk) || (a.person_id < b.person_id ? -1 : 1)).slice(0, 500);
    $("persons").replaceChildren(...items.map((p) => el("li", { class: "person", "data-person-id": p.person_id, onclick: () => openTimeline(p.person_id) },
      el("span", { class: "badge " + p.risk }, p.risk), el("span", { class: "pid" }, p.person_id),
      el("span", { class: "meta" }, p.jurisdiction))));
  }

  // ---------------------------------------------------------------- jurisdictions
  let countsTimer = null;
  function scheduleCounts() { clearTimeout(countsTimer); countsTimer = setTimeout(loadCounts, 300); }
  async function loadCounts() {
    const body = await api("/api/jurisdictions?prefix=" + encodeURIComponent(state.prefix || ""));
    state.prefix = body.prefix;
    const crumbs = [];
    const base = state.me.jurisdiction;
    for (let len = base.length; len <= body.prefix.length; len += 2) {
      const code = body.prefix.slice(0, len);
      crumbs.push(el("a", { onclick: () => { state.prefix = code; loadCounts(); } }, code || "all"));
    }
    $("crumbs").replaceChildren(...crumbs);
    const rows = body.items.map((it) => {
      const tr = el("tr", { class: it.code.length < 6 ? "drill" : "", "data-code": it.code },
        el("td", {}, it.code), el("td", {}, ...minis(it.alerts)), el("td", {}, ...minis(it.persons)));
      if (it.code.length < 6) tr.addEventListener("click", () => { state.prefix = it.code; loadCounts(); });
      return tr;
    });
    $("counts").tBodies[0].replaceChildren(...rows);
  }
  const minis = (counts) => SEV.map((s) => el("span", { class: "mini " + s, title: s }, counts[s] || 0));

  // ---------------------------------------------------------------- map
  async function loadZones() {
    const body = await api("/api/zones");
    state.zones = body.zones;
    renderZones();
  }
  function project(lon, lat) {
    if (!state.origin) state.origin = { lon, lat, c: Math.cos((lat * Math.PI) / 180) };
    const o = state.origin;
    return [(lon - o.lon) * o.c * 111320, -(lat - o.lat) * 111320];
  }
  function ringPath(ring) { return ring.map(([lon, lat], i) => (i ? "L" : "M") + project(lon, lat).map((v) => v.toFixed(1)).join(",")).join("") + "Z"; }
  function renderZones() {
    const g = $("zones"); g.replaceChildren();
    for (const z of state.zones) {
      const f = z.feature, geom = f.geometry || {}, props = f.properties || {};
      const cls = "zone " + (props.category || "");
      let node = null;
      if (geom.type === "Polygon") node = svg("path", { d: geom.coordinates.map(ringPath).join(""), class: cls, "fill-rule": "evenodd" });
      else if (geom.type === "MultiPolygon") node = svg("path", { d: geom.coordinates.map((p) => p.map(ringPath).join("")).join(""), class: cls, "fill-rule": "evenodd" });
      else if (geom.type === "Point") { const [x, y] = project(geom.coordinates[0], geom.coordinates[1]); node = svg("circle", { cx: x, cy: y, r: props.radius_m || 50, class: cls }); }
      if (!node) continue;
      const title = svg("title"); title.textContent = `${z.zone_id} ${props.name || ""}`; node.append(title);
      g.append(node);
    }
  }
  function renderPositions() {
    const g = $("positions"); g.replaceChildren();
    const r = 6 / state.view.k;
    for (const p of state.persons.values()) {
      if (!p.position) continue;
      const [x, y] = project(p.position.lon, p.position.lat);
      const c = svg("circle", { cx: x, cy: y, r, class: "pos " + p.risk, "data-person-id": p.person_id });
      const t = svg("title"); t.textContent = `${p.person_id} (${p.risk}) ${fmt(p.position.ts)}`; c.append(t);
      c.addEventListener("click", () => openTimeline(p.person_id));
      g.append(c);
    }
  }
  function renderAlertMarks() {
    const g = $("alert-marks"); g.replaceChildren();
    const r = 11 / state.view.k;
    for (const a of state.alerts.values()) {
      if (a.lat == null || a.lon == null || a.status === "resolved") continue;
      const [x, y] = project(a.lon, a.lat);
      g.append(svg("circle", { cx: x, cy: y, r, class: "alert-mark " + a.severity }));
    }
  }
  function applyView() {
    $("viewport").setAttribute("transform", `translate(${state.view.x},${state.view.y}) scale(${state.view.k})`);
    renderPositions(); renderAlertMarks();
  }
  function fitView() {
    const pts = [];
    for (const z of state.zones) collect(z.feature.geometry, pts);
    for (const p of state.persons.values()) if (p.position) pts.push(project(p.position.lon, p.position.lat));
    for (const a of state.alerts.values()) if (a.lat != null) pts.push(project(a.lon, a.lat));
    const box = $("map").getBoundingClientRect();
    if (!pts.length || !box.width) { state.view = { x: box.width / 2, y: box.height / 2, k: 0.05 }; applyView(); return; }
    const xs = pts.map((p) => p[0]), ys = pts.map((p) => p[1]);
    const [x0, x1, y0, y1] = [Math.min(...xs), Math.max(...xs), Math.min(...ys), Math.max(...ys)];
    const k = Math.min(box.width / Math.max(x1 - x0, 200), box.height / Math.max(y1 - y0, 200)) * 0.9;
    state.view = { k, x: box.width / 2 - ((x0 + x1) / 2) * k, y: box.height / 2 - ((y0 + y1) / 2) * k };
    applyView();
  }
  function collect(geom, pts) {
    if (!geom) return;
    if (geom.type === "Point") pts.push(project(geom.coordinates[0], geom.coordinates[1]));
    else if (geom.type === "Polygon") for (const ring of geom.coordinates) for (const c of ring) pts.push(project(c[0], c[1]));
    else if (geom.type === "MultiPolygon") for (const poly of geom.coordinates) for (const ring of poly) for (const c of ring) pts.push(project(c[0], c[1]));
  }
  function zoom(factor, cx, cy) {
    const v = state.view;
    const box = $("map").getBoundingClientRect();
    cx = cx == null ? box.width / 2 : cx; cy = cy == null ? box.height / 2 : cy;
    v.x = cx - (cx - v.x) * factor; v.y = cy - (cy - v.y) * factor; v.k *= factor;
    applyView();
  }
  $("zoom-in").addEventListener("click", () => zoom(1.5));
  $("zoom-out").addEventListener("click", () => zoom(1 / 1.5));
  $("zoom-reset").addEventListener("click", fitView);
  $("map").addEventListener("wheel", (e) => { e.preventDefault(); const b = $("map").getBoundingClientRect(); zoom(e.deltaY < 0 ? 1.2 : 1 / 1.2, e.clientX - b.left, e.clientY - b.top); }, { passive: false });
  let drag = null;
  $("map").addEventListener("pointerdown", (e) => { drag = { x: e.clientX, y: e.clientY, vx: state.view.x, vy: state.view.y }; $("map").classList.add("dragging"); });
  window.addEventListener("pointermove", (e) => { if (!drag) return; state.view.x = drag.vx + e.clientX - drag.x; state.view.y = drag.vy + e.clientY - drag.y; $("viewport").setAttribute("transform", `translate(${state.view.x},${state.view.y}) scale(${state.view.k})`); });
  window.addEventListener("pointerup", () => { drag = null; $("map").classList.remove("dragging"); });

  // ---------------------------------------------------------------- timeline
  async function openTimeline(personId) {
    state.timelinePerson = personId;
    const to = new Date(), from = new Date(to.getTime() - 24 * 3600 * 1000);
    const [person, track] = await Promise.all([
      api(`/api/persons/${encodeURIComponent(personId)}`),
      api(`/api/persons/${encodeURIComponent(personId)}/track?from=${from.toISOString()}&to=${to.toISOString()}`),
    ]);
    $("timeline").hidden = false;
    $("timeline-person").textContent = `${personId} (${person.person.risk})`;
    const items = [];
    for (const f of track.fixes) items.push({ t: f.ts, text: `fix ${f.lat.toFixed(5)}, ${f.lon.toFixed(5)} ±${f.accuracy_m} m${f.valid ? "" : " (no satellite fix)"}`, cls: "" });
    for (const a of person.alerts) {
      items.push({ t: a.opened_at, text: `${a.severity} ${a.kind} opened (${a.status})`, cls: "alert-ev" });
      if (a.cleared_at) items.push({ t: a.cleared_at, text: `${a.kind} cleared`, cls: "alert-ev" });
      if (a.acknowledged_at) items.push({ t: a.acknowledged_at, text: `${a.kind} acknowledged by ${a.acknowledged_by}`, cls: "alert-ev" });
      if (a.resolved_at) items.push({ t: a.resolved_at, text: `${a.kind} resolved by ${a.resolved_by}`, cls: "alert-ev" });
    }
    items.sort((a, b) => (a.t < b.t ? 1 : -1));
    $("timeline-items").replaceChildren(...items.slice(0, 400).map((i) => el("li", { class: i.cls }, `${fmt(i.t)} — ${i.text}`)));
    const g = $("track"); g.replaceChildren();
    if (track.fixes.length > 1) g.append(svg("path", { class: "track-line", d: track.fixes.filter((f) => f.valid).map((f, i) => (i ? "L" : "M") + project(f.lon, f.lat).join(",")).join("") }));
  }
  $("timeline-close").addEventListener("click", () => { $("timeline").hidden = true; $("track").replaceChildren(); state.timelinePerson = null; });

  // ---------------------------------------------------------------- live feed
  function setLive(on) { $("live-status").className = on ? "online" : "offline"; $("live-status").textContent = on ? "live" : "offline"; }
  function connectLive() {
    if (!state.token) return;
    const ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/api/live");
    state.ws = ws;
    ws.onopen = () => ws.send(JSON.stringify({ token: state.token }));
    ws.onmessage = (ev) => {
      const msg = JSON.parse(ev.data);
      if (msg.type === "hello") {
        setLive(true); state.wsDelay = 500;
        // after a reconnect, reload what may have happened while the feed was down
        if (state.fedOnce) { loadAlerts(); loadPersons(); scheduleCounts(); }
        state.fedOnce = true; return;
      }
      if (msg.type === "error") { setLive(false); return; }
      if (msg.type === "risk") {
        const p = state.persons.get(msg.person_id) || { person_id: msg.person_id, jurisdiction: msg.jurisdiction, position: null };
        p.risk = msg.risk; state.persons.set(msg.person_id, p); renderPersons(); renderPositions(); scheduleCounts(); return;
      }
      if (msg.type === "positions") {
        for (const it of msg.items) {
          const p = state.persons.get(it.person_id) || { person_id: it.person_id, jurisdiction: it.jurisdiction, risk: "blue" };
          p.position = { lat: it.lat, lon: it.lon, ts: it.ts, device_id: it.device_id };
          state.persons.set(it.person_id, p);
        }
        renderPositions(); return;
      }
      if (msg.event) onRecord(msg);
    };
    ws.onclose = () => {
      setLive(false);
      if (state.ws !== ws || !state.token) return;
      setTimeout(connectLive, state.wsDelay); state.wsDelay = Math.min(10000, state.wsDelay * 2);
    };
  }

  function fmt(ts) { if (!ts) return ""; const d = new Date(ts); return isNaN(d) ? ts : d.toISOString().replace("T", " ").slice(0, 19) + "Z"; }

  window.addEventListener("resize", () => applyView());
  if (state.token) start().catch(() => logout()); else logout();
})();

// wardstream command-centre dashboard. No external resources: the map is SVG
// drawn from the zones, district outlines and live positions; live updates come
// over /api/live; every text comes from the catalogue in i18n.js.
"use strict";
(function () {
  const $ = (id) => document.getElementById(id);
  const I = window.wardI18n, t = I.t;
  const SVGNS = "http://www.w3.org/2000/svg";
  const SEV = ["red", "orange", "yellow", "blue"];
  const state = {
    token: sessionStorage.getItem("wardstream.token"), me: null,
    alerts: new Map(), persons: new Map(), zones: [], names: {}, prefix: null,
    ws: null, wsDelay: 500, view: { x: 0, y: 0, k: 1 }, origin: null, timelinePerson: null,
    detail: null, highlightZone: null, leaves: [], onLeave: new Set(),
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
  const fmt = (ts) => I.time(ts);
  const sevText = (s) => I.code("sev.", s);
  const kindText = (k) => I.code("kind.", k);
  const statusText = (s) => I.code("status.", s);
  const nameOf = (code) => (code == null || code === "" ? t("who.national") : state.names[code] || code);

  // An API failure, in the operator's language; the server's detail stays in `detail`.
  class ApiError extends Error {
    constructor(code, detail) { super(I.code("err.", code) === code ? t("err.generic", { code }) : I.code("err.", code)); this.code = code; this.detail = detail; }
  }
  async function request(path, options) {
    const opts = Object.assign({ headers: {} }, options || {});
    if (state.token) opts.headers.Authorization = "Bearer " + state.token;
    if (opts.json !== undefined) { opts.body = JSON.stringify(opts.json); opts.headers["Content-Type"] = "application/json"; }
    let resp;
    try { resp = await fetch(path, opts); } catch (e) { throw new ApiError("network", String(e)); }
    if (resp.status === 401 && !path.endsWith("/login")) { logout(); throw new ApiError("unauthorized", ""); }
    if (!resp.ok) {
      const body = await resp.json().catch(() => ({}));
      throw new ApiError(body.error || "http_" + resp.status, body.detail || resp.statusText);
    }
    return resp;
  }
  async function api(path, options) { return (await request(path, options)).json(); }

  // Every action tells its result or its error in the header.
  let resultTimer = null;
  function announce(text, ok) {
    const box = $("action-result");
    box.textContent = text; box.className = ok ? "ok" : "error"; box.hidden = false;
    clearTimeout(resultTimer); resultTimer = setTimeout(() => { box.hidden = true; }, ok ? 4000 : 10000);
  }
  async function perform(fn, okText) {
    try { const out = await fn(); announce(okText, true); return out; } catch (err) { announce(err.message, false); return undefined; }
  }

  // ---------------------------------------------------------------- language
  $("lang").addEventListener("click", () => { I.setLang(I.lang === "zh-CN" ? "en" : "zh-CN"); rerender(); });
  $("tz").addEventListener("change", () => { I.setZone($("tz").value); rerender(); });
  function zoneChoices() {
    $("tz").replaceChildren(...Object.entries(I.ZONES).map(([z, key]) => el("option", { value: z }, t(key))));
    $("tz").value = I.zone;
  }
  function rerender() {
    I.apply(); zoneChoices();
    setLive(state.live);
    if (!state.me) return;
    whoami(); renderAlerts(); renderPersons(); renderLeaves(); renderPositions(); renderZones(); loadCounts(); loadResponse();
    if (state.detail) showDetail(state.detail);
    if (state.timelinePerson) openTimeline(state.timelinePerson);
  }
  function whoami() {
    $("whoami").textContent = `${state.me.username} · ${I.code("role.", state.me.role)} · ${nameOf(state.me.jurisdiction)}`;
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
    } catch (err) { $("login-error").textContent = err.code === "unauthorized" ? t("err.bad_credentials") : err.message; }
  });
  $("logout").addEventListener("click", async () => {
    try { await api("/api/auth/logout", { method: "POST" }); } catch (e) { /* already gone */ }
    logout();
  });
  function logout() {
    state.token = null; state.me = null; sessionStorage.removeItem("wardstream.token");
    if (state.ws) { state.ws.onclose = null; state.ws.close(); state.ws = null; }
    $("app").hidden = true; $("login").hidden = false; $("logout").hidden = true; $("reports-open").hidden = true;
    $("whoami").textContent = "";
    setLive(false);
  }

  async function start() {
    state.me = await api("/api/me");
    $("login").hidden = true; $("app").hidden = false; $("logout").hidden = false; $("reports-open").hidden = false;
    state.prefix = state.me.jurisdiction;
    await loadNames();
    whoami();
    await Promise.all([loadZones(), loadAlerts(), loadPersons(), loadCounts(), loadLeaves()]);
    renderAlerts();  // again, now that the zones have names
    fitView();
    connectLive();
    loadResponse();
    setInterval(loadResponse, 30000);
    setInterval(loadLeaves, 60000);  // a leave becomes active and ends by the clock
  }
  async function loadNames() {
    try { state.names = (await api("/api/districts?prefix=" + encodeURIComponent(state.me.jurisdiction))).names; } catch (err) { state.names = {}; }
  }

  // ---------------------------------------------------------------- response times, failed pages
  const mins = (f) => (f.median_s == null ? "—" : `${(f.median_s / 60).toFixed(1)} / ${(f.p90_s / 60).toFixed(1)}`);
  async function loadResponse() {
    try {
      const body = await api("/api/response-times");
      $("response-times").tBodies[0].replaceChildren(...body.response_times.map((r) => el("tr", {},
        el("td", {}, el("span", { class: "mini " + r.severity, title: sevText(r.severity) }, r.alerts)), el("td", { title: r.jurisdiction }, nameOf(r.jurisdiction)),
        el("td", {}, mins(r.to_acknowledge)), el("td", {}, mins(r.to_on_scene)), el("td", {}, mins(r.to_resolve)))));
    } catch (err) { /* figures are optional on the dashboard */ }
    if (!state.me || !["operator", "supervisor", "admin"].includes(state.me.role)) return;
    try {
      const body = await api("/api/notify/deliveries?status=failed&limit=20");
      $("failed-pages-box").hidden = body.deliveries.length === 0;
      $("failed-pages").replaceChildren(...body.deliveries.map((d) => el("li", { class: "failed-page" },
        el("span", { class: "badge " + (d.severity || "blue") }, I.code("channel.", d.channel)), ` ${d.recipient} · ${d.alert_id} · ${I.code("event.", d.step)}`,
        el("div", { class: "meta" }, `${t("failed.attempts", { n: d.attempts })} · ${d.error || ""} · ${fmt(d.last_at)}`))));
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
    $("alert-count").textContent = t("queue.open", { n: items.filter((a) => a.status === "open").length });
    renderAlertMarks();
  }
  const zoneOf = (id) => state.zones.find((z) => z.zone_id === id) || null;
  function zoneName(id) {
    const z = zoneOf(id);
    const props = (z && z.feature.properties) || {};
    return props.name || (props.code && state.names[props.code]) || id;
  }

  // a zone's name with its category in words, e.g. "Z-bar-00034（酒吧）"
  function zoneLabel(id) {
    const z = zoneOf(id), cat = z && (z.feature.properties || {}).category;
    return cat && cat !== "district" ? t("zone.withCategory", { zone: zoneName(id), cat: I.code("category.", cat) }) : zoneName(id);
  }

  function alertItem(a) {
    const li = el("li", { class: "alert", "data-alert-id": a.alert_id, "data-status": a.status, "data-severity": a.severity, "data-kind": a.kind });
    const who = a.person_id ? el("a", { href: "#", class: "person-link", onclick: (e) => { e.preventDefault(); openTimeline(a.person_id); } }, a.person_id) : t("alert.facility");
    li.append(
      el("div", { class: "row1" },
        el("span", { class: "badge " + a.severity }, sevText(a.severity)),
        el("span", { class: "kind", title: a.kind }, kindText(a.kind)),
        el("span", { class: "status " + a.status }, statusText(a.status))),
      el("div", { class: "meta" }, who, ...leaveBadge(a.person_id), ` · ${nameOf(a.jurisdiction)}`, a.zone ? ` · ${zoneLabel(a.zone)}` : "",
        ` · ${t("alert.opened", { t: fmt(a.opened_at) })}`,
        a.cleared_at ? ` · ${t("alert.cleared", { t: fmt(a.cleared_at) })}` : "", a.late ? ` · ${t("alert.late")}` : ""),
    );
    if (a.tier && a.tier !== "county") li.append(el("div", { class: "tier" }, t("alert.escalated", { tier: I.code("tier.", a.tier) })));
    if (a.acknowledged_by) li.append(el("div", { class: "meta" }, t("alert.ackBy", { who: a.acknowledged_by })));
    if (a.resolution_note) li.append(el("div", { class: "meta" }, t("alert.note", { note: a.resolution_note })));
    const canAct = state.me && ["operator", "supervisor", "admin"].includes(state.me.role);
    const open = el("button", { type: "button", class: "open-detail", onclick: () => showDetail(a.alert_id) }, t("alert.details"));
    const more = el("button", { type: "button", class: "details", onclick: () => { state.openDetail = state.openDetail === a.alert_id ? null : a.alert_id; renderAlerts(); } },
      state.openDetail === a.alert_id ? t("alert.hideDispatch") : t("alert.dispatchNotes"));
    li.append(el("div", { class: "actions" }, open, more));
    if (state.openDetail === a.alert_id) { const box = el("div", { class: "detail" }); li.append(box); fillDispatch(box, a, canAct); }
    if (canAct && a.status !== "resolved") {
      const note = el("input", { class: "note", placeholder: needsNote(a) ? t("alert.notePhReq") : t("alert.notePh"), "aria-label": t("alert.noteLabel") });
      const ack = el("button", { type: "button", class: "ack", onclick: () => act(a.alert_id, "ack") }, t("alert.ack"));
      if (a.status === "acknowledged") ack.disabled = true;
      const res = el("button", { type: "button", class: "resolve", onclick: () => resolve(a, note.value) }, t("alert.resolve"));
      li.append(el("div", { class: "actions" }, ack, note, res));
    }
    return li;
  }
  const NEXT = { dispatched: "en_route", en_route: "on_scene", on_scene: "resolved" };
  async function fillDispatch(box, a, canAct) {
    const path = `/api/alerts/${encodeURIComponent(a.alert_id)}`;
    let body;
    try { body = await api(path + "/dispatch"); } catch (err) { box.replaceChildren(el("div", { class: "meta" }, err.message)); return; }
    const d = body.dispatch;
    const parts = [el("div", { class: "meta dispatch", "data-dispatch-status": d ? d.status : "none" }, d ? t("dispatch.sent", { who: d.assignee, unit: d.unit ? ` (${d.unit})` : "", status: I.code("dispatch.status.", d.status), t: fmt(d.dispatched_at) }) +
      (d.on_scene_at ? t("dispatch.onScene", { t: fmt(d.on_scene_at) }) : "") + (d.resolved_at ? t("dispatch.done", { t: fmt(d.resolved_at) }) : "") : t("dispatch.none"))];
    const run = async (fn, ok) => { if (await perform(fn, ok) !== undefined) renderAlerts(); };
    if (canAct && (!d || d.status !== "resolved")) {
      const who = el("input", { class: "assignee", placeholder: t("dispatch.officer"), "aria-label": t("dispatch.officerLabel") });
      const row = [who, el("button", { type: "button", class: "dispatch", onclick: () => run(() => api(path + "/dispatch", { method: "POST", json: { assignee: who.value } }), t("result.dispatched")) }, d ? t("dispatch.reassign") : t("dispatch.dispatch"))];
      if (d && NEXT[d.status]) row.push(el("button", { type: "button", class: "advance", onclick: () => run(() => api(path + "/dispatch/status", { method: "POST", json: { status: NEXT[d.status] } }), t("result.advanced")) }, I.code("dispatch.status.", NEXT[d.status])));
      parts.push(el("div", { class: "actions" }, ...row));
    }
    parts.push(el("ol", { class: "notes" }, ...body.notes.map((n) => el("li", {}, el("span", { class: "meta" }, `${fmt(n.at)} ${n.operator}: `), n.body))));
    if (canAct) {
      const text = el("input", { class: "note-text", placeholder: t("dispatch.notePh"), "aria-label": t("dispatch.notePh") });
      parts.push(el("div", { class: "actions" }, text, el("button", { type: "button", class: "add-note", onclick: () => run(() => api(path + "/notes", { method: "POST", json: { body: text.value } }), t("result.noted")) }, t("dispatch.addNote"))));
    }
    box.replaceChildren(...parts);
  }
  const needsNote = (a) => a.kind === "tamper" || a.kind === "removed" || a.rule_id === "tamper" || a.rule_id === "removed" || redUncleared(a);
  const redUncleared = (a) => a.severity === "red" && !a.cleared_at && a.status !== "resolved";

  // Resolving a red alert that has not cleared asks for confirmation and a note.
  function resolve(a, note) {
    if (!redUncleared(a)) return act(a.alert_id, "resolve", note);
    $("confirm-alert").textContent = `${sevText(a.severity)} · ${kindText(a.kind)} · ${a.person_id || t("alert.facility")} · ${fmt(a.opened_at)}`;
    $("confirm-note").value = note || ""; $("confirm-error").textContent = "";
    $("confirm").hidden = false; $("confirm").dataset.alertId = a.alert_id; $("confirm-note").focus();
    return undefined;
  }
  $("confirm-cancel").addEventListener("click", () => { $("confirm").hidden = true; });
  $("confirm-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const note = $("confirm-note").value.trim();
    if (!note) { $("confirm-error").textContent = t("confirm.needNote"); return; }
    const ok = await act($("confirm").dataset.alertId, "resolve", note);
    if (ok) $("confirm").hidden = true; else $("confirm-error").textContent = $("action-result").textContent;
  });

  async function act(id, what, note) {
    const body = await perform(() => api(`/api/alerts/${encodeURIComponent(id)}/${what}`, { method: "POST", json: what === "resolve" ? { note: note || null } : {} }),
      t(what === "resolve" ? "result.resolved" : "result.acknowledged", { id }));
    if (!body) return false;
    state.alerts.set(id, Object.assign(state.alerts.get(id) || {}, body.alert));
    renderAlerts();
    if (state.detail === id) showDetail(id);
    return true;
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

  // ---------------------------------------------------------------- alert detail
  function distanceToZone(a, z) {
    // metres from the alert's position to the zone's boundary, and whether it lies inside
    if (!z || a.lat == null || a.lon == null) return null;
    const g = z.feature.geometry || {}, p = project(a.lon, a.lat);
    if (g.type === "Point") {
      const c = project(g.coordinates[0], g.coordinates[1]), r = (z.feature.properties || {}).radius_m || 0;
      const d = Math.hypot(p[0] - c[0], p[1] - c[1]);
      return { inside: d <= r, m: Math.abs(r - d) };
    }
    const polys = g.type === "Polygon" ? [g.coordinates] : g.type === "MultiPolygon" ? g.coordinates : [];
    let best = Infinity, inside = false;
    for (const poly of polys) {
      let inPoly = false;
      poly.forEach((ring, ri) => {
        const pts = ring.map(([lon, lat]) => project(lon, lat));
        let crossing = false;
        for (let i = 0, j = pts.length - 1; i < pts.length; j = i++) {
          const [xi, yi] = pts[i], [xj, yj] = pts[j];
          if ((yi > p[1]) !== (yj > p[1]) && p[0] < ((xj - xi) * (p[1] - yi)) / (yj - yi) + xi) crossing = !crossing;
          const dx = xj - xi, dy = yj - yi, len = dx * dx + dy * dy || 1;
          const u = Math.max(0, Math.min(1, ((p[0] - xi) * dx + (p[1] - yi) * dy) / len));
          best = Math.min(best, Math.hypot(p[0] - (xi + u * dx), p[1] - (yi + u * dy)));
        }
        if (ri === 0) inPoly = crossing; else if (crossing) inPoly = false;
      });
      inside = inside || inPoly;
    }
    return polys.length ? { inside, m: best } : null;
  }
  // Evidence in words: a code (gps, video, checkin), or what a check-in alert carries as JSON
  // (the results of a failed check-in, the owed check-ins a missed one is about).
  function evidenceText(a) {
    if (!a.evidence) return "";
    if (a.evidence.charAt(0) === "{") {
      let e = null;
      try { e = JSON.parse(a.evidence); } catch (err) { e = null; }
      if (e && Array.isArray(e.missed)) return t("checkins.owed", { keys: e.missed.join(", ") });
      if (e && ("face_score" in e || "action_ok" in e)) {
        const parts = [];
        if (e.face_score != null) parts.push(t("checkins.scoreOf", { score: e.face_score.toFixed(2), min: e.min_score == null ? "—" : e.min_score.toFixed(2) }));
        if (e.action_ok != null) parts.push(t(e.action_ok ? "checkins.actionOk" : "checkins.why.action"));
        if (e.method) parts.push(I.code("checkins.method.", e.method));
        return parts.join(" · ");
      }
    }
    return I.code("evidence.", a.evidence);
  }
  function row(label, value, cls) { return el("div", { class: "kv " + (cls || "") }, el("span", { class: "k" }, label), el("span", { class: "v" }, value == null || value === "" ? t("detail.none") : value)); }
  async function showDetail(id) {
    state.detail = id;
    const path = `/api/alerts/${encodeURIComponent(id)}`;
    let body, disp;
    try { [body, disp] = await Promise.all([api(path), api(path + "/dispatch").catch(() => ({ dispatch: null, notes: [] }))]); } catch (err) { announce(err.message, false); return; }
    const a = body.alert, z = a.zone ? zoneOf(a.zone) : null, props = (z && z.feature.properties) || {};
    const cat = I.code("category.", props.category || "none");
    const zoneText = a.zone ? zoneName(a.zone) : "";
    const dist = distanceToZone(a, z);
    const end = a.cleared_at || a.resolved_at;
    const dur = I.duration((end ? Date.parse(end) : Date.now()) - Date.parse(a.opened_at));
    const parts = [
      el("p", { class: "what" }, t("detail.sentence", { person: a.person_id || t("alert.facility"), kind: kindText(a.kind), t: fmt(a.opened_at),
        zone: zoneText ? t("detail.inZone", { zone: zoneText, cat }) : "" })),
      row(t("detail.severity"), sevText(a.severity), "sev " + a.severity),
      row(t("detail.status"), statusText(a.status)),
      row(t("detail.person"), a.person_id || t("alert.facility")),
      row(t("detail.jurisdiction"), nameOf(a.jurisdiction)),
      row(t("detail.zone"), zoneText ? `${zoneText} · ${cat}` : "", "zone-name"),
    ];
    if (dist) parts.push(row("", t(dist.inside ? "detail.distanceIn" : "detail.distanceOut", { m: Math.round(dist.m) }), "distance"));
    parts.push(row(t("detail.duration"), end ? dur : t("detail.ongoing", { d: dur })),
      row(t("detail.device"), a.device_id || ""), row(t("detail.evidence"), evidenceText(a), "evidence"),
      row(t("detail.tier"), a.tier ? I.code("tier.", a.tier) : ""),
      row(t("detail.assignee"), disp.dispatch ? `${disp.dispatch.assignee} · ${I.code("dispatch.status.", disp.dispatch.status)}` : ""));
    if (disp.notes.length || a.resolution_note) {
      parts.push(el("h3", {}, t("detail.notes")), el("ol", { class: "notes" }, ...disp.notes.map((n) => el("li", {}, `${fmt(n.at)} ${n.operator}: ${n.body}`)),
        ...(a.resolution_note ? [el("li", {}, `${fmt(a.resolved_at)} ${a.resolved_by || ""}: ${a.resolution_note}`)] : [])));
    }
    parts.push(el("h3", {}, t("detail.lifecycle")), el("ol", { class: "lifecycle" }, ...body.events.map((e) => el("li", { "data-event": e.event },
      `${fmt(e.at)} ${I.code("event.", e.event)}${e.operator ? " · " + e.operator : ""}${e.tier ? " · " + I.code("tier.", e.tier) : ""}${e.note ? " · " + e.note : ""}`))));
    $("detail-body").replaceChildren(...parts);
    $("alert-detail").hidden = false; $("alert-detail").dataset.alertId = id; $("alert-detail").scrollTop = 0;
    state.highlightZone = a.zone || null; renderZones();
    if (a.person_id && a.lat != null) {
      const at = Date.parse(a.opened_at), from = new Date(at - 30 * 60000), to = new Date((end ? Date.parse(end) : Date.now()) + 30 * 60000);
      try {
        const track = await api(`/api/persons/${encodeURIComponent(a.person_id)}/track?from=${from.toISOString()}&to=${to.toISOString()}`);
        drawTrack(track.fixes);
      } catch (err) { drawTrack([]); }
    }
    const pts = [];
    if (z) collect(z.feature.geometry, pts);
    if (a.lat != null) pts.push(project(a.lon, a.lat));
    fitTo(pts, 600);
  }
  $("detail-close").addEventListener("click", () => { $("alert-detail").hidden = true; state.detail = null; state.highlightZone = null; renderZones(); drawTrack([]); });

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
      el("span", { class: "badge " + p.risk }, sevText(p.risk)), el("span", { class: "pid" }, p.person_id), ...leaveBadge(p.person_id),
      el("span", { class: "meta", title: p.jurisdiction }, nameOf(p.jurisdiction)))));
  }

  // ---------------------------------------------------------------- leave
  // Requests waiting for a decision, approved leave to come and persons on leave now; the
  // buttons offered follow the caller's role (the API decides, and says why when it refuses).
  const leaveBadge = (personId) => (personId && state.onLeave.has(personId) ? [el("span", { class: "leave-badge", "data-on-leave": personId }, t("leave.onLeave"))] : []);
  async function loadLeaves() {
    try { state.leaves = (await api("/api/leaves?state=requested,approved,active&limit=500")).leaves; } catch (err) { state.leaves = []; }
    state.onLeave = new Set(state.leaves.filter((l) => l.state === "active").map((l) => l.person_id));
    renderLeaves(); renderPersons(); renderAlerts();
  }
  const LEAVE_RESULT = { approve: "result.leave.approve", reject: "result.leave.reject", cancel: "result.leave.cancel", return: "result.leave.return" };
  async function leaveAct(l, what, note) {
    const body = await perform(() => api(`/api/leaves/${l.leave_id}/${what}`, { method: "POST", json: note ? { note } : {} }), t(LEAVE_RESULT[what], { id: l.exemption_id }));
    if (body) await loadLeaves();
  }
  function renderLeaves() {
    const me = state.me, rank = ["viewer", "operator", "supervisor", "admin"].indexOf(me ? me.role : "viewer");
    const order = { active: 0, requested: 1, approved: 2 };
    const items = [...state.leaves].sort((a, b) => order[a.state] - order[b.state] || (a.from < b.from ? -1 : 1));
    if (!items.length) { $("leaves").replaceChildren(el("li", { class: "meta" }, t("leave.none"))); return; }
    $("leaves").replaceChildren(...items.map((l) => {
      const li = el("li", { class: "leave", "data-leave-id": String(l.leave_id), "data-state": l.state },
        el("div", { class: "row1" }, el("span", { class: "leave-state " + l.state }, I.code("leave.state.", l.state)),
          el("a", { href: "#", class: "person-link", onclick: (e) => { e.preventDefault(); openTimeline(l.person_id); } }, l.person_id),
          el("span", { class: "meta" }, l.state === "requested" ? t("leave.needs", { level: I.code("leave.level.", l.level) }) : t("leave.decided", { who: l.decided_by || "", level: I.code("leave.level.", l.level) }))),
        el("div", { class: "meta" }, t("leave.period", { from: fmt(l.from), until: fmt(l.until), days: l.days })),
        el("div", { class: "meta" }, `${t("leave.reason", { reason: l.reason })} · ${t("leave.by", { who: l.requested_by })}`));
      const buttons = [];
      const note = el("input", { class: "note", placeholder: t("leave.notePh"), "aria-label": t("leave.noteLabel") });
      if (l.state === "requested" && rank >= 2 && l.requested_by !== me.username) {
        // a supervisor approves what the justice office may; longer leave is the county's
        if (rank === 3 || l.level === "office") buttons.push(el("button", { type: "button", class: "leave-approve", onclick: () => leaveAct(l, "approve", note.value.trim()) }, t("leave.approve")));
        buttons.push(el("button", { type: "button", class: "leave-reject", onclick: () => leaveAct(l, "reject", note.value.trim()) }, t("leave.reject")));
      }
      if ((l.state === "requested" || l.state === "approved") && rank >= 1) buttons.push(el("button", { type: "button", class: "leave-cancel", onclick: () => leaveAct(l, "cancel", note.value.trim()) }, t("leave.cancel")));
      if (l.state === "active" && rank >= 1) buttons.push(el("button", { type: "button", class: "leave-return", onclick: () => leaveAct(l, "return", note.value.trim()) }, t("leave.return")));
      if (buttons.length) li.append(el("div", { class: "actions" }, note, ...buttons));
      return li;
    }));
  }

  // ---------------------------------------------------------------- jurisdictions
  let countsTimer = null;
  function scheduleCounts() { clearTimeout(countsTimer); countsTimer = setTimeout(loadCounts, 300); }
  function drill(code) { state.prefix = code; loadCounts().then(() => fitView(code)); }
  async function loadCounts() {
    const body = await api("/api/jurisdictions?prefix=" + encodeURIComponent(state.prefix || ""));
    state.prefix = body.prefix;
    const crumbs = [];
    const base = state.me.jurisdiction;
    for (let len = base.length; len <= body.prefix.length; len += 2) {
      const code = body.prefix.slice(0, len);
      crumbs.push(el("a", { "data-code": code, onclick: () => drill(code) }, nameOf(code)));
    }
    $("crumbs").replaceChildren(...crumbs);
    const rows = body.items.map((it) => {
      const here = it.code === body.prefix;
      const tr = el("tr", { class: here ? "" : "drill", "data-code": it.code },
        el("td", { title: it.code }, nameOf(it.code)), el("td", {}, ...minis(it.alerts)), el("td", {}, ...minis(it.persons)));
      if (!here) tr.addEventListener("click", () => drill(it.code));
      return tr;
    });
    $("counts").tBodies[0].replaceChildren(...rows);
  }
  const minis = (counts) => SEV.map((s) => el("span", { class: "mini " + s + ((counts[s] || 0) === 0 ? " zero" : ""), title: sevText(s) }, counts[s] || 0));

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
    const zg = $("zones"), dg = $("districts"); zg.replaceChildren(); dg.replaceChildren();
    for (const z of state.zones) {
      const f = z.feature, geom = f.geometry || {}, props = f.properties || {};
      const district = props.category === "district";
      const cls = "zone " + (props.category || "") + (state.highlightZone === z.zone_id ? " highlight" : "");
      let node = null;
      if (geom.type === "Polygon") node = svg("path", { d: geom.coordinates.map(ringPath).join(""), class: cls, "fill-rule": "evenodd" });
      else if (geom.type === "MultiPolygon") node = svg("path", { d: geom.coordinates.map((p) => p.map(ringPath).join("")).join(""), class: cls, "fill-rule": "evenodd" });
      else if (geom.type === "Point") { const [x, y] = project(geom.coordinates[0], geom.coordinates[1]); node = svg("circle", { cx: x, cy: y, r: props.radius_m || 50, class: cls }); }
      if (!node) continue;
      node.setAttribute("data-zone-id", z.zone_id);
      const title = svg("title"); title.textContent = `${zoneName(z.zone_id)} · ${I.code("category.", props.category || "none")}`; node.append(title);
      (district ? dg : zg).append(node);
    }
    renderLabels();
  }
  const RISK_ORDER = { blue: 0, yellow: 1, orange: 2, red: 3 };
  function renderPositions() {
    // painted in risk order: red last, so it is drawn above every other colour
    const g = $("positions"); g.replaceChildren();
    const r = 6 / state.view.k;
    const persons = [...state.persons.values()].filter((p) => p.position)
      .sort((a, b) => (RISK_ORDER[a.risk] || 0) - (RISK_ORDER[b.risk] || 0));
    for (const p of persons) {
      const [x, y] = project(p.position.lon, p.position.lat);
      const c = svg("circle", { cx: x, cy: y, r: p.risk === "red" ? r * 1.3 : r, class: "pos " + p.risk, "data-person-id": p.person_id, "data-risk": p.risk });
      const tt = svg("title"); tt.textContent = `${p.person_id} (${sevText(p.risk)}) ${fmt(p.position.ts)}`; c.append(tt);
      c.addEventListener("click", () => openTimeline(p.person_id));
      g.append(c);
    }
  }
  function renderAlertMarks() {
    const g = $("alert-marks"); g.replaceChildren();
    const r = 11 / state.view.k;
    const items = [...state.alerts.values()].filter((a) => a.lat != null && a.lon != null && a.status !== "resolved")
      .sort((a, b) => SEV.indexOf(b.severity) - SEV.indexOf(a.severity));
    for (const a of items) {
      const [x, y] = project(a.lon, a.lat);
      g.append(svg("circle", { cx: x, cy: y, r, class: "alert-mark " + a.severity }));
    }
  }
  function bbox(geom) {
    const pts = []; collect(geom, pts);
    if (!pts.length) return null;
    const xs = pts.map((p) => p[0]), ys = pts.map((p) => p[1]);
    return [Math.min(...xs), Math.min(...ys), Math.max(...xs), Math.max(...ys)];
  }
  // Zone and district names, drawn in screen space once a zone is big enough on screen to carry one.
  function renderLabels() {
    const g = $("labels"); g.replaceChildren();
    const v = state.view;
    for (const z of state.zones) {
      const b = bbox(z.feature.geometry);
      if (!b) continue;
      const props = z.feature.properties || {};
      const w = (b[2] - b[0]) * v.k, district = props.category === "district";
      if (w < (district ? 60 : 40)) continue;
      // along the top edge, inside: the middle of a zone is where the persons in it are drawn
      const x = v.x + ((b[0] + b[2]) / 2) * v.k, y = v.y + b[1] * v.k + (district ? 18 : 14);
      const text = svg("text", { x, y, class: "zone-label" + (district ? " district-label" : ""), "text-anchor": "middle", "data-zone-id": z.zone_id });
      text.textContent = zoneName(z.zone_id);
      g.append(text);
    }
  }
  function renderScale() {
    const maxPx = 120, metres = maxPx / state.view.k;
    const pow = Math.pow(10, Math.floor(Math.log10(metres)));
    const nice = [5, 2, 1].map((m) => m * pow).find((m) => m <= metres) || pow;
    $("scale-line").style.width = `${Math.round(nice * state.view.k)}px`;
    $("scale-text").textContent = nice >= 1000 ? t("scale.km", { n: nice / 1000 }) : t("scale.m", { n: nice });
    $("scale-bar").dataset.metres = String(nice);
  }
  function applyView() {
    $("viewport").setAttribute("transform", `translate(${state.view.x},${state.view.y}) scale(${state.view.k})`);
    $("map").dataset.scale = String(state.view.k);
    renderPositions(); renderAlertMarks(); renderLabels(); renderScale();
  }
  function fitTo(pts, minSpan) {
    const box = $("map").getBoundingClientRect();
    if (!pts.length || !box.width) { state.view = { x: box.width / 2, y: box.height / 2, k: 0.05 }; applyView(); return; }
    const xs = pts.map((p) => p[0]), ys = pts.map((p) => p[1]);
    const [x0, x1, y0, y1] = [Math.min(...xs), Math.max(...xs), Math.min(...ys), Math.max(...ys)];
    const k = Math.min(box.width / Math.max(x1 - x0, minSpan), box.height / Math.max(y1 - y0, minSpan)) * 0.9;
    state.view = { k, x: box.width / 2 - ((x0 + x1) / 2) * k, y: box.height / 2 - ((y0 + y1) / 2) * k };
    applyView();
  }
  // Fit the map to everything inside a jurisdiction (all in scope when no code is given).
  function fitView(code) {
    const inside = (j) => !code || (j || "").startsWith(code);
    const pts = [];
    for (const z of state.zones) if (inside(z.jurisdiction || (z.feature.properties || {}).code)) collect(z.feature.geometry, pts);
    for (const p of state.persons.values()) if (p.position && inside(p.jurisdiction)) pts.push(project(p.position.lon, p.position.lat));
    for (const a of state.alerts.values()) if (a.lat != null && inside(a.jurisdiction)) pts.push(project(a.lon, a.lat));
    if (!pts.length && code) return fitView(null);
    fitTo(pts, 200);
    $("map").dataset.fitted = code || "";
    return undefined;
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
  $("zoom-reset").addEventListener("click", () => fitView(state.prefix));
  $("map").addEventListener("wheel", (e) => { e.preventDefault(); const b = $("map").getBoundingClientRect(); zoom(e.deltaY < 0 ? 1.2 : 1 / 1.2, e.clientX - b.left, e.clientY - b.top); }, { passive: false });
  let drag = null;
  $("map").addEventListener("pointerdown", (e) => { drag = { x: e.clientX, y: e.clientY, vx: state.view.x, vy: state.view.y }; $("map").classList.add("dragging"); });
  window.addEventListener("pointermove", (e) => { if (!drag) return; state.view.x = drag.vx + e.clientX - drag.x; state.view.y = drag.vy + e.clientY - drag.y; $("viewport").setAttribute("transform", `translate(${state.view.x},${state.view.y}) scale(${state.view.k})`); renderLabels(); });
  window.addEventListener("pointerup", () => { drag = null; $("map").classList.remove("dragging"); });

  // ---------------------------------------------------------------- timeline
  function drawTrack(fixes) {
    const g = $("track"); g.replaceChildren();
    const valid = fixes.filter((f) => f.valid);
    if (valid.length > 1) g.append(svg("path", { class: "track-line", d: valid.map((f, i) => (i ? "L" : "M") + project(f.lon, f.lat).join(",")).join("") }));
  }
  // Check-ins: where on the map (verified or failed), and the history table, newest first.
  function drawCheckins(items) {
    const g = $("track"), r = 7 / state.view.k;
    for (const c of items) {
      const [x, y] = project(c.lon, c.lat);
      const mark = svg("circle", { cx: x, cy: y, r, class: "checkin-mark " + checkinClass(c), "data-ts": c.ts });
      const tt = svg("title"); tt.textContent = `${fmt(c.ts)} ${checkinResult(c)}`; mark.append(tt);
      g.append(mark);
    }
  }
  const CHECKIN_WHY = { face_score: "checkins.why.face_score", action: "checkins.why.action", no_result: "checkins.why.no_result" };
  const checkinClass = (c) => (c.verified === true ? "verified" : c.verified === false ? "failed" : "unjudged");
  function checkinResult(c) {
    if (c.verified === true) return t("checkins.verified");
    if (c.verified !== false) return t("checkins.unjudged");
    const params = { score: c.face_score == null ? "" : c.face_score.toFixed(2), min: c.min_score == null ? "" : c.min_score.toFixed(2) };
    const why = (c.failures || []).map((f) => (CHECKIN_WHY[f] ? t(CHECKIN_WHY[f], params) : f));
    return t("checkins.failed", { why: why.join(t("checkins.and")) });
  }
  function renderCheckins(items) {
    $("checkin-history").hidden = items.length === 0;
    const rows = [...items].reverse().map((c) => el("tr", { class: "checkin " + checkinClass(c), "data-ts": c.ts },
      el("td", {}, fmt(c.ts)),
      el("td", { class: "result" }, checkinResult(c)),
      el("td", { class: "score" }, c.face_score == null ? "—" : c.min_score == null ? c.face_score.toFixed(2) : t("checkins.scoreOf", { score: c.face_score.toFixed(2), min: c.min_score.toFixed(2) })),
      el("td", { class: "method" }, c.method ? I.code("checkins.method.", c.method) : "—"),
      el("td", { class: "request" }, c.request_id || t("checkins.unrequested")),
      el("td", { class: "where" }, (c.placement ? I.code("checkins.where.", c.placement) : t("checkins.noZone")) + " · " + t("checkins.accuracy", { acc: Math.round(c.accuracy_m) }))));
    $("checkins").tBodies[0].replaceChildren(...rows);
  }
  async function openTimeline(personId) {
    state.timelinePerson = personId;
    const to = new Date(), from = new Date(to.getTime() - 24 * 3600 * 1000), week = new Date(to.getTime() - 7 * 24 * 3600 * 1000);
    const path = `/api/persons/${encodeURIComponent(personId)}`;
    let person, track, checkins;
    try {
      [person, track, checkins] = await Promise.all([
        api(path),
        api(`${path}/track?from=${from.toISOString()}&to=${to.toISOString()}`),
        api(`${path}/checkins?from=${week.toISOString()}&to=${to.toISOString()}`),
      ]);
    } catch (err) { announce(err.message, false); return; }
    $("timeline").hidden = false;
    $("timeline-person").textContent = `${personId} (${sevText(person.person.risk)})`;
    const items = [];
    // a fix inside a zone one of the person's alerts is about says so
    const zones = [...new Set(person.alerts.map((a) => a.zone).filter(Boolean))].map(zoneOf).filter(Boolean);
    const where = (f) => {
      for (const z of zones) { const d = distanceToZone(f, z); if (d && d.inside) return t("tl.inZone", { zone: zoneName(z.zone_id) }); }
      return "";
    };
    for (const f of track.fixes) items.push({ t: f.ts, text: t("tl.fix", { lat: f.lat.toFixed(5), lon: f.lon.toFixed(5), acc: f.accuracy_m }) + (f.valid ? "" : t("tl.noSat")) + where(f), cls: "" });
    for (const a of person.alerts) {
      const kind = kindText(a.kind) + (a.zone ? ` · ${zoneName(a.zone)}` : "");
      items.push({ t: a.opened_at, text: t("tl.opened", { sev: sevText(a.severity), kind, status: statusText(a.status) }), cls: "alert-ev", id: a.alert_id });
      if (a.cleared_at) items.push({ t: a.cleared_at, text: t("tl.cleared", { kind }), cls: "alert-ev", id: a.alert_id });
      if (a.acknowledged_at) items.push({ t: a.acknowledged_at, text: t("tl.ack", { kind, who: a.acknowledged_by }), cls: "alert-ev", id: a.alert_id });
      if (a.resolved_at) items.push({ t: a.resolved_at, text: t("tl.resolved", { kind, who: a.resolved_by }), cls: "alert-ev", id: a.alert_id });
    }
    items.sort((a, b) => (a.t < b.t ? 1 : -1));
    $("timeline-items").replaceChildren(...items.slice(0, 400).map((i) => el("li", i.id ? { class: i.cls, onclick: () => showDetail(i.id) } : { class: i.cls }, `${fmt(i.t)} — ${i.text}`)));
    renderCheckins(checkins.checkins);
    drawTrack(track.fixes);
    drawCheckins(checkins.checkins);
  }
  $("timeline-close").addEventListener("click", () => { $("timeline").hidden = true; drawTrack([]); state.timelinePerson = null; });

  // ---------------------------------------------------------------- reports
  async function download(path, fallbackName) {
    const resp = await request(path);
    const blob = await resp.blob();
    const match = /filename="([^"]+)"/.exec(resp.headers.get("Content-Disposition") || "");
    const a = el("a", { href: URL.createObjectURL(blob), download: match ? match[1] : fallbackName });
    document.body.append(a); a.click(); a.remove();
    setTimeout(() => URL.revokeObjectURL(a.href), 10000);
    return true;
  }
  function reportQuery() { return `date=${encodeURIComponent($("report-date").value)}&jurisdiction=${encodeURIComponent($("report-area").value)}&tz=${encodeURIComponent(I.zone)}`; }
  $("reports-open").addEventListener("click", () => {
    if (!$("report-date").value) $("report-date").value = I.today();
    if (!$("export-to").value) { $("export-to").value = I.today(); $("export-from").value = I.today(); }
    const codes = [state.me.jurisdiction, ...Object.keys(state.names).filter((c) => c !== state.me.jurisdiction && c.startsWith(state.me.jurisdiction)).sort()];
    $("report-area").replaceChildren(...codes.map((c) => el("option", { value: c }, nameOf(c))));
    if (state.prefix) $("report-area").value = state.prefix;
    $("reports").hidden = false;
  });
  $("reports-close").addEventListener("click", () => { $("reports").hidden = true; });
  $("report-show").addEventListener("click", async () => {
    const body = await perform(() => api("/api/reports/daily?" + reportQuery()), t("reports.daily"));
    if (body) renderReport(body);
  });
  $("report-csv").addEventListener("click", () => perform(() => download("/api/reports/daily?format=csv&" + reportQuery(), "report.csv"), t("result.exported")));
  $("export-go").addEventListener("click", () => {
    const q = `from=${encodeURIComponent($("export-from").value)}&to=${encodeURIComponent($("export-to").value)}&tz=${encodeURIComponent(I.zone)}`;
    const person = $("export-person").value.trim();
    return perform(() => download(`/api/persons/${encodeURIComponent(person)}/track/export?${q}`, "track.csv"), t("result.exported"));
  });
  function table(head, rows) {
    return el("table", { class: "report" }, el("thead", {}, el("tr", {}, ...head.map((h) => el("th", {}, h)))),
      el("tbody", {}, ...(rows.length ? rows : [[t("reports.none")]]).map((r) => el("tr", {}, ...r.map((c) => el("td", {}, c))))));
  }
  function renderReport(r) {
    const m = (s) => (s == null ? "—" : (s / 60).toFixed(1));
    $("report-body").replaceChildren(
      el("p", { class: "meta" }, `${nameOf(r.jurisdiction)} · ${r.date} · ${r.timezone}`),
      el("h4", {}, t("reports.byKind")),
      table([t("reports.kind"), ...SEV.map(sevText), t("reports.count")], r.by_kind.map((k) => [kindText(k.kind), ...SEV.map((s) => k[s] || 0), k.total])),
      el("h4", {}, t("reports.response")),
      table([t("col.sev"), t("reports.count"), t("col.ack"), t("col.scene"), t("col.resolve")],
        r.response.map((x) => [sevText(x.severity), x.alerts, m(x.to_acknowledge_s), m(x.to_on_scene_s), m(x.to_resolve_s)])),
      el("h4", {}, t("reports.personsByRisk")),
      table(SEV.map(sevText), [SEV.map((s) => r.persons_by_risk[s] || 0)]),
      el("h4", {}, t("reports.offline")),
      table([t("detail.device"), t("detail.person"), t("reports.lastSeen")], r.devices_offline.map((d) => [d.device_id, d.person_id, fmt(d.last_seen) || "—"])));
  }

  // ---------------------------------------------------------------- live feed
  function setLive(on) { state.live = on; $("live-status").className = on ? "online" : "offline"; $("live-status").textContent = on ? t("live.on") : t("live.off"); }
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

  window.addEventListener("resize", () => applyView());
  I.apply(); zoneChoices();
  if (state.token) start().catch(() => logout()); else logout();
})();

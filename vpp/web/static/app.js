// The status page: one state (GET api/page), then the live stream (api/stream, server-sent
// events) re-renders it; the chart is uPlot, served from the package (no CDN).
"use strict";
(function () {
  const token = new URLSearchParams(location.search).get("token");
  const q = token ? "?token=" + encodeURIComponent(token) : "";
  const $ = (id) => document.getElementById(id);
  const kw = (v) => (v === null || v === undefined ? "–" : v.toFixed(1));
  const esc = (s) => String(s).replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]);
  let tz = "UTC";
  const when = (iso) => (iso ? new Date(iso).toLocaleString("sv-SE", { timeZone: tz }) : "–");
  window.vppUpdates = 0;

  let chart = null;
  function chartData(c) {
    return [c.ts, c.import_kw, c.baseline_kw, c.target_kw, c.plan_kw];
  }
  function drawChart(c) {
    const data = chartData(c);
    if (chart) { chart.setData(data); return; }
    const width = Math.max(600, $("chart").clientWidth - 10);
    chart = new uPlot({
      width: width, height: 320, tzDate: (ts) => uPlot.tzDate(new Date(ts * 1e3), tz),
      scales: { x: { time: true } },
      axes: [{}, { label: "kW" }],
      series: [
        {},
        { label: "site import", stroke: "#1f77b4", width: 2, spanGaps: true },
        // Baseline and target hold per interval (points at its start and end).
        { label: "baseline", stroke: "#888", width: 1.5, dash: [6, 4], spanGaps: true },
        { label: "target", stroke: "#d62728", width: 2, spanGaps: true },
        { label: "plan", stroke: "#2ca02c", width: 1.5, dash: [2, 3], spanGaps: true },
      ],
    }, data, $("chart"));
    window.vppChart = chart;
  }

  function renderStatus(s) {
    tz = s.timezone;
    $("site").textContent = (s.name || s.site_id) + " (" + s.site_id + ")";
    const target = s.target ? kw(s.target.import_max_kw) + " kW (" + s.target.source +
      (s.target.event_id ? " " + s.target.event_id : "") + ")" : "–";
    const parts = [
      ["mode", s.mode], ["now", when(s.now)], ["import", kw(s.site_import_kw) + " kW"],
      ["target", target], ["limit", kw(s.import_limit_kw) + " kW"], ["strategy", s.strategy],
      ["devices", s.devices_online + "/" + s.devices + " usable"],
      ["broker", s.broker_connected === null ? "–" : s.broker_connected ? "connected" : "disconnected"],
      ["plan", when(s.plan_made_at)],
    ];
    if (s.outbox_depth !== null) parts.push(["outbox", s.outbox_depth]);
    $("summary").innerHTML = parts.map(([k, v]) => "<span><b>" + k + "</b> " + esc(v) + "</span>").join("");
  }

  function renderEvents(events) {
    if (!events.length) { $("events").innerHTML = '<p class="muted">No events.</p>'; return; }
    const shown = events.filter((e) => e.role === "current" || e.role === "next" || e.role === "later");
    const list = (shown.length ? shown : events.slice(0, 1));
    $("events").innerHTML = list.map((e) => {
      const rows = e.intervals.map((iv) =>
        "<tr><td>" + when(iv.start) + "</td><td class=num>" + kw(iv.requested_kw) + "</td><td class=num>" +
        kw(iv.baseline_kw) + "</td><td class=num>" + kw(iv.target_kw) + "</td><td class=num>" +
        kw(iv.delivered_kw) + "</td><td>" + (iv.measured || "") + "</td></tr>").join("");
      return '<div class="event role-' + e.role + '"><h3>' + esc(e.role) + ": " + esc(e.event_id) +
        " · " + esc(e.signal) + " · " + esc(e.status) + " · " + when(e.start) + " → " + when(e.end) +
        (e.delivered_ratio !== null ? " · delivered " + (100 * e.delivered_ratio).toFixed(0) + " %" : "") +
        "</h3><table><thead><tr><th>interval</th><th>requested kW</th><th>baseline kW</th>" +
        "<th>target kW</th><th>delivered kW</th><th>measured</th></tr></thead><tbody>" + rows +
        "</tbody></table></div>";
    }).join("");
  }

  function reading(values) {
    const keys = Object.keys(values).sort((a, b) => (b.endsWith("_kw") - a.endsWith("_kw")) || a.localeCompare(b));
    return keys.slice(0, 4).map((k) => k + " " + values[k].toFixed(1)).join(", ");
  }
  function renderDevices(devices) {
    $("devices").tBodies[0].innerHTML = devices.map((d) => {
      const c = d.last_command;
      const cmd = c ? esc(c.point) + " = " + c.value.toFixed(1) + (c.ok ? "" : " (failed)") + " at " + when(c.ts) : "–";
      return "<tr><td>" + esc(d.id) + "</td><td>" + esc(d.kind) + '</td><td><span class="badge ' +
        esc(d.health) + '">' + esc(d.health) + "</span> " + esc(d.reason) + "</td><td>" +
        esc(reading(d.values)) + "</td><td>" + cmd + "</td></tr>";
    }).join("");
  }

  function renderPlan(plan, madeAt) {
    $("plan-made").textContent = madeAt ? "(made " + when(madeAt) + ")" : "";
    if (!plan.length) { $("plan").innerHTML = '<p class="muted">No plan.</p>'; return; }
    const kinds = [...new Set(plan.flatMap((r) => Object.keys(r.power_kw)))].sort();
    const head = "<tr><th>step</th><th>site import kW</th>" + kinds.map((k) => "<th>" + esc(k) + " kW</th>").join("") + "</tr>";
    const rows = plan.map((r) => "<tr><td>" + when(r.start) + "</td><td class=num>" + kw(r.site_import_kw) + "</td>" +
      kinds.map((k) => "<td class=num>" + kw(r.power_kw[k]) + "</td>").join("") + "</tr>").join("");
    $("plan").innerHTML = "<table><thead>" + head + "</thead><tbody>" + rows + "</tbody></table>";
  }

  function render(state) {
    renderStatus(state.status);
    drawChart(state.chart);
    renderEvents(state.events);
    renderPlan(state.plan, state.status.plan_made_at);
    renderDevices(state.devices);
    window.vppState = state;
    if ($("live").textContent !== "reconnecting") $("live").textContent = state.status.mode;
    window.vppUpdates += 1;
  }

  $("openapi").href += q;
  $("metrics").href += q;
  fetch("api/page" + q).then((r) => r.json()).then(render);
  const source = new EventSource("api/stream" + q);
  source.onopen = () => { $("live").textContent = "streaming"; };
  source.onerror = () => { $("live").textContent = "reconnecting"; };
  source.onmessage = (m) => render(JSON.parse(m.data));
})();

// berty-node dashboard: the live charts, drawn as SVG by hand (no library). Loaded before
// app.js, which feeds them the points of GET /admin/v1/stats/series.
"use strict";

window.bertyCharts = (() => {
  const SVG = "http://www.w3.org/2000/svg";

  const CHARTS = [
    { id: "messages", title: "Messages stored / s", series: [["messages_per_sec", "messages"]] },
    { id: "entries", title: "Entries stored / s (both logs)", series: [["entries_per_sec", "entries"]] },
    { id: "sync", title: "Sync requests / s", series: [["sync_requests_per_sec", "requests, both ways"]] },
    { id: "traffic", title: "Traffic / s (every connection)", bytes: true,
      series: [["bytes_in_per_sec", "in"], ["bytes_out_per_sec", "out"]] },
    { id: "relay", title: "Relay bytes / s (circuits carried)", bytes: true,
      series: [["relay_bytes_per_sec", "relayed, both ways"]] },
    { id: "connections", title: "Connections", series: [["connections", "open"]] },
    { id: "latency", title: "Storage latency (ms)", series: [["storage_latency_ms", "probe round trip"]] },
  ];

  function svg(tag, attrs = {}) {
    const node = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
    return node;
  }

  /** One figure per chart in `container`; `el` makes HTML elements. */
  function build(container, el) {
    container.replaceChildren(...CHARTS.map((c) => el("figure", { class: "chart", id: `chart-${c.id}`, "data-points": "0" },
      el("figcaption", {}, el("span", { text: c.title }), el("span", { class: "now" })),
      svg("svg", { viewBox: "0 0 600 170", role: "img", "aria-label": c.title }),
      el("div", { class: "legend" }, c.series.map(([, name], i) => el("span", { class: `s${i}`, text: name }))),
    )));
  }

  function niceMax(value) {
    if (!(value > 0)) return 1;
    const power = 10 ** Math.floor(Math.log10(value));
    return [1, 2, 2.5, 5, 10].map((m) => m * power).find((m) => m >= value);
  }

  /** Draws `points` (oldest first) over the last `windowSecs`; `fmt` holds the formatters. */
  function draw(chart, points, windowSecs, fmt) {
    const figure = document.getElementById(`chart-${chart.id}`);
    const plot = figure.querySelector("svg");
    const format = (v) => (v === null || v === undefined ? "—" : chart.bytes ? `${fmt.bytes(v)}/s` : fmt.number(v, v < 10 ? 2 : 0));
    const [W, H, left, top, bottom] = [600, 170, 78, 10, 22];
    const end = points.length ? points[points.length - 1].t : Date.now();
    // The charts span the points held (the whole window once it is full).
    const start = points.length > 1 ? Math.max(points[0].t, end - windowSecs * 1000) : end - windowSecs * 1000;
    const span = Math.max(1, (end - start) / 1000);
    const values = points.flatMap((p) => chart.series.map(([key]) => p[key])).filter((v) => v !== null && v !== undefined);
    // A byte chart spans at least 1000 B, so an idle one reads 0 / 500 / 1000 B, not 0 / 1 / 1 B.
    const max = niceMax(Math.max(chart.bytes ? 1000 : 0, ...values));
    const x = (t) => left + ((t - start) / (span * 1000)) * (W - left - 4);
    const y = (v) => top + (1 - v / max) * (H - top - bottom);
    const nodes = [];
    for (const share of [0, 0.5, 1]) {
      nodes.push(svg("line", { class: "grid", x1: left, x2: W, y1: y(max * share), y2: y(max * share) }));
      const label = svg("text", { class: "axis", x: left - 6, y: y(max * share) + 3, "text-anchor": "end" });
      label.textContent = chart.bytes ? fmt.bytes(max * share) : fmt.number(max * share, 2);
      nodes.push(label);
    }
    const ago = svg("text", { class: "axis", x: left, y: H - 4 });
    ago.textContent = span >= 120 ? `${Math.round(span / 60)} min ago` : `${Math.round(span)} s ago`;
    const now = svg("text", { class: "axis", x: W - 4, y: H - 4, "text-anchor": "end" });
    now.textContent = "now";
    nodes.push(ago, now);
    // A period without a value (no storage probe answered in it) is skipped, not a gap.
    chart.series.forEach(([key], i) => {
      const run = points
        .filter((p) => p[key] !== null && p[key] !== undefined)
        .map((p) => `${x(p.t).toFixed(1)},${y(p[key]).toFixed(1)}`);
      if (run.length) nodes.push(svg("polyline", { class: `line s${i}`, points: run.join(" ") }));
    });
    plot.replaceChildren(...nodes);
    // The latest value of each series (a period without a storage probe has none).
    const latest = ([key]) => {
      for (let i = points.length - 1; i >= 0; i -= 1) if (points[i][key] !== null && points[i][key] !== undefined) return points[i][key];
      return null;
    };
    figure.querySelector(".now").textContent = points.length ? chart.series.map((s) => format(latest(s))).join(" / ") : "no sample yet";
    figure.dataset.points = String(points.length);
  }

  return { CHARTS, build, draw };
})();

// The dashboard page: one HTML document with its style and script inline, served as a
// string (no build step, no external resources, so it works on an offline machine). The
// script polls every two seconds and redraws; it uses only the DOM and fetch.

const style = `
:root { color-scheme: light; --ink: #1d232b; --muted: #5d6875; --line: #d5dbe1; --up: #1f9d55; --down: #d64545; --odd: #c98a12; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.35 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--ink); background: #f5f7f9; }
header { display: flex; gap: 16px; align-items: baseline; padding: 12px 20px; background: #fff; border-bottom: 1px solid var(--line); }
header h1 { font-size: 18px; margin: 0; }
header .meta { color: var(--muted); }
main { padding: 16px 20px; display: grid; gap: 18px; }
h2 { font-size: 15px; margin: 0 0 8px; }
.row { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 10px 12px; }
.racks { display: flex; gap: 12px; flex-wrap: wrap; }
.rack { border: 1px dashed var(--line); border-radius: 6px; padding: 8px; min-width: 250px; flex: 1; }
.rack > .label { color: var(--muted); font-size: 12px; margin-bottom: 6px; }
.node { border: 1px solid var(--line); border-left: 6px solid var(--color, #888); border-radius: 6px; padding: 6px 8px; margin-bottom: 8px; background: #fff; }
.node[data-health="down"] { background: #fdf0f0; }
.node[data-health="unreachable"] { background: #fdf7ea; }
.node .top { display: flex; justify-content: space-between; align-items: center; gap: 8px; }
.node .id { font-weight: 600; }
.badge { font-size: 11px; color: var(--muted); border: 1px solid var(--line); border-radius: 10px; padding: 0 6px; }
.health { font-size: 12px; font-weight: 600; }
.health::before { content: ""; display: inline-block; width: 8px; height: 8px; border-radius: 50%; margin-right: 4px; background: currentColor; }
[data-health="up"] .health { color: var(--up); }
[data-health="down"] .health { color: var(--down); }
[data-health="unreachable"] .health { color: var(--odd); }
.figures { display: grid; grid-template-columns: repeat(3, 1fr); gap: 6px; margin-top: 4px; }
.figure { font-size: 11px; color: var(--muted); }
.figure b { display: block; color: var(--ink); font-size: 12px; }
.figure svg { display: block; width: 100%; height: 22px; }
.figure polyline { fill: none; stroke: var(--color, #888); stroke-width: 1.5; }
.cells { font-size: 12px; color: var(--muted); margin-top: 2px; }
table { border-collapse: collapse; width: 100%; background: #fff; border: 1px solid var(--line); border-radius: 8px; }
th, td { text-align: left; padding: 5px 8px; border-bottom: 1px solid var(--line); font-size: 13px; }
th { color: var(--muted); font-weight: 600; }
.replica { display: inline-block; margin-right: 6px; }
.replica.leader { font-weight: 700; }
.replica.down { color: var(--down); text-decoration: line-through; }
.empty { color: var(--muted); }
`;

const script = `
const $ = (tag, attrs = {}, ...children) => {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "style") el.style.cssText = v; else el.setAttribute(k, v);
  }
  for (const c of children) if (c !== null && c !== undefined) el.append(c);
  return el;
};
const cssColor = (name) => {
  if (CSS.supports("color", name)) return name;
  let h = 0;
  for (const ch of name) h = (h * 31 + ch.charCodeAt(0)) % 360;
  return "hsl(" + h + " 60% 45%)";
};
const base = (id) => id.split("~")[0];
function spark(points, key) {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", "0 0 100 22");
  svg.setAttribute("preserveAspectRatio", "none");
  const values = points.map((p) => p[key]);
  const max = Math.max(1e-9, ...values);
  const line = document.createElementNS(ns, "polyline");
  line.setAttribute("points", values.map((v, i) => (values.length < 2 ? 100 : (i * 100) / (values.length - 1)).toFixed(1) + "," + (21 - (v / max) * 20).toFixed(1)).join(" "));
  svg.append(line);
  return svg;
}
const fmt = (v, unit) => (v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2)) + unit;

let colony = null;
async function poll() {
  try {
    if (colony === null) colony = await (await fetch("colony.json", { cache: "no-store" })).json();
    const views = await Promise.all(colony.nodes.map(async (n) => {
      try {
        const r = await fetch("node.json?node=" + encodeURIComponent(n.id), { cache: "no-store" });
        return r.ok ? await r.json() : null;
      } catch { return null; }
    }));
    draw(colony, views);
  } catch (e) {
    document.getElementById("updated").textContent = "cannot reach the node serving this page: " + e;
  }
}

function draw(colony, views) {
  const byId = new Map(colony.nodes.map((n, i) => [n.id, views[i]]));
  const self = byId.get(colony.self);
  const heard = new Map((self && self.peers ? self.peers : []).map((p) => [p.id, p.alive]));
  const health = (id) => {
    const view = byId.get(id);
    if (view && !view.starting) return "up";
    if (id === colony.self) return view ? "starting" : "down";
    return heard.get(id) === true ? "unreachable" : "down";
  };
  const healthText = { up: "up", down: "down", unreachable: "alive (heard by " + colony.self + ")", starting: "starting" };
  const rows = new Map();
  for (const n of colony.nodes) {
    if (!rows.has(n.row)) rows.set(n.row, new Map());
    const racks = rows.get(n.row);
    if (!racks.has(n.rack)) racks.set(n.rack, []);
    racks.get(n.rack).push(n);
  }
  const layout = $("div", { id: "layout" });
  for (const [row, racks] of rows) {
    const rackEls = $("div", { class: "racks" });
    for (const [rack, nodes] of racks) {
      const rackEl = $("div", { class: "rack", "data-rack": rack }, $("div", { class: "label" }, "rack " + rack));
      for (const n of nodes) {
        const view = byId.get(n.id);
        const h = health(n.id);
        const history = view && view.history ? view.history.slice(-90) : [];
        const last = history.length > 0 ? history[history.length - 1] : null;
        const figure = (label, key, unit) => $("div", { class: "figure" }, label, $("b", {}, last ? fmt(last[key], unit) : "-"), spark(history, key));
        rackEl.append($("div", { class: "node", "data-node": n.id, "data-health": h, style: "--color:" + cssColor(n.color) },
          $("div", { class: "top" }, $("span", { class: "id" }, n.id), $("span", { class: "badge", title: "power domain" }, "power " + n.power), $("span", { class: "badge" }, n.color), $("span", { class: "health" }, healthText[h] || h)),
          $("div", { class: "cells" }, view && !view.starting ? view.cellsHosted + " cells, leading " + view.cellsLeading : n.address),
          $("div", { class: "figures" }, figure("goodput", "goodputPerSecond", "/s"), figure("p99", "p99Ms", " ms"), figure("dropped", "droppedPerSecond", "/s"))));
      }
      rackEls.append(rackEl);
    }
    layout.append($("section", { class: "row", "data-row": row }, $("h2", {}, "row " + row), rackEls));
  }
  document.getElementById("layout").replaceWith(layout);

  const cells = new Map();
  for (const view of views) {
    if (!view || !view.cells) continue;
    for (const c of view.cells) {
      const known = cells.get(c.cell);
      if (!known || c.role === "leader" || (known.members === null && c.members !== null)) cells.set(c.cell, { ...c, leader: c.role === "leader" ? view.identity : (c.leader || (known && known.leader)) });
    }
  }
  const body = $("tbody", { id: "cells" });
  for (const c of [...cells.values()].sort((a, b) => (a.cell < b.cell ? -1 : 1))) {
    const leader = c.leader ? base(c.leader) : null;
    const replicas = $("td", {});
    for (const m of c.members || []) replicas.append($("span", { class: "replica" + (base(m) === leader ? " leader" : "") + (health(base(m)) === "down" ? " down" : ""), title: m }, base(m) + (base(m) === leader ? " \\u2605" : "")));
    body.append($("tr", { "data-cell": c.cell }, $("td", {}, c.cell), $("td", {}, leader || "none"), $("td", {}, String(c.applied)), replicas));
  }
  if (cells.size === 0) body.append($("tr", {}, $("td", { colspan: "4", class: "empty" }, "no cells yet")));
  document.getElementById("cells").replaceWith(body);
  const up = colony.nodes.filter((n) => health(n.id) === "up").length;
  document.getElementById("summary").textContent = up + " of " + colony.nodes.length + " nodes up, " + cells.size + " cells";
  document.getElementById("updated").textContent = "served by " + colony.self + ", updated " + new Date().toLocaleTimeString();
}
poll();
setInterval(poll, 2000);
`;

export function dashboardPage(): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>physalia colony</title>
<style>${style}</style>
</head>
<body>
<header><h1>physalia colony</h1><span class="meta" id="summary">loading</span><span class="meta" id="updated"></span></header>
<main>
<div id="layout"></div>
<section><h2>Cells</h2>
<table><thead><tr><th>cell</th><th>leader</th><th>applied slot</th><th>replicas (leader marked)</th></tr></thead><tbody id="cells"></tbody></table>
</section>
</main>
<script>${script}</script>
</body>
</html>
`;
}

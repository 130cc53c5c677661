// Hand-written SVG charts (no plotting dependency): a line chart with linear or log y, and
// a grouped bar chart with whiskers. Plain SVG 1.1 that browsers and GitHub render.

export interface LineSeries {
  readonly label: string;
  readonly color: string;
  /** An SVG stroke-dasharray, for dashed reference lines. */
  readonly dash?: string;
  readonly markers?: boolean;
  readonly points: readonly (readonly [number, number])[];
}

export interface LineChartOptions {
  readonly title: string;
  readonly subtitle?: string;
  readonly xLabel: string;
  readonly yLabel: string;
  readonly x: readonly [number, number];
  readonly y: readonly [number, number];
  readonly yLog?: boolean;
  readonly xLog?: boolean;
  readonly xTicks: readonly number[];
  readonly yTicks: readonly number[];
  readonly xFormat: (x: number) => string;
  readonly yFormat: (y: number) => string;
  readonly series: readonly LineSeries[];
  /** Vertical reference lines with a label, like "half the nodes". */
  readonly markers?: readonly { readonly x: number; readonly label: string }[];
  readonly legend?: "top-left" | "top-right" | "bottom-left" | "bottom-right";
}

export interface BarSeries {
  readonly label: string;
  readonly color: string;
  readonly values: readonly number[];
  /** Drawn as a whisker from the bar's top: the worst event. */
  readonly extremes?: readonly number[];
}

export interface BarChartOptions {
  readonly title: string;
  readonly subtitle?: string;
  readonly yLabel: string;
  readonly categories: readonly string[];
  readonly series: readonly BarSeries[];
  readonly yMax: number;
  readonly yTicks: readonly number[];
  readonly yFormat: (y: number) => string;
  readonly valueFormat: (y: number) => string;
  /** Says what the whisker is, after the value: "worst". */
  readonly extremeName: string;
}

const font = 'font-family="Helvetica, Arial, sans-serif"';

function escape(text: string): string {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
}

function text(x: number, y: number, content: string, attributes = ""): string {
  return `<text x="${x.toFixed(1)}" y="${y.toFixed(1)}" ${font} ${attributes}>${escape(content)}</text>`;
}

function frame(width: number, height: number, title: string, subtitle: string | undefined, body: string[]): string {
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}">`,
    `<rect width="${width}" height="${height}" fill="white"/>`,
    text(width / 2, 24, title, 'font-size="16" font-weight="bold" text-anchor="middle"'),
    subtitle === undefined ? "" : text(width / 2, 42, subtitle, 'font-size="12" fill="#555" text-anchor="middle"'),
    ...body,
    "</svg>",
    "",
  ].join("\n");
}

export function lineChart(o: LineChartOptions): string {
  const width = 760;
  const height = 480;
  const left = 80;
  const right = 20;
  const top = 60;
  const bottom = 60;
  const plotWidth = width - left - right;
  const plotHeight = height - top - bottom;
  const ty = (y: number): number => (o.yLog ? Math.log10(y) : y);
  const tx = (x: number): number => (o.xLog ? Math.log10(x) : x);
  const sx = (x: number): number => left + ((tx(x) - tx(o.x[0])) / (tx(o.x[1]) - tx(o.x[0]))) * plotWidth;
  const sy = (y: number): number => top + plotHeight - ((ty(y) - ty(o.y[0])) / (ty(o.y[1]) - ty(o.y[0]))) * plotHeight;
  const body: string[] = [];
  for (const t of o.yTicks) {
    body.push(`<line x1="${left}" x2="${left + plotWidth}" y1="${sy(t).toFixed(1)}" y2="${sy(t).toFixed(1)}" stroke="#e5e5e5"/>`);
    body.push(text(left - 8, sy(t) + 4, o.yFormat(t), 'font-size="11" text-anchor="end"'));
  }
  for (const t of o.xTicks) {
    body.push(`<line x1="${sx(t).toFixed(1)}" x2="${sx(t).toFixed(1)}" y1="${top}" y2="${top + plotHeight}" stroke="#f0f0f0"/>`);
    body.push(text(sx(t), top + plotHeight + 18, o.xFormat(t), 'font-size="11" text-anchor="middle"'));
  }
  body.push(`<rect x="${left}" y="${top}" width="${plotWidth}" height="${plotHeight}" fill="none" stroke="#333"/>`);
  for (const m of o.markers ?? []) {
    body.push(`<line x1="${sx(m.x).toFixed(1)}" x2="${sx(m.x).toFixed(1)}" y1="${top}" y2="${top + plotHeight}" stroke="#999" stroke-dasharray="2 3"/>`);
    body.push(text(sx(m.x) + 4, top + 14, m.label, 'font-size="11" fill="#666"'));
  }
  for (const s of o.series) {
    const points = s.points.filter(([x, y]) => x >= o.x[0] && x <= o.x[1] && (!o.yLog || y > 0) && (!o.xLog || x > 0) && y >= o.y[0] && y <= o.y[1]);
    if (points.length === 0) continue;
    const path = points.map(([x, y], i) => `${i === 0 ? "M" : "L"}${sx(x).toFixed(1)},${sy(y).toFixed(1)}`).join(" ");
    const dash = s.dash === undefined ? "" : ` stroke-dasharray="${s.dash}"`;
    body.push(`<path d="${path}" fill="none" stroke="${s.color}" stroke-width="2"${dash}/>`);
    if (s.markers) for (const [x, y] of points) body.push(`<circle cx="${sx(x).toFixed(1)}" cy="${sy(y).toFixed(1)}" r="3" fill="${s.color}"/>`);
  }
  const legend = o.legend ?? "top-right";
  const legendX = legend.endsWith("left") ? left + 12 : left + plotWidth - 190;
  const legendTop = top + (legend.startsWith("bottom") ? plotHeight - 12 - 18 * o.series.length + 14 : 24);
  body.push(`<rect x="${legendX - 6}" y="${legendTop - 14}" width="186" height="${18 * o.series.length + 8}" fill="white" fill-opacity="0.9" stroke="#ccc"/>`);
  o.series.forEach((s, i) => {
    const y = legendTop + i * 18;
    const dash = s.dash === undefined ? "" : ` stroke-dasharray="${s.dash}"`;
    body.push(`<line x1="${legendX}" x2="${legendX + 24}" y1="${y - 4}" y2="${y - 4}" stroke="${s.color}" stroke-width="2"${dash}/>`);
    body.push(text(legendX + 30, y, s.label, 'font-size="11"'));
  });
  body.push(text(left + plotWidth / 2, height - 14, o.xLabel, 'font-size="12" text-anchor="middle"'));
  body.push(text(18, top + plotHeight / 2, o.yLabel, `font-size="12" text-anchor="middle" transform="rotate(-90 18 ${top + plotHeight / 2})"`));
  return frame(width, height, o.title, o.subtitle, body);
}

export function barChart(o: BarChartOptions): string {
  const width = Math.max(760, 90 + o.categories.length * (o.series.length * 16 + 22));
  const height = 600;
  const left = 70;
  const right = 20;
  const top = 150;
  const bottom = 110;
  const plotWidth = width - left - right;
  const plotHeight = height - top - bottom;
  const sy = (y: number): number => top + plotHeight - (Math.min(y, o.yMax) / o.yMax) * plotHeight;
  const body: string[] = [];
  for (const t of o.yTicks) {
    body.push(`<line x1="${left}" x2="${left + plotWidth}" y1="${sy(t).toFixed(1)}" y2="${sy(t).toFixed(1)}" stroke="#e5e5e5"/>`);
    body.push(text(left - 8, sy(t) + 4, o.yFormat(t), 'font-size="11" text-anchor="end"'));
  }
  const groupWidth = plotWidth / o.categories.length;
  const barWidth = Math.min(16, (groupWidth - 14) / o.series.length);
  o.categories.forEach((category, c) => {
    const groupLeft = left + c * groupWidth + (groupWidth - barWidth * o.series.length) / 2;
    o.series.forEach((s, i) => {
      const value = s.values[c] ?? 0;
      const x = groupLeft + i * barWidth;
      const y = sy(value);
      body.push(`<rect x="${x.toFixed(1)}" y="${y.toFixed(1)}" width="${(barWidth - 1).toFixed(1)}" height="${(top + plotHeight - y).toFixed(1)}" fill="${s.color}"/>`);
      const extreme = s.extremes?.[c];
      let labelY = y;
      if (extreme !== undefined && extreme !== value) {
        const my = sy(extreme);
        const mid = x + (barWidth - 1) / 2;
        body.push(`<line x1="${mid.toFixed(1)}" x2="${mid.toFixed(1)}" y1="${y.toFixed(1)}" y2="${my.toFixed(1)}" stroke="#333"/>`);
        body.push(`<line x1="${(mid - 3).toFixed(1)}" x2="${(mid + 3).toFixed(1)}" y1="${my.toFixed(1)}" y2="${my.toFixed(1)}" stroke="#333"/>`);
        labelY = Math.min(y, my);
      }
      const lx = x + barWidth / 2 + 3;
      const ly = labelY - 4;
      const label = extreme !== undefined && extreme !== value ? `${o.valueFormat(value)}, ${o.extremeName} ${o.valueFormat(extreme)}` : o.valueFormat(value);
      body.push(text(lx, ly, label, `font-size="9" text-anchor="start" transform="rotate(-90 ${lx.toFixed(1)} ${ly.toFixed(1)})"`));
    });
    const cx = left + c * groupWidth + groupWidth / 2;
    body.push(text(cx, top + plotHeight + 16, category, 'font-size="11" text-anchor="middle"'));
  });
  body.push(`<rect x="${left}" y="${top}" width="${plotWidth}" height="${plotHeight}" fill="none" stroke="#333"/>`);
  let legendY = top + plotHeight + 40;
  let legendX = left;
  for (const s of o.series) {
    const itemWidth = 28 + s.label.length * 6.5;
    if (legendX + itemWidth > width - right) {
      legendX = left;
      legendY += 18;
    }
    body.push(`<rect x="${legendX}" y="${legendY - 10}" width="12" height="12" fill="${s.color}"/>`);
    body.push(text(legendX + 16, legendY, s.label, 'font-size="11"'));
    legendX += itemWidth;
  }
  body.push(text(left, legendY + 22, `bar: mean over events; whisker: the ${o.extremeName} event`, 'font-size="11" fill="#555"'));
  body.push(text(18, top + plotHeight / 2, o.yLabel, `font-size="12" text-anchor="middle" transform="rotate(-90 18 ${top + plotHeight / 2})"`));
  return frame(width, height, o.title, o.subtitle, body);
}

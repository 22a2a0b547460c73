// Small SVG charts built by hand (no library): a two-series line chart with a left and a
// right axis, e.g. block times (s) against difficulty. Styling comes from site.css classes
// (the CSP allows no inline style attributes).

const SVG = "http://www.w3.org/2000/svg";

function el(name, attrs = {}, text = null) {
  const node = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, String(value));
  if (text !== null) node.textContent = text;
  return node;
}

function niceMax(value) {
  if (!(value > 0)) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 2.5, 5, 10]) {
    if (value <= step * power) return step * power;
  }
  return 10 * power;
}

function formatNumber(value) {
  if (value >= 1e9) return (value / 1e9).toFixed(1) + "G";
  if (value >= 1e6) return (value / 1e6).toFixed(1) + "M";
  if (value >= 1e3) return (value / 1e3).toFixed(1) + "k";
  if (Number.isInteger(value)) return String(value);
  return value < 10 ? value.toFixed(2) : value.toFixed(1);
}

/**
 * Draw into `container` (its children are replaced) an SVG line chart of `points`
 * ([{x, left, right}], x ascending) with `left` on the left axis and `right` on the right.
 * Returns the <svg>. `labels` = {x, left, right} names the axes.
 */
export function dualLineChart(container, points, labels, { width = 720, height = 260 } = {}) {
  const pad = { top: 24, right: 64, bottom: 36, left: 56 };
  const w = width - pad.left - pad.right;
  const h = height - pad.top - pad.bottom;
  const svg = el("svg", { viewBox: `0 0 ${width} ${height}`, class: "chart", "data-points": points.length });
  svg.append(el("title", {}, `${labels.left} and ${labels.right} by ${labels.x}`));
  if (points.length < 2) {
    svg.append(el("text", { x: width / 2, y: height / 2, "text-anchor": "middle", class: "label" }, "Not enough blocks yet"));
    container.replaceChildren(svg);
    return svg;
  }
  const xs = points.map((p) => p.x);
  const xMin = Math.min(...xs);
  const xMax = Math.max(...xs);
  const leftMax = niceMax(Math.max(...points.map((p) => p.left)));
  const rightMax = niceMax(Math.max(...points.map((p) => p.right)));
  const sx = (x) => pad.left + (xMax === xMin ? w / 2 : ((x - xMin) / (xMax - xMin)) * w);
  const sl = (y) => pad.top + h - (y / leftMax) * h;
  const sr = (y) => pad.top + h - (y / rightMax) * h;

  for (let i = 0; i <= 4; i++) {
    const y = pad.top + (h * i) / 4;
    svg.append(el("line", { x1: pad.left, x2: pad.left + w, y1: y, y2: y, class: "grid" }));
    svg.append(el("text", { x: pad.left - 6, y: y + 4, "text-anchor": "end", class: "label" }, formatNumber(leftMax * (1 - i / 4))));
    svg.append(el("text", { x: pad.left + w + 6, y: y + 4, class: "label" }, formatNumber(rightMax * (1 - i / 4))));
  }
  svg.append(el("line", { x1: pad.left, x2: pad.left, y1: pad.top, y2: pad.top + h, class: "axis" }));
  svg.append(el("line", { x1: pad.left + w, x2: pad.left + w, y1: pad.top, y2: pad.top + h, class: "axis" }));
  svg.append(el("line", { x1: pad.left, x2: pad.left + w, y1: pad.top + h, y2: pad.top + h, class: "axis" }));
  for (const x of [xMin, Math.round((xMin + xMax) / 2), xMax]) {
    svg.append(el("text", { x: sx(x), y: pad.top + h + 16, "text-anchor": "middle", class: "label" }, String(x)));
  }
  svg.append(el("text", { x: pad.left + w / 2, y: height - 4, "text-anchor": "middle", class: "label" }, labels.x));

  const path = (scale, key) => points.map((p, i) => `${i ? "L" : "M"}${sx(p.x).toFixed(1)},${scale(p[key]).toFixed(1)}`).join(" ");
  svg.append(el("path", { d: path(sl, "left"), class: "line-time", "data-series": "left" }));
  svg.append(el("path", { d: path(sr, "right"), class: "line-difficulty", "data-series": "right" }));

  svg.append(el("rect", { x: pad.left, y: 6, width: 10, height: 10, class: "legend-time" }));
  svg.append(el("text", { x: pad.left + 14, y: 15, class: "label" }, labels.left));
  svg.append(el("rect", { x: pad.left + w - 150, y: 6, width: 10, height: 10, class: "legend-difficulty" }));
  svg.append(el("text", { x: pad.left + w - 136, y: 15, class: "label" }, labels.right));
  container.replaceChildren(svg);
  return svg;
}

/** Chart points from block summaries (any order): seconds since the parent, and difficulty. */
export function blockTimePoints(blocks) {
  const sorted = [...blocks].sort((a, b) => a.height - b.height);
  const points = [];
  for (let i = 1; i < sorted.length; i++) {
    if (sorted[i].height !== sorted[i - 1].height + 1) continue;
    if (sorted[i - 1].height === 0) continue; // genesis carries a fixed, old timestamp
    points.push({
      x: sorted[i].height,
      left: Math.max(0, sorted[i].timestamp - sorted[i - 1].timestamp),
      right: Number(BigInt(sorted[i].difficulty)), // for drawing only: never money
    });
  }
  return points;
}

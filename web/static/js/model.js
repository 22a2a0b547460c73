// The model page's chart: paid calls (usage-paid events) per block, drawn as SVG bars.
// Events come from the audit query, oldest first, followed page by page with next_cursor.
import { api, showError } from "./api.js";

const SVG = "http://www.w3.org/2000/svg";
const MAX_PAGES = 20;
const MAX_BARS = 60;

const ref = JSON.parse(document.getElementById("model-ref").textContent);
const chart = document.getElementById("calls-chart");
const caption = document.getElementById("calls-chart-caption");
const errorBox = document.getElementById("chart-error");

export async function paidCallsPerBlock(name) {
  const counts = new Map();
  let cursor = "";
  let height = 0;
  for (let page = 0; page < MAX_PAGES; page++) {
    const query = new URLSearchParams({ model: name, type: "usage-paid", limit: "100" });
    if (cursor) query.set("cursor", cursor);
    const answer = await api(`/api/v1/audit/events?${query}`);
    height = answer.height;
    for (const event of answer.events) counts.set(event.height, (counts.get(event.height) || 0) + 1);
    if (!answer.has_more) break;
    cursor = answer.next_cursor;
  }
  return { counts, height };
}

function svg(tag, attrs, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, String(value));
  if (text !== undefined) node.textContent = text;
  return node;
}

export function drawBars(target, counts, tipHeight) {
  const width = 640, height = 200, left = 36, bottom = 24, top = 10;
  const last = Math.max(tipHeight, ...counts.keys(), 0);
  const first = Math.max(0, last - MAX_BARS + 1);
  const peak = Math.max(1, ...[...counts.values()]);
  const slots = last - first + 1;
  const step = (width - left - 4) / slots;
  const parts = [
    svg("line", { x1: left, y1: height - bottom, x2: width, y2: height - bottom, stroke: "currentColor" }),
    svg("text", { x: 2, y: top + 10, "font-size": 11, fill: "currentColor" }, String(peak)),
    svg("text", { x: 2, y: height - bottom, "font-size": 11, fill: "currentColor" }, "0"),
    svg("text", { x: left, y: height - 6, "font-size": 11, fill: "currentColor" }, `block ${first}`),
    svg("text", { x: width - 4, y: height - 6, "font-size": 11, fill: "currentColor", "text-anchor": "end" }, `block ${last}`),
  ];
  for (const [blockHeight, calls] of counts) {
    if (blockHeight < first) continue;
    const barHeight = ((height - bottom - top) * calls) / peak;
    const bar = svg("rect", {
      x: left + (blockHeight - first) * step + 1,
      y: height - bottom - barHeight,
      width: Math.max(1, step - 2),
      height: barHeight,
      fill: "#3b6fb6",
      class: "bar",
      "data-height": blockHeight,
      "data-calls": calls,
    });
    bar.append(svg("title", {}, `block ${blockHeight}: ${calls} paid call${calls === 1 ? "" : "s"}`));
    parts.push(bar);
  }
  target.replaceChildren(...parts);
  return { first, last };
}

export async function refreshChart() {
  try {
    const { counts, height } = await paidCallsPerBlock(ref.name);
    const { first, last } = drawBars(chart, counts, height);
    let total = 0;
    for (const calls of counts.values()) total += calls;
    caption.textContent = total
      ? `${total} paid call${total === 1 ? "" : "s"} of ${ref.name} (all versions); blocks ${first} to ${last}.`
      : `No paid calls of ${ref.name} yet (blocks ${first} to ${last}).`;
    errorBox.textContent = "";
  } catch (error) {
    showError(errorBox, error);
  }
}

refreshChart();
document.addEventListener("modelchain:paid", () => refreshChart());

// The catalog page: refresh the cards from GET /api/v1/models as the filters change.
// The server rendered the first page; this keeps the URL in step so a reload shows the same.
import { api, showError } from "./api.js";
import { el } from "./dom.js";

const form = document.getElementById("catalog-form");
const cards = document.getElementById("catalog-cards");
const count = document.getElementById("catalog-count");
const errorBox = document.getElementById("catalog-error");
const pageSize = Number(cards.dataset.pageSize || "24");

function card(v) {
  const link = el("a", { href: `/models/${encodeURIComponent(v.name)}/${encodeURIComponent(v.version)}`, text: v.name });
  const owner = el("a", { href: `/audit?account=${v.owner}`, title: v.owner, text: `${v.owner.slice(0, 12)}…` });
  const dl = el("dl", {},
    el("dt", { text: "Price" }), el("dd", { class: "price", text: String(v.price) }),
    el("dt", { text: "Paid calls" }), el("dd", { class: "calls", text: String(v.usage.paid_calls) }),
    el("dt", { text: "Owner" }), el("dd", { class: "owner" }, owner));
  const item = el("li", { class: "card", "data-ref": v.ref },
    el("h2", {}, link, " ", el("span", { class: "version", text: v.version })),
    el("p", { class: "description", text: v.metadata.description }),
    dl);
  if (v.metadata.tags.length) {
    const tags = el("ul", { class: "tags" });
    for (const tag of v.metadata.tags) {
      tags.append(el("li", {}, el("a", { href: `/?tag=${encodeURIComponent(tag)}`, text: tag })));
    }
    item.append(tags);
  }
  return item;
}

function filters() {
  const params = new URLSearchParams();
  for (const [key, value] of new FormData(form)) {
    const text = String(value).trim();
    if (text && !(key === "sort" && text === "newest")) params.set(key, text); // newest: the default
  }
  return params;
}

let generation = 0;

async function refresh() {
  const params = filters();
  const mine = ++generation;
  try {
    const query = new URLSearchParams(params);
    query.set("limit", String(pageSize));
    const page = await api(`/api/v1/models?${query}`);
    if (mine !== generation) return; // a newer query is on its way
    errorBox.textContent = "";
    cards.replaceChildren(...page.versions.map(card));
    count.textContent = `${page.total} model version${page.total === 1 ? "" : "s"}`;
    history.replaceState(null, "", params.toString() ? `/?${params}` : "/");
  } catch (error) {
    if (mine === generation) showError(errorBox, error);
  }
}

let timer = null;
function refreshSoon() {
  clearTimeout(timer);
  timer = setTimeout(refresh, 250);
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  refresh();
});
form.addEventListener("input", refreshSoon);
form.addEventListener("change", refresh);

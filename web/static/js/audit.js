// The audit page: a model's, an account's or a tx's history from /api/v1/audit/..., listing
// events with their block and confirmations; and receipt verification in the browser (with
// the node's verifier as a cross-check).
import { api, showError } from "./api.js";
import { verifyReceiptBoth } from "./receipts.js";
import { el } from "./dom.js";

const form = document.getElementById("audit-form");
const kindSelect = document.getElementById("audit-kind");
const valueInput = document.getElementById("audit-value");
const errorBox = document.getElementById("audit-error");
const result = document.getElementById("audit-result");
const title = document.getElementById("audit-title");
const summary = document.getElementById("audit-summary");
const tables = document.getElementById("audit-tables");

const short = (h) => (typeof h === "string" && h.length > 16 ? `${h.slice(0, 12)}…` : String(h));
const accountLink = (a) => el("a", { href: `/audit?account=${a}`, title: a, text: short(a) });
const txLink = (t) => el("a", { href: `/audit?tx=${t}`, title: t, text: short(t) });

/** A line a person can read for one event's data. */
export function describeEvent(event) {
  const d = event.data || {};
  const ref = d.model && d.version ? `${d.model}@${d.version}` : d.name && d.version ? `${d.name}@${d.version}` : d.name || "";
  switch (event.type) {
    case "model-registered": return `${ref} registered by ${short(d.owner)}, price ${d.price}, fee ${d.registration_fee}`;
    case "price-changed": return `${ref} price ${d.old_price} → ${d.new_price}`;
    case "version-deprecated": return `${ref} deprecated${d.successor ? `, successor ${d.successor}` : ""}`;
    case "ownership-transferred": return `${d.name} from ${short(d.from)} to ${short(d.to)}`;
    case "usage-paid": return `${short(d.payer)} paid ${d.amount} for ${ref} to node ${short(d.node)} (request ${short(d.request)})`;
    case "channel-opened": return `channel ${short(d.channel)}: ${short(d.payer)} deposited ${d.deposit} for ${ref} with node ${short(d.node)}, until block ${d.expiry}`;
    case "channel-topped-up": return `channel ${short(d.channel)} topped up by ${d.added} to ${d.deposit}, until block ${d.expiry}`;
    case "channel-claimed": return `channel ${short(d.channel)} claimed ${d.paid} (${d.amount} in total) for ${ref}`;
    case "channel-refunded": return `channel ${short(d.channel)} refunded ${d.refunded} to ${short(d.payer)}`;
    default: return JSON.stringify(d).slice(0, 300);
  }
}

function eventsTable(caption, events, id) {
  if (!events.length) return el("p", { text: `${caption}: none.` });
  const head = el("tr", {}, ...["Block", "Confirmations", "Tx", "Event", "What"].map((h) => el("th", { scope: "col", text: h })));
  const rows = events.map((e) => el("tr", { class: "event", "data-type": e.type, "data-txid": e.txid },
    el("td", { text: String(e.height) }),
    el("td", { class: "confirmations", text: String(e.confirmations) }),
    el("td", {}, txLink(e.txid)),
    el("td", { text: `${e.contract}.${e.type}` }),
    el("td", { text: describeEvent(e) })));
  return el("table", { id, class: "events" }, el("caption", { text: caption }), el("thead", {}, head), el("tbody", {}, ...rows));
}

function facts(pairs) {
  summary.replaceChildren(...pairs.flatMap(([k, v]) => [el("dt", { text: k }), el("dd", {}, v instanceof Node ? v : String(v))]));
}

async function showModel(name) {
  const h = await api(`/api/v1/audit/models/${encodeURIComponent(name)}?limit=50`);
  title.replaceChildren("Model ", el("a", { href: `/models/${encodeURIComponent(h.name)}`, text: h.name }));
  facts([
    ["Owner", accountLink(h.owner)],
    ["Registered at height", h.registered_height],
    ["Versions", h.versions.map((v) => `${v.version}${v.deprecated ? " (deprecated)" : ""}`).join(", ")],
    ["Paid calls", h.usage.paid_calls],
    ["Paid by calls", h.usage.paid_amount],
    ["Channel claims", `${h.usage.channel_claims} (${h.usage.channel_amount})`],
    ["Revenue", h.usage.revenue],
    ["Chain height", h.height],
  ]);
  tables.replaceChildren(
    eventsTable("Registry events (oldest first)", h.registry_events, "audit-registry-events"),
    eventsTable("Recent payments (newest first)", h.recent_payments, "audit-payments"));
}

async function showAccount(account) {
  const h = await api(`/api/v1/audit/accounts/${encodeURIComponent(account)}?limit=50`);
  title.textContent = `Account ${account}`;
  const made = h.payments_made, got = h.payments_received;
  facts([
    ["Balance", h.balance ?? (h.account && h.account.balance) ?? "?"],
    ["Models owned", (h.models_owned || []).join(", ") || "none"],
    ["Payments made", `${made.paid_calls} calls (${made.paid_amount}), ${made.channel_claims} channel claims (${made.channel_amount}); total ${made.total}`],
    ["Payments received", `${got.count} (${got.total}): as owner ${got.as_owner}, as node ${got.as_node}`],
    ["Registrations", `${h.registrations.count} (fees ${h.registrations.fees})`],
    ["Transfers", `sent ${h.transfers.sent} (${h.transfers.sent_amount}), received ${h.transfers.received} (${h.transfers.received_amount})`],
    ["Channels", (h.channels || []).length],
  ]);
  tables.replaceChildren(eventsTable("Recent events", h.recent_events, "audit-account-events"));
}

async function showTx(txid) {
  const d = await api(`/api/v1/audit/txs/${encodeURIComponent(txid)}`);
  title.textContent = `Transaction ${d.txid}`;
  const tx = d.tx || {};
  const pairs = [
    ["Status", d.receipt && d.receipt.status === "failed" ? `failed: ${d.receipt.message} (${d.receipt.code})` : d.status],
    ["Call", `${tx.contract}.${tx.method}`],
    ["Sender", tx.sender ? accountLink(tx.sender) : "?"],
    ["Fee", tx.fee],
    ["Confirmations", d.confirmations],
  ];
  if (d.status !== "pending") pairs.push(["Block", `height ${d.height}, ${d.block_hash}`]);
  facts(pairs);
  tables.replaceChildren(eventsTable("Events", d.events || [], "audit-tx-events"));
}

const SHOW = { model: showModel, account: showAccount, tx: showTx };

async function show(kind, value) {
  showError(errorBox, null);
  result.hidden = true;
  try {
    await SHOW[kind](value);
    result.hidden = false;
    result.dataset.kind = kind;
  } catch (error) {
    showError(errorBox, error);
  }
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  const kind = kindSelect.value;
  const value = valueInput.value.trim();
  if (!value) {
    showError(errorBox, new Error("enter a model name, an account or a transaction id"));
    return;
  }
  history.replaceState(null, "", `/audit?${new URLSearchParams({ [kind]: value })}`);
  show(kind, value);
});
kindSelect.addEventListener("change", () => valueInput.setAttribute("name", kindSelect.value));

// --- receipts -------------------------------------------------------------------------------

const receiptForm = document.getElementById("receipt-form");
const receiptResult = document.getElementById("receipt-result");
const receiptError = document.getElementById("receipt-error");

/** The receipt inside a pasted value: a receipt, an inference answer, or {id, receipt}. */
export function findReceipt(value) {
  if (value && typeof value === "object") {
    if (value.parameters && value.parameters.receipt) return value.parameters.receipt;
    if (value.receipt && typeof value.receipt === "object") return value.receipt;
  }
  return value;
}

receiptForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  showError(receiptError, null);
  receiptResult.textContent = "";
  delete receiptResult.dataset.valid;
  let value;
  try {
    value = JSON.parse(document.getElementById("receipt-text").value);
  } catch {
    showError(receiptError, new Error("that is not valid JSON"));
    return;
  }
  const node = document.getElementById("receipt-node").value.trim() || undefined;
  const verdict = await verifyReceiptBoth(findReceipt(value), node);
  const nodeSays = verdict.node ? (verdict.node.valid ? "the node's verifier agrees" : `the node's verifier says no: ${verdict.node.reason}`) : "the node's verifier could not be asked";
  receiptResult.dataset.valid = verdict.valid ? "true" : "false";
  receiptResult.textContent = verdict.valid
    ? `Valid: signed by node ${verdict.browser ? findReceipt(value).node : ""} (checked in this browser; ${nodeSays}).`
    : `Not valid: ${verdict.reason} (${nodeSays}).`;
});

if (valueInput.value.trim()) show(kindSelect.value, valueInput.value.trim());

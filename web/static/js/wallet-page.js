// The Wallet page: create / import / unlock the browser wallet, show balance, nonce and
// history, the dev faucet, sending coins and exporting the keystore file.

import { api, errorText, showError } from "./api.js";
import * as wallet from "./wallet.js";

const $ = (id) => document.getElementById(id);
const root = $("wallet");
const errorBox = $("wallet-error");
let refreshTimer = null;

function notice(text) {
  $("wallet-notice").textContent = text;
}

function fail(error) {
  showError(errorBox, error);
}

async function busy(button, work) {
  showError(errorBox, null);
  button.disabled = true;
  button.setAttribute("aria-busy", "true");
  try {
    await work();
  } catch (error) {
    fail(error);
  } finally {
    button.disabled = false;
    button.removeAttribute("aria-busy");
  }
}

function show() {
  const account = wallet.currentAccount();
  $("wallet-none").hidden = account !== null;
  $("wallet-locked").hidden = account === null || wallet.isUnlocked();
  $("wallet-open").hidden = account === null || !wallet.isUnlocked();
  wallet.renderBadge();
  if (account && wallet.isUnlocked()) {
    $("account-link").textContent = account;
    $("account-link").href = `/explorer/account/${account}`;
    $("lock-state").textContent = "unlocked in this tab";
    refresh();
    refreshChannels();
    if (refreshTimer === null) refreshTimer = setInterval(refresh, 3000);
  } else if (refreshTimer !== null) {
    clearInterval(refreshTimer);
    refreshTimer = null;
  }
}

function describe(event) {
  const d = event.data || {};
  const parts = [];
  for (const key of ["from", "to", "amount", "model", "version", "payer", "channel", "paid", "price"]) {
    if (d[key] !== undefined && d[key] !== null) {
      const value = typeof d[key] === "string" && d[key].length > 20 ? d[key].slice(0, 16) + "…" : d[key];
      parts.push(`${key} ${value}`);
    }
  }
  return parts.join(", ");
}

async function refresh() {
  const account = wallet.currentAccount();
  if (!account) return;
  try {
    const info = await api(`/api/v1/accounts/${account}`);
    $("balance").textContent = String(info.balance);
    $("pending-balance").textContent = String(info.pending_balance);
    $("nonce").textContent = String(info.nonce);
    $("pending-nonce").textContent = String(info.pending_nonce);
    $("height").textContent = String(info.height);
    const history = await api(`/api/v1/audit/accounts/${account}?limit=20`);
    const body = $("history").querySelector("tbody");
    const rows = (history.recent_events || []).map((event) => {
      const tr = document.createElement("tr");
      const cells = [String(event.height), `${event.contract}.${event.type}`, describe(event)];
      for (const text of cells) {
        const td = document.createElement("td");
        td.textContent = text;
        tr.append(td);
      }
      const txCell = document.createElement("td");
      const link = document.createElement("a");
      link.href = `/explorer/tx/${event.txid}`;
      link.className = "mono";
      link.textContent = event.txid.slice(0, 16) + "…";
      txCell.append(link);
      const conf = document.createElement("td");
      conf.textContent = String(event.confirmations);
      tr.append(txCell, conf);
      return tr;
    });
    body.replaceChildren(...rows);
    $("history-empty").hidden = rows.length > 0;
  } catch (error) {
    fail(error);
  }
}

// --- channels this wallet pays ------------------------------------------------------------
//
// The list is read on opening, on "Refresh channels" and after each channel tx, not on the
// 3 s timer: a redraw would wipe a top-up being typed. Its state comes from the height the
// node answered with: a block after `expiry` can no longer carry a claim, so once the tip
// has reached the expiry the next block may carry the refund.

const channelsError = $("channels-error");

function channelsNotice(text) {
  $("channels-notice").textContent = text;
}

function channelState(info, height) {
  if (info.closed) return "closed";
  return height >= info.expiry ? "expired" : "open";
}

function cell(text, className) {
  const td = document.createElement("td");
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

function field(labelText, name, value, min) {
  const label = document.createElement("label");
  label.append(labelText);
  const input = document.createElement("input");
  input.name = name;
  input.type = "number";
  input.step = "1";
  input.min = String(min);
  input.required = true;
  input.value = String(value);
  label.append(input);
  return label;
}

function wholeNumber(value, what, min) {
  const number = Number(value);
  if (value.trim() === "" || !Number.isSafeInteger(number) || number < min) {
    throw new Error(`${what}: a whole number, at least ${min}`);
  }
  return number;
}

/**
 * Sign `channel.<method>(args)` with the wallet, send it, follow it until mined; a call
 * that failed in its block is an error carrying the chain's message and code.
 */
async function channelTx(button, what, method, args) {
  showError(channelsError, null);
  button.disabled = true;
  button.setAttribute("aria-busy", "true");
  try {
    const tx = await wallet.signTx({ contract: "channel", method, args });
    const { txid } = await wallet.submitTx(tx);
    $("channels-notice").dataset.txid = txid;
    channelsNotice(`${what}: tx ${txid.slice(0, 16)}… sent (fee ${tx.fee}), waiting for a block…`);
    const detail = await wallet.waitForConfirmations(txid, 1, () => refresh());
    const receipt = detail.receipt || { status: "ok" };
    if (receipt.status !== "ok") {
      channelsNotice("");
      throw new Error(
        `${what} failed in block ${detail.height}: ${receipt.message} (${receipt.code}); ` +
          `the channel is unchanged, the fee ${tx.fee} was paid`,
      );
    }
    channelsNotice(`${what}: done in block ${detail.height} (tx ${txid.slice(0, 16)}…, fee ${tx.fee}).`);
  } catch (error) {
    const text = errorText(error);
    showError(channelsError, new Error(text.startsWith(what) ? text : `${what}: ${text}`));
  } finally {
    button.disabled = false;
    button.removeAttribute("aria-busy");
    await Promise.all([refresh(), refreshChannels()]);
  }
}

function topupForm(info, ref, height) {
  const form = document.createElement("form");
  form.className = "channel-form topup-form";
  form.setAttribute("aria-label", `Top up channel ${ref}`);
  const minExpiry = Math.max(info.expiry, height + 1);
  form.append(
    field("Add deposit (base units)", "deposit", 0, 0),
    field("New expiry height", "expiry", minExpiry, minExpiry),
  );
  const button = document.createElement("button");
  button.type = "submit";
  button.textContent = "Top up";
  form.append(button);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    let args;
    try {
      const deposit = wholeNumber(form.elements.deposit.value, "Add deposit", 0);
      const expiry = wholeNumber(form.elements.expiry.value, "New expiry height", info.expiry);
      if (deposit === 0 && expiry === info.expiry) throw new Error("add a deposit or move the expiry later");
      args = { channel: info.id, deposit, expiry };
    } catch (error) {
      showError(channelsError, new Error(`Top up of ${ref}: ${error.message}`));
      return;
    }
    channelTx(button, `Top up of ${ref}`, "topup", args);
  });
  return form;
}

function refundButton(info, ref) {
  const button = document.createElement("button");
  button.type = "button";
  button.className = "refund-button";
  button.textContent = "Refund";
  button.setAttribute("aria-label", `Refund channel ${ref}`);
  button.addEventListener("click", () => channelTx(button, `Refund of ${ref}`, "refund", { channel: info.id }));
  return button;
}

function channelRow(status, height) {
  const info = status.onchain;
  const ref = `${info.model}@${info.version} (${info.id.slice(0, 12)}…)`;
  const state = channelState(info, height);
  const tr = document.createElement("tr");
  tr.dataset.channel = info.id;
  tr.dataset.state = state;
  const model = document.createElement("td");
  const link = document.createElement("a");
  link.href = `/models/${encodeURIComponent(info.model)}/${encodeURIComponent(info.version)}`;
  link.textContent = `${info.model}@${info.version}`;
  const id = document.createElement("div");
  id.className = "mono";
  id.textContent = info.id.slice(0, 16) + "…";
  id.title = info.id;
  model.append(link, id);
  const node = document.createElement("td");
  const nodeLink = document.createElement("a");
  nodeLink.href = `/explorer/account/${info.node}`;
  nodeLink.className = "mono";
  nodeLink.textContent = info.node.slice(0, 16) + "…";
  nodeLink.title = info.node;
  node.append(nodeLink);
  const accepted = status.served_here
    ? `${status.accepted} (${status.unclaimed} unclaimed)`
    : "another node serves it";
  const left = state === "open" ? `${info.expiry - height} blocks left` : `passed`;
  const pill = document.createElement("span");
  pill.className = `pill ${state}`;
  pill.textContent = state;
  const stateCell = document.createElement("td");
  stateCell.className = "channel-state";
  stateCell.append(pill);
  const actions = document.createElement("td");
  actions.className = "channel-actions";
  if (state !== "closed") actions.append(topupForm(info, ref, height));
  if (state === "expired") actions.append(refundButton(info, ref));
  if (state === "closed") actions.textContent = "refunded";
  tr.append(
    model,
    node,
    cell(String(info.deposit), "amount channel-deposit"),
    cell(String(info.claimed), "amount channel-claimed"),
    cell(accepted, "channel-accepted"),
    cell(`${info.expiry} (height ${height}, ${left})`, "channel-expiry"),
    stateCell,
    actions,
  );
  return tr;
}

let channelsReading = null;

/** Read the channels this wallet pays and draw them (one read at a time). */
function refreshChannels() {
  if (channelsReading === null) {
    channelsReading = drawChannels().finally(() => {
      channelsReading = null;
    });
  }
  return channelsReading;
}

async function drawChannels() {
  const account = wallet.currentAccount();
  if (!account || !wallet.isUnlocked()) return;
  const table = $("channels");
  try {
    const answer = await api(`/api/v1/channels?account=${account}`);
    const mine = (answer.channels || []).filter((s) => s.onchain && s.onchain.payer === account);
    const height = mine.length ? Math.max(...mine.map((s) => s.height)) : null;
    const rows = mine.map((s) => channelRow(s, height));
    table.querySelector("tbody").replaceChildren(...rows);
    $("channels-empty").hidden = rows.length > 0;
    $("channels-height").textContent = height === null ? "" : `As of block ${height}.`;
    table.dataset.height = height === null ? "" : String(height);
    table.dataset.loaded = "true";
  } catch (error) {
    showError(channelsError, error);
  }
}

$("channels-refresh").addEventListener("click", () => {
  showError(channelsError, null);
  refreshChannels();
});

$("create-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const passphrase = $("create-passphrase").value;
  if (passphrase !== $("create-confirm").value) {
    fail(new Error("the two passphrases differ"));
    return;
  }
  busy($("create-button"), async () => {
    notice("Creating the key and sealing it (Argon2id)…");
    const { account } = await wallet.createWallet(passphrase);
    $("create-form").reset();
    notice(`Wallet created: ${account}`);
    show();
  });
});

$("import-form").addEventListener("submit", (event) => {
  event.preventDefault();
  busy($("import-button"), async () => {
    const file = $("import-file").files[0];
    const text = file ? await file.text() : $("import-text").value;
    if (!text.trim()) throw new Error("choose a keystore file or paste its JSON");
    notice("Opening the keystore…");
    const { account } = await wallet.importKeystore(text, $("import-passphrase").value);
    $("import-form").reset();
    notice(`Wallet imported: ${account}`);
    show();
  });
});

$("unlock-form").addEventListener("submit", (event) => {
  event.preventDefault();
  busy($("unlock-button"), async () => {
    notice("Unlocking…");
    await wallet.unlock($("unlock-passphrase").value);
    $("unlock-form").reset();
    notice("Unlocked.");
    show();
  });
});

$("forget-form").addEventListener("submit", (event) => {
  event.preventDefault();
  if (!window.confirm("Remove the wallet from this browser? Without an exported file the key is lost.")) return;
  busy($("forget-button"), async () => {
    await wallet.forgetWallet();
    notice("Wallet removed from this browser.");
    show();
  });
});

$("lock-button").addEventListener("click", () => {
  wallet.lock();
  notice("Locked.");
  show();
});

$("refresh-button").addEventListener("click", () => {
  refresh();
  refreshChannels();
});

const faucetButton = $("faucet-button");
if (faucetButton) {
  faucetButton.addEventListener("click", () =>
    busy(faucetButton, async () => {
      const account = wallet.currentAccount();
      const answer = await api("/api/v1/faucet", { method: "POST", body: { account } });
      notice(`Faucet sent ${answer.amount} in tx ${answer.txid.slice(0, 16)}…; waiting for a block…`);
      await wallet.waitForConfirmations(answer.txid, 1, () => refresh());
      notice(`Faucet: ${answer.amount} received (tx ${answer.txid.slice(0, 16)}… confirmed).`);
      await refresh();
    }),
  );
}

$("send-form").addEventListener("submit", (event) => {
  event.preventDefault();
  busy($("send-button"), async () => {
    const to = $("send-to").value.trim();
    const amount = Number($("send-amount").value);
    if (!Number.isSafeInteger(amount) || amount < 1) throw new Error("the amount is a whole number of base units, at least 1");
    const tx = await wallet.signTx({ contract: "coin", method: "transfer", args: { to, amount } });
    const answer = await wallet.submitTx(tx);
    const result = $("send-result");
    result.textContent = `Sent: tx ${answer.txid} (fee ${tx.fee}), waiting for a block…`;
    result.dataset.txid = answer.txid;
    const detail = await wallet.waitForConfirmations(answer.txid, 1, () => refresh());
    const status = detail.receipt ? detail.receipt.status : "confirmed";
    result.textContent = `Tx ${answer.txid} ${status} in block ${detail.height} (fee ${tx.fee}).`;
    await refresh();
  });
});

$("export-form").addEventListener("submit", (event) => {
  event.preventDefault();
  busy($("export-button"), async () => {
    const doc = await wallet.exportKeystore($("export-passphrase").value);
    $("export-form").reset();
    const blob = new Blob([JSON.stringify(doc, null, 2) + "\n"], { type: "application/json" });
    const link = document.createElement("a");
    link.href = URL.createObjectURL(blob);
    link.download = `modelchain-${doc.account.slice(0, 12)}.json`;
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(link.href), 60000);
    notice(`Keystore exported as ${link.download}.`);
  });
});

root.dataset.ready = "true";
show();

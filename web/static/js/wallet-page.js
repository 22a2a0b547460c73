// The Wallet page: create / import / unlock the browser wallet, show balance, nonce and
// history, the dev faucet, sending coins and exporting the keystore file.

import { api, showError } from "./api.js";
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

$("refresh-button").addEventListener("click", () => refresh());

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

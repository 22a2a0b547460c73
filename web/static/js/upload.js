// The upload page: hash the picked .onnx file in the browser, show the node's dry run
// (signature or rejection reason) before anything is signed, then sign the registry.register
// tx with the browser wallet, send file and tx together with a progress bar, and follow the
// tx until it is confirmed.
import { ApiError, api, errorText, showError } from "./api.js";
import { hex, sha256 } from "./canonical.js";
import { currentAccount, isUnlocked, signTx, unlock, waitForConfirmations } from "./wallet.js";
import { el } from "./dom.js";

const NAME = /^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$/;
const VERSION = /^[0-9A-Za-z][0-9A-Za-z._-]{0,31}$/;
const ACCOUNT = /^[0-9a-f]{64}$/;
const BPS_TOTAL = 10000;

const form = document.getElementById("upload-form");
const fileInput = document.getElementById("upload-file");
const shaBox = document.getElementById("upload-sha256");
const dryRunBox = document.getElementById("upload-dryrun");
const signatureBox = document.getElementById("upload-signature");
const submit = document.getElementById("upload-submit");
const progress = document.getElementById("upload-progress");
const percent = document.getElementById("upload-percent");
const statusBox = document.getElementById("upload-status");
const errorBox = document.getElementById("upload-error");
const unlockRow = document.getElementById("upload-unlock");
const walletBox = document.getElementById("upload-wallet");

let checked = null; // {file, sha256, dryRun} of the file the dry run accepted

function say(text) {
  statusBox.textContent = text;
}

export function describeType(t) {
  if (t.tensor) {
    const shape = t.tensor.shape === null ? "any shape" : `[${t.tensor.shape.map((d) => (d === null ? "?" : d)).join(", ")}]`;
    return `${t.tensor.elem_type} ${shape}`;
  }
  if (t.sequence) return `sequence of ${describeType(t.sequence)}`;
  if (t.map) return `map ${t.map.key} → ${describeType(t.map.value)}`;
  if (t.optional) return `optional ${describeType(t.optional)}`;
  return JSON.stringify(t);
}

function showSignature(signature) {
  const rows = [
    ...signature.inputs.map((v) => ["input", v]),
    ...signature.outputs.map((v) => ["output", v]),
  ].map(([kind, v]) => el("tr", {}, el("td", { text: kind }), el("td", { text: v.name }), el("td", { text: describeType(v.type) })));
  const table = el("table", { id: "upload-signature-table" },
    el("caption", { text: "Signature extracted by the node (it is registered with the model)" }),
    el("thead", {}, el("tr", {}, el("th", { scope: "col", text: "Kind" }), el("th", { scope: "col", text: "Name" }), el("th", { scope: "col", text: "Type and shape" }))),
    el("tbody", {}, ...rows));
  const opsets = Object.entries(signature.opsets).map(([d, v]) => `${d} ${v}`).join(", ");
  signatureBox.replaceChildren(table, el("p", { text: `ONNX IR ${signature.ir_version}; opsets ${opsets}; ${signature.parameter_count} parameters; ${signature.size_bytes} bytes.` }));
}

function suggestName(fileName) {
  return fileName.replace(/\.onnx$/i, "").toLowerCase().replace(/[^a-z0-9-]+/g, "-").replace(/^-+|-+$/g, "").slice(0, 64);
}

async function onFile() {
  checked = null;
  submit.disabled = true;
  signatureBox.replaceChildren();
  showError(errorBox, null);
  const file = fileInput.files && fileInput.files[0];
  if (!file) return;
  const limit = Number(form.dataset.maxBytes);
  if (file.size > limit) {
    dryRunBox.textContent = "rejected";
    showError(errorBox, new Error(`the file is ${file.size} bytes, over this node's ${limit}-byte limit`));
    return;
  }
  shaBox.textContent = "hashing…";
  const digest = hex(await sha256(await file.arrayBuffer()));
  shaBox.textContent = digest;
  dryRunBox.textContent = "the node is checking the file…";
  const body = new FormData();
  body.append("file", file, file.name);
  let dryRun;
  try {
    dryRun = await api("/api/v1/models/inspect", { method: "POST", body });
  } catch (error) {
    dryRunBox.textContent = "rejected";
    showError(errorBox, new Error(`The node rejected this file: ${errorText(error)}`));
    return;
  }
  if (dryRun.sha256 !== digest) {
    dryRunBox.textContent = "rejected";
    showError(errorBox, new Error(`the node hashed the file to ${dryRun.sha256}, not ${digest}: not uploading`));
    return;
  }
  if (dryRun.registered_as) {
    dryRunBox.textContent = "already registered";
    showError(errorBox, new Error(`this file is already registered as ${dryRun.registered_as}`));
    return;
  }
  dryRunBox.textContent = `accepted: a valid ONNX model of ${dryRun.size} bytes`;
  showSignature(dryRun.signature);
  const name = document.getElementById("upload-name");
  if (!name.value) name.value = suggestName(file.name);
  checked = { file, sha256: digest, dryRun };
  submit.disabled = false;
}

function intField(id, label, low, high) {
  const text = document.getElementById(id).value.trim();
  const value = Number(text);
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(value) || value < low || value > high) {
    throw new Error(`${label}: a whole number in ${low}..${high}`);
  }
  return value;
}

/** The registry split from the form; throws Error in words. */
function readSplit(account) {
  const nodeBps = intField("upload-node-bps", "serving node's share", 0, BPS_TOTAL);
  const text = document.getElementById("upload-owners").value.trim();
  const owners = [];
  if (!text) {
    owners.push([account, BPS_TOTAL - nodeBps]);
  } else {
    for (const item of text.split(",")) {
      const [who, bps] = item.split("=").map((s) => s.trim());
      const value = Number(bps);
      if (!ACCOUNT.test(who || "") || !/^\d+$/.test(bps || "") || value < 1 || value > BPS_TOTAL) {
        throw new Error(`owner ${JSON.stringify(item.trim())} is not ACCOUNT=BPS (64 lowercase hex = 1..10000)`);
      }
      owners.push([who, value]);
    }
  }
  const total = owners.reduce((n, [, bps]) => n + bps, nodeBps);
  if (total !== BPS_TOTAL) throw new Error(`the split adds up to ${total}, not ${BPS_TOTAL}`);
  return { owners, node: nodeBps };
}

function readArgs(account) {
  const name = document.getElementById("upload-name").value.trim();
  const version = document.getElementById("upload-version").value.trim();
  if (!NAME.test(name)) throw new Error("name: 1 to 64 lowercase letters, digits and dashes, not starting or ending with a dash");
  if (!VERSION.test(version)) throw new Error("version: 1 to 32 letters, digits, dots, dashes or underscores");
  const tags = document.getElementById("upload-tags").value.split(",").map((t) => t.trim().toLowerCase()).filter(Boolean);
  for (const tag of tags) if (!NAME.test(tag)) throw new Error(`tag ${JSON.stringify(tag)}: lowercase letters, digits and dashes`);
  return {
    name,
    version,
    sha256: checked.sha256,
    price: intField("upload-price", "price", 0, Number.MAX_SAFE_INTEGER),
    split: readSplit(account),
    metadata: {
      description: document.getElementById("upload-description").value,
      license: document.getElementById("upload-license").value.trim(),
      tags: [...new Set(tags)],
      io_signature: checked.dryRun.signature,
    },
  };
}

/** POST file + tx as multipart with XMLHttpRequest, reporting upload progress. */
function sendUpload(file, tx) {
  return new Promise((resolve, reject) => {
    const body = new FormData();
    body.append("tx", JSON.stringify(tx));
    body.append("file", file, file.name);
    const xhr = new XMLHttpRequest();
    xhr.open("POST", "/api/v1/models");
    xhr.responseType = "json";
    xhr.upload.addEventListener("progress", (event) => {
      if (!event.lengthComputable) return;
      const done = Math.floor((100 * event.loaded) / event.total);
      progress.value = done;
      progress.textContent = `${done}%`;
      percent.textContent = `${done}%`;
    });
    xhr.addEventListener("load", () => {
      const data = xhr.response;
      if (xhr.status >= 200 && xhr.status < 300) {
        resolve(data);
        return;
      }
      const error = data && data.error ? data.error : null;
      reject(new ApiError(error ? error.message : `the node answered HTTP ${xhr.status}`, {
        code: error ? error.code : `http-${xhr.status}`, status: xhr.status, body: data,
      }));
    });
    xhr.addEventListener("error", () => reject(new ApiError("cannot reach the node", { code: "node-unreachable" })));
    xhr.send(body);
  });
}

async function onSubmit(event) {
  event.preventDefault();
  showError(errorBox, null);
  if (!checked) {
    showError(errorBox, new Error("pick a model file the dry run accepts first"));
    return;
  }
  submit.disabled = true;
  try {
    const account = currentAccount();
    if (!account) throw new Error("create or import a wallet on the Wallet page first: the registration is signed in this browser");
    if (!isUnlocked()) {
      const passphrase = document.getElementById("upload-passphrase");
      if (!passphrase.value) throw new Error("enter your wallet passphrase to unlock it");
      say("Unlocking the wallet…");
      await unlock(passphrase.value);
      passphrase.value = "";
      unlockRow.hidden = true;
    }
    const args = readArgs(account);
    say("Signing the registration in this browser…");
    const tx = await signTx({ contract: "registry", method: "register", args });
    say("Uploading…");
    progress.value = 0;
    const result = await sendUpload(checked.file, tx);
    progress.value = 100;
    percent.textContent = "100%";
    const txid = result.txid;
    statusBox.replaceChildren(`Uploaded; registration tx ${txid} is waiting for a block…`);
    const detail = await waitForConfirmations(txid, 1, (d) => {
      if (!(d.confirmations >= 1)) say(`Uploaded; registration tx ${txid} is ${d.status || "pending"}, waiting for a block…`);
    });
    if (detail.receipt && detail.receipt.status === "failed") {
      throw new Error(`the registration was mined but failed: ${detail.receipt.message} (${detail.receipt.code})`);
    }
    const link = el("a", { href: `/models/${args.name}/${args.version}`, id: "upload-model-link", text: `${args.name} ${args.version}` });
    statusBox.replaceChildren(`Confirmed in block ${detail.height} (tx ${txid}). See `, link, ".");
    statusBox.dataset.confirmed = "true";
    statusBox.dataset.txid = txid;
  } catch (error) {
    say("");
    showError(errorBox, error);
    submit.disabled = false;
  }
}

function showWallet() {
  const account = currentAccount();
  if (!account) {
    walletBox.replaceChildren("No wallet in this browser: ", el("a", { href: "/wallet", text: "create or import one" }), " to sign the registration.");
    return;
  }
  walletBox.textContent = `Signing with ${account}${isUnlocked() ? "" : " (locked)"}.`;
  unlockRow.hidden = isUnlocked();
  const owners = document.getElementById("upload-owners");
  owners.placeholder = `${account}=${owners.dataset.defaultBps}`;
}

fileInput.addEventListener("change", () => {
  onFile().catch((error) => showError(errorBox, error));
});
form.addEventListener("submit", onSubmit);
showWallet();
form.dataset.ready = "true";

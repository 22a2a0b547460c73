// "Try it" on the model page: a form built from the registered input signature, which runs
// the model over the Open Inference Protocol and pays from the browser wallet, per call (a
// signed usage_fee.pay tx) or by a channel it opens (one voucher per call), then shows the
// outputs, the receipt and whether it verifies.
//
// The request hash (docs/inference.md) is computed here with typed arrays and WebCrypto and
// must equal the node's quote before anything is signed: the browser pays only for the
// request it sends.
import { ApiError, api, showError } from "./api.js";
import { canonicalBytes, concatBytes, hex, sha256, unhex, utf8 } from "./canonical.js";
import { imageLayout, imageToTensor } from "./imagepicker.js";
import { verifyReceiptBoth } from "./receipts.js";
import { el } from "./dom.js";
import {
  currentAccount, isUnlocked, signTx, signVoucher, submitTx, unlock, waitForConfirmations,
} from "./wallet.js";

const REQUEST_TAG = utf8("modelchain/request/v1\0");
const OUTPUTS_TAG = utf8("modelchain/outputs/v1\0");
const CHANNELS_ITEM = "modelchain.channels";
const DEFAULT_TEXT_MAX_ELEMENTS = 1000;
const SHOW_MAX_CHARS = 4000;

export const DATATYPES = {
  bool: "BOOL", uint8: "UINT8", uint16: "UINT16", uint32: "UINT32", uint64: "UINT64",
  int8: "INT8", int16: "INT16", int32: "INT32", int64: "INT64", float16: "FP16",
  float32: "FP32", float64: "FP64", bfloat16: "BF16", string: "BYTES",
};
const TYPED = {
  UINT8: Uint8Array, UINT16: Uint16Array, UINT32: Uint32Array, INT8: Int8Array,
  INT16: Int16Array, INT32: Int32Array, FP32: Float32Array, FP64: Float64Array,
};

// --- the two hashes of docs/inference.md ----------------------------------------------------

/** A JSON value in the hash form of JSON values: numbers as JavaScript's String(number). */
function numbersAsStrings(value) {
  if (typeof value === "number") return String(value);
  if (Array.isArray(value)) return value.map(numbersAsStrings);
  if (value !== null && typeof value === "object") {
    const out = {};
    for (const key of Object.keys(value)) out[key] = numbersAsStrings(value[key]);
    return out;
  }
  return value;
}

/** Canonical JSON text with keys sorted by code point; no key restriction (map keys). */
function hashJSON(value) {
  if (Array.isArray(value)) return "[" + value.map(hashJSON).join(",") + "]";
  if (value !== null && typeof value === "object") {
    const keys = Object.keys(value).sort();
    return "{" + keys.map((k) => JSON.stringify(k) + ":" + hashJSON(value[k])).join(",") + "}";
  }
  return JSON.stringify(value);
}

function bfloat16Bits(values) {
  const bits = new Uint32Array(new Float32Array(values).buffer);
  const out = new Uint16Array(bits.length);
  for (let i = 0; i < bits.length; i++) {
    const b = bits[i];
    const isNaN = (b & 0x7f800000) === 0x7f800000 && (b & 0x007fffff) !== 0;
    // round to nearest even on the dropped 16 bits; a NaN stays a (quiet) NaN
    out[i] = isNaN ? (b >>> 16) | 0x0040 : ((b + 0x7fff + ((b >>> 16) & 1)) >>> 16) & 0xffff;
  }
  return out;
}

/** The bytes of a tensor's flat values in the layout of its datatype (little-endian). */
export function tensorBytes(datatype, flat) {
  if (datatype === "BOOL") {
    return Uint8Array.from(flat, (v) => {
      if (typeof v !== "boolean") throw new TypeError(`BOOL values are true or false, not ${JSON.stringify(v)}`);
      return v ? 1 : 0;
    });
  }
  if (datatype === "INT64" || datatype === "UINT64") {
    const Big = datatype === "INT64" ? BigInt64Array : BigUint64Array;
    const values = flat.map((v) => {
      if (!Number.isInteger(v) && typeof v !== "bigint") throw new TypeError(`${datatype} values are integers, not ${JSON.stringify(v)}`);
      return BigInt(v);
    });
    return new Uint8Array(new Big(values).buffer);
  }
  if (datatype === "BYTES") {
    return concatBytes(...flat.flatMap((s) => {
      if (typeof s !== "string") throw new TypeError(`BYTES values are strings, not ${JSON.stringify(s)}`);
      const u = utf8(s);
      const n = new Uint8Array(4);
      new DataView(n.buffer).setUint32(0, u.length, true);
      return [n, u];
    }));
  }
  if (datatype === "FP16") {
    if (typeof Float16Array === "undefined") throw new TypeError("this browser has no Float16Array for FP16 inputs");
    return new Uint8Array(new Float16Array(flat).buffer);
  }
  if (datatype === "BF16") return new Uint8Array(bfloat16Bits(flat).buffer);
  const Typed = TYPED[datatype];
  if (!Typed) throw new TypeError(`the browser cannot hash ${datatype} values`);
  for (const v of flat) {
    if (typeof v !== "number") throw new TypeError(`${datatype} values are numbers, not ${JSON.stringify(v)}`);
  }
  return new Uint8Array(new Typed(flat).buffer);
}

function record(name, datatype, shape, bytes) {
  const length = new Uint8Array(8);
  new DataView(length.buffer).setBigUint64(0, BigInt(bytes.length), false);
  return concatBytes(canonicalBytes({ datatype, name, shape }), new Uint8Array([0]), length, bytes);
}

function valueBytes(item) {
  if (item.datatype === "JSON") return utf8(hashJSON(numbersAsStrings(item.data)));
  const flat = Array.isArray(item.data) ? item.data.flat(Infinity) : [item.data];
  return tensorBytes(item.datatype, flat);
}

const byName = (a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);

/** hex sha256 of the request hash's bytes for `inputs` of the model file `modelSha256`. */
export async function computeRequestHash(modelSha256, inputs) {
  const records = [...inputs].sort(byName).map((i) => record(i.name, i.datatype, i.shape, valueBytes(i)));
  return hex(await sha256(concatBytes(REQUEST_TAG, unhex(modelSha256), ...records)));
}

/** hex sha256 of the output hash's bytes for a response's `outputs`. */
export async function computeOutputHash(outputs) {
  const records = [...outputs].sort(byName).map((o) => record(o.name, o.datatype, o.shape, valueBytes(o)));
  return hex(await sha256(concatBytes(OUTPUTS_TAG, ...records)));
}

// --- reading the form -------------------------------------------------------------------------

function nestedShape(value) {
  const shape = [];
  while (Array.isArray(value)) {
    shape.push(value.length);
    value = value[0];
  }
  return shape;
}

const product = (shape) => shape.reduce((n, d) => n * d, 1);

/** The shape to send for `flat`/`nested` data given the registered shape (null: any). */
export function fitShape(name, registered, parsed) {
  const given = nestedShape(parsed);
  const flat = Array.isArray(parsed) ? parsed.flat(Infinity) : [parsed];
  if (product(given) !== flat.length) throw new Error(`input ${name}: the nested lists are not all the same length`);
  if (registered === null) return { shape: given, flat };
  const fits = (shape) => shape.length === registered.length
    && shape.every((d, i) => !Number.isInteger(registered[i]) || registered[i] === d);
  if (fits(given)) return { shape: given, flat };
  // a flat list for a tensor with at most one free dimension: fill that one in
  const free = registered.filter((d) => !Number.isInteger(d)).length;
  const fixed = product(registered.filter((d) => Number.isInteger(d)));
  if (given.length <= 1 && free <= 1 && fixed > 0 && flat.length % fixed === 0) {
    const shape = registered.map((d) => (Number.isInteger(d) ? d : flat.length / fixed));
    if (product(shape) === flat.length) return { shape, flat };
  }
  const want = `[${registered.map((d) => (Number.isInteger(d) ? d : d === null ? "?" : d)).join(", ")}]`;
  throw new Error(`input ${name}: data of shape [${given.join(", ")}] does not fit the registered shape ${want}`);
}

function sampleValue(elemType, shape) {
  const zero = elemType === "bool" ? false : elemType === "string" ? "" : 0;
  const build = (dims) => (dims.length ? Array.from({ length: dims[0] }, () => build(dims.slice(1))) : zero);
  return build(shape.map((d) => (Number.isInteger(d) ? d : 1)));
}

function describeShape(shape) {
  if (shape === null) return "any shape";
  return `[${shape.map((d) => (d === null ? "?" : d)).join(", ")}]`;
}

/** One field per input: a JSON text area, plus an image picker for image-shaped inputs. */
function buildFields(container, inputs) {
  const fields = [];
  inputs.forEach((input, index) => {
    const id = `tryit-input-${index}`;
    const tensor = input.type.tensor;
    const field = { input, id, datatype: tensor ? DATATYPES[tensor.elem_type] : "JSON", image: null };
    const box = el("div", { class: "tryit-field" });
    const kind = tensor ? `${tensor.elem_type} ${describeShape(tensor.shape)}` : "JSON value (map or sequence)";
    box.append(el("label", { for: id, text: `${input.name} — ${kind}` }));
    const area = el("textarea", { id, name: input.name, rows: "3", cols: "60", spellcheck: "false",
      "aria-describedby": `${id}-help` });
    if (tensor && tensor.shape !== null && product(tensor.shape.map((d) => (Number.isInteger(d) ? d : 1))) <= DEFAULT_TEXT_MAX_ELEMENTS) {
      area.value = JSON.stringify(sampleValue(tensor.elem_type, tensor.shape));
    }
    box.append(area, el("p", { id: `${id}-help`, class: "help", text: tensor
      ? `A JSON number or (nested) array of shape ${describeShape(tensor.shape)}; "?" and named dimensions take any size.`
      : "A JSON object (map) or array (sequence)." }));
    if (!field.datatype) box.append(el("p", { class: "error", text: `${tensor.elem_type} inputs cannot be sent from the browser.` }));
    const layout = imageLayout(input);
    if (layout) {
      const pickerId = `${id}-image`;
      const picker = el("input", { type: "file", id: pickerId, accept: "image/*" });
      const canvas = el("canvas", { id: `${id}-canvas`, width: String(layout.width), height: String(layout.height),
        "aria-label": `${input.name} image, resized to ${layout.width}×${layout.height}` });
      box.append(el("p", {}, el("label", { for: pickerId, text: `Or pick an image for ${input.name} (resized to ${layout.width}×${layout.height})` }), " ", picker), canvas);
      picker.addEventListener("change", async () => {
        const file = picker.files && picker.files[0];
        if (!file) return;
        try {
          field.image = await imageToTensor(file, layout, canvas);
          area.value = "";
          area.placeholder = `image ${file.name}, ${field.image.shape.join("×")} values`;
          showError(errorBox, null);
        } catch (error) {
          field.image = null;
          showError(errorBox, error);
        }
      });
      area.addEventListener("input", () => { field.image = null; });
    }
    container.append(box);
    fields.push(field);
  });
  return fields;
}

/** The OIP inputs of the form (flat data), in signature order; throws Error in words. */
function readInputs(fields) {
  return fields.map((field) => {
    const { input, id, datatype } = field;
    if (!datatype) throw new Error(`input ${input.name}: its type cannot be sent from the browser`);
    if (field.image) return { name: input.name, datatype, shape: field.image.shape, data: Array.from(field.image.data) };
    const text = document.getElementById(id).value.trim();
    if (!text) throw new Error(`input ${input.name}: enter a value${field.image === null && imageLayout(input) ? " or pick an image" : ""}`);
    let parsed;
    try {
      parsed = JSON.parse(text);
    } catch {
      throw new Error(`input ${input.name}: not valid JSON`);
    }
    if (datatype === "JSON") return { name: input.name, datatype, shape: [], data: parsed };
    const { shape, flat } = fitShape(input.name, input.type.tensor.shape, parsed);
    return { name: input.name, datatype, shape, data: flat };
  });
}

// --- channels remembered in this browser ------------------------------------------------------

function channelKey(data, payer) {
  return `${data.chain_id}/${payer}/${data.node_account}/${data.name}@${data.version}`;
}

export function loadChannels() {
  try {
    return JSON.parse(localStorage.getItem(CHANNELS_ITEM) || "{}");
  } catch {
    return {};
  }
}

function saveChannel(key, channel) {
  const all = loadChannels();
  all[key] = channel;
  localStorage.setItem(CHANNELS_ITEM, JSON.stringify(all));
}

// --- the page -------------------------------------------------------------------------------

const dataBlock = document.getElementById("tryit-data");
const form = document.getElementById("tryit-form");
const statusBox = document.getElementById("tryit-status");
const errorBox = document.getElementById("tryit-error");

function say(text) {
  statusBox.textContent = text;
}

async function infer(data, request) {
  const url = `/v2/models/${encodeURIComponent(data.name)}/versions/${encodeURIComponent(data.version)}/infer`;
  return api(url, { method: "POST", body: request });
}

async function ensureUnlocked(passphraseInput) {
  if (!currentAccount()) throw new Error("create or import a wallet on the Wallet page first: paid calls are signed in this browser");
  if (isUnlocked()) return;
  const passphrase = passphraseInput ? passphraseInput.value : "";
  if (!passphrase) throw new Error("enter your wallet passphrase to unlock it");
  say("Unlocking the wallet…");
  await unlock(passphrase);
  passphraseInput.value = "";
  passphraseInput.closest("p").hidden = true;
}

async function openChannel(data, quote, payer, calls, blocks) {
  const deposit = quote.price * calls;
  const expiry = quote.height + blocks;
  say(`Opening a channel: deposit ${deposit}, until block ${expiry}…`);
  const tx = await signTx({
    contract: "channel", method: "open", chainId: quote.chain_id,
    args: { model: data.name, version: data.version, node: quote.node, deposit, expiry },
  });
  const { txid } = await submitTx(tx);
  const mined = await waitForConfirmations(txid, 1, (detail) => say(`Channel ${txid.slice(0, 12)}… is ${detail.status || "pending"}; waiting for its block…`));
  if (mined.receipt && mined.receipt.status === "failed") {
    throw new Error(`the channel open was mined but failed: ${mined.receipt.message} (${mined.receipt.code})`);
  }
  const channel = { id: txid, deposit, expiry, amount: 0 };
  saveChannel(channelKey(data, payer), channel);
  return channel;
}

async function payByChannel(data, quote, request, calls, blocks) {
  const payer = currentAccount();
  const key = channelKey(data, payer);
  const margin = (quote.how && quote.how.channel && quote.how.channel.margin_blocks) || 6;
  let channel = loadChannels()[key];
  if (!channel || channel.amount + quote.price > channel.deposit || quote.height + margin >= channel.expiry) {
    channel = await openChannel(data, quote, payer, calls, blocks);
  }
  let amount = channel.amount + quote.price;
  for (let attempt = 0; ; attempt++) {
    say(`Signing a voucher for ${amount} in total on channel ${channel.id.slice(0, 12)}…`);
    const sig = await signVoucher(quote.chain_id, channel.id, amount);
    try {
      const answer = await infer(data, { ...request, parameters: { payment: { channel: channel.id, amount, sig } } });
      saveChannel(key, { ...channel, amount });
      return { answer, payment: { kind: "channel", channel: channel.id, amount } };
    } catch (error) {
      // this browser lost track of a higher voucher it signed: catch up once, within the deposit
      const minimum = error instanceof ApiError && error.code === "voucher-too-low" ? error.body.error.minimum : null;
      if (attempt > 0 || !Number.isSafeInteger(minimum) || minimum > channel.deposit) throw error;
      amount = minimum;
    }
  }
}

async function payPerCall(data, quote, request, hash) {
  say(`Signing a usage_fee.pay of ${quote.price}…`);
  const tx = await signTx({
    contract: "usage_fee", method: "pay", chainId: quote.chain_id,
    args: { model: data.name, version: data.version, amount: quote.price, node: quote.node, request: hash },
  });
  const answer = await infer(data, { ...request, parameters: { payment: { tx } } });
  const receipt = answer.parameters && answer.parameters.receipt;
  return { answer, payment: { kind: "tx", txid: receipt ? receipt.payment.txid : null } };
}

function showOutputs(answer) {
  const box = document.getElementById("tryit-outputs");
  box.replaceChildren(...answer.outputs.map((o) => {
    let text = JSON.stringify(o.data);
    if (text.length > SHOW_MAX_CHARS) text = `${text.slice(0, SHOW_MAX_CHARS)}… (${text.length} characters)`;
    return el("div", { class: "output", "data-name": o.name },
      el("h4", { text: `${o.name} — ${o.datatype} [${o.shape.join(", ")}]` }),
      el("pre", { class: "output-data", text }));
  }));
}

async function showReceipt(answer, data, hash, payment) {
  const receipt = answer.parameters && answer.parameters.receipt;
  const verdict = document.getElementById("receipt-verdict");
  const pre = document.getElementById("tryit-receipt");
  if (!receipt) {
    verdict.textContent = "Free call: no receipt.";
    pre.textContent = "";
    return;
  }
  pre.textContent = JSON.stringify(receipt, null, 2);
  const checks = await verifyReceiptBoth(receipt, data.node_account);
  const problems = [];
  if (!checks.valid) problems.push(`signature: ${checks.reason}`);
  if (checks.node && checks.node.valid !== checks.valid) problems.push("the node's verifier disagrees");
  if (receipt.input_hash !== hash) problems.push("it names another request");
  let outputHash = null;
  try {
    outputHash = await computeOutputHash(answer.outputs);
  } catch {
    outputHash = null; // values this browser cannot hash exactly (NaN, integers past 2^53)
  }
  if (outputHash !== null && receipt.output_hash !== outputHash) problems.push("it names other outputs");
  if (receipt.model_sha256 !== data.sha256) problems.push("it names another model file");
  const paid = receipt.payment;
  if (payment.kind === "channel" && (paid.kind !== "channel" || paid.channel !== payment.channel || paid.amount !== payment.amount)) {
    problems.push("it names another payment");
  }
  verdict.dataset.valid = problems.length ? "false" : "true";
  verdict.textContent = problems.length
    ? `Receipt does NOT verify: ${problems.join("; ")}.`
    : `Receipt verifies: signed by node ${receipt.node.slice(0, 16)}…, for this request${outputHash ? " and these outputs" : ""}, paid ${receipt.price}.`;
}

async function run(data, fields, passphraseInput) {
  const request = { id: `ui-${hex(crypto.getRandomValues(new Uint8Array(8)))}`, inputs: readInputs(fields) };
  say("Computing the request hash…");
  const hash = await computeRequestHash(data.sha256, request.inputs);
  let answer;
  let payment = { kind: "free" };
  if (data.price === 0) {
    say("Asking the node…");
    answer = await infer(data, request);
  } else {
    // a quote answers 200, so paying logs no failed request in the console
    say("Asking the node for a quote…");
    const quote = (await api(`/api/v1/models/${encodeURIComponent(data.name)}/versions/${encodeURIComponent(data.version)}/quote`, { method: "POST", body: request })).quote;
    if (quote.request !== hash) {
      throw new Error(`refusing to pay: the node quotes request hash ${quote.request.slice(0, 16)}… but this browser computed ${hash.slice(0, 16)}…`);
    }
    if (quote.node !== data.node_account) throw new Error("refusing to pay: the quote names another node than this one");
    if (quote.price !== data.price) throw new Error(`the price is now ${quote.price}, not ${data.price}: reload the page to see the new terms`);
    await ensureUnlocked(passphraseInput);
    const how = form.elements.pay ? form.elements.pay.value : "tx";
    if (how === "channel") {
      const calls = Number(form.elements.calls.value);
      const blocks = Number(form.elements.blocks.value);
      if (!Number.isSafeInteger(calls) || calls < 1) throw new Error("calls to deposit for: a whole number of at least 1");
      if (!Number.isSafeInteger(blocks) || blocks < 8) throw new Error("channel lifetime: a whole number of blocks, at least 8");
      ({ answer, payment } = await payByChannel(data, quote, request, calls, blocks));
    } else {
      ({ answer, payment } = await payPerCall(data, quote, request, hash));
    }
  }
  showOutputs(answer);
  document.getElementById("tryit-result").hidden = false;
  await showReceipt(answer, data, hash, payment);
  say(payment.kind === "free" ? "Done (free call)." : payment.kind === "tx"
    ? `Done: paid ${data.price} by tx ${String(payment.txid).slice(0, 16)}….`
    : `Done: paid by voucher, ${payment.amount} in total on channel ${payment.channel.slice(0, 12)}….`);
  if (payment.kind !== "free") document.dispatchEvent(new CustomEvent("modelchain:paid"));
}

function passphraseField(data) {
  if (data.price === 0 || !currentAccount() || isUnlocked()) return null;
  const input = el("input", { type: "password", id: "tryit-passphrase", autocomplete: "current-password" });
  const row = el("p", {}, el("label", { for: "tryit-passphrase", text: "Wallet passphrase (the wallet is locked)" }), " ", input);
  form.querySelector("button[type=submit]").closest("p").before(row);
  return input;
}

if (dataBlock && form) {
  const data = JSON.parse(dataBlock.textContent);
  const fields = buildFields(document.getElementById("tryit-inputs"), data.inputs);
  const passphraseInput = passphraseField(data);
  const channelState = document.getElementById("channel-state");
  if (channelState && currentAccount()) {
    const channel = loadChannels()[channelKey(data, currentAccount())];
    if (channel) channelState.textContent = `Channel ${channel.id.slice(0, 12)}… open until block ${channel.expiry}: ${channel.amount} of ${channel.deposit} used.`;
  }
  const button = document.getElementById("tryit-run");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    button.disabled = true;
    showError(errorBox, null);
    try {
      await run(data, fields, passphraseInput);
    } catch (error) {
      say("");
      showError(errorBox, error);
    } finally {
      button.disabled = false;
    }
  });
  form.dataset.ready = "true";
}

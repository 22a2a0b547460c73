// Receipt verification in the browser: the node's Ed25519 signature over
// "modelchain/receipt/v1\0" || canonical(receipt without sig) (docs/payments.md), checked
// with WebCrypto, and cross-checked with the node's POST /api/v1/receipts/verify.

import { api } from "./api.js";
import { canonicalBytes, concatBytes, unhex, utf8 } from "./canonical.js";

const RECEIPT_TAG = utf8("modelchain/receipt/v1\0");
const FIELDS = [
  "chain_id", "height", "input_hash", "model", "model_sha256", "model_version", "node",
  "output_hash", "payment", "price", "request_id", "sig", "version",
];
const HEX64 = /^[0-9a-f]{64}$/;
const HEX128 = /^[0-9a-f]{128}$/;

/** The bytes the node signed for `receipt`. */
export function receiptMessage(receipt) {
  const { sig, ...unsigned } = receipt;
  return concatBytes(RECEIPT_TAG, canonicalBytes(unsigned));
}

/**
 * Whether `receipt` carries a valid signature of its `node` (and, when `nodeAccount` is
 * given, that node is the signer). Never throws: {valid, reason} with reason in words.
 */
export async function verifyReceipt(receipt, nodeAccount) {
  if (receipt === null || typeof receipt !== "object" || Array.isArray(receipt)) {
    return { valid: false, reason: "a receipt is a JSON object" };
  }
  const keys = Object.keys(receipt).sort();
  if (keys.join(",") !== FIELDS.join(",")) {
    const missing = FIELDS.filter((f) => !keys.includes(f));
    const extra = keys.filter((k) => !FIELDS.includes(k));
    return { valid: false, reason: `receipt fields wrong: missing [${missing.join(", ")}], unexpected [${extra.join(", ")}]` };
  }
  if (receipt.version !== 1) return { valid: false, reason: "receipt version is not 1" };
  if (typeof receipt.node !== "string" || !HEX64.test(receipt.node)) {
    return { valid: false, reason: "receipt node is not an account (64 hex)" };
  }
  if (typeof receipt.sig !== "string" || !HEX128.test(receipt.sig)) {
    return { valid: false, reason: "receipt sig is not 128 lowercase hex" };
  }
  if (nodeAccount && receipt.node !== nodeAccount) {
    return { valid: false, reason: `signed by ${receipt.node.slice(0, 16)}…, not the node ${nodeAccount.slice(0, 16)}…` };
  }
  let message;
  try {
    message = receiptMessage(receipt);
  } catch (err) {
    return { valid: false, reason: `receipt is not canonical JSON: ${err.message}` };
  }
  try {
    const key = await crypto.subtle.importKey("raw", unhex(receipt.node), { name: "Ed25519" }, false, ["verify"]);
    const ok = await crypto.subtle.verify({ name: "Ed25519" }, key, unhex(receipt.sig), message);
    return ok ? { valid: true, reason: null } : { valid: false, reason: "the node's signature does not verify" };
  } catch (err) {
    return { valid: false, reason: `cannot check the signature: ${err.message}` };
  }
}

/** The node's own verdict on `receipt` (POST /api/v1/receipts/verify). */
export async function verifyReceiptOnNode(receipt, nodeAccount) {
  const query = nodeAccount ? `?node=${encodeURIComponent(nodeAccount)}` : "";
  return api(`/api/v1/receipts/verify${query}`, { method: "POST", body: receipt });
}

/**
 * Both verdicts: {valid, reason, browser, node}. `valid` is the browser's; `node` is the
 * cross-check (null when the node cannot be asked). They should always agree.
 */
export async function verifyReceiptBoth(receipt, nodeAccount) {
  const browser = await verifyReceipt(receipt, nodeAccount);
  let node = null;
  try {
    node = await verifyReceiptOnNode(receipt, nodeAccount);
  } catch {
    node = null;
  }
  return { ...browser, browser, node };
}

// Recomputes docs/vectors/tx_vectors.json the way a browser would, with no
// dependencies: canonical JSON from JSON.stringify leaves, sha256 and Ed25519
// from node's crypto (the browser has the same in WebCrypto).
//
//   node tests/chain/vectors_check.mjs docs/vectors/tx_vectors.json
//   node tests/chain/vectors_check.mjs --canonicalize  < values.json  > texts.json
//
// Exits 0 printing "all vectors ok", or 1 naming every mismatch.

import { createHash, createPrivateKey, createPublicKey, sign, verify } from "node:crypto";
import { readFileSync } from "node:fs";

// --- canonical JSON (docs/encoding.md) -----------------------------------

function canonicalize(value) {
  if (Array.isArray(value)) return "[" + value.map(canonicalize).join(",") + "]";
  if (value !== null && typeof value === "object") {
    // keys are ASCII, so sort()'s UTF-16 order is code point order; sort()
    // also undoes Object.keys putting integer-like keys ("0", "10") first
    const keys = Object.keys(value).sort();
    return "{" + keys.map((k) => JSON.stringify(k) + ":" + canonicalize(value[k])).join(",") + "}";
  }
  return JSON.stringify(value); // strings, safe integers, true, false, null
}

const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;
const MAX_DEPTH = 32;

function isCanonicalValue(value, depth = 0) {
  if (depth > MAX_DEPTH) return false;
  if (value === null || typeof value === "boolean") return true;
  if (typeof value === "number") return Number.isSafeInteger(value) && !Object.is(value, -0);
  if (typeof value === "string") return !LONE_SURROGATE.test(value);
  if (Array.isArray(value)) return value.every((item) => isCanonicalValue(item, depth + 1));
  if (typeof value === "object") {
    return Object.keys(value).every(
      (key) => /^[\x00-\x7f]*$/.test(key) && isCanonicalValue(value[key], depth + 1),
    );
  }
  return false;
}

// The decoder a browser uses on bytes from the network: null unless canonical.
function decodeCanonical(bytes) {
  let text, value;
  try {
    // fatal: no invalid UTF-8; ignoreBOM: keep a BOM so that it is refused
    text = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(bytes);
    value = JSON.parse(text);
  } catch {
    return null;
  }
  if (!isCanonicalValue(value)) return null;
  return canonicalize(value) === text ? value : null; // catches spacing, order, dups, 1.0
}

// --- hashes and keys -------------------------------------------------------

const utf8 = (text) => Buffer.from(text, "utf8");
const hex = (text) => Buffer.from(text, "hex");
const sha256 = (data) => createHash("sha256").update(data).digest();
const taggedHash = (tag, data) => sha256(Buffer.concat([utf8(tag), Buffer.from([0]), data]));
const SPKI_ED25519 = hex("302a300506032b6570032100");
const PKCS8_ED25519 = hex("302e020100300506032b657004220420");
const publicKey = (account) =>
  createPublicKey({ key: Buffer.concat([SPKI_ED25519, hex(account)]), format: "der", type: "spki" });
const privateKey = (seed) =>
  createPrivateKey({ key: Buffer.concat([PKCS8_ED25519, hex(seed)]), format: "der", type: "pkcs8" });
const accountOf = (seed) =>
  createPublicKey(privateKey(seed)).export({ format: "der", type: "spki" }).subarray(12).toString("hex");

function signingMessage(signTag, body) {
  return Buffer.concat([utf8(signTag), utf8(body.chain_id), Buffer.from([0]), utf8(canonicalize(body))]);
}

// --- block header: 156 bytes, big-endian ----------------------------------

function headerBytes(fields) {
  const out = Buffer.alloc(156);
  out.writeUInt32BE(fields.version, 0);
  out.writeBigUInt64BE(BigInt(fields.height), 4);
  hex(fields.prev_hash).copy(out, 12);
  hex(fields.merkle_root).copy(out, 44);
  out.writeBigUInt64BE(BigInt(fields.timestamp), 76);
  hex(fields.target).copy(out, 84); // 64 hex characters = 32 bytes, big-endian
  hex(fields.miner).copy(out, 116);
  out.writeBigUInt64BE(BigInt(fields.nonce), 148); // a decimal string: it may exceed 2**53
  return out;
}

function merkleRoot(txids) {
  if (txids.length === 0) return Buffer.alloc(32);
  let level = txids.map((txid) => sha256(Buffer.concat([Buffer.from([0]), hex(txid)])));
  while (level.length > 1) {
    const next = [];
    for (let i = 0; i + 1 < level.length; i += 2) {
      next.push(sha256(Buffer.concat([Buffer.from([1]), level[i], level[i + 1]])));
    }
    if (level.length % 2) next.push(level[level.length - 1]); // odd node carried up
    level = next;
  }
  return level[0];
}

// --- the checks ------------------------------------------------------------

const failures = [];
let checks = 0;
function expect(what, actual, expected) {
  checks += 1;
  if (actual !== expected) failures.push(`${what}:\n  got      ${actual}\n  expected ${expected}`);
}

function checkVectors(v) {
  for (const c of v.encoding.canonical) {
    expect(`encoding ${c.name} text`, canonicalize(c.value), c.canonical);
    expect(`encoding ${c.name} hex`, utf8(canonicalize(c.value)).toString("hex"), c.canonical_hex);
    expect(`encoding ${c.name} decodes`, decodeCanonical(hex(c.canonical_hex)) !== null, true);
  }
  for (const c of v.encoding.non_canonical) {
    expect(`non-canonical ${c.name} refused`, decodeCanonical(hex(c.hex)), null);
  }
  for (const k of v.keys) expect(`key ${k.label} account`, accountOf(k.seed), k.account);

  for (const t of v.txs) {
    const body = t.body;
    const bodyText = canonicalize(body);
    expect(`tx ${t.name} canonical body`, bodyText, t.canonical_body);
    expect(`tx ${t.name} canonical body hex`, utf8(bodyText).toString("hex"), t.canonical_body_hex);
    const signedText = canonicalize({ ...body, sig: t.sig });
    expect(`tx ${t.name} canonical signed`, signedText, t.canonical_signed);
    expect(`tx ${t.name} signed hex`, utf8(signedText).toString("hex"), t.canonical_signed_hex);
    expect(`tx ${t.name} signed object`, canonicalize(t.signed), signedText);
    expect(`tx ${t.name} decodes`, decodeCanonical(utf8(signedText)) !== null, true);
    expect(`tx ${t.name} txid`, taggedHash(v.txid_tag, utf8(signedText)).toString("hex"), t.txid);
    if (t.seed === null) continue; // a block reward: no sender, no signature
    const message = signingMessage(v.sign_tag, body);
    expect(`tx ${t.name} signing message`, message.toString("hex"), t.signing_message_hex);
    expect(`tx ${t.name} account`, accountOf(t.seed), body.sender);
    expect(`tx ${t.name} verifies`, verify(null, message, publicKey(body.sender), hex(t.sig)), true);
    expect(`tx ${t.name} signs`, sign(null, message, privateKey(t.seed)).toString("hex"), t.sig);
  }

  for (const h of v.headers) {
    const bytes = headerBytes(h.fields);
    expect(`header ${h.name} bytes`, bytes.toString("hex"), h.bytes_hex);
    const hash = sha256(sha256(bytes));
    expect(`header ${h.name} hash`, hash.toString("hex"), h.hash);
    const meets = BigInt("0x" + hash.toString("hex")) <= BigInt("0x" + h.fields.target);
    expect(`header ${h.name} meets target`, meets, h.meets_target);
    if (h.genesis_commitment) {
      const g = h.genesis_commitment;
      const commitment = taggedHash(g.tag, utf8(canonicalize(g.committed))).toString("hex");
      expect(`header ${h.name} genesis commitment`, commitment, g.commitment);
      expect(`header ${h.name} merkle root is the commitment`, h.fields.merkle_root, g.commitment);
    }
    if (h.txids) expect(`header ${h.name} merkle root`, merkleRoot(h.txids).toString("hex"), h.fields.merkle_root);
  }
  for (const m of v.merkle) {
    expect(`merkle of ${m.txids.length}`, merkleRoot(m.txids).toString("hex"), m.root);
  }
}

if (process.argv[2] === "--canonicalize") {
  const values = JSON.parse(readFileSync(0, "utf8"));
  process.stdout.write(JSON.stringify(values.map(canonicalize)));
} else {
  checkVectors(JSON.parse(readFileSync(process.argv[2], "utf8")));
  if (failures.length) {
    console.log(failures.join("\n"));
    console.log(`${failures.length} of ${checks} checks failed`);
    process.exit(1);
  }
  console.log(`all vectors ok (${checks} checks)`);
}

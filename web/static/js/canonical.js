// Canonical JSON and bytes helpers, byte for byte what chain/encoding.py produces
// (docs/encoding.md): sorted ASCII keys, no spaces, UTF-8 without escaping non-ASCII,
// safe integers only. Signing and hashing in the browser start here.

const MAX_DEPTH = 32;
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;
const ASCII_KEY = /^[\x00-\x7f]*$/;

// `depth` counts the arrays/objects enclosing `value`: at most MAX_DEPTH.
function check(value, depth) {
  if (depth > MAX_DEPTH) throw new TypeError(`nesting deeper than ${MAX_DEPTH}`);
  if (value === null || typeof value === "boolean") return;
  if (typeof value === "number") {
    if (!Number.isSafeInteger(value) || Object.is(value, -0)) {
      throw new TypeError(`not a canonical integer: ${value}`);
    }
    return;
  }
  if (typeof value === "string") {
    if (LONE_SURROGATE.test(value)) throw new TypeError("string holds a lone surrogate");
    return;
  }
  if (typeof value === "bigint") throw new TypeError("bigint is not canonical: send it as a string");
  if (Array.isArray(value)) {
    for (const item of value) check(item, depth + 1);
    return;
  }
  if (typeof value === "object") {
    for (const key of Object.keys(value)) {
      if (!ASCII_KEY.test(key)) throw new TypeError(`object key is not ASCII: ${key}`);
      check(value[key], depth + 1);
    }
    return;
  }
  throw new TypeError(`not a JSON value: ${typeof value}`);
}

function encode(value) {
  if (Array.isArray(value)) return "[" + value.map(encode).join(",") + "]";
  if (value !== null && typeof value === "object") {
    const keys = Object.keys(value).sort(); // never rely on insertion order
    return "{" + keys.map((k) => JSON.stringify(k) + ":" + encode(value[k])).join(",") + "}";
  }
  return JSON.stringify(value);
}

/** The canonical JSON text of `value`; throws TypeError for anything outside the rules. */
export function canonicalJSON(value) {
  check(value, 0);
  return encode(value);
}

/** The canonical bytes (UTF-8) of `value`. */
export function canonicalBytes(value) {
  return new TextEncoder().encode(canonicalJSON(value));
}

/** Lowercase hex of bytes. */
export function hex(bytes) {
  const view = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes);
  let out = "";
  for (const b of view) out += b.toString(16).padStart(2, "0");
  return out;
}

/** Bytes of a hex string (either case); throws on odd length or a non-hex character. */
export function unhex(str) {
  if (typeof str !== "string" || str.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(str)) {
    throw new TypeError("not a hex string");
  }
  const out = new Uint8Array(str.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(str.slice(2 * i, 2 * i + 2), 16);
  return out;
}

/** SHA-256 of bytes with WebCrypto. */
export async function sha256(bytes) {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
}

/** One Uint8Array holding every argument's bytes in order. */
export function concatBytes(...arrays) {
  const parts = arrays.map((a) => (a instanceof Uint8Array ? a : new Uint8Array(a)));
  const out = new Uint8Array(parts.reduce((n, a) => n + a.length, 0));
  let at = 0;
  for (const a of parts) {
    out.set(a, at);
    at += a.length;
  }
  return out;
}

/** UTF-8 bytes of a string. */
export function utf8(text) {
  return new TextEncoder().encode(text);
}

// The browser wallet: one Ed25519 key, kept only in this browser.
//
// The key is stored as a keystore document (docs/keystore.md: Argon2id + XSalsa20-Poly1305,
// the CLI's format) in localStorage, so only the passphrase opens it. Unlocking imports the
// seed into WebCrypto as a NON-extractable CryptoKey; that handle is kept in memory and, for
// the other pages of this tab, in IndexedDB under a token that lives in sessionStorage (the
// tab's session). Nothing here ever sends the seed, the key or the passphrase anywhere:
// only signed txs and vouchers leave the browser. See docs/web-wallet.md.

import sodium from "/static/vendor/libsodium/libsodium-wrappers.mjs";
import { api } from "./api.js";
import { canonicalBytes, concatBytes, hex, unhex, utf8 } from "./canonical.js";

const KEYSTORE_ITEM = "modelchain.wallet.keystore";
const SESSION_ITEM = "modelchain.wallet.session";
const DB_NAME = "modelchain-wallet";
const DB_STORE = "session";
const PKCS8_ED25519_PREFIX = unhex("302e020100300506032b657004220420");
const TX_TAG = utf8("modelchain/tx/v1\0");
const VOUCHER_TAG = utf8("modelchain/voucher/v1\0");
const MIN_FEE_PER_BYTE = 1;
const SIG_HEX_CHARS = 128;

// Argon2id cost of keystores made here: libsodium's "interactive" level (2 passes, 64 MiB),
// as docs/keystore.md allows a browser; every reader uses the cost the file records.
export const BROWSER_OPSLIMIT = 2;
export const BROWSER_MEMLIMIT = 64 * 1024 * 1024;
const LIMITS = { opslimit: [1, 32], memlimit: [8192, 1024 * 1024 * 1024] };

/** A wallet error with a stable code, like the node's. */
export class WalletError extends Error {
  constructor(code, message) {
    super(message);
    this.name = "WalletError";
    this.code = code;
  }
}

let unlocked = null; // {account, key: CryptoKey (private, non-extractable)}

// --- storage -----------------------------------------------------------------------------

function storedKeystore() {
  const text = localStorage.getItem(KEYSTORE_ITEM);
  if (!text) return null;
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}

function openDb() {
  return new Promise((resolve, reject) => {
    const request = indexedDB.open(DB_NAME, 1);
    request.onupgradeneeded = () => request.result.createObjectStore(DB_STORE);
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
}

async function dbDo(mode, action) {
  const db = await openDb();
  try {
    return await new Promise((resolve, reject) => {
      const tx = db.transaction(DB_STORE, mode);
      const request = action(tx.objectStore(DB_STORE));
      tx.oncomplete = () => resolve(request.result);
      tx.onerror = () => reject(tx.error);
    });
  } finally {
    db.close();
  }
}

async function saveSession(account, key) {
  const token = hex(crypto.getRandomValues(new Uint8Array(16)));
  await dbDo("readwrite", (store) => store.put({ token, account, key }, "current"));
  sessionStorage.setItem(SESSION_ITEM, token);
}

async function clearSession() {
  sessionStorage.removeItem(SESSION_ITEM);
  try {
    await dbDo("readwrite", (store) => store.delete("current"));
  } catch {
    // no IndexedDB: nothing was kept there
  }
}

async function restoreSession() {
  const token = sessionStorage.getItem(SESSION_ITEM);
  const account = currentAccount();
  if (!token || !account) return;
  try {
    const saved = await dbDo("readonly", (store) => store.get("current"));
    if (saved && saved.token === token && saved.account === account && saved.key) {
      unlocked = { account, key: saved.key };
    }
  } catch {
    unlocked = null;
  }
}

// --- keystore documents (docs/keystore.md) ------------------------------------------------

function isHex(value, bytes) {
  return typeof value === "string" && value.length === 2 * bytes && /^[0-9a-f]*$/.test(value);
}

function sameKeys(value, keys) {
  return (
    value !== null && typeof value === "object" && !Array.isArray(value) &&
    Object.keys(value).sort().join(",") === [...keys].sort().join(",")
  );
}

/** Throws WalletError("keystore-malformed") unless `doc` has exactly the keystore format. */
export function checkKeystore(doc) {
  const bad = (why) => new WalletError("keystore-malformed", `not a modelchain keystore: ${why}`);
  if (!sameKeys(doc, ["version", "account", "kdf", "cipher"])) throw bad("wrong fields");
  if (doc.version !== 1) throw bad("version is not 1");
  if (!isHex(doc.account, 32)) throw bad("account must be 64 lowercase hex characters");
  const { kdf, cipher } = doc;
  if (!sameKeys(kdf, ["name", "opslimit", "memlimit", "salt"])) throw bad("wrong kdf fields");
  if (kdf.name !== "argon2id") throw bad("kdf is not argon2id");
  for (const [name, [low, high]] of Object.entries(LIMITS)) {
    if (!Number.isSafeInteger(kdf[name]) || kdf[name] < low || kdf[name] > high) {
      throw bad(`kdf.${name} must be an integer in ${low}..${high}`);
    }
  }
  if (!isHex(kdf.salt, 16)) throw bad("kdf.salt must be 32 lowercase hex characters");
  if (!sameKeys(cipher, ["name", "nonce", "ciphertext"])) throw bad("wrong cipher fields");
  if (cipher.name !== "xsalsa20poly1305") throw bad("cipher is not xsalsa20poly1305");
  if (!isHex(cipher.nonce, 24)) throw bad("cipher.nonce must be 48 lowercase hex characters");
  if (!isHex(cipher.ciphertext, 48)) throw bad("cipher.ciphertext must be 96 lowercase hex characters");
}

function passphraseBytes(passphrase) {
  if (typeof passphrase !== "string") throw new WalletError("wallet-bad-passphrase", "type a passphrase");
  return utf8(passphrase.normalize("NFC"));
}

async function deriveKey(passphrase, salt, opslimit, memlimit) {
  await sodium.ready;
  return sodium.crypto_pwhash(
    sodium.crypto_secretbox_KEYBYTES, passphraseBytes(passphrase), salt, opslimit, memlimit,
    sodium.crypto_pwhash_ALG_ARGON2ID13,
  );
}

async function sealSeed(seed, account, passphrase) {
  await sodium.ready;
  const salt = crypto.getRandomValues(new Uint8Array(16));
  const nonce = crypto.getRandomValues(new Uint8Array(24));
  const secret = await deriveKey(passphrase, salt, BROWSER_OPSLIMIT, BROWSER_MEMLIMIT);
  const sealed = sodium.crypto_secretbox_easy(seed, nonce, secret);
  secret.fill(0);
  return {
    version: 1,
    account,
    kdf: { name: "argon2id", opslimit: BROWSER_OPSLIMIT, memlimit: BROWSER_MEMLIMIT, salt: hex(salt) },
    cipher: { name: "xsalsa20poly1305", nonce: hex(nonce), ciphertext: hex(sealed) },
  };
}

/** The seed in `doc`; throws WalletError keystore-malformed or keystore-bad-passphrase. */
async function openSeed(doc, passphrase) {
  checkKeystore(doc);
  const secret = await deriveKey(passphrase, unhex(doc.kdf.salt), doc.kdf.opslimit, doc.kdf.memlimit);
  let seed;
  try {
    seed = sodium.crypto_secretbox_open_easy(unhex(doc.cipher.ciphertext), unhex(doc.cipher.nonce), secret);
  } catch {
    throw new WalletError("keystore-bad-passphrase", "wrong passphrase for this keystore, or the file is damaged");
  } finally {
    secret.fill(0);
  }
  const account = hex(sodium.crypto_sign_seed_keypair(seed).publicKey);
  if (account !== doc.account) {
    seed.fill(0);
    throw new WalletError("keystore-malformed", "the keystore names another account than the key it holds");
  }
  return seed;
}

async function importSigningKey(seed) {
  return crypto.subtle.importKey("pkcs8", concatBytes(PKCS8_ED25519_PREFIX, seed), { name: "Ed25519" }, false, ["sign"]);
}

async function unlockWithSeed(seed, account) {
  const key = await importSigningKey(seed);
  seed.fill(0);
  unlocked = { account, key };
  await saveSession(account, key);
}

// --- the wallet ---------------------------------------------------------------------------

/** A new key made by WebCrypto, sealed under `passphrase` and kept in this browser. */
export async function createWallet(passphrase) {
  if (!passphrase) throw new WalletError("wallet-bad-passphrase", "choose a passphrase");
  const pair = await crypto.subtle.generateKey({ name: "Ed25519" }, true, ["sign", "verify"]);
  const pkcs8 = new Uint8Array(await crypto.subtle.exportKey("pkcs8", pair.privateKey));
  const seed = pkcs8.slice(pkcs8.length - 32);
  pkcs8.fill(0);
  const account = hex(await crypto.subtle.exportKey("raw", pair.publicKey));
  const doc = await sealSeed(seed, account, passphrase);
  localStorage.setItem(KEYSTORE_ITEM, JSON.stringify(doc));
  await unlockWithSeed(seed, account);
  return { account };
}

/** Keep a keystore document (the CLI's format) in this browser and unlock it. */
export async function importKeystore(doc, passphrase) {
  if (typeof doc === "string") {
    try {
      doc = JSON.parse(doc);
    } catch {
      throw new WalletError("keystore-malformed", "the file is not JSON");
    }
  }
  const seed = await openSeed(doc, passphrase);
  const clean = {
    version: 1,
    account: doc.account,
    kdf: { ...doc.kdf },
    cipher: { ...doc.cipher },
  };
  localStorage.setItem(KEYSTORE_ITEM, JSON.stringify(clean));
  await unlockWithSeed(seed, doc.account);
  return { account: doc.account };
}

/** This browser's keystore document, once `passphrase` is shown to open it. */
export async function exportKeystore(passphrase) {
  const doc = storedKeystore();
  if (!doc) throw new WalletError("wallet-none", "this browser holds no wallet");
  const seed = await openSeed(doc, passphrase);
  seed.fill(0);
  return JSON.parse(JSON.stringify(doc));
}

/** The stored keystore document (still sealed), or null. */
export function storedDocument() {
  return storedKeystore();
}

/** The account of this browser's wallet, or null when it holds none. */
export function currentAccount() {
  const doc = storedKeystore();
  return doc && typeof doc.account === "string" ? doc.account : null;
}

/** Open the stored keystore with `passphrase` for this tab's session. */
export async function unlock(passphrase) {
  const doc = storedKeystore();
  if (!doc) throw new WalletError("wallet-none", "this browser holds no wallet: create or import one");
  const seed = await openSeed(doc, passphrase);
  await unlockWithSeed(seed, doc.account);
  return { account: doc.account };
}

export function isUnlocked() {
  return unlocked !== null && unlocked.account === currentAccount();
}

/** Forget the unlocked key (the sealed keystore stays). */
export function lock() {
  unlocked = null;
  clearSession();
}

/** Remove the wallet from this browser entirely. */
export async function forgetWallet() {
  unlocked = null;
  localStorage.removeItem(KEYSTORE_ITEM);
  await clearSession();
}

function requireUnlocked() {
  if (!isUnlocked()) {
    throw new WalletError("wallet-locked", currentAccount() ? "unlock the wallet first (Wallet page)" : "create or import a wallet first (Wallet page)");
  }
  return unlocked;
}

/** Ed25519 signature of `message` bytes by the unlocked key. */
export async function sign(message) {
  const { key } = requireUnlocked();
  return new Uint8Array(await crypto.subtle.sign({ name: "Ed25519" }, key, message));
}

/** The bytes a tx signature covers: tag || chain_id || 0x00 || canonical(body) (docs/encoding.md). */
export function txSigningMessage(body) {
  return concatBytes(TX_TAG, utf8(body.chain_id), new Uint8Array([0]), canonicalBytes(body));
}

/** The least fee meeting 1 base unit per byte of the signed tx, as market/client.py sign_call finds it. */
export function leastFee(body) {
  let fee = 1;
  for (;;) {
    const size = canonicalBytes({ ...body, fee, sig: "0".repeat(SIG_HEX_CHARS) }).length;
    const needed = size * MIN_FEE_PER_BYTE;
    if (fee >= needed) return fee;
    fee = needed + 8 * MIN_FEE_PER_BYTE; // room for the fee's own digits
  }
}

/** A signed tx (JSON) calling `contract.method(args)` from this wallet. */
export async function signTx({ contract, method, args, fee, nonce, chainId }) {
  const { account } = requireUnlocked();
  if (chainId === undefined) chainId = (await api("/api/v1/chain")).chain_id;
  if (nonce === undefined) nonce = (await api(`/api/v1/accounts/${account}`)).pending_nonce;
  const body = { chain_id: chainId, sender: account, nonce, fee: 0, contract, method, args: args || {} };
  body.fee = fee === undefined ? leastFee(body) : fee;
  const sig = hex(await sign(txSigningMessage(body)));
  return { ...body, sig };
}

/** The payer's voucher signature letting `channel` pay out up to `amount` (docs/contracts.md). */
export async function signVoucher(chainId, channel, amount) {
  const message = concatBytes(VOUCHER_TAG, canonicalBytes({ amount, chain_id: chainId, channel }));
  return hex(await sign(message));
}

/** POST a signed tx to the node; returns its answer ({txid, status, ...}). */
export async function submitTx(tx) {
  return api("/api/v1/txs", { method: "POST", body: tx });
}

/**
 * Poll the tx until it has `n` confirmations; `onProgress(detail)` sees each answer.
 * Throws WalletError("wait-timeout") after `timeoutMs`.
 */
export async function waitForConfirmations(txid, n = 1, onProgress = null, { timeoutMs = 180000, everyMs = 500 } = {}) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    let detail = null;
    try {
      detail = await api(`/api/v1/txs/${txid}`);
    } catch (err) {
      if (err.status !== 404) throw err;
    }
    if (detail && onProgress) onProgress(detail);
    if (detail && (detail.confirmations || 0) >= n) return detail;
    if (Date.now() > deadline) {
      throw new WalletError("wait-timeout", `tx ${txid.slice(0, 16)} has not reached ${n} confirmations`);
    }
    await new Promise((resolve) => setTimeout(resolve, everyMs));
  }
}

await restoreSession();

/** Show the wallet's account (short) in the page header's badge, if the page has one. */
export function renderBadge() {
  const badge = document.getElementById("wallet-badge");
  if (!badge) return;
  const account = currentAccount();
  if (!account) {
    badge.textContent = "no wallet";
  } else {
    badge.textContent = `${account.slice(0, 8)}… ${isUnlocked() ? "unlocked" : "locked"}`;
  }
}

renderBadge();

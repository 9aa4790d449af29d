// Mint v1 signed image URLs from Node.js (>= 18) with the standard library only.
// Contract: shared/spec/signed-urls.md. Usage as a module:
//   import { parseKeyring, signUrl } from './edge-signer.mjs';
//   const keys = parseKeyring(process.env.EDGE_SIGNING_KEYS);
//   signUrl('/i/bob/café.png', { key: keys[0], exp: Math.floor(Date.now() / 1000) + 3600 });
// Usage as a command: EDGE_SIGNING_KEYS=... node edge-signer.mjs /i/bob/café.png 3600 [kid]
import { createHmac, createPrivateKey, sign } from 'node:crypto';
import { pathToFileURL } from 'node:url';

// PKCS#8 DER header for a raw 32-byte Ed25519 seed (RFC 8410).
const ED25519_PKCS8 = Buffer.from('302e020100300506032b657004220420', 'hex');
const UNRESERVED = /[A-Za-z0-9\-._~\/]/;

/** Parse EDGE_SIGNING_KEYS ("kid:alg:key,...") into the keys that can sign, in order. */
export function parseKeyring(text) {
  return text.split(',').map((entry) => entry.trim()).filter(Boolean).map((entry, i) => {
    const [kid, alg, key, ...rest] = entry.split(':');
    if (rest.length || !key) throw new Error(`EDGE_SIGNING_KEYS: entry ${i + 1}: expected kid:alg:key`);
    const material = Buffer.from(key.replace(/=+$/, ''), 'base64url');
    if (alg === 'hs256' && material.length >= 32) return { kid, alg, material };
    if (alg === 'ed25519' && material.length === 32) {
      const privateKey = createPrivateKey({ key: Buffer.concat([ED25519_PKCS8, material]), format: 'der', type: 'pkcs8' });
      return { kid, alg, privateKey };
    }
    if (alg === 'ed25519-pub') return { kid, alg }; // verify-only: useless to a signer
    throw new Error(`EDGE_SIGNING_KEYS: entry ${i + 1} (kid '${kid}'): bad alg or key length`);
  }).filter((key) => key.alg !== 'ed25519-pub');
}

/** Percent-encode the UTF-8 path, leaving only A-Z a-z 0-9 - . _ ~ and / literal. */
export function quotePath(path) {
  let out = '';
  for (const byte of Buffer.from(path, 'utf8')) {
    const char = String.fromCharCode(byte);
    out += byte < 128 && UNRESERVED.test(char) ? char : '%' + byte.toString(16).toUpperCase().padStart(2, '0');
  }
  return out;
}

/** Path and query of a signed URL: path is decoded ("/i/bob/café.png"), exp in Unix seconds. */
export function signUrl(path, { key, exp, includeKid = false }) {
  if (!Number.isSafeInteger(exp) || exp < 0 || exp >= 1e12) throw new Error('exp must be 0 to 999999999999');
  const message = Buffer.from(`v1\n${path}\n${exp}`, 'utf8');
  const raw = key.alg === 'hs256'
    ? createHmac('sha256', key.material).update(message).digest()
    : sign(null, message, key.privateKey);
  const url = `${quotePath(path)}?sig=${raw.toString('base64url')}&exp=${exp}`;
  return includeKid ? `${url}&kid=${key.kid}` : url;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const [path, seconds, kid] = process.argv.slice(2);
  if (!path || !/^\d+$/.test(seconds ?? '')) {
    console.error('usage: EDGE_SIGNING_KEYS=... node edge-signer.mjs PATH EXPIRES_IN_SECONDS [KID]');
    process.exit(2);
  }
  const keys = parseKeyring(process.env.EDGE_SIGNING_KEYS ?? '');
  const key = kid ? keys.find((k) => k.kid === kid) : keys[0];
  if (!key) { console.error('edge-signer: no such signing key in EDGE_SIGNING_KEYS'); process.exit(2); }
  const exp = Math.floor(Date.now() / 1000) + Number(seconds);
  console.log(signUrl(path, { key, exp, includeKid: Boolean(kid) }));
}

// Mint v1 signed image URLs from Node.js (>= 18) with the standard library only.
// Contract: docs/signed-urls.md. Usage as a module:
//   import { parseKeyring, signUrl } from './edge-signer.mjs';
//   const keys = parseKeyring(process.env.EDGE_SIGNING_KEYS);
//   signUrl('/i/bob/café.png', { key: keys[0], exp: Math.floor(Date.now() / 1000) + 3600 });
//   signUrl('/i/bob/café.png', { key: keys[0], exp, transform: { w: 800, fit: 'cover' } });
// Usage as a command:
//   EDGE_SIGNING_KEYS=... node edge-signer.mjs /i/bob/café.png 3600 [kid] [--transform='w=800&fit=cover']
import { createHmac, createPrivateKey, sign } from 'node:crypto';
import { pathToFileURL } from 'node:url';

// PKCS#8 DER header for a raw 32-byte Ed25519 seed (RFC 8410).
const ED25519_PKCS8 = Buffer.from('302e020100300506032b657004220420', 'hex');
const UNRESERVED = /[A-Za-z0-9\-._~\/]/;

// Transform parameters and their only accepted (canonical) values; a preset is p:NAME, no value.
const integer = (low, high) => (value) => /^(0|[1-9][0-9]{0,4})$/.test(value) && Number(value) >= low && Number(value) <= high;
const oneOf = (...values) => (value) => values.includes(value);
const TRANSFORM = {
  w: integer(1, 10000),
  h: integer(1, 10000),
  fit: oneOf('cover', 'contain', 'fill', 'scale-down'),
  aspect: oneOf('original', '1:1', '4:3', '16:9', '3:2', '21:9'),
  q: integer(1, 100),
  dpr: oneOf('1', '1.5', '2', '3'),
  crop: oneOf('center', 'top', 'bottom', 'left', 'right', 'top-left', 'top-right', 'bottom-left', 'bottom-right', 'attention', 'entropy'),
  grayscale: oneOf('true', 'false'),
  blur: integer(0, 100),
  sharpen: integer(0, 100),
  rotate: oneOf('0', '90', '180', '270', 'auto'),
  flip: oneOf('h', 'v', 'both'),
};
const PRESET = /^p:[A-Za-z0-9_-]{1,64}$/;

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

/** The transform as URL parameters ("w=800", "p:thumb"), in the caller's order; throws on a bad one. */
function transformParams(transform) {
  const params = Object.entries(transform).map(([name, value]) => [name, String(value)]);
  for (const [name, value] of params) {
    const canonical = Object.hasOwn(TRANSFORM, name) ? TRANSFORM[name] : null;
    if (canonical ? !canonical(value) : !PRESET.test(name) || value !== '') {
      const why = canonical ? 'not a canonical value' : 'not a transform parameter or preset';
      throw new Error(`transform: ${name}=${value}: ${why}`);
    }
  }
  if (params.filter(([name]) => name.startsWith('p:')).length > 1) throw new Error('transform: more than one preset');
  return params.map(([name, value]) => (name.startsWith('p:') ? name : `${name}=${value}`));
}

/**
 * Path and query of a signed URL: path is decoded ("/i/bob/café.png"), exp in Unix seconds,
 * transform the transform parameters with canonical values ({ w: 800, fit: 'cover' }, { 'p:thumb': '' }).
 */
export function signUrl(path, { key, exp, includeKid = false, transform = {} }) {
  if (!Number.isSafeInteger(exp) || exp < 0 || exp >= 1e12) throw new Error('exp must be 0 to 999999999999');
  const params = transformParams(transform);
  // Signed: the parameters sorted by name (names are ASCII, so by byte), joined by "&".
  const byName = (param) => param.split('=')[0];
  const signed = [...params].sort((a, b) => (byName(a) < byName(b) ? -1 : 1)).join('&');
  const message = Buffer.from(`v1\n${path}\n${exp}` + (params.length ? `\n${signed}` : ''), 'utf8');
  const raw = key.alg === 'hs256'
    ? createHmac('sha256', key.material).update(message).digest()
    : sign(null, message, key.privateKey);
  const query = params.map((param) => `${param}&`).join('');
  const url = `${quotePath(path)}?${query}sig=${raw.toString('base64url')}&exp=${exp}`;
  return includeKid ? `${url}&kid=${key.kid}` : url;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const args = process.argv.slice(2);
  const option = args.find((arg) => arg.startsWith('--transform='));
  const [path, seconds, kid] = args.filter((arg) => arg !== option);
  if (!path || !/^\d+$/.test(seconds ?? '')) {
    console.error("usage: EDGE_SIGNING_KEYS=... node edge-signer.mjs PATH EXPIRES_IN_SECONDS [KID] [--transform='w=800&fit=cover']");
    process.exit(2);
  }
  const pairs = option ? option.slice('--transform='.length).split('&').map((part) => part.split(/=(.*)/s).slice(0, 2)) : [];
  const transform = Object.fromEntries(pairs.map(([name, value]) => [name, value ?? '']));
  try {
    if (Object.keys(transform).length !== pairs.length) throw new Error('transform: a parameter is given twice');
    const keys = parseKeyring(process.env.EDGE_SIGNING_KEYS ?? '');
    const key = kid ? keys.find((k) => k.kid === kid) : keys[0];
    if (!key) throw new Error('no such signing key in EDGE_SIGNING_KEYS');
    const exp = Math.floor(Date.now() / 1000) + Number(seconds);
    console.log(signUrl(path, { key, exp, includeKid: Boolean(kid), transform }));
  } catch (error) {
    console.error(`edge-signer: ${error.message}`);
    process.exit(2);
  }
}

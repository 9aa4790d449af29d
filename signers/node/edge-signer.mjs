// Mint v1 signed image URLs from Node.js (>= 18) with the standard library only.
// Contract: docs/signed-urls.md. Usage as a module:
//   import { parseKeyring, signUrl } from './edge-signer.mjs';
//   const keys = parseKeyring(process.env.EDGE_SIGNING_KEYS);
//   signUrl('/i/bob/café.png', { key: keys[0], exp: Math.floor(Date.now() / 1000) + 3600 });
//   signUrl('/i/bob/café.png', { key: keys[0], exp, transform: { w: 800, fit: 'cover' } });
//   signUrl('/i/bob/café.png', { key: keys[0], exp, align: 3600 }); // the same URL all hour
// Usage as a command:
//   EDGE_SIGNING_KEYS=... node edge-signer.mjs /i/bob/café.png 3600 [kid] [--transform='w=800&fit=cover'] [--align=3600]
// What the edge would refuse (a bad path, exp, kid or key) throws an Error saying why.
import { createHmac, createPrivateKey, sign } from 'node:crypto';
import { pathToFileURL } from 'node:url';

// PKCS#8 DER header for a raw 32-byte Ed25519 seed (RFC 8410).
const ED25519_PKCS8 = Buffer.from('302e020100300506032b657004220420', 'hex');
const UNRESERVED = /[A-Za-z0-9\-._~\/]/;
const MAX_EXP = 999999999999; // 12 digits
const KID = /^[A-Za-z0-9_-]{1,32}$/;
const KEY_TEXT = /^[A-Za-z0-9_-]*={0,2}$/; // base64url, padding optional; unused bits ignored
const USER = /^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,63}$/;
const FORBIDDEN = /[\x00-\x1f\x7f\\]/; // control bytes, DEL, backslash
const LONE_SURROGATE = /\p{Surrogate}/u; // a pair is one code point, outside the class

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

/** Text without surrounding whitespace and one pair of matching quotes (' or "), as the edge reads a .env value. */
function unquote(text) {
  const trimmed = text.trim();
  const quoted = trimmed.length >= 2 && trimmed[0] === trimmed.at(-1) && (trimmed[0] === '"' || trimmed[0] === "'");
  return quoted ? trimmed.slice(1, -1).trim() : trimmed;
}

/** Parse EDGE_SIGNING_KEYS ("kid:alg:key,...") into the keys that can sign, in order; throws on what the edge refuses. */
export function parseKeyring(text) {
  const seen = new Set();
  return unquote(text).split(',').map(unquote).map((entry, i) => {
    if (!entry) return null; // a trailing comma
    const where = `EDGE_SIGNING_KEYS: entry ${i + 1}`;
    const parts = entry.split(':').map((part) => part.trim());
    if (parts.length !== 3) throw new Error(`${where}: expected kid:alg:key`);
    const [kid, alg, key] = parts;
    if (!KID.test(kid)) throw new Error(`${where}: kid must be 1 to 32 characters of A-Z a-z 0-9 _ -`);
    if (seen.has(kid)) throw new Error(`${where} (kid '${kid}'): duplicate kid`);
    seen.add(kid);
    const data = key.replace(/=+$/, '');
    if (!KEY_TEXT.test(key) || data.length % 4 === 1) {
      throw new Error(`${where} (kid '${kid}'): key is not valid base64url (A-Z a-z 0-9 - _, padding optional)`);
    }
    const material = Buffer.from(data, 'base64url');
    if (alg === 'hs256' && material.length >= 32) return { kid, alg, material };
    if (alg === 'ed25519' && material.length === 32) {
      const privateKey = createPrivateKey({ key: Buffer.concat([ED25519_PKCS8, material]), format: 'der', type: 'pkcs8' });
      return { kid, alg, privateKey };
    }
    if (alg === 'ed25519-pub' && material.length === 32) return null; // verify-only: useless to a signer
    throw new Error(`${where} (kid '${kid}'): bad alg or key length`);
  }).filter(Boolean);
}

/** Throws if the edge would refuse this decoded path (400); the messages are the edge's own. */
export function checkPath(path) {
  const refuse = (why) => { throw new Error(why); }; // each starts with 'path'
  if (typeof path !== 'string') refuse('path must be a string');
  if (LONE_SURROGATE.test(path)) refuse('path holds a lone surrogate: it is not valid Unicode');
  if (!path.startsWith('/i/')) refuse('path does not start with /i/');
  const rest = path.slice(3);
  const slash = rest.indexOf('/');
  const user = slash < 0 ? rest : rest.slice(0, slash);
  const file = slash < 0 ? '' : rest.slice(slash + 1);
  if (!USER.test(user)) refuse("path: user must be 1 to 64 characters of A-Z a-z 0-9 _ . -, not starting with '.'");
  if (!file) refuse('path names no file');
  if (FORBIDDEN.test(file)) refuse('path holds a control byte or a backslash');
  if (file.includes('//') || file.startsWith('/') || file.endsWith('/')) refuse("path has an empty segment ('//' or a trailing '/')");
  const segments = file.split('/');
  if (segments.some((segment) => segment === '.' || segment === '..')) refuse("path has a '.' or '..' segment");
  const size = Buffer.byteLength(path, 'utf8');
  if (size > 1024) refuse(`path is ${size} bytes, the limit is 1024`);
  if (segments.some((segment) => Buffer.byteLength(segment, 'utf8') > 255)) refuse('path: a segment is longer than 255 bytes');
}

/** exp rounded up to the next multiple of `seconds` (one already a multiple stays); 0 or undefined: exp as given. */
export function alignExp(exp, seconds) {
  if (!Number.isSafeInteger(exp) || exp < 0 || exp > MAX_EXP) {
    throw new Error(`exp: must be a whole number of seconds from 0 to ${MAX_EXP}, not ${String(exp)}`);
  }
  if (seconds === undefined || seconds === 0) return exp;
  if (!Number.isSafeInteger(seconds) || seconds < 0) {
    throw new Error(`align: must be a whole number of seconds, 0 or more, not ${String(seconds)}`);
  }
  const aligned = exp % seconds ? exp + (seconds - (exp % seconds)) : exp;
  if (aligned > MAX_EXP) throw new Error(`exp: aligned to ${seconds} s it is ${aligned}, beyond ${MAX_EXP} (12 digits)`);
  return aligned;
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
 * transform the transform parameters with canonical values ({ w: 800, fit: 'cover' }, { 'p:thumb': '' }),
 * align rounds exp up to a multiple of that many seconds (alignExp). Throws on what the edge refuses.
 */
export function signUrl(path, { key, exp: asked, includeKid = false, transform = {}, align }) {
  checkPath(path);
  const exp = alignExp(asked, align);
  if (includeKid && !KID.test(key.kid)) throw new Error('kid: must be 1 to 32 characters of A-Z a-z 0-9 _ -');
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
  const aligning = args.find((arg) => arg.startsWith('--align='));
  const [path, seconds, kid, ...extra] = args.filter((arg) => arg !== option && arg !== aligning);
  const align = aligning?.slice('--align='.length);
  if (!path || !/^\d+$/.test(seconds ?? '') || extra.length || (align !== undefined && !/^\d+$/.test(align))) {
    console.error("usage: EDGE_SIGNING_KEYS=... node edge-signer.mjs PATH EXPIRES_IN_SECONDS [KID] [--transform='w=800&fit=cover'] [--align=SECONDS]");
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
    console.log(signUrl(path, { key, exp, includeKid: Boolean(kid), transform, align: align === undefined ? undefined : Number(align) }));
  } catch (error) {
    console.error(`edge-signer: ${error.message}`);
    process.exit(2);
  }
}

// Mints a signed URL with the Node signer and fetches it from a live edge.
// Usage: EDGE_SIGNING_KEYS=... node sign_and_fetch.mjs BASE_URL PATH [KID]
import { createHash } from 'node:crypto';
import { parseKeyring, signUrl } from '../../signers/node/edge-signer.mjs';

const [base, path, kid] = process.argv.slice(2);
const keys = parseKeyring(process.env.EDGE_SIGNING_KEYS);
const key = kid ? keys.find((k) => k.kid === kid) : keys[0];
const url = base + signUrl(path, { key, exp: Math.floor(Date.now() / 1000) + 300, includeKid: Boolean(kid) });
const response = await fetch(url);
const body = Buffer.from(await response.arrayBuffer());
console.log(JSON.stringify({ url, status: response.status, sha256: createHash('sha256').update(body).digest('hex') }));

// Reads vectors.json (argv[2]) and prints, as JSON, the URL the Node signer mints for each sign case.
import { readFileSync } from 'node:fs';
import { parseKeyring, signUrl } from '../../signers/node/edge-signer.mjs';

const vectors = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const keys = Object.fromEntries(parseKeyring(vectors.keys.signing).map((k) => [k.kid, k]));
const urls = vectors.sign.map((c) => signUrl(c.path, { key: keys[c.kid], exp: c.exp, includeKid: c.include_kid }));
console.log(JSON.stringify(urls));

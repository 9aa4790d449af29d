// Reads a JSON file (argv[2]) of {keys, cases: [{kid, include_kid, exp, path, transform: [[name, value], ...]}]}
// and prints, as JSON, what the Node signer gives for each case: the URL, or {error}.
import { readFileSync } from 'node:fs';
import { parseKeyring, signUrl } from '../../signers/node/edge-signer.mjs';

const input = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const keys = Object.fromEntries(parseKeyring(input.keys).map((k) => [k.kid, k]));
const results = input.cases.map((c) => {
  try {
    const transform = Object.fromEntries(c.transform);
    return signUrl(c.path, { key: keys[c.kid], exp: c.exp, includeKid: c.include_kid, transform });
  } catch (error) {
    return { error: error.message };
  }
});
console.log(JSON.stringify(results));

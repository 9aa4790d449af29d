// Reads a JSON file (argv[2]) of {cases: [{keys, kid, kid_by_hand, include_kid, exp, align, path, transform}]}
// (kid: null for the first key; kid_by_hand: null, or a kid to put on the key by hand; transform:
// [[name, value], ...]) and prints, as JSON, what the Node signer gives for each: {url} or {error}.
import { readFileSync } from 'node:fs';
import { parseKeyring, signUrl } from '../../signers/node/edge-signer.mjs';

const input = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const keyrings = new Map(); // keyring text -> its keys, or the error parsing it
const parse = (text) => {
  if (!keyrings.has(text)) {
    try {
      keyrings.set(text, parseKeyring(text));
    } catch (error) {
      keyrings.set(text, error);
    }
  }
  const keys = keyrings.get(text);
  if (keys instanceof Error) throw keys;
  return keys;
};
const results = input.cases.map((c) => {
  try {
    const keys = parse(c.keys);
    const found = keys.find((key) => c.kid === null || key.kid === c.kid);
    if (!found) throw new Error('harness: no such signing key');
    const key = c.kid_by_hand === null ? found : { ...found, kid: c.kid_by_hand };
    const options = { key, exp: c.exp, includeKid: c.include_kid, transform: Object.fromEntries(c.transform) };
    return { url: signUrl(c.path, c.align === null ? options : { ...options, align: c.align }) };
  } catch (error) {
    return { error: error.message };
  }
});
console.log(JSON.stringify(results));

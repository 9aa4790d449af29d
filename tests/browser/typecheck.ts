// Compiled with `tsc --noEmit` by tests/test_node_signer.py: the signer's types are usable from TypeScript.
import { alignExp, checkPath, parseKeyring, signUrl, type SigningKey } from '../../signers/node/edge-signer.mjs';

const keys: SigningKey[] = parseKeyring(process.env.EDGE_SIGNING_KEYS ?? '');
const exp: number = Math.floor(Date.now() / 1000) + 3600;
const url: string = 'https://img.example.com' + signUrl('/i/bob/café.png', { key: keys[0], exp });
console.log(url);
const stable: string = signUrl('/i/bob/café.png', { key: keys[0], exp, includeKid: true, align: 3600 });
const aligned: number = alignExp(exp, 3600);
checkPath('/i/bob/café.png');
console.log(stable, aligned);

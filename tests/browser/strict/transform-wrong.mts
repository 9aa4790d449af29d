// Must NOT compile (tests/test_transform_signers.py): a transform value is never an array.
import { parseKeyring, signUrl } from '../../../signers/node/edge-signer.mjs';
const keys = parseKeyring('');
signUrl('/i/a/b.png', { key: keys[0], exp: 1, transform: { w: [800] } });

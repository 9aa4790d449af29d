// Compiles (tests/test_transform_signers.py): the transform option, as the types declare it.
import { parseKeyring, signUrl } from '../../../signers/node/edge-signer.mjs';
const keys = parseKeyring('');
signUrl('/i/a/b.png', { key: keys[0], exp: 1, transform: { w: 800, fit: 'cover', grayscale: true, 'p:thumb': '' } });

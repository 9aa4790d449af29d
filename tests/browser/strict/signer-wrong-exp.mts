// Must NOT compile (tests/test_node_signer.py): exp is a number, so the signer's types are not `any`.
import { signUrl } from '../../../signers/node/edge-signer.mjs';
signUrl('/i/a/b.png', { exp: '1700000000' });

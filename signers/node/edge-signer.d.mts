// Types for edge-signer.mjs, for TypeScript callers: import { parseKeyring, signUrl } from './edge-signer.mjs';
import type { KeyObject } from 'node:crypto';

/** One signing entry of EDGE_SIGNING_KEYS. */
export interface SigningKey {
  kid: string;
  alg: 'hs256' | 'ed25519';
  material?: Buffer; // hs256 secret
  privateKey?: KeyObject; // ed25519
}

/** Transform parameters by name, canonical values: { w: 800, fit: 'cover' }; a preset is { 'p:thumb': '' }. */
export type Transform = Readonly<Record<string, string | number | boolean>>;

/** Parse EDGE_SIGNING_KEYS ("kid:alg:key,...") into the keys that can sign, in order; throws on what the edge refuses. */
export function parseKeyring(text: string): SigningKey[];

/** Throws if the edge would refuse this decoded path. */
export function checkPath(path: string): void;

/** exp rounded up to the next multiple of `seconds` (0 or undefined: exp as given); throws outside 0 to 999999999999. */
export function alignExp(exp: number, seconds?: number): number;

/** Percent-encode the UTF-8 path, leaving only A-Z a-z 0-9 - . _ ~ and / literal. */
export function quotePath(path: string): string;

/**
 * Path and query of a signed URL: path is decoded ("/i/bob/café.png"), exp in Unix seconds, align
 * rounds exp up to a multiple of that many seconds. Throws on a path, exp, kid or transform the edge refuses.
 */
export function signUrl(
  path: string,
  options: { key: SigningKey; exp: number; includeKid?: boolean; transform?: Transform; align?: number },
): string;

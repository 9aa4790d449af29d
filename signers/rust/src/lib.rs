//! Mint v1 signed image URLs for edge (hs256 and ed25519) with the `ring` and `base64` crates.
use ring::{hmac, signature::Ed25519KeyPair};

/// One signing entry of EDGE_SIGNING_KEYS.
pub struct Key {
    pub kid: String,
    pub alg: String,        // "hs256" or "ed25519"
    pub material: Vec<u8>,  // the hs256 secret, or the 32-byte ed25519 seed
}

/// Reads "kid:alg:key,..." and returns the keys that can sign, in order.
pub fn parse_keyring(text: &str) -> Result<Vec<Key>, String> {
    let mut keys = Vec::new();
    for (i, entry) in text.split(',').enumerate() {
        let parts: Vec<&str> = entry.trim().split(':').collect();
        if parts.len() != 3 {
            return Err(format!("EDGE_SIGNING_KEYS: entry {}: expected kid:alg:key", i + 1));
        }
        let material = base64::decode_config(parts[2].trim_end_matches('='), base64::URL_SAFE_NO_PAD)
            .map_err(|_| format!("EDGE_SIGNING_KEYS: entry {} (kid {:?}): key is not base64url", i + 1, parts[0]))?;
        match (parts[1], material.len()) {
            ("hs256", n) if n >= 32 => {}
            ("ed25519", 32) => {}
            ("ed25519-pub", _) => continue, // verify-only: of no use to a signer
            _ => return Err(format!("EDGE_SIGNING_KEYS: entry {} (kid {:?}): bad alg or key length", i + 1, parts[0])),
        }
        keys.push(Key { kid: parts[0].to_string(), alg: parts[1].to_string(), material });
    }
    Ok(keys)
}

/// Percent-encodes a decoded path, leaving only A-Z a-z 0-9 - . _ ~ and / literal.
pub fn quote_path(path: &str) -> String {
    let mut out = String::new();
    for &byte in path.as_bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~/".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{:02X}", byte));
        }
    }
    out
}

/// The path and query of a signed URL for a decoded path such as "/i/bob/café.png".
pub fn sign_url(path: &str, key: &Key, exp: u64, include_kid: bool) -> String {
    let message = format!("v1\n{}\n{}", path, exp);
    let sig: Vec<u8> = if key.alg == "hs256" {
        let mac_key = hmac::Key::new(hmac::HMAC_SHA256, &key.material);
        hmac::sign(&mac_key, message.as_bytes()).as_ref().to_vec()
    } else {
        let pair = Ed25519KeyPair::from_seed_unchecked(&key.material).expect("a 32-byte seed");
        pair.sign(message.as_bytes()).as_ref().to_vec()
    };
    let mut url = format!(
        "{}?sig={}&exp={}",
        quote_path(path),
        base64::encode_config(&sig, base64::URL_SAFE_NO_PAD),
        exp
    );
    if include_kid {
        url.push_str("&kid=");
        url.push_str(&key.kid);
    }
    url
}

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
    sign_transform_url(path, key, exp, include_kid, &[]).expect("no transform: nothing to refuse")
}

/// `sign_url` for a URL with transform parameters, written in the order given:
/// `sign_transform_url(path, &key, exp, false, &[("w", "800"), ("fit", "cover")])`; a preset is
/// `("p:thumb", "")`. Values must be canonical; a name outside the contract's table, a parameter
/// given twice or a second preset is an error.
pub fn sign_transform_url(
    path: &str,
    key: &Key,
    exp: u64,
    include_kid: bool,
    transform: &[(&str, &str)],
) -> Result<String, String> {
    let mut params: Vec<String> = Vec::new(); // as the URL and the signed string write them
    for (i, &(name, value)) in transform.iter().enumerate() {
        let is_preset = name.starts_with("p:");
        match is_canonical(name, value) {
            Some(false) => return Err(format!("transform: {}={:?} is not a canonical value", name, value)),
            Some(true) => params.push(format!("{}={}", name, value)),
            None if is_preset && is_preset_name(&name[2..]) && value.is_empty() => params.push(name.to_string()),
            None => return Err(format!("transform: {:?} is not a transform parameter, nor a preset without value", name)),
        }
        if transform[..i].iter().any(|&(seen, _)| seen == name) {
            return Err(format!("transform: {} is given twice", name));
        }
        if is_preset && transform[..i].iter().any(|&(seen, _)| seen.starts_with("p:")) {
            return Err("transform: more than one preset".to_string());
        }
    }
    let mut message = format!("v1\n{}\n{}", path, exp);
    if !params.is_empty() {
        // Sorted by name, in byte order: "=" ends a name, and no name is another's prefix.
        let mut sorted = params.clone();
        sorted.sort_by(|a, b| a.split('=').next().cmp(&b.split('=').next()));
        message.push('\n');
        message.push_str(&sorted.join("&"));
    }
    let sig: Vec<u8> = if key.alg == "hs256" {
        let mac_key = hmac::Key::new(hmac::HMAC_SHA256, &key.material);
        hmac::sign(&mac_key, message.as_bytes()).as_ref().to_vec()
    } else {
        let pair = Ed25519KeyPair::from_seed_unchecked(&key.material).expect("a 32-byte seed");
        pair.sign(message.as_bytes()).as_ref().to_vec()
    };
    let mut url = format!("{}?", quote_path(path));
    for param in &params {
        url.push_str(param);
        url.push('&');
    }
    url.push_str(&format!("sig={}&exp={}", base64::encode_config(&sig, base64::URL_SAFE_NO_PAD), exp));
    if include_kid {
        url.push_str("&kid=");
        url.push_str(&key.kid);
    }
    Ok(url)
}

/// Whether `value` is canonical for the transform parameter `name`; None for a name outside the table.
fn is_canonical(name: &str, value: &str) -> Option<bool> {
    let integer = |low: u32, high: u32| {
        let canonical = value == "0" || (!value.starts_with('0') && value.len() <= 5);
        canonical
            && value.bytes().all(|b| b.is_ascii_digit())
            && matches!(value.parse::<u32>(), Ok(n) if low <= n && n <= high)
    };
    let one_of = |values: &[&str]| values.contains(&value);
    Some(match name {
        "w" | "h" => integer(1, 10000),
        "fit" => one_of(&["cover", "contain", "fill", "scale-down"]),
        "aspect" => one_of(&["original", "1:1", "4:3", "16:9", "3:2", "21:9"]),
        "q" => integer(1, 100),
        "dpr" => one_of(&["1", "1.5", "2", "3"]),
        "crop" => one_of(&[
            "center", "top", "bottom", "left", "right", "top-left", "top-right", "bottom-left",
            "bottom-right", "attention", "entropy",
        ]),
        "grayscale" => one_of(&["true", "false"]),
        "blur" | "sharpen" => integer(0, 100),
        "rotate" => one_of(&["0", "90", "180", "270", "auto"]),
        "flip" => one_of(&["h", "v", "both"]),
        _ => return None,
    })
}

fn is_preset_name(name: &str) -> bool {
    (1..=64).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

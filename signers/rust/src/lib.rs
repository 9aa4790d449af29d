//! Mint v1 signed image URLs for edge (hs256 and ed25519) with the `ring` and `base64` crates.
//! What the edge would refuse (a bad path, exp, kid or key) is an error saying why.
use ring::{hmac, signature::Ed25519KeyPair};

/// The largest exp a URL can carry: 12 digits.
pub const MAX_EXP: u64 = 999_999_999_999;

/// Base64url, padding optional, unused bits of the last character ignored (as the edge decodes).
const KEY_CONFIG: base64::Config = base64::URL_SAFE_NO_PAD.decode_allow_trailing_bits(true);

/// One signing entry of EDGE_SIGNING_KEYS.
pub struct Key {
    pub kid: String,
    pub alg: String,        // "hs256" or "ed25519"
    pub material: Vec<u8>,  // the hs256 secret, or the 32-byte ed25519 seed
}

/// The optional parts of a signed URL, for `sign`: `Options { align: 3600, ..Options::default() }`.
#[derive(Default)]
pub struct Options<'a> {
    /// Write kid= into the URL.
    pub include_kid: bool,
    /// Transform parameters, written in this order: `&[("w", "800"), ("fit", "cover")]`.
    pub transform: &'a [(&'a str, &'a str)],
    /// Round exp up to a multiple of this many seconds (0: exp as given).
    pub align: u64,
}

/// Text without surrounding whitespace and one pair of matching quotes (' or "), as the
/// edge reads a .env value.
fn unquote(text: &str) -> &str {
    let text = text.trim();
    let bytes = text.as_bytes();
    if bytes.len() >= 2
        && bytes[0] == bytes[bytes.len() - 1]
        && (bytes[0] == b'"' || bytes[0] == b'\'')
    {
        text[1..text.len() - 1].trim()
    } else {
        text
    }
}

/// Reads "kid:alg:key,..." and returns the keys that can sign, in order; refuses what the edge refuses.
pub fn parse_keyring(text: &str) -> Result<Vec<Key>, String> {
    let mut keys = Vec::new();
    let mut seen: Vec<String> = Vec::new();
    for (i, entry) in unquote(text).split(',').enumerate() {
        let entry = unquote(entry);
        if entry.is_empty() {
            continue; // a trailing comma
        }
        let where_ = format!("EDGE_SIGNING_KEYS: entry {}", i + 1);
        let parts: Vec<&str> = entry.split(':').map(str::trim).collect();
        if parts.len() != 3 {
            return Err(format!("{}: expected kid:alg:key", where_));
        }
        let (kid, alg, text) = (parts[0], parts[1], parts[2]);
        if !is_kid(kid) {
            return Err(format!("{}: kid must be 1 to 32 characters of A-Z a-z 0-9 _ -", where_));
        }
        if seen.iter().any(|other| other == kid) {
            return Err(format!("{} (kid {:?}): duplicate kid", where_, kid));
        }
        seen.push(kid.to_string());
        let data = text.trim_end_matches('=');
        let alphabet = data.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        let material = match base64::decode_config(data, KEY_CONFIG) {
            Ok(material) if alphabet && text.len() - data.len() <= 2 && data.len() % 4 != 1 => material,
            _ => {
                return Err(format!(
                    "{} (kid {:?}): key is not valid base64url (A-Z a-z 0-9 - _, padding optional)",
                    where_, kid
                ))
            }
        };
        match (alg, material.len()) {
            ("hs256", n) if n >= 32 => {}
            ("ed25519", 32) => {}
            ("ed25519-pub", 32) => continue, // verify-only: of no use to a signer
            _ => return Err(format!("{} (kid {:?}): bad alg or key length", where_, kid)),
        }
        keys.push(Key { kid: kid.to_string(), alg: alg.to_string(), material });
    }
    Ok(keys)
}

fn is_kid(kid: &str) -> bool {
    (1..=32).contains(&kid.len()) && kid.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// An error if the edge would refuse this decoded path; the messages are the edge's own.
pub fn check_path(path: &str) -> Result<(), String> {
    let refuse = |why: &str| Err(why.to_string()); // each message starts with "path"
    let rest = match path.strip_prefix("/i/") {
        Some(rest) => rest,
        None => return refuse("path does not start with /i/"),
    };
    let (user, file) = match rest.find('/') {
        Some(slash) => (&rest[..slash], &rest[slash + 1..]),
        None => (rest, ""),
    };
    let user_ok = (1..=64).contains(&user.len())
        && !user.starts_with('.')
        && user.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
    if !user_ok {
        return refuse("path: user must be 1 to 64 characters of A-Z a-z 0-9 _ . -, not starting with '.'");
    }
    if file.is_empty() {
        return refuse("path names no file");
    }
    if file.bytes().any(|b| b < 0x20 || b == 0x7f || b == b'\\') {
        return refuse("path holds a control byte or a backslash");
    }
    if file.contains("//") || file.starts_with('/') || file.ends_with('/') {
        return refuse("path has an empty segment ('//' or a trailing '/')");
    }
    if file.split('/').any(|segment| segment == "." || segment == "..") {
        return refuse("path has a '.' or '..' segment");
    }
    if path.len() > 1024 {
        return Err(format!("path is {} bytes, the limit is 1024", path.len()));
    }
    if file.split('/').any(|segment| segment.len() > 255) {
        return refuse("path: a segment is longer than 255 bytes");
    }
    Ok(())
}

/// exp rounded up to the next multiple of `seconds` (one already a multiple stays), so that URLs
/// minted within one window are identical; `seconds` 0 leaves exp as given.
pub fn align_exp(exp: u64, seconds: u64) -> Result<u64, String> {
    if exp > MAX_EXP {
        return Err(format!("exp: must be a whole number of seconds from 0 to {}, not {}", MAX_EXP, exp));
    }
    if seconds == 0 || exp % seconds == 0 {
        return Ok(exp);
    }
    let up = seconds - exp % seconds;
    if up > MAX_EXP - exp {
        return Err(format!("exp: aligned to {} s it is beyond {} (12 digits)", seconds, MAX_EXP));
    }
    Ok(exp + up)
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
pub fn sign_url(path: &str, key: &Key, exp: u64, include_kid: bool) -> Result<String, String> {
    sign(path, key, exp, &Options { include_kid, ..Options::default() })
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
    sign(path, key, exp, &Options { include_kid, transform, ..Options::default() })
}

/// `sign_url` with every option: `sign(path, &key, exp, &Options { align: 3600, ..Options::default() })`.
/// A path, exp, kid (when written) or transform that the edge would refuse is an error.
pub fn sign(path: &str, key: &Key, exp: u64, options: &Options) -> Result<String, String> {
    check_path(path)?;
    let exp = align_exp(exp, options.align)?;
    let (include_kid, transform) = (options.include_kid, options.transform);
    if include_kid && !is_kid(&key.kid) {
        return Err("kid: must be 1 to 32 characters of A-Z a-z 0-9 _ -".to_string());
    }
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

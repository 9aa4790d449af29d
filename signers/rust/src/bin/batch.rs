//! Test harness for a batch of cases in one process: stdin lines of eight tab-separated fields, each
//! hex-encoded (so that any byte can be tried): keyring, kid (empty: the first key), "=" and a kid to
//! put on the key by hand (empty: none), include_kid ("true"), exp, align (empty: 0), path, transform
//! ("w=800&fit=cover", in URL order). Prints one line per case: the signed URL, or "error: ...".
use std::io::{BufRead, Write};

fn main() {
    let stdin = std::io::stdin();
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    for line in stdin.lock().lines() {
        let line = line.expect("stdin");
        match sign_case(&line) {
            Ok(url) => writeln!(out, "{}", url),
            Err(error) => writeln!(out, "error: {}", error),
        }
        .expect("stdout");
    }
}

fn unhex(text: &str) -> Result<Vec<u8>, String> {
    let bad = || "harness: a field is not hex".to_string();
    if text.len() % 2 != 0 || !text.is_ascii() {
        return Err(bad());
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(&text[i..i + 2], 16).map_err(|_| bad())).collect()
}

fn sign_case(line: &str) -> Result<String, String> {
    let raw: Vec<Vec<u8>> = line.split('\t').map(unhex).collect::<Result<_, _>>()?;
    if raw.len() != 8 {
        return Err("harness: expected 8 fields".to_string());
    }
    // What Rust's types refuse before any call: a &str holds only valid UTF-8, exp and align are u64.
    let path = String::from_utf8(raw[6].clone()).map_err(|_| "path is not valid UTF-8 (no &str holds it)".to_string())?;
    let text = |i: usize| String::from_utf8(raw[i].clone()).map_err(|_| format!("harness: field {} is not UTF-8", i));
    let keys = edgesign::parse_keyring(&text(0)?)?;
    let kid = text(1)?;
    let mut key = keys
        .into_iter()
        .find(|key| kid.is_empty() || key.kid == kid)
        .ok_or_else(|| "harness: no such signing key".to_string())?;
    if let Some(by_hand) = text(2)?.strip_prefix('=') {
        key.kid = by_hand.to_string();
    }
    let exp_text = text(4)?;
    let exp: u64 = exp_text.parse().map_err(|_| format!("exp: {:?} is not a u64", exp_text))?;
    let align_text = text(5)?;
    let align: u64 = match align_text.as_str() {
        "" => 0,
        given => given.parse().map_err(|_| format!("align: {:?} is not a u64", given))?,
    };
    let transform_text = text(7)?;
    let transform: Vec<(&str, &str)> = transform_text
        .split('&')
        .filter(|part| !part.is_empty())
        .map(|part| {
            let mut halves = part.splitn(2, '=');
            (halves.next().unwrap_or(""), halves.next().unwrap_or(""))
        })
        .collect();
    let options = edgesign::Options { include_kid: text(3)? == "true", transform: &transform, align };
    edgesign::sign(&path, &key, exp, &options)
}

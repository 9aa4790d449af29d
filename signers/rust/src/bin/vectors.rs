//! Test harness: EDGE_SIGNING_KEYS from the environment; stdin lines "kid<TAB>include_kid<TAB>exp<TAB>path"
//! with an optional "<TAB>transform" ("w=800&fit=cover", in URL order); prints one signed URL per line,
//! or "error: ..." for what the signer refuses.
use std::io::BufRead;

fn main() {
    let keys = edgesign::parse_keyring(&std::env::var("EDGE_SIGNING_KEYS").unwrap_or_default())
        .unwrap_or_else(|error| {
            eprintln!("{}", error);
            std::process::exit(2)
        });
    for line in std::io::stdin().lock().lines() {
        let line = line.expect("stdin");
        let fields: Vec<&str> = line.splitn(5, '\t').collect();
        let key = keys.iter().find(|key| key.kid == fields[0]).expect("a known kid");
        let exp: u64 = fields[2].parse().expect("exp");
        let include_kid = fields[1] == "true";
        match fields.get(4) {
            None => match edgesign::sign_url(fields[3], key, exp, include_kid) {
                Ok(url) => println!("{}", url),
                Err(error) => println!("error: {}", error),
            },
            Some(text) => {
                let transform: Vec<(&str, &str)> = text
                    .split('&')
                    .filter(|part| !part.is_empty())
                    .map(|part| {
                        let mut halves = part.splitn(2, '=');
                        (halves.next().unwrap_or(""), halves.next().unwrap_or(""))
                    })
                    .collect();
                match edgesign::sign_transform_url(fields[3], key, exp, include_kid, &transform) {
                    Ok(url) => println!("{}", url),
                    Err(error) => println!("error: {}", error),
                }
            }
        }
    }
}

//! Test harness: EDGE_SIGNING_KEYS from the environment; stdin lines "kid<TAB>include_kid<TAB>exp<TAB>path";
//! prints one signed URL per line.
use std::io::BufRead;

fn main() {
    let keys = edgesign::parse_keyring(&std::env::var("EDGE_SIGNING_KEYS").unwrap_or_default())
        .unwrap_or_else(|error| {
            eprintln!("{}", error);
            std::process::exit(2)
        });
    for line in std::io::stdin().lock().lines() {
        let line = line.expect("stdin");
        let fields: Vec<&str> = line.splitn(4, '\t').collect();
        let key = keys.iter().find(|key| key.kid == fields[0]).expect("a known kid");
        let exp: u64 = fields[2].parse().expect("exp");
        println!("{}", edgesign::sign_url(fields[3], key, exp, fields[1] == "true"));
    }
}

//! The baseline for `scripts/bench`: a preprocessor that does nothing. It reads mdBook's
//! `[context, book]` JSON and writes the book back, as any preprocessor must at the least.

use std::io::{Read, Write};

fn main() {
    let mut input = String::new();
    std::io::stdin().read_to_string(&mut input).expect("stdin");
    let value: serde_json::Value = serde_json::from_str(&input).expect("JSON");
    let book = &value[1];
    let output = serde_json::to_string(book).expect("JSON");
    std::io::stdout()
        .write_all(output.as_bytes())
        .expect("stdout");
}

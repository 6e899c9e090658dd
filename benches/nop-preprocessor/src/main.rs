//! An mdBook preprocessor that changes nothing, written the way mdBook's documented example
//! (`examples/nop-preprocessor.rs` in rust-lang/mdBook) is: `supports <renderer>` answers yes;
//! otherwise it parses the `[context, book]` JSON from stdin with `parse_input` and writes the
//! book back to stdout with `serde_json::to_writer`.

use std::process::exit;

fn main() {
    let mut args = std::env::args().skip(1);
    if args.next().as_deref() == Some("supports") {
        // Every renderer is supported.
        exit(0);
    }
    let (_ctx, book) = match mdbook_preprocessor::parse_input(std::io::stdin()) {
        Ok(input) => input,
        Err(e) => {
            eprintln!("nop-preprocessor: {e:?}");
            exit(1);
        }
    };
    if let Err(e) = serde_json::to_writer(std::io::stdout(), &book) {
        eprintln!("nop-preprocessor: {e}");
        exit(1);
    }
}

//! The "Lights of the Coast" book with the settings and providers a test gives it.

use super::TestBook;

/// The example book whose `book.toml` uses `provider`, has `settings` in its table, and defines
/// each `(name, body)` of `profiles` as a provider profile.
pub(crate) fn lights(provider: &str, settings: &str, profiles: &[(&str, &str)]) -> TestBook {
    let mut toml = toml(
        "Lights of the Coast",
        &format!("provider = \"{provider}\"\nretries = 0\n{settings}\n"),
    );
    for (name, body) in profiles {
        toml += &format!("\n[preprocessor.imagegen.providers.{name}]\n{body}\n");
    }
    toml += r#"
[preprocessor.imagegen.styles]
engraving = "black and white copperplate engraving, fine cross-hatching"
"#;
    let book = TestBook::example();
    book.write("book.toml", &toml);
    book
}

/// A `book.toml` titled `title` whose `[preprocessor.imagegen]` runs after `links` and holds
/// `rest` (which may open further tables).
pub(crate) fn toml(title: &str, rest: &str) -> String {
    format!("[book]\ntitle = \"{title}\"\n\n[preprocessor.imagegen]\nafter = [\"links\"]\n{rest}")
}

/// The example book with an `openai` profile at `base_url` and `extra` keys in its table.
pub(crate) fn book_with(base_url: &str, extra: &str) -> TestBook {
    let openai = format!("kind = \"openai\"\nbase-url = \"{base_url}/v1\"\nquality = \"medium\"");
    lights("openai", extra, &[("openai", &openai)])
}

/// A provider that draws a 64×64 PNG whose colour depends on the prompt and on `variant.txt`
/// (so two branches can make different bytes for the same prompt), and logs every call. A
/// prompt with "slow" in it takes `SLOW` seconds.
pub(crate) const PROVIDER: &str = r#"import os, struct, sys, time, zlib, hashlib
if "slow" in os.environ["IMAGEGEN_PROMPT"]:
    time.sleep(float(os.environ.get("SLOW", "0")))
variant = open("variant.txt").read().strip()
seed = hashlib.sha256((os.environ["IMAGEGEN_PROMPT"] + variant).encode()).digest()
w, h = int(os.environ["IMAGEGEN_WIDTH"]), int(os.environ["IMAGEGEN_HEIGHT"])
rows = b"".join(b"\x00" + bytes(seed[:3]) * w for _ in range(h))
def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
png += chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")
open(os.environ["IMAGEGEN_OUTPUT"], "wb").write(png)
with open(os.environ["CALLS"], "a") as log:
    log.write(os.environ["IMAGEGEN_PROMPT"] + "\n")
"#;

//! Provenance metadata: an XMP packet that says an image was made by an AI model (IPTC
//! `DigitalSourceType` = `trainedAlgorithmicMedia`), and how to carry it in JPEG, PNG and WebP.
//!
//! The packet holds no time and no version, so the same image always gets the same bytes.

/// The IPTC code for media created by a trained model.
const TRAINED_ALGORITHMIC_MEDIA: &str =
    "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia";

/// The namespace that opens a JPEG APP1 segment holding XMP.
const JPEG_XMP_NAMESPACE: &[u8] = b"http://ns.adobe.com/xap/1.0/\0";

/// The XMP packet for an image made by `model` through the `provider` kind.
pub(crate) fn packet(provider: &str, model: &str) -> String {
    let system = format!("{model} ({provider})").replace(char::is_control, "");
    let system = crate::figure::escape_html(&system);
    format!(
        concat!(
            "<?xpacket begin=\"\u{feff}\" id=\"W5M0MpCehiHzreSzNTczkc9d\"?>",
            "<x:xmpmeta xmlns:x=\"adobe:ns:meta/\">",
            "<rdf:RDF xmlns:rdf=\"http://www.w3.org/1999/02/22-rdf-syntax-ns#\">",
            "<rdf:Description rdf:about=\"\"",
            " xmlns:Iptc4xmpExt=\"http://iptc.org/std/Iptc4xmpExt/2008-02-29/\"",
            " xmlns:xmp=\"http://ns.adobe.com/xap/1.0/\"",
            " Iptc4xmpExt:DigitalSourceType=\"{source}\"",
            " Iptc4xmpExt:AISystemUsed=\"{system}\"",
            " xmp:CreatorTool=\"mdbook-imagegen\"/>",
            "</rdf:RDF>",
            "</x:xmpmeta>",
            "<?xpacket end=\"r\"?>"
        ),
        source = TRAINED_ALGORITHMIC_MEDIA,
        system = system,
    )
}

/// The payload of a JPEG APP1 segment carrying the packet.
pub(crate) fn jpeg_app1(packet: &str) -> Vec<u8> {
    let mut out = JPEG_XMP_NAMESPACE.to_vec();
    out.extend_from_slice(packet.as_bytes());
    out
}

/// Adds an `iTXt` chunk with the packet right after `IHDR`.
pub(crate) fn png_with_xmp(png: &[u8], packet: &str) -> Vec<u8> {
    // Signature (8) + IHDR chunk (4 length + 4 type + 13 data + 4 CRC).
    const AFTER_IHDR: usize = 8 + 25;
    let mut data = b"XML:com.adobe.xmp\0".to_vec();
    data.extend_from_slice(&[0, 0, 0, 0]); // uncompressed, no method, empty language and keyword
    data.extend_from_slice(packet.as_bytes());
    let mut out = Vec::with_capacity(png.len() + data.len() + 12);
    out.extend_from_slice(&png[..AFTER_IHDR]);
    push_png_chunk(&mut out, b"iTXt", &data);
    out.extend_from_slice(&png[AFTER_IHDR..]);
    out
}

fn push_png_chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    let mut crc = crc32fast::Hasher::new();
    crc.update(kind);
    crc.update(data);
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    out.extend_from_slice(&crc.finalize().to_be_bytes());
}

/// Rewrites a WebP file in the extended format (`VP8X`) with an `XMP ` chunk at the end.
/// Returns `None` for a file it does not understand.
pub(crate) fn webp_with_xmp(webp: &[u8], width: u32, height: u32, packet: &str) -> Option<Vec<u8>> {
    if webp.len() < 20 || &webp[..4] != b"RIFF" || &webp[8..12] != b"WEBP" {
        return None;
    }
    let chunks = riff_chunks(&webp[12..])?;
    let mut body = Vec::with_capacity(webp.len() + packet.len() + 32);
    match chunks.first() {
        Some(([b'V', b'P', b'8', b'X'], data)) => {
            let mut header = data.to_vec();
            header[0] |= 0x04; // XMP present
            push_riff_chunk(&mut body, b"VP8X", &header);
            for (kind, data) in &chunks[1..] {
                push_riff_chunk(&mut body, kind, data);
            }
        }
        Some((kind, data)) if kind == b"VP8 " || kind == b"VP8L" => {
            // VP8L keeps an "alpha is used" bit in its header; VP8 has no alpha.
            let alpha = kind == b"VP8L" && data.len() >= 5 && data[4] & 0x10 != 0;
            let mut header = vec![0u8; 10];
            header[0] = 0x04 | if alpha { 0x10 } else { 0 };
            header[4..7].copy_from_slice(&(width - 1).to_le_bytes()[..3]);
            header[7..10].copy_from_slice(&(height - 1).to_le_bytes()[..3]);
            push_riff_chunk(&mut body, b"VP8X", &header);
            push_riff_chunk(&mut body, kind, data);
        }
        _ => return None,
    }
    push_riff_chunk(&mut body, b"XMP ", packet.as_bytes());
    let mut out = Vec::with_capacity(body.len() + 12);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&((body.len() + 4) as u32).to_le_bytes());
    out.extend_from_slice(b"WEBP");
    out.extend_from_slice(&body);
    Some(out)
}

fn riff_chunks(mut rest: &[u8]) -> Option<Vec<([u8; 4], &[u8])>> {
    let mut chunks = Vec::new();
    while rest.len() >= 8 {
        let kind: [u8; 4] = rest[..4].try_into().ok()?;
        let size = u32::from_le_bytes(rest[4..8].try_into().ok()?) as usize;
        let end = 8usize.checked_add(size)?;
        let data = rest.get(8..end)?;
        chunks.push((kind, data));
        let padded = end + (size & 1);
        rest = rest.get(padded.min(rest.len())..)?;
    }
    Some(chunks)
}

fn push_riff_chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(kind);
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out.extend_from_slice(data);
    if data.len() % 2 == 1 {
        out.push(0);
    }
}

//! JSON text as Latin-1 bytes, for V8 to make a one-byte string of (`src/binding/text.rs`).
//!
//! In JSON text a character beyond ASCII can only stand inside a string, where `\uXXXX` means
//! the same character: so every character up to U+00FF becomes its Latin-1 byte, and every
//! other one its `\u` escape (two, a surrogate pair, beyond U+FFFF). `JSON.parse` of the
//! result gives exactly what it gives of the UTF-8 text.

/// `json` as Latin-1 JSON text meaning the same, or `json` back when that would be more than
/// a quarter longer. ASCII text is returned as is, without a copy.
pub fn into_latin1_json(json: String) -> Result<Vec<u8>, String> {
    if json.is_ascii() {
        return Ok(json.into_bytes());
    }
    // Text with many characters past U+00FF (two or three UTF-8 bytes, six escaped: Cyrillic,
    // Greek, CJK…) is handed back, for the caller to send otherwise (src/binding/text.rs:
    // as UTF-16), found out by counting before any writing.
    let length = latin1_length(&json);
    if length > json.len() + json.len() / 4 {
        return Err(json);
    }
    let mut out = Vec::with_capacity(length);
    let mut rest = json.as_str();
    while !rest.is_empty() {
        let ascii = ascii_prefix(rest.as_bytes());
        out.extend_from_slice(&rest.as_bytes()[..ascii]);
        rest = &rest[ascii..];
        let mut chars = rest.chars();
        let Some(c) = chars.next() else { break };
        rest = chars.as_str();
        if let Ok(byte) = u8::try_from(u32::from(c)) {
            out.push(byte);
        } else {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                push_escape(&mut out, *unit);
            }
        }
    }
    debug_assert_eq!(out.len(), length);
    Ok(out)
}

/// How long `json` is as Latin-1 JSON: its UTF-8 length changed by each character's lead
/// byte. A character up to U+00FF (lead 0xC2 or 0xC3: two bytes) becomes one byte; any other
/// up to U+07FF (0xC4–0xDF: two bytes) or U+FFFF (0xE0–0xEF: three) one six-byte escape; one
/// beyond (0xF0 and up: four) a pair of them. The lead bytes are counted 16 lanes of one byte
/// at a time, which the compiler turns into vector instructions: about 0.1 ns a byte, against
/// several times that for a walk character by character (Cyrillic or CJK text is all
/// non-ASCII characters, and is the text that is then handed back).
fn latin1_length(json: &str) -> usize {
    const LANES: usize = 16;
    let mut chunks = json.as_bytes().chunks_exact(LANES);
    let mut change: isize = 0;
    loop {
        // How many lead bytes each lane saw of: 0xC2–0xC3, 0xC4 and up, 0xE0 and up, 0xF0 and
        // up; at most 255 rounds, so that no one-byte count overflows.
        let mut counts = [[0u8; LANES]; 4];
        let mut rounds = 0;
        while rounds < u8::MAX {
            let Some(chunk) = chunks.next() else { break };
            for (lane, &byte) in chunk.iter().enumerate() {
                counts[0][lane] += u8::from(byte & 0xFE == 0xC2);
                counts[1][lane] += u8::from(byte >= 0xC4);
                counts[2][lane] += u8::from(byte >= 0xE0);
                counts[3][lane] += u8::from(byte >= 0xF0);
            }
            rounds += 1;
        }
        let [latin1, from_c4, from_e0, from_f0] =
            counts.map(|lanes| lanes.iter().map(|&n| n as isize).sum::<isize>());
        // 0xC4–0xDF +4, 0xE0–0xEF +3, 0xF0 and up +8.
        change += -latin1 + 4 * from_c4 - from_e0 + 5 * from_f0;
        if rounds < u8::MAX {
            break;
        }
    }
    for &byte in chunks.remainder() {
        change += match byte {
            0xC2 | 0xC3 => -1,
            0xC4..=0xDF => 4,
            0xE0..=0xEF => 3,
            0xF0..=0xFF => 8,
            _ => 0,
        };
    }
    json.len().saturating_add_signed(change)
}

/// The length of the ASCII run `bytes` starts with, 16 bytes at a time while it lasts.
fn ascii_prefix(bytes: &[u8]) -> usize {
    let whole = bytes
        .chunks_exact(16)
        .take_while(|chunk| chunk.is_ascii())
        .count()
        * 16;
    whole
        + bytes[whole..]
            .iter()
            .take_while(|byte| byte.is_ascii())
            .count()
}

fn push_escape(out: &mut Vec<u8>, unit: u16) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.extend_from_slice(b"\\u");
    for shift in [12, 8, 4, 0] {
        out.push(HEX[usize::from((unit >> shift) & 0xf)]);
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::{into_latin1_json, latin1_length};

    /// Latin-1 bytes as the string V8 would see: one character per byte.
    fn as_latin1(bytes: &[u8]) -> String {
        bytes.iter().map(|&b| char::from(b)).collect()
    }

    #[test]
    fn ascii_passes_through_without_a_copy() {
        let json = String::from(r#"{"text":"plain"}"#);
        let pointer = json.as_ptr();
        let bytes = into_latin1_json(json).unwrap();
        assert_eq!(bytes.as_ptr(), pointer);
    }

    #[test]
    fn latin1_characters_become_their_byte_and_others_escapes() {
        let filler = "x".repeat(40);
        let json = format!(r#"["{filler}","café","日","🎉"]"#);
        let bytes = into_latin1_json(json).unwrap();
        assert_eq!(
            as_latin1(&bytes),
            format!("[\"{filler}\",\"caf\u{e9}\",\"\\u65e5\",\"\\ud83c\\udf89\"]")
        );
    }

    #[test]
    fn text_mostly_past_latin1_is_handed_back() {
        let json = format!("[\"{}\"]", "日本語".repeat(100));
        assert_eq!(into_latin1_json(json.clone()), Err(json));
    }

    #[test]
    fn a_quarter_longer_is_the_most_that_is_converted() {
        // `["xxxxx日"]`: 12 bytes of UTF-8, 15 of Latin-1 JSON, and 12 + 12 / 4 = 15.
        let json = String::from("[\"xxxxx日\"]");
        assert_eq!(into_latin1_json(json).unwrap(), b"[\"xxxxx\\u65e5\"]");
        // `["xxxx日"]`: 11 bytes, 14 escaped, past 11 + 11 / 4 = 13.
        let json = String::from("[\"xxxx日\"]");
        assert_eq!(into_latin1_json(json.clone()), Err(json));
    }

    #[test]
    fn the_limit_counts_the_ascii_after_the_last_escape() {
        // 100 characters of 3 UTF-8 bytes (300) become 600 escaped; with 700 bytes of ASCII
        // after them the UTF-8 text is 1,006 bytes and the Latin-1 one 1,306: past 1.25×.
        let json = format!("[\"{}\",\"{}\"]", "日".repeat(100), "x".repeat(700));
        assert_eq!(into_latin1_json(json.clone()), Err(json));
        // With 1,200 bytes of ASCII it is 1,506 against 1,806: within.
        let json = format!("[\"{}\",\"{}\"]", "日".repeat(100), "x".repeat(1200));
        assert!(into_latin1_json(json).is_ok());
    }

    proptest! {
        /// Whatever the strings, the Latin-1 form parses to the same JSON value.
        #[test]
        fn the_latin1_form_means_the_same(
            strings in prop::collection::vec("[a-z\"\\\\\u{0}-\u{1f}\u{80}-\u{ff}]{0,40}|.{0,4}", 0..8),
            filler in 0usize..64,
        ) {
            let value = serde_json::json!({
                "filler": "x".repeat(filler),
                "strings": strings,
            });
            let json = serde_json::to_string(&value).unwrap();
            match into_latin1_json(json.clone()) {
                Ok(bytes) => {
                    let reread: serde_json::Value =
                        serde_json::from_str(&as_latin1(&bytes)).unwrap();
                    prop_assert_eq!(reread, value);
                }
                Err(back) => prop_assert_eq!(back, json),
            }
        }

        /// The count made before writing is, character by character, what is written, and
        /// the text is handed back exactly when that is more than a quarter longer.
        #[test]
        fn the_count_is_what_is_written(
            chars in prop::collection::vec(any::<char>(), 0..6000),
            filler in 0usize..64,
        ) {
            // Up to 24 KB: past the 16-byte lanes and the 4,080-byte blocks they count in.
            let text: String = chars.into_iter().collect();
            let json = serde_json::to_string(&format!("{}{text}", "x".repeat(filler))).unwrap();
            let expected: usize = json
                .chars()
                .map(|c| match u32::from(c) {
                    0..=0xFF => 1,
                    0x100..=0xFFFF => 6,
                    _ => 12,
                })
                .sum();
            prop_assert_eq!(latin1_length(&json), expected);
            let limit = json.len() + json.len() / 4;
            match into_latin1_json(json.clone()) {
                Ok(bytes) => {
                    prop_assert!(expected <= limit);
                    prop_assert_eq!(bytes.len(), expected);
                }
                Err(back) => {
                    prop_assert!(expected > limit);
                    prop_assert_eq!(back, json);
                }
            }
        }

        /// Text with nothing past U+00FF always has a Latin-1 form, one byte a character.
        #[test]
        fn latin1_text_always_converts(text in "[\u{0}-\u{ff}]{0,200}") {
            let json = serde_json::to_string(&text).unwrap();
            let bytes = into_latin1_json(json).unwrap();
            let reread: String = serde_json::from_str(&as_latin1(&bytes)).unwrap();
            prop_assert_eq!(reread, text);
        }
    }
}

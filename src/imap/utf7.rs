//! Modified UTF-7 (RFC 3501 §5.1.3), the wire encoding of IMAP mailbox names.
//!
//! The decoder is strict: it accepts only the canonical form the encoder produces, so that
//! `encode_mutf7(decode_mutf7(x)?) == x` for every name a server sends. A name that fails to
//! decode is not a name we can ever send back.

/// The modified base64 alphabet: `,` replaces `/`, no padding.
const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

/// Printable US-ASCII represents itself (except `&`); everything else is shifted.
fn is_direct(c: char) -> bool {
    (' '..='~').contains(&c)
}

/// Encodes a UTF-8 mailbox name into modified UTF-7.
pub fn encode_mutf7(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    let mut pending: Vec<u16> = Vec::new();
    for c in s.chars() {
        if is_direct(c) {
            flush_shifted(&mut pending, &mut out);
            if c == '&' {
                out.push_str("&-");
            } else {
                out.push(c);
            }
        } else {
            let mut units = [0u16; 2];
            pending.extend_from_slice(c.encode_utf16(&mut units));
        }
    }
    flush_shifted(&mut pending, &mut out);
    out
}

fn flush_shifted(units: &mut Vec<u16>, out: &mut String) {
    if units.is_empty() {
        return;
    }
    let bytes: Vec<u8> = units.iter().flat_map(|u| u.to_be_bytes()).collect();
    out.push('&');
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], chunk.get(1).copied().unwrap_or(0), chunk.get(2).copied().unwrap_or(0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let chars = chunk.len() + 1; // 1 byte -> 2 chars, 2 -> 3, 3 -> 4
        for i in 0..chars {
            let idx = (n >> (18 - 6 * i)) & 0x3f;
            out.push(char::from(ALPHABET[idx as usize]));
        }
    }
    out.push('-');
    units.clear();
}

fn sextet(c: u8) -> Option<u32> {
    ALPHABET.iter().position(|&a| a == c).map(|p| p as u32)
}

/// Decodes a modified UTF-7 mailbox name. `None` for anything that is not the canonical
/// encoding: raw non-printable or 8-bit bytes, an unterminated or empty-but-not-`&-` shift,
/// printable ASCII hidden in a shifted section, non-zero padding bits, broken UTF-16, or two
/// adjacent shifted sections (the encoder would have merged them).
pub fn decode_mutf7(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    let mut after_shift = false;
    while i < b.len() {
        let c = b[i];
        if c == b'&' {
            let len = b[i + 1..].iter().position(|&x| x == b'-')?;
            let enc = &b[i + 1..i + 1 + len];
            i += len + 2;
            if enc.is_empty() {
                out.push('&');
                after_shift = false;
                continue;
            }
            if after_shift {
                return None;
            }
            let bytes = decode_base64(enc)?;
            if bytes.len() % 2 != 0 {
                return None;
            }
            let units = bytes.chunks(2).map(|p| u16::from_be_bytes([p[0], p[1]]));
            for ch in char::decode_utf16(units) {
                let ch = ch.ok()?;
                if is_direct(ch) {
                    return None;
                }
                out.push(ch);
            }
            after_shift = true;
        } else if (0x20..=0x7e).contains(&c) {
            out.push(char::from(c));
            after_shift = false;
            i += 1;
        } else {
            return None;
        }
    }
    Some(out)
}

/// Strict modified-base64 decoding: no padding, canonical length, zero leftover bits.
fn decode_base64(enc: &[u8]) -> Option<Vec<u8>> {
    if enc.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(enc.len() * 3 / 4);
    let mut acc: u32 = 0;
    let mut bits = 0u32;
    for &c in enc {
        acc = (acc << 6) | sextet(c)?;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    if acc != 0 {
        return None;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let cases: &[(&str, &str)] = &[
            ("INBOX", "INBOX"),
            ("Entwürfe", "Entw&APw-rfe"),
            ("&", "&-"),
            ("a&b", "a&-b"),
            ("台北", "&U,BTFw-"),
            ("~peter/mail/台北/日本語", "~peter/mail/&U,BTFw-/&ZeVnLIqe-"),
            ("Gelöschte Elemente", "Gel&APY-schte Elemente"),
            ("ä&ö", "&AOQ-&-&APY-"),
            ("😀", "&2D3eAA-"),
            ("", ""),
            ("tab\there", "tab&AAk-here"),
            ("Ünïcödé", "&ANw-n&AO8-c&APY-d&AOk-"),
        ];
        for (plain, wire) in cases {
            assert_eq!(encode_mutf7(plain), *wire, "encode {plain}");
            assert_eq!(decode_mutf7(wire).as_deref(), Some(*plain), "decode {wire}");
        }
    }

    #[test]
    fn rejects_non_canonical_and_broken_input() {
        let bad: &[(&str, &str)] = &[
            ("&U,BTFw", "unterminated shift"),
            ("&", "lone ampersand"),
            ("caf\u{e9}", "raw 8-bit character"),
            ("a\tb", "raw control character"),
            ("&AGE-", "printable ASCII hidden in a shift"),
            ("&AOQ-&AOQ-", "adjacent shifted sections"),
            ("&AOR-", "non-zero leftover bits"),
            ("&A-", "truncated sextet"),
            ("&AOQA-", "odd byte count"),
            ("&2D0-", "lone high surrogate"),
            ("&3gA-", "lone low surrogate"),
            ("&U/BTFw-", "standard base64 slash"),
            ("&U,BTFw=-", "padding"),
        ];
        for (wire, why) in bad {
            assert_eq!(decode_mutf7(wire), None, "{why}: {wire}");
        }
    }

    #[test]
    fn every_char_class_round_trips() {
        let mut s = String::new();
        for c in ['a', '&', '-', ' ', '~', 'ä', '\u{7f}', '\u{1}', '中', '\u{10ffff}', '&', 'z'] {
            s.push(c);
            let enc = encode_mutf7(&s);
            assert!(enc.bytes().all(|b| (0x20..=0x7e).contains(&b)), "{enc}");
            assert_eq!(decode_mutf7(&enc).as_deref(), Some(s.as_str()));
        }
    }
}

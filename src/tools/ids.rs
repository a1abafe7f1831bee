//! Opaque message ids and search cursors: server-minted strings that carry everything needed to
//! find the same message again, and nothing that could select a different one silently.
//!
//! A message id is `m1.<hex(account \0 folder)>.<uidvalidity>.<uid>`. A stale UIDVALIDITY makes
//! the lookup fail with `uidvalidity_changed` instead of reading whatever now has that UID.

use sha2::{Digest, Sha256};

/// Longest id or cursor accepted.
pub const MAX_ID_LEN: usize = 2200;

/// A parsed message id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MessageRef {
    pub account: String,
    pub folder: String,
    pub uidvalidity: u32,
    pub uid: u32,
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    s.as_bytes()
        .chunks(2)
        .map(|p| {
            let hi = (p[0] as char).to_digit(16)?;
            let lo = (p[1] as char).to_digit(16)?;
            Some((hi * 16 + lo) as u8)
        })
        .collect()
}

/// Lowercase hex of bytes.
pub fn to_hex(bytes: &[u8]) -> String {
    hex(bytes)
}

impl MessageRef {
    pub fn encode(&self) -> String {
        let mut scope = Vec::with_capacity(self.account.len() + 1 + self.folder.len());
        scope.extend_from_slice(self.account.as_bytes());
        scope.push(0);
        scope.extend_from_slice(self.folder.as_bytes());
        format!("m1.{}.{}.{}", hex(&scope), self.uidvalidity, self.uid)
    }

    /// Parses an id; `None` for anything we did not mint.
    pub fn decode(s: &str) -> Option<MessageRef> {
        if s.len() > MAX_ID_LEN {
            return None;
        }
        let mut it = s.split('.');
        if it.next()? != "m1" {
            return None;
        }
        let scope = unhex(it.next()?)?;
        let uidvalidity: u32 = it.next()?.parse().ok()?;
        let uid: u32 = it.next()?.parse().ok()?;
        if it.next().is_some() || uid == 0 || uidvalidity == 0 {
            return None;
        }
        let split = scope.iter().position(|&b| b == 0)?;
        let account = String::from_utf8(scope[..split].to_vec()).ok()?;
        let folder = String::from_utf8(scope[split + 1..].to_vec()).ok()?;
        if account.is_empty() || folder.is_empty() {
            return None;
        }
        Some(MessageRef { account, folder, uidvalidity, uid })
    }
}

/// Where the next page of a search starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cursor {
    /// Digest of account, folder and query: a cursor only continues the search that made it.
    pub query: String,
    pub uidvalidity: u32,
    /// Results already returned.
    pub offset: usize,
    /// The UID of the last result returned, used to re-anchor if earlier results vanished.
    pub last_uid: u32,
}

impl Cursor {
    /// A short digest identifying a query.
    pub fn digest(canonical_query: &str) -> String {
        hex(&Sha256::digest(canonical_query.as_bytes())[..8])
    }

    pub fn encode(&self) -> String {
        format!("c1.{}.{}.{}.{}", self.query, self.uidvalidity, self.offset, self.last_uid)
    }

    pub fn decode(s: &str) -> Option<Cursor> {
        if s.len() > 200 {
            return None;
        }
        let mut it = s.split('.');
        if it.next()? != "c1" {
            return None;
        }
        let query = it.next()?.to_string();
        if query.len() != 16 || unhex(&query).is_none() {
            return None;
        }
        let c =
            Cursor { query, uidvalidity: it.next()?.parse().ok()?, offset: it.next()?.parse().ok()?, last_uid: it.next()?.parse().ok()? };
        if it.next().is_some() {
            return None;
        }
        Some(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_ids_round_trip_and_reject_forgeries() {
        let r = MessageRef { account: "work".into(), folder: "Entwürfe/a.b".into(), uidvalidity: 17, uid: 4242 };
        let s = r.encode();
        assert_eq!(s, "m1.776f726b00456e7477c3bc7266652f612e62.17.4242");
        assert_eq!(MessageRef::decode(&s), Some(r));
        for bad in [
            "",
            "m1",
            "m2.776f726b00494e424f58.1.1",
            "m1.776f726b00494e424f58.1.0",
            "m1.776f726b00494e424f58.0.1",
            "m1.776f726b494e424f58.1.1",
            "m1.776f726b00494e424f5.1.1",
            "m1.776f726b00494e424f58.1.1.9",
            "m1.776f726b00494e424f58.-1.1",
            "m1.776f726b00494e424f58.1.4294967296",
            "m1.zz6f726b00494e424f58.1.1",
            "m1.00494e424f58.1.1",
        ] {
            assert_eq!(MessageRef::decode(bad), None, "{bad}");
        }
    }

    #[test]
    fn cursors_round_trip() {
        let c = Cursor { query: Cursor::digest("q"), uidvalidity: 9, offset: 20, last_uid: 1234 };
        assert_eq!(Cursor::decode(&c.encode()), Some(c));
        assert_eq!(Cursor::decode("c1.short.1.2.3"), None);
        assert_eq!(Cursor::decode("c1.8e35c2cd3bf6641b.1.2"), None);
    }
}

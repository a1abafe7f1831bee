//! RFC 5322 message composition (being written).

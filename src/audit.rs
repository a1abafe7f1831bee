//! Tamper-evident audit log (being written).

//! SMTP client (being written).

//! What IMAP and SMTP share below TLS: the guard adapter that enforces deadlines, byte budgets
//! and cancellation on the raw socket.

pub mod guard;

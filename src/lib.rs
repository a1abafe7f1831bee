//! mailmoat: a hardened MCP server that lets an AI agent use a real mailbox over IMAP.
//!
//! The binary (`main.rs`) is a thin shell over this library; the library exists so that tests
//! and fuzz targets can reach the pure parts (`content`, `rpc` framing, `config`).

pub mod audit;
pub mod cli;
pub mod compose;
pub mod config;
pub mod content;
pub mod imap;
pub mod log;
pub mod net;
pub mod ratelimit;
pub mod rpc;
pub mod secret;
pub mod server;
pub mod smtp;
pub mod tools;

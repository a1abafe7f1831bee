//! Shared test support: the throwaway mail server, the MCP schema validator and the client driver.
#![allow(dead_code, reason = "each test binary uses a different part of the support code")]

pub mod dovecot;
pub mod fakeimap;
pub mod mcp;
pub mod schema;
pub mod smtpd;

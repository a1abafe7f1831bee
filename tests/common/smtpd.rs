//! Throwaway SMTP server for tests (being written).

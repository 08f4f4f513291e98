//! teams-connector library.
pub mod emulator;

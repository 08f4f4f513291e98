//! teams-connector library.
pub mod emulator;
pub mod transform;

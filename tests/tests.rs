//! The one integration-test binary: the real `teams-connector` executable against an
//! in-process Graph emulator and ingest sink. One module per area.

mod util;

mod badinput;
mod cli;
mod config;
mod delivery;
mod pipeline;
mod throttle;

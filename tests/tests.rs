//! The one integration-test binary: the real `teams-connector` executable against an
//! in-process Graph emulator and ingest sink, and the text stripper against its fixtures.
//! One module per area.

mod util;

mod auth;
mod backfill;
mod badinput;
mod cli;
mod config;
mod delivery;
mod keys;
mod model;
mod ops;
mod pipeline;
mod retries;
mod text;
mod throttle;

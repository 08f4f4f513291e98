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
mod forget;
mod hostile;
mod keys;
mod logs;
mod model;
mod ops;
mod optout;
mod outcome;
mod pipeline;
mod retries;
mod scope;
mod state;
mod text;
mod throttle;

//! steward-loadgen: drives complete OAuth flows against a Steward on
//! loopback and reports rate, latency percentiles, errors and the server's
//! peak memory. `bench` orchestrates the whole matrix in docs/benchmarks.md;
//! `drive` loads a server someone else started.
//!
//! Ordinary HTTP load tools cannot do this: an authorization code is
//! single-use and refresh tokens rotate, so every request depends on the
//! answer to the one before.
// A measurement tool: it times requests and waits on deadlines, which is
// elapsed monotonic time, not an expiry of anything Steward stores.
#![allow(clippy::disallowed_methods)]

pub mod bench;
pub mod http;
pub mod run;
pub mod scenario;
pub mod seed;
pub mod sys;

pub use run::{Load, Report, run};
pub use scenario::{Clients, Scenario, Target};

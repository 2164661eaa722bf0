//! Test support: a throwaway certificate authority, a local HTTPS document host
//! and a loopback DNS server, so that egress and CIMD tests exercise real TLS,
//! real DNS wire format and real sockets while never leaving 127.0.0.0/8 / ::1.
//!
//! This crate is only ever a dev-dependency. A failure while setting up a
//! fixture (cannot bind a socket, cannot mint a certificate) is a broken test
//! environment, and panicking with a message is the clearest way to report
//! that, so `expect` is allowed here and nowhere in production crates.
#![allow(clippy::expect_used)]

pub mod ca;
pub mod document_host;
pub mod metrics;
pub mod nameserver;

pub use ca::TestCa;
pub use document_host::{DocumentHost, TestResponse};
pub use metrics::CountingRecorder;
pub use nameserver::TestNameserver;

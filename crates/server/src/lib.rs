//! Steward's HTTP surface: protocol endpoints, discovery, admin API, operations.

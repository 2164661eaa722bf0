//! Storage traits with SQLite and PostgreSQL implementations and one conformance suite.

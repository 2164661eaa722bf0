//! Client ID Metadata Documents: client_id URL rules, validation, caching, versions.

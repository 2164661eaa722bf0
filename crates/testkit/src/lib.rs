//! Test support: in-process server, test CA, local HTTPS document host, loopback nameserver.

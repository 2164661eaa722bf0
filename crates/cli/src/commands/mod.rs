//! One module per subcommand.

pub mod cimd;
pub mod keys;
pub mod serve;
pub mod users;

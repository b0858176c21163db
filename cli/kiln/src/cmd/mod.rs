//! One module per subcommand. Each exposes an `Args` struct (clap derive)
//! and `run(args) -> Result<(), CliError>`.

pub mod bench;
pub mod compile;
pub mod config;
pub mod import;
pub mod inspect;
pub mod opt;
pub mod run;
pub mod verify;

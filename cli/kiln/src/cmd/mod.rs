//! One module per subcommand. Each exposes an `Args` struct (clap derive)
//! and `run(args) -> Result<(), CliError>`.

pub mod opt;

use std::process::ExitCode;

use clap::Parser;

use chforget::cli::Cli;
use chforget::error::code_of;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(chforget::commands::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            let code = code_of(&error);
            eprintln!("error[{code}]: {error:#}");
            ExitCode::from(code.exit_status())
        }
    }
}

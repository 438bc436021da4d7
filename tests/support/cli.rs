//! The application binary tests start as a child process: this test
//! binary again, running `events::cli::commands()` as `events::cli::run()`
//! does, with its command line in an environment variable (one argument a
//! line). Include it with `#[path = "support/cli.rs"] mod cli_support;`.

/// Runs the command line in the variable `var` and exits with its status;
/// without `var`, returns at once (the test that calls it is then a no-op).
pub async fn run_child(var: &str) {
    let Ok(args) = std::env::var(var) else {
        return;
    };
    let argv = std::iter::once("app").chain(args.lines().filter(|a| !a.is_empty()));
    let mut stdout = std::io::stdout();
    let status = match events::cli::commands().run_to(argv, &mut stdout).await {
        Ok(()) => 0,
        Err(error) => {
            error.report();
            error.exit_code()
        }
    };
    std::process::exit(status.into());
}

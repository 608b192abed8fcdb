//! `simctl`: the platform's command line for operators and auditors (docs/simctl.md).
//!
//! Exit codes (what scripts rely on): 0 ok, 1 usage or local problem, 2 the API refused (4xx),
//! 3 unavailable (network, 5xx, NATS), 4 a bulk job with items not applied, 5 `audit verify`
//! found a problem.

mod audit;
mod bulk;
mod cli;
mod client;
mod config;
mod drift;
mod error;
mod events;
mod history;
mod output;
mod session;
mod sims;

use std::io::{BufRead, IsTerminal, Write};

use clap::{CommandFactory, Parser};

use crate::cli::{AuditCommand, Cli, Command, EventsCommand, LoginArgs};
use crate::client::{Api, Body, Service};
use crate::error::{exit, CliError, Result};

fn main() {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            // clap's own exit code for usage errors is 2, which here means "the API refused".
            let _ = error.print();
            std::process::exit(if error.use_stderr() { exit::USAGE } else { exit::OK });
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("simctl: cannot start: {error}");
            std::process::exit(exit::UNAVAILABLE);
        }
    };
    let code = match runtime.block_on(run(cli)) {
        Ok(()) => exit::OK,
        Err(CliError::Closed) => exit::OK,
        Err(error) => {
            let label = match &error {
                CliError::Partial(_) | CliError::Verification(_) => "simctl",
                _ => "simctl: error",
            };
            eprintln!("{label}: {error}");
            error.exit_code()
        }
    };
    std::process::exit(code);
}

async fn run(cli: Cli) -> Result<()> {
    if let Command::Completions { shell } = cli.command {
        // Generated into memory: clap_complete panics when its writer fails (a closed pipe).
        let mut script = Vec::new();
        clap_complete::generate(shell, &mut Cli::command(), "simctl", &mut script);
        std::io::stdout().write_all(&script)?;
        return Ok(());
    }
    // A chain is checked offline without any profile.
    let command = match cli.command {
        Command::Audit(AuditCommand::Verify(args)) if !args.against_platform => {
            return audit::verify(None, cli.output, args).await
        }
        command => command,
    };
    let profile = config::load(cli.config.as_deref(), cli.profile.as_deref())?;
    let api = Api::new(profile)?;
    let format = cli.output;
    match command {
        Command::Completions { .. } => Ok(()),
        Command::Login(args) => login(&api, args).await,
        Command::Logout => {
            let ended = api.logout().await?;
            eprintln!("{}", if ended { "logged out" } else { "no session to end" });
            Ok(())
        }
        Command::Whoami => {
            let me = api
                .call(
                    Service::Command,
                    reqwest::Method::GET,
                    "/auth/me",
                    Body::None,
                    &[],
                )
                .await?;
            output::object(format, &me.body, &["username", "role", "kind"])
        }
        Command::Sims(command) => sims::run(&api, format, command).await,
        Command::Bulk(command) => bulk::run(&api, format, command).await,
        Command::History(args) => history::history(&api, format, args).await,
        Command::State(args) => history::state(&api, format, args).await,
        Command::Diff(args) => history::diff(&api, format, args).await,
        Command::Events(EventsCommand::Tail(args)) => events::tail(&api, format, args).await,
        Command::Feed(args) => events::feed(&api, format, args).await,
        Command::Audit(command) => audit::run(&api, format, command).await,
    }
}

/// Logs in: the username from the option, the profile or a prompt; the password from stdin,
/// a file or a prompt without echo (never an argument).
async fn login(api: &Api, args: LoginArgs) -> Result<()> {
    let username = match args.username.or(api.profile.username.clone()) {
        Some(name) => name,
        None if std::io::stdin().is_terminal() && !args.password_stdin => {
            eprint!("username: ");
            read_line()?
        }
        None => return Err(CliError::usage("give --username (or `username` in the profile)")),
    };
    let password = if args.password_stdin {
        read_line()?
    } else if let Some(path) = args.password_file.or(api.profile.password_file.clone()) {
        config::read_secret(&path, "password")?
    } else if std::io::stdin().is_terminal() {
        rpassword::prompt_password(format!("password for {username}: "))?
    } else {
        return Err(CliError::usage(
            "no password: use --password-stdin, --password-file, the profile's password_file, or a terminal",
        ));
    };
    if password.is_empty() {
        return Err(CliError::usage("the password is empty"));
    }
    api.login(&username, &password).await?;
    eprintln!(
        "logged in as {username} (profile {}); session kept in {}",
        api.profile.name,
        api.profile.session_path.display()
    );
    Ok(())
}

/// One line of stdin, without its line end.
fn read_line() -> Result<String> {
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(line.trim_end_matches(['\n', '\r']).to_owned())
}

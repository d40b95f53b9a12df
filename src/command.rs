//! The binary's commands: run a node, `keygen`, `devnet`, `chain-spec`, `wallet`. Errors become one line on stderr
//! and a non-zero exit code.

use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use tracing::error;

use crate::clock::SystemClock;
use crate::config::{Cli, Command, KeygenArgs, LogFormat, NodeConfig};
use crate::identity::{to_hex, Identity, KEY_FILE};

/// Entry point of the `qnet-node` binary.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(
                e.kind(),
                ErrorKind::DisplayHelp
                    | ErrorKind::DisplayVersion
                    | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            ) {
                let _ = e.print();
                return ExitCode::SUCCESS;
            }
            let text = e.to_string();
            let line = text
                .lines()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("invalid arguments");
            eprintln!("{line}");
            return ExitCode::from(2);
        }
    };
    match cli.command {
        Some(Command::Keygen(args)) => report(keygen(&args)),
        Some(Command::ChainSpec(args)) => report(crate::wallet::chain_spec(
            &args,
            crate::clock::Clock::now_ms(&SystemClock),
        )),
        Some(Command::Wallet(args)) => {
            report(runtime().and_then(|rt| rt.block_on(crate::wallet::run(args.command))))
        }
        Some(Command::Devnet(args)) => {
            init_logging(LogFormat::Text);
            report(
                runtime().and_then(|rt| rt.block_on(crate::devnet::run(args, wait_for_signal()))),
            )
        }
        None => {
            let config = match NodeConfig::resolve(cli.node) {
                Ok(c) => c,
                Err(e) => return report(Err(e.into())),
            };
            init_logging(config.log_format);
            report(runtime().and_then(|rt| rt.block_on(run_node(config))))
        }
    }
}

fn report(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!(error = %e, "fatal");
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,chitchat=error"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

fn keygen(args: &KeygenArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.data_dir)
        .map_err(|e| anyhow::anyhow!("cannot create data dir {}: {e}", args.data_dir.display()))?;
    let identity = Identity::load_or_create(&args.data_dir.join(KEY_FILE))?;
    println!("node_id {}", identity.node_id());
    println!("public_key {}", to_hex(identity.public_key().as_bytes()));
    Ok(())
}

async fn run_node(config: NodeConfig) -> anyhow::Result<()> {
    let node = tokio::select! {
        node = crate::node::start(config, Arc::new(SystemClock)) => node?,
        _ = wait_for_signal() => {
            tracing::info!("stopped before the node started");
            return Ok(());
        }
    };
    wait_for_signal().await;
    node.shutdown().await;
    Ok(())
}

/// Waits for SIGINT or SIGTERM.
pub async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = match signal(SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

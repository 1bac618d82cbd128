//! `ferrovs --config FILE [--check]`: the load balancer daemon.
use clap::Parser;
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    version,
    about = "ferrovs: a DPDK layer-4 load balancer (LVS NAT/DR/TUN)"
)]
struct Args {
    /// The YAML configuration file.
    #[arg(long, short, required_unless_present = "openapi")]
    config: Option<PathBuf>,
    /// Print the REST API's OpenAPI description (as docs/openapi.json holds it) and exit.
    #[arg(long)]
    openapi: bool,
    /// Validate the configuration and exit (0 valid; otherwise every error is listed).
    #[arg(long)]
    check: bool,
}

fn main() {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    if args.openapi {
        print!("{}", mgmt::api::openapi_json());
        return;
    }
    let config = args.config.expect("required unless --openapi");
    if args.check {
        match mgmt::daemon::check(&config) {
            Ok((_, warnings)) => {
                for w in &warnings {
                    println!("warning: {w}");
                }
                println!("{}: valid", config.display());
            }
            Err(e) => {
                eprintln!("{e:#}");
                std::process::exit(1);
            }
        }
        return;
    }
    if let Err(e) = mgmt::daemon::run(config) {
        eprintln!("ferrovs: {e:#}");
        std::process::exit(1);
    }
}

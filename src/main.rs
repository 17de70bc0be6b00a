//! The `vxswitch` command: parses the CLI and configuration, then hands over to the library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use vxswitch::config::{Config, DEFAULT_CONTROL_SOCKET};

/// vxswitch: a userspace overlay switch (VXLAN / ESP) for container and VM hosts.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the switch in the foreground until SIGINT/SIGTERM.
    Run {
        /// Configuration file (TOML).
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Validate a configuration file without touching the system.
    Check {
        /// Configuration file (TOML).
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Print a running daemon's counters, peers and FDB as JSON.
    Stats {
        /// The daemon's control socket.
        #[arg(long, default_value = DEFAULT_CONTROL_SOCKET)]
        socket: PathBuf,
    },
    /// Build two hosts with a container each in network namespaces, run the overlay between
    /// them, show ping and throughput, and remove everything again (needs root).
    Demo {
        /// Seconds of throughput measurement.
        #[arg(long, default_value_t = 3)]
        seconds: u64,
    },
    /// Measure every data path (veth, host-subnet, kernel vxlan, vxswitch VXLAN/ESP, kernel
    /// xfrm) side by side in network namespaces (needs root).
    Bench(vxswitch::bench::BenchArgs),
    /// Small traffic tools used by the demo and tests (ICMP echo, TCP throughput).
    #[command(hide = true, subcommand)]
    Probe(vxswitch::sys::probe::ProbeCommand),
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("VXSWITCH_LOG").unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result: anyhow::Result<()> = match cli.command {
        Command::Run { config } => Config::load(&config)
            .map_err(anyhow::Error::from)
            .and_then(|c| vxswitch::sys::daemon::run(&c).map_err(anyhow::Error::from)),
        Command::Check { config } => Config::load(&config).map(|_| println!("{}: ok", config.display())).map_err(Into::into),
        Command::Stats { socket } => vxswitch::sys::control_socket::query(&socket, "stats")
            .map(|s| print!("{s}"))
            .map_err(Into::into),
        Command::Demo { seconds } => vxswitch::testnet::demo::run(seconds),
        Command::Bench(args) => vxswitch::bench::run(args),
        Command::Probe(cmd) => vxswitch::sys::probe::run(cmd),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vxswitch: {e:#}");
            ExitCode::FAILURE
        }
    }
}

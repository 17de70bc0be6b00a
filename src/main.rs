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
    /// Print a running daemon's counters, peers and FDB as JSON (the first FDB entries of each
    /// network; `--fdb-offset` pages through the whole FDB).
    Stats {
        /// The daemon's control socket.
        #[arg(long, default_value = DEFAULT_CONTROL_SOCKET)]
        socket: PathBuf,
        /// Print one page of the FDB from this entry on, instead of the status.
        #[arg(long)]
        fdb_offset: Option<usize>,
    },
    /// Print a running daemon's counters in the Prometheus text format.
    Metrics {
        /// The daemon's control socket.
        #[arg(long, default_value = DEFAULT_CONTROL_SOCKET)]
        socket: PathBuf,
    },
    /// Print a running daemon's gossip members, their state and records as JSON.
    Peers {
        /// The daemon's control socket.
        #[arg(long, default_value = DEFAULT_CONTROL_SOCKET)]
        socket: PathBuf,
    },
    /// Make a running daemon re-read its configuration file and apply the difference (as SIGHUP
    /// does); prints what changed, or why nothing did.
    Reload {
        /// The daemon's control socket.
        #[arg(long, default_value = DEFAULT_CONTROL_SOCKET)]
        socket: PathBuf,
    },
    /// Bind, unbind or list floating IPs on a running daemon (until its next restart or reload;
    /// `[[floating_ip]]` in the configuration lasts). Every host that may hold the address needs
    /// the same binding.
    Floating {
        /// What to do.
        #[command(subcommand)]
        action: FloatingAction,
        /// The daemon's control socket.
        #[arg(long, default_value = DEFAULT_CONTROL_SOCKET, global = true)]
        socket: PathBuf,
    },
    /// Define, remove or list service VIPs on a running daemon (spread to every host by gossip;
    /// until its next restart or reload: `[[service]]` in the configuration lasts).
    Service {
        /// What to do.
        #[command(subcommand)]
        action: ServiceAction,
        /// The daemon's control socket.
        #[arg(long, default_value = DEFAULT_CONTROL_SOCKET, global = true)]
        socket: PathBuf,
    },
    /// Print this host's ESP public key (creating the host key file on first use).
    Pubkey {
        /// Configuration file (TOML); its `[esp] key_file` is used.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Forget the gossip signing key and underlay trusted for HOST, so its next record is trusted
    /// anew (after its key was rotated or it moved): edits the saved trust store and tells the
    /// running daemon, if any.
    Forget {
        /// The host's gossip name.
        host: String,
        /// Configuration file (TOML); its `[gossip] state_dir` holds the trust store.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Act as the CNI plugin (`CNI_COMMAND` etc. in the environment, network configuration on
    /// stdin). Installed as /opt/cni/bin/vxswitch, the binary run without arguments by a
    /// container runtime does the same.
    Cni,
    /// Write a new random 32-byte cluster key (hex) to FILE with mode 0600.
    Genkey {
        /// Where to write the key; refuses to overwrite an existing file.
        file: PathBuf,
    },
    #[cfg(feature = "lab")]
    /// Build two hosts with a container each in network namespaces, run the overlay between
    /// them, show ping and throughput, and remove everything again (needs root).
    Demo {
        /// Seconds of throughput measurement.
        #[arg(long, default_value_t = 3)]
        seconds: u64,
    },
    #[cfg(feature = "lab")]
    /// Measure every data path (veth, host-subnet, kernel vxlan, vxswitch VXLAN/ESP, kernel
    /// xfrm) side by side in network namespaces (needs root).
    Bench(vxswitch::bench::BenchArgs),
    #[cfg(feature = "lab")]
    /// Small traffic tools used by the demo and tests (ICMP echo, TCP throughput).
    #[command(hide = true, subcommand)]
    Probe(vxswitch::testnet::probe::ProbeCommand),
}

/// `vxswitch floating ...`.
#[derive(Debug, Subcommand)]
enum FloatingAction {
    /// Bind ADDRESS (on uplink INTERFACE) to container CONTAINER of network VNI.
    Add {
        /// The floating (external) address.
        address: std::net::Ipv4Addr,
        /// The uplink interface it lives on.
        #[arg(long)]
        interface: String,
        /// The container's address.
        #[arg(long)]
        container: std::net::Ipv4Addr,
        /// The container's network.
        #[arg(long)]
        vni: u32,
    },
    /// Unbind ADDRESS (released at once where it is held).
    Del {
        /// The floating address.
        address: std::net::Ipv4Addr,
    },
    /// Show the floating IPs, their owners and the hand-over counters.
    List,
}

/// `vxswitch service ...`.
#[derive(Debug, Subcommand)]
enum ServiceAction {
    /// Define SERVICE (VIP:PORT/PROTO, e.g. 10.96.0.10:80/tcp) over BACKEND container addresses.
    Add {
        /// VIP:PORT/PROTO.
        service: String,
        /// Backend container addresses (same port).
        #[arg(required = true)]
        backends: Vec<std::net::Ipv4Addr>,
    },
    /// Remove this host's definition of SERVICE.
    Del {
        /// VIP:PORT/PROTO.
        service: String,
    },
    /// Show the services, their backends and which are live.
    List,
}

fn main() -> ExitCode {
    // A container runtime runs /opt/cni/bin/vxswitch without arguments, CNI_COMMAND set.
    if std::env::args_os().len() == 1 && std::env::var_os("CNI_COMMAND").is_some() {
        return ExitCode::from(vxswitch::sys::cni::main() as u8);
    }
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("VXSWITCH_LOG").unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    if let Command::Cni = cli.command {
        return ExitCode::from(vxswitch::sys::cni::main() as u8);
    }
    let result: anyhow::Result<()> = match cli.command {
        Command::Run { config } => Config::load(&config)
            .map_err(anyhow::Error::from)
            .and_then(|c| vxswitch::sys::daemon::run(&c, Some(&config)).map_err(anyhow::Error::from)),
        Command::Check { config } => Config::load(&config)
            .map(|c| {
                println!("{}: ok", config.display());
                for n in &c.networks {
                    println!("{}", n.mtu_line(c.underlay.mtu));
                }
            })
            .map_err(Into::into),
        Command::Stats { socket, fdb_offset } => {
            let command = fdb_offset.map_or("stats".to_string(), |o| format!("fdb {o}"));
            vxswitch::sys::daemon::control_socket::query(&socket, &command).map(|s| print!("{s}")).map_err(Into::into)
        }
        Command::Metrics { socket } => {
            vxswitch::sys::daemon::control_socket::query(&socket, "metrics").map(|s| print!("{s}")).map_err(Into::into)
        }
        Command::Peers { socket } => {
            vxswitch::sys::daemon::control_socket::query(&socket, "peers").map(|s| print!("{s}")).map_err(Into::into)
        }
        Command::Reload { socket } => reload(&socket),
        Command::Cni => unreachable!("handled above"),
        Command::Floating { action, socket } => floating(&socket, action),
        Command::Service { action, socket } => {
            let command = match action {
                ServiceAction::Add { service, backends } => {
                    format!("service add {service} {}", backends.iter().map(ToString::to_string).collect::<Vec<_>>().join(" "))
                }
                ServiceAction::Del { service } => format!("service del {service}"),
                ServiceAction::List => "service list".to_string(),
            };
            control_command(&socket, &command)
        }
        Command::Genkey { file } => write_cluster_key(&file),
        Command::Forget { host, config } => forget(&host, &config),
        Command::Pubkey { config } => Config::load(&config).map_err(anyhow::Error::from).and_then(|c| {
            let key = vxswitch::ipsec::HostKey::load_or_create(&c.esp.key_file)
                .map_err(|e| anyhow::anyhow!("{}: {e}", c.esp.key_file.display()))?;
            println!("{}", hex::encode(key.public_key()));
            Ok(())
        }),
        #[cfg(feature = "lab")]
        Command::Demo { seconds } => vxswitch::testnet::demo::run(seconds),
        #[cfg(feature = "lab")]
        Command::Bench(args) => vxswitch::bench::run(args),
        #[cfg(feature = "lab")]
        Command::Probe(cmd) => vxswitch::testnet::probe::run(cmd),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vxswitch: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Send a `floating` command; an answer with an error is an error (exit status 1).
fn floating(socket: &std::path::Path, action: FloatingAction) -> anyhow::Result<()> {
    let command = match action {
        FloatingAction::Add { address, interface, container, vni } => format!("floating add {address} {interface} {container} {vni}"),
        FloatingAction::Del { address } => format!("floating del {address}"),
        FloatingAction::List => "floating list".to_string(),
    };
    control_command(socket, &command)
}

/// Send `command`; an answer with an error is an error (exit status 1).
fn control_command(socket: &std::path::Path, command: &str) -> anyhow::Result<()> {
    let answer = vxswitch::sys::daemon::control_socket::query(socket, command)?;
    let value: serde_json::Value = serde_json::from_str(&answer).map_err(|e| anyhow::anyhow!("unexpected answer ({e}): {answer}"))?;
    if let Some(error) = value.get("error").and_then(|e| e.as_str()) {
        anyhow::bail!("{error}");
    }
    print!("{answer}");
    Ok(())
}

/// Ask the daemon to reload; a refused reload is an error (exit status 1).
fn reload(socket: &std::path::Path) -> anyhow::Result<()> {
    let answer = vxswitch::sys::daemon::control_socket::query(socket, "reload")?;
    let value: serde_json::Value = serde_json::from_str(&answer).map_err(|e| anyhow::anyhow!("unexpected answer ({e}): {answer}"))?;
    if let Some(error) = value.get("error").and_then(|e| e.as_str()) {
        anyhow::bail!("reload refused, running configuration kept: {error}");
    }
    print!("{answer}");
    Ok(())
}

fn forget(host: &str, config: &std::path::Path) -> anyhow::Result<()> {
    let config = Config::load(config)?;
    let files =
        vxswitch::node::state::StateFiles::of(&config).ok_or_else(|| anyhow::anyhow!("the configuration has no [gossip] section"))?;
    let saved = files.forget(host).map_err(|e| anyhow::anyhow!("{}: {e}", files.trust().display()))?;
    let running = vxswitch::sys::daemon::control_socket::query(&config.control_socket, &format!("forget {host}")).is_ok();
    let what = if saved { "forgotten" } else { "was not trusted" };
    let daemon = if running { "; the running daemon was told" } else { "; no daemon running" };
    println!("{host}: {what} in {}{daemon}", files.trust().display());
    Ok(())
}

fn write_cluster_key(file: &std::path::Path) -> anyhow::Result<()> {
    vxswitch::control::ClusterKey::create(file)?;
    println!("wrote a new cluster key to {}", file.display());
    Ok(())
}

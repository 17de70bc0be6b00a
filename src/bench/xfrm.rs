//! Kernel IPsec (xfrm) ESP between the hosts: the kernel's own encrypted data path, for
//! comparison with the vxswitch ESP dataplane.
//!
//! Support is probed, not assumed: [`probe`] tries to install one AES-GCM SA (RFC 4106, the
//! algorithm vxswitch uses) in a scratch namespace. Kernels built without the ESP/AEAD modules
//! reject it ("Requested AEAD algorithm not found"), and the mode is then reported as
//! unsupported by this kernel, with the kernel's message.
//!
//! When supported, [`setup`] puts tunnel-mode SAs and policies between every pair of hosts on top
//! of host-subnet routing, the way flannel's and Calico's IPsec modes do: traffic between the
//! container subnets is encrypted host to host, nothing else is. The keys are fixed benchmark
//! keys that live only in the lab's throwaway namespaces.

use std::io;
use std::net::Ipv4Addr;

use crate::testnet::lab::{host_subnet, underlay_ip, Lab};
use crate::testnet::netns::Netns;

/// The AEAD algorithm, as `ip xfrm` names it: AES-GCM with a 16-byte ICV (RFC 4106).
pub const ALGO: &str = "rfc4106(gcm(aes))";

/// Container MTU over xfrm tunnel mode: 1500 minus outer IPv4 (20), ESP header (8), IV (8),
/// trailer (2 + up to 3 padding) and ICV (16), rounded down.
pub const MTU: u32 = 1438;

/// SPI of the SA carrying traffic from host `from` to host `to`.
fn spi(from: usize, to: usize) -> u32 {
    0x1000 + 16 * from as u32 + to as u32
}

/// Benchmark key material of an SA: 32 key bytes + 4 salt bytes, as hex for `ip xfrm`.
fn key(spi: u32) -> String {
    let mut k = String::from("0x");
    for i in 0..36u32 {
        k.push_str(&format!("{:02x}", (spi.wrapping_mul(31).wrapping_add(i * 7)) & 0xff));
    }
    k
}

/// `ip xfrm state add` arguments for the SA `src -> dst`.
fn state_args(src: Ipv4Addr, dst: Ipv4Addr, spi: u32) -> Vec<String> {
    [
        "xfrm",
        "state",
        "add",
        "src",
        &src.to_string(),
        "dst",
        &dst.to_string(),
        "proto",
        "esp",
        "spi",
        &format!("0x{spi:08x}"),
        "reqid",
        "1",
        "mode",
        "tunnel",
        "aead",
        ALGO,
        &key(spi),
        "128",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn ip_in(ns: &Netns, args: &[String]) -> io::Result<()> {
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    ns.ip(&refs)
}

/// Whether this kernel accepts an AES-GCM ESP SA; `Err` carries the kernel's answer.
/// Uses (and removes) the scratch namespace `vxs-bxfrm-PID`.
pub fn probe() -> Result<(), String> {
    let ns = Netns::create(&format!("vxs-bxfrm-{}", std::process::id())).map_err(|e| e.to_string())?;
    let args = state_args(underlay_ip(0), underlay_ip(1), spi(0, 1));
    ip_in(&ns, &args).map_err(|e| {
        let text = e.to_string();
        // Keep the kernel's own words (after the command echo) when there are any.
        text.rsplit("): ").next().unwrap_or(&text).trim().to_string()
    })
}

/// Tunnel-mode ESP between every pair of hosts of a lab already routing per-host subnets
/// ([`Addressing::PerHost`](crate::testnet::lab::Addressing) plus host-subnet routes).
/// // = ip xfrm state add src L dst P proto esp spi S reqid 1 mode tunnel aead 'rfc4106(gcm(aes))' K 128
/// //   ip xfrm policy add src LOCAL_SUBNET dst PEER_SUBNET dir out tmpl src L dst P proto esp reqid 1 mode tunnel
pub fn setup(lab: &Lab) -> io::Result<()> {
    let n = lab.hosts.len();
    for i in 0..n {
        let ns = &lab.hosts[i].ns;
        let local = underlay_ip(i);
        for k in (0..n).filter(|&k| k != i) {
            let peer = underlay_ip(k);
            ip_in(ns, &state_args(local, peer, spi(i, k)))?;
            ip_in(ns, &state_args(peer, local, spi(k, i)))?;
            let (mine, theirs) = (host_subnet(i).to_string(), host_subnet(k).to_string());
            for (src, dst, dir, tsrc, tdst) in
                [(&mine, &theirs, "out", local, peer), (&theirs, &mine, "in", peer, local), (&theirs, &mine, "fwd", peer, local)]
            {
                ns.ip(&[
                    "xfrm",
                    "policy",
                    "add",
                    "src",
                    src,
                    "dst",
                    dst,
                    "dir",
                    dir,
                    "tmpl",
                    "src",
                    &tsrc.to_string(),
                    "dst",
                    &tdst.to_string(),
                    "proto",
                    "esp",
                    "reqid",
                    "1",
                    "mode",
                    "tunnel",
                ])?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sa_arguments_carry_36_bytes_of_key_material_and_distinct_spis() {
        let args = state_args(underlay_ip(0), underlay_ip(1), spi(0, 1));
        let k = &args[args.len() - 2];
        assert_eq!(k.len(), 2 + 72);
        assert_eq!(args[args.len() - 1], "128");
        assert!(args.contains(&ALGO.to_string()));
        assert_ne!(spi(0, 1), spi(1, 0));
        assert_ne!(key(spi(0, 1)), key(spi(1, 0)));
    }
}

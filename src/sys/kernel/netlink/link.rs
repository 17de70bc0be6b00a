//! Links: lookup, up/down, MTU, bridge membership, bridge/veth/VXLAN creation, deletion.

use std::net::IpAddr;

use futures::TryStreamExt;
use rtnetlink::packet_route::link::{InfoData, InfoKind, InfoVxlan, LinkAttribute, LinkFlags, LinkInfo as NlLinkInfo, LinkMessage};
use rtnetlink::{LinkBridge, LinkMessageBuilder, LinkUnspec, LinkVeth, LinkVxlan};

use super::{Netlink, NetlinkError, Result};

/// What the kernel reports about one link (`ip link show`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkInfo {
    /// Interface index.
    pub index: u32,
    /// Interface name.
    pub name: String,
    /// MTU in bytes.
    pub mtu: u32,
    /// Administratively up (IFF_UP).
    pub up: bool,
    /// Index of the bridge (or other master) this link is enslaved to.
    pub master: Option<u32>,
    /// The VNI when the link is a VXLAN device (`ip -d link show`: `vxlan id N`), else `None`.
    pub vxlan_id: Option<u32>,
}

impl LinkInfo {
    fn from_message(msg: &LinkMessage) -> Self {
        let mut info = LinkInfo {
            index: msg.header.index,
            name: String::new(),
            mtu: 0,
            up: msg.header.flags.contains(LinkFlags::Up),
            master: None,
            vxlan_id: None,
        };
        for attr in &msg.attributes {
            match attr {
                LinkAttribute::IfName(n) => info.name = n.clone(),
                LinkAttribute::Mtu(m) => info.mtu = *m,
                LinkAttribute::Controller(c) => info.master = Some(*c),
                LinkAttribute::LinkInfo(infos) => info.vxlan_id = vxlan_id(infos),
                _ => {}
            }
        }
        info
    }
}

/// The VNI of a link whose kind is `vxlan`.
fn vxlan_id(infos: &[NlLinkInfo]) -> Option<u32> {
    if !infos.iter().any(|i| matches!(i, NlLinkInfo::Kind(InfoKind::Vxlan))) {
        return None;
    }
    infos.iter().find_map(|i| match i {
        NlLinkInfo::Data(InfoData::Vxlan(data)) => data.iter().find_map(|d| match d {
            InfoVxlan::Id(id) => Some(*id),
            _ => None,
        }),
        _ => None,
    })
}

/// Parameters of a kernel VXLAN device, as Rancher/flannel create it:
/// `ip link add vtep1042 type vxlan id 1042 dstport 4789 local IP dev DEV nolearning`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VxlanSpec {
    /// Device name (`vtep<vni>` by convention).
    pub name: String,
    /// VXLAN network identifier (24 bits).
    pub vni: u32,
    /// UDP destination port (IANA 4789; the Linux default would be 8472).
    pub dstport: u16,
    /// Local underlay address used as the outer source (`local6` when IPv6).
    pub local: IpAddr,
    /// Underlay device index (`dev DEV`), if pinned.
    pub dev: Option<u32>,
    /// Whether the kernel learns FDB entries from received packets; vxswitch feeds the FDB
    /// from the control plane, so this is off (`nolearning`).
    pub learning: bool,
    /// Answer ARP requests from the device's neighbour table (`proxy`); the kernel then
    /// consumes every ARP frame the device would send instead of tunnelling it.
    pub proxy: bool,
}

impl VxlanSpec {
    /// `vtep<vni>` on port 4789 with `nolearning`, sourced from `local` over device `dev`.
    pub fn new(vni: u32, local: IpAddr, dev: Option<u32>) -> Self {
        VxlanSpec { name: format!("vtep{vni}"), vni, dstport: 4789, local, dev, learning: false, proxy: false }
    }
}

impl Netlink {
    /// Interface index of `name`, or `None` if there is no such link.
    // = ip link show NAME
    pub fn find_link(&self, name: &str) -> Result<Option<LinkInfo>> {
        let op = format!("link show {name}");
        let mut req = self.handle.link().get().match_name(name.to_string()).execute();
        match self.run(req.try_next()) {
            Ok(Some(msg)) => Ok(Some(LinkInfo::from_message(&msg))),
            Ok(None) => Ok(None),
            Err(e) => {
                let e = NetlinkError::request(op, e);
                if e.is_not_found() {
                    Ok(None)
                } else {
                    Err(e)
                }
            }
        }
    }

    /// Interface index of `name`; [`NetlinkError::NoSuchLink`] if it does not exist.
    // = ip link show NAME
    pub fn link_index(&self, name: &str) -> Result<u32> {
        self.find_link(name)?.map(|l| l.index).ok_or_else(|| NetlinkError::NoSuchLink(name.into()))
    }

    /// State of the link with index `index`.
    // = ip link show dev INDEX
    pub fn link(&self, index: u32) -> Result<LinkInfo> {
        let op = format!("link show index {index}");
        let mut req = self.handle.link().get().match_index(index).execute();
        match self.run(req.try_next()) {
            Ok(Some(msg)) => Ok(LinkInfo::from_message(&msg)),
            Ok(None) => Err(NetlinkError::Unexpected { op, detail: "no link message".into() }),
            Err(e) => Err(NetlinkError::request(op, e)),
        }
    }

    fn link_set(&self, op: String, msg: LinkMessage) -> Result<()> {
        self.run(self.handle.link().set(msg).execute()).map_err(|e| NetlinkError::request(op, e))
    }

    fn link_add(&self, op: String, name: &str, msg: LinkMessage) -> Result<u32> {
        self.run(self.handle.link().add(msg).execute()).map_err(|e| NetlinkError::request(op, e))?;
        self.link_index(name)
    }

    /// Brings the link up.
    // = ip link set dev DEV up
    pub fn set_up(&self, index: u32) -> Result<()> {
        self.link_set(format!("link set {index} up"), LinkUnspec::new_with_index(index).up().build())
    }

    /// Brings the link down.
    // = ip link set dev DEV down
    pub fn set_down(&self, index: u32) -> Result<()> {
        let msg = LinkUnspec::new_with_index(index).down().build();
        self.link_set(format!("link set {index} down"), msg)
    }

    /// Sets the link's MTU.
    // = ip link set dev DEV mtu MTU
    pub fn set_mtu(&self, index: u32, mtu: u32) -> Result<()> {
        let msg = LinkUnspec::new_with_index(index).mtu(mtu).build();
        self.link_set(format!("link set {index} mtu {mtu}"), msg)
    }

    /// Enslaves the link to a bridge (or any master device).
    // = ip link set dev DEV master BRIDGE
    pub fn set_master(&self, index: u32, master: u32) -> Result<()> {
        let msg = LinkUnspec::new_with_index(index).controller(master).build();
        self.link_set(format!("link set {index} master {master}"), msg)
    }

    /// Creates a Linux bridge (left down, like iproute2) and returns its index.
    // = ip link add NAME type bridge
    pub fn create_bridge(&self, name: &str) -> Result<u32> {
        let msg = LinkMessageBuilder::<LinkBridge>::new(name).build();
        self.link_add(format!("link add {name} type bridge"), name, msg)
    }

    /// Creates a veth pair and returns the index of `name` (the peer is `peer`).
    // = ip link add NAME type veth peer name PEER
    pub fn create_veth(&self, name: &str, peer: &str) -> Result<u32> {
        let msg = LinkVeth::new(name, peer).build();
        self.link_add(format!("link add {name} type veth peer name {peer}"), name, msg)
    }

    /// Creates a kernel VXLAN device and returns its index.
    // = ip link add vtep1042 type vxlan id 1042 dstport 4789 local IP dev DEV nolearning [proxy]
    pub fn create_vxlan(&self, spec: &VxlanSpec) -> Result<u32> {
        let b = LinkVxlan::new(&spec.name, spec.vni).port(spec.dstport).learning(spec.learning).proxy(spec.proxy);
        // IFLA_VXLAN_LOCAL or IFLA_VXLAN_LOCAL6: the kernel then sends and receives over that family.
        let mut b = match spec.local {
            IpAddr::V4(ip) => b.local(ip),
            IpAddr::V6(ip) => b.local6(ip),
        };
        if let Some(dev) = spec.dev {
            b = b.dev(dev);
        }
        let op = format!(
            "link add {} type vxlan id {} dstport {} local {}{}{}{}",
            spec.name,
            spec.vni,
            spec.dstport,
            spec.local,
            spec.dev.map(|d| format!(" dev {d}")).unwrap_or_default(),
            if spec.learning { "" } else { " nolearning" },
            if spec.proxy { " proxy" } else { "" }
        );
        self.link_add(op, &spec.name, b.build())
    }

    /// Deletes the link (a veth deletes its peer too).
    // = ip link del dev DEV
    pub fn delete_link(&self, index: u32) -> Result<()> {
        self.run(self.handle.link().del(index).execute()).map_err(|e| NetlinkError::request(format!("link del {index}"), e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn rancher_vxlan_defaults() {
        let s = VxlanSpec::new(1042, Ipv4Addr::new(198, 18, 0, 1).into(), Some(7));
        assert_eq!(s.name, "vtep1042");
        assert_eq!(s.dstport, 4789);
        assert!(!s.learning);
        assert_eq!(s.dev, Some(7));
    }

    #[test]
    fn link_info_reads_name_mtu_master_and_up() {
        let mut msg = LinkMessage::default();
        msg.header.index = 5;
        msg.header.flags = LinkFlags::Up;
        msg.attributes.push(LinkAttribute::IfName("veth0".into()));
        msg.attributes.push(LinkAttribute::Mtu(1450));
        msg.attributes.push(LinkAttribute::Controller(3));
        let info = LinkInfo::from_message(&msg);
        assert_eq!(info, LinkInfo { index: 5, name: "veth0".into(), mtu: 1450, up: true, master: Some(3), vxlan_id: None });
    }
}

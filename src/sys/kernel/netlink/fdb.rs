//! Bridge FDB entries of a VXLAN device and IPv4 neighbour (ARP) entries.
//!
//! A kernel VXLAN device in `nolearning` mode floods broadcast, unknown-unicast and multicast
//! frames to every remote listed under the all-zero MAC. There is one such entry *per peer*,
//! so the entries must be *appended* (NLM_F_APPEND): a plain create or replace keeps only one.
//! The rtnetlink crate has no append request, so [`Netlink::fdb_append`] builds the
//! RTM_NEWNEIGH message itself and sends it through the handle's raw `request()`, exactly as
//! `bridge fdb append` does (family AF_BRIDGE, state NOARP|PERMANENT, flag NTF_SELF).

use std::net::{IpAddr, Ipv4Addr};

use futures::StreamExt;
use rtnetlink::packet_core::{NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_APPEND, NLM_F_CREATE, NLM_F_REPLACE, NLM_F_REQUEST};
use rtnetlink::packet_route::neighbour::{NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourMessage, NeighbourState};
use rtnetlink::packet_route::route::RouteType;
use rtnetlink::packet_route::{AddressFamily, RouteNetlinkMessage};

use super::{Netlink, NetlinkError, Result};

/// The all-zero MAC: FDB entries under it are the flood list of a VXLAN device.
pub const FLOOD_MAC: [u8; 6] = [0; 6];

/// NUD_NOARP | NUD_PERMANENT, the state `bridge fdb add/append/replace` uses by default.
const FDB_STATE: u16 = 0x40 | 0x80;

/// Formats a MAC the iproute2 way (`aa:bb:cc:dd:ee:ff`).
pub(crate) fn mac_str(mac: &[u8; 6]) -> String {
    mac.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}

/// A bridge-family neighbour message for `mac` on device `index`, optionally `dst REMOTE`.
fn fdb_message(index: u32, mac: [u8; 6], remote: Option<IpAddr>) -> NeighbourMessage {
    let mut msg = NeighbourMessage::default();
    msg.header.family = AddressFamily::Bridge;
    msg.header.ifindex = index;
    msg.header.state = NeighbourState::Other(FDB_STATE);
    msg.header.flags = NeighbourFlags::Own; // NTF_SELF: the device's own FDB, not a master's
    msg.header.kind = RouteType::Unspec;
    msg.attributes.push(NeighbourAttribute::LinkLayerAddress(mac.to_vec()));
    // NDA_DST is 4 bytes for an IPv4 remote and 16 for an IPv6 one (the vxlan driver's remote6).
    match remote {
        Some(IpAddr::V4(ip)) => msg.attributes.push(NeighbourAttribute::Destination(NeighbourAddress::Inet(ip))),
        Some(IpAddr::V6(ip)) => msg.attributes.push(NeighbourAttribute::Destination(NeighbourAddress::Inet6(ip))),
        None => {}
    }
    msg
}

impl Netlink {
    /// Sends a raw request and waits for the kernel's ACK or error.
    fn request_ack(&self, op: String, msg: RouteNetlinkMessage, flags: u16) -> Result<()> {
        let mut handle = self.handle.clone();
        let mut req = NetlinkMessage::from(msg);
        req.header.flags = NLM_F_REQUEST | NLM_F_ACK | flags;
        let result = self.run(async move {
            let mut answers = handle.request(req)?;
            while let Some(answer) = answers.next().await {
                if let NetlinkPayload::Error(e) = answer.payload {
                    return Err(rtnetlink::Error::NetlinkError(e));
                }
            }
            Ok(())
        });
        result.map_err(|e| NetlinkError::request(op, e))
    }

    /// Appends `mac -> remote` to the device's FDB, keeping other remotes for the same MAC.
    // = bridge fdb append MAC dev vtep1042 dst PEER
    pub fn fdb_append(&self, index: u32, mac: [u8; 6], remote: IpAddr) -> Result<()> {
        let op = format!("fdb append {} dev {index} dst {remote}", mac_str(&mac));
        let msg = RouteNetlinkMessage::NewNeighbour(fdb_message(index, mac, Some(remote)));
        self.request_ack(op, msg, NLM_F_CREATE | NLM_F_APPEND)
    }

    /// Adds `remote` to the device's flood list (the all-zero MAC entry).
    // = bridge fdb append 00:00:00:00:00:00 dev vtep1042 dst PEER
    pub fn fdb_append_flood(&self, index: u32, remote: IpAddr) -> Result<()> {
        self.fdb_append(index, FLOOD_MAC, remote)
    }

    /// Points `mac` at `remote`, replacing any previous remote of that MAC.
    // = bridge fdb replace MAC dev vtep1042 dst PEER
    pub fn fdb_replace(&self, index: u32, mac: [u8; 6], remote: IpAddr) -> Result<()> {
        let op = format!("fdb replace {} dev {index} dst {remote}", mac_str(&mac));
        let msg = RouteNetlinkMessage::NewNeighbour(fdb_message(index, mac, Some(remote)));
        self.request_ack(op, msg, NLM_F_CREATE | NLM_F_REPLACE)
    }

    /// Deletes the FDB entry of `mac` (only the one towards `remote`, if given).
    // = bridge fdb del MAC dev vtep1042 [dst PEER]
    pub fn fdb_delete(&self, index: u32, mac: [u8; 6], remote: Option<IpAddr>) -> Result<()> {
        let dst = remote.map(|r| format!(" dst {r}")).unwrap_or_default();
        let op = format!("fdb del {} dev {index}{dst}", mac_str(&mac));
        let msg = RouteNetlinkMessage::DelNeighbour(fdb_message(index, mac, remote));
        self.request_ack(op, msg, 0)
    }

    /// Installs a permanent ARP entry `ip -> mac` on the device.
    // = ip neigh replace IP lladdr MAC dev vtep1042 nud permanent
    pub fn neigh_replace(&self, index: u32, ip: Ipv4Addr, mac: [u8; 6]) -> Result<()> {
        let op = format!("neigh replace {ip} lladdr {} dev {index} nud permanent", mac_str(&mac));
        let req = self.handle.neighbours().add(index, IpAddr::V4(ip)).link_layer_address(&mac).state(NeighbourState::Permanent).replace();
        self.run(req.execute()).map_err(|e| NetlinkError::request(op, e))
    }

    /// Deletes the ARP entry of `ip` on the device.
    // = ip neigh del IP dev vtep1042
    pub fn neigh_delete(&self, index: u32, ip: Ipv4Addr) -> Result<()> {
        let mut msg = NeighbourMessage::default();
        msg.header.family = AddressFamily::Inet;
        msg.header.ifindex = index;
        msg.attributes.push(NeighbourAttribute::Destination(NeighbourAddress::Inet(ip)));
        self.run(self.handle.neighbours().del(msg).execute()).map_err(|e| NetlinkError::request(format!("neigh del {ip} dev {index}"), e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtnetlink::packet_core::Emitable;

    #[test]
    fn mac_formatting_matches_iproute2() {
        assert_eq!(mac_str(&[0x02, 0, 0xab, 0x10, 0xff, 1]), "02:00:ab:10:ff:01");
        assert_eq!(mac_str(&FLOOD_MAC), "00:00:00:00:00:00");
    }

    /// The ndmsg + attributes `bridge fdb append 00:00:00:00:00:00 dev vtep1042 dst 198.18.0.2`
    /// sends (seen with `strace -e trace=sendmsg -xx bridge fdb append ...`: AF_BRIDGE,
    /// NUD_NOARP|NUD_PERMANENT, NTF_SELF, NDA_LLADDR len 10, NDA_DST len 8), ifindex 7 here.
    #[test]
    fn flood_entry_matches_bridge_fdb_append() {
        let msg = fdb_message(7, FLOOD_MAC, Some(Ipv4Addr::new(198, 18, 0, 2).into()));
        let mut buf = vec![0u8; msg.buffer_len()];
        msg.emit(&mut buf);
        let expected: &[u8] = &[
            7, 0, 0, 0, // ndm_family AF_BRIDGE, pad
            7, 0, 0, 0, // ndm_ifindex 7
            0xc0, 0,    // ndm_state NOARP|PERMANENT
            0x02, // ndm_flags NTF_SELF
            0,    // ndm_type
            10, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, // NDA_LLADDR 00:00:00:00:00:00 (+pad)
            8, 0, 1, 0, 198, 18, 0, 2, // NDA_DST 198.18.0.2
        ];
        assert_eq!(buf, expected);
    }
}

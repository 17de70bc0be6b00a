//! Links across network namespaces (the CNI plugin's veth plumbing): move a link into another
//! namespace, rename it, read its MAC address (a namespace's routes: [`Netlink::routes_main`]).

use std::os::fd::RawFd;

use futures::TryStreamExt;
use rtnetlink::packet_route::link::LinkAttribute;
use rtnetlink::LinkUnspec;

use super::{Netlink, NetlinkError, Result};

impl Netlink {
    /// Moves the link into the network namespace open at `fd`.
    // = ip link set dev DEV netns NS
    pub fn set_netns_fd(&self, index: u32, fd: RawFd) -> Result<()> {
        let msg = LinkUnspec::new_with_index(index).setns_by_fd(fd).build();
        self.run(self.handle.link().set(msg).execute()).map_err(|e| NetlinkError::request(format!("link set {index} netns"), e))
    }

    /// Renames the link (it must be down).
    // = ip link set dev DEV name NAME
    pub fn rename(&self, index: u32, name: &str) -> Result<()> {
        let msg = LinkUnspec::new_with_index(index).name(name.to_string()).build();
        self.run(self.handle.link().set(msg).execute()).map_err(|e| NetlinkError::request(format!("link set {index} name {name}"), e))
    }

    /// The link's hardware address, if it has a 6-byte one.
    // = ip link show dev DEV (link/ether)
    pub fn link_mac(&self, index: u32) -> Result<Option<[u8; 6]>> {
        let op = format!("link show index {index}");
        let mut req = self.handle.link().get().match_index(index).execute();
        let msg = self
            .run(req.try_next())
            .map_err(|e| NetlinkError::request(op.clone(), e))?
            .ok_or_else(|| NetlinkError::Unexpected { op, detail: "no link message".into() })?;
        Ok(msg.attributes.iter().find_map(|a| match a {
            LinkAttribute::Address(bytes) => <[u8; 6]>::try_from(bytes.as_slice()).ok(),
            _ => None,
        }))
    }
}

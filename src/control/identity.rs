//! Who a host is to the SWIM layer, and the compact binary codec for SWIM messages.
//!
//! A [`NodeId`] is the host's gossip address plus its start epoch and a rejoin generation.
//! Host names, subnets and keys live in the (larger) member record, not in the identity, so
//! every SWIM message stays small. Two identities with the same address are the same host in
//! different lives: the higher `(epoch, generation)` wins ([`foca::Identity::win_addr_conflict`]),
//! which is how a restarted host (new epoch) replaces its old self, and how a host that was
//! wrongly declared dead (e.g. across a partition) rejoins ([`foca::Identity::renew`] bumps the
//! generation).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use bytes::{Buf, BufMut};
use foca::{Codec, Header, Identity, Member, Message, State};

/// The SWIM identity of one host life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId {
    /// The gossip (UDP) address of the host.
    pub addr: SocketAddr,
    /// The host's start epoch (larger on every restart).
    pub epoch: u64,
    /// Bumped each time the host rejoins after being declared down.
    pub generation: u16,
}

impl NodeId {
    /// The identity used to address a seed whose epoch is unknown (SWIM accepts an announce
    /// sent to any identity with the right address).
    pub fn seed(addr: SocketAddr) -> Self {
        NodeId { addr, epoch: 0, generation: 0 }
    }

    fn encoded_len(&self) -> usize {
        match self.addr.ip() {
            IpAddr::V4(_) => 1 + 4 + 2 + 8 + 2,
            IpAddr::V6(_) => 1 + 16 + 2 + 8 + 2,
        }
    }

    fn encode(&self, mut buf: impl BufMut) {
        match self.addr.ip() {
            IpAddr::V4(ip) => {
                buf.put_u8(4);
                buf.put_slice(&ip.octets());
            }
            IpAddr::V6(ip) => {
                buf.put_u8(6);
                buf.put_slice(&ip.octets());
            }
        }
        buf.put_u16(self.addr.port());
        buf.put_u64(self.epoch);
        buf.put_u16(self.generation);
    }

    fn decode(mut buf: impl Buf) -> Result<Self, CodecError> {
        need(&buf, 1)?;
        let ip = match buf.get_u8() {
            4 => {
                need(&buf, 4)?;
                let mut o = [0u8; 4];
                buf.copy_to_slice(&mut o);
                IpAddr::V4(Ipv4Addr::from(o))
            }
            6 => {
                need(&buf, 16)?;
                let mut o = [0u8; 16];
                buf.copy_to_slice(&mut o);
                IpAddr::V6(Ipv6Addr::from(o))
            }
            _ => return Err(CodecError("bad address family")),
        };
        need(&buf, 12)?;
        let port = buf.get_u16();
        let epoch = buf.get_u64();
        let generation = buf.get_u16();
        Ok(NodeId { addr: SocketAddr::new(ip, port), epoch, generation })
    }
}

impl Identity for NodeId {
    type Addr = SocketAddr;

    fn renew(&self) -> Option<Self> {
        Some(NodeId { generation: self.generation.wrapping_add(1), ..*self })
    }

    fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn win_addr_conflict(&self, adversary: &Self) -> bool {
        (self.epoch, self.generation) > (adversary.epoch, adversary.generation)
    }
}

/// A SWIM message could not be decoded or did not fit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CodecError(&'static str);

impl std::fmt::Display for CodecError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "swim codec: {}", self.0)
    }
}

impl std::error::Error for CodecError {}

fn need(buf: &impl Buf, n: usize) -> Result<(), CodecError> {
    if buf.remaining() < n {
        Err(CodecError("truncated"))
    } else {
        Ok(())
    }
}

/// The binary codec for SWIM headers and member updates.
#[derive(Debug, Default, Clone, Copy)]
pub struct SwimCodec;

fn encode_message(message: &Message<NodeId>, mut buf: impl BufMut) {
    match message {
        Message::Ping(n) => put_probe(&mut buf, 0, *n),
        Message::Ack(n) => put_probe(&mut buf, 1, *n),
        Message::PingReq { target, probe_number } => put_relay(&mut buf, 2, target, *probe_number),
        Message::IndirectPing { origin, probe_number } => put_relay(&mut buf, 3, origin, *probe_number),
        Message::IndirectAck { target, probe_number } => put_relay(&mut buf, 4, target, *probe_number),
        Message::ForwardedAck { origin, probe_number } => put_relay(&mut buf, 5, origin, *probe_number),
        Message::Announce => buf.put_u8(6),
        Message::Feed => buf.put_u8(7),
        Message::Gossip => buf.put_u8(8),
        Message::Broadcast => buf.put_u8(9),
        Message::TurnUndead => buf.put_u8(10),
    }
}

fn put_probe(buf: &mut impl BufMut, tag: u8, n: u8) {
    buf.put_u8(tag);
    buf.put_u8(n);
}

fn put_relay(buf: &mut impl BufMut, tag: u8, id: &NodeId, n: u8) {
    buf.put_u8(tag);
    buf.put_u8(n);
    id.encode(buf);
}

fn message_len(message: &Message<NodeId>) -> usize {
    match message {
        Message::Ping(_) | Message::Ack(_) => 2,
        Message::PingReq { target: id, .. }
        | Message::IndirectPing { origin: id, .. }
        | Message::IndirectAck { target: id, .. }
        | Message::ForwardedAck { origin: id, .. } => 2 + id.encoded_len(),
        _ => 1,
    }
}

fn decode_message(mut buf: impl Buf) -> Result<Message<NodeId>, CodecError> {
    need(&buf, 1)?;
    let tag = buf.get_u8();
    let probe = |buf: &mut dyn Buf| -> Result<u8, CodecError> {
        need(&buf, 1)?;
        Ok(buf.get_u8())
    };
    Ok(match tag {
        0 => Message::Ping(probe(&mut buf)?),
        1 => Message::Ack(probe(&mut buf)?),
        2..=5 => {
            let probe_number = probe(&mut buf)?;
            let id = NodeId::decode(&mut buf)?;
            match tag {
                2 => Message::PingReq { target: id, probe_number },
                3 => Message::IndirectPing { origin: id, probe_number },
                4 => Message::IndirectAck { target: id, probe_number },
                _ => Message::ForwardedAck { origin: id, probe_number },
            }
        }
        6 => Message::Announce,
        7 => Message::Feed,
        8 => Message::Gossip,
        9 => Message::Broadcast,
        10 => Message::TurnUndead,
        _ => return Err(CodecError("bad message tag")),
    })
}

fn state_code(state: State) -> u8 {
    match state {
        State::Alive => 0,
        State::Suspect => 1,
        State::Down => 2,
    }
}

impl Codec<NodeId> for SwimCodec {
    type Error = CodecError;

    fn encode_header(&mut self, header: &Header<NodeId>, mut buf: impl BufMut) -> Result<(), CodecError> {
        let len = header.src.encoded_len() + 2 + header.dst.encoded_len() + message_len(&header.message);
        if buf.remaining_mut() < len {
            return Err(CodecError("no room for header"));
        }
        header.src.encode(&mut buf);
        buf.put_u16(header.src_incarnation);
        header.dst.encode(&mut buf);
        encode_message(&header.message, &mut buf);
        Ok(())
    }

    fn decode_header(&mut self, mut buf: impl Buf) -> Result<Header<NodeId>, CodecError> {
        let src = NodeId::decode(&mut buf)?;
        need(&buf, 2)?;
        let src_incarnation = buf.get_u16();
        let dst = NodeId::decode(&mut buf)?;
        let message = decode_message(&mut buf)?;
        Ok(Header { src, src_incarnation, dst, message })
    }

    fn encode_member(&mut self, member: &Member<NodeId>, mut buf: impl BufMut) -> Result<(), CodecError> {
        if buf.remaining_mut() < member.id().encoded_len() + 3 {
            return Err(CodecError("no room for member"));
        }
        member.id().encode(&mut buf);
        buf.put_u16(member.incarnation());
        buf.put_u8(state_code(member.state()));
        Ok(())
    }

    fn decode_member(&mut self, mut buf: impl Buf) -> Result<Member<NodeId>, CodecError> {
        let id = NodeId::decode(&mut buf)?;
        need(&buf, 3)?;
        let incarnation = buf.get_u16();
        let state = match buf.get_u8() {
            0 => State::Alive,
            1 => State::Suspect,
            2 => State::Down,
            _ => return Err(CodecError("bad member state")),
        };
        Ok(Member::new(id, incarnation, state))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(port: u16, epoch: u64) -> NodeId {
        NodeId { addr: SocketAddr::from(([198, 18, 0, 1], port)), epoch, generation: 3 }
    }

    #[test]
    fn header_round_trips_every_message() {
        let t = id(2, 9);
        let messages = vec![
            Message::Ping(1),
            Message::Ack(2),
            Message::PingReq { target: t, probe_number: 3 },
            Message::IndirectPing { origin: t, probe_number: 4 },
            Message::IndirectAck { target: t, probe_number: 5 },
            Message::ForwardedAck { origin: t, probe_number: 6 },
            Message::Announce,
            Message::Feed,
            Message::Gossip,
            Message::Broadcast,
            Message::TurnUndead,
        ];
        for message in messages {
            let header = Header { src: id(1, 7), src_incarnation: 42, dst: id(3, 8), message };
            let mut buf = Vec::new();
            SwimCodec.encode_header(&header, &mut buf).unwrap();
            let mut rd = &buf[..];
            assert_eq!(SwimCodec.decode_header(&mut rd).unwrap(), header);
            assert!(rd.is_empty());
            // Every truncation is an error, never a panic.
            for cut in 0..buf.len() {
                assert!(SwimCodec.decode_header(&buf[..cut]).is_err(), "cut {cut}");
            }
        }
    }

    #[test]
    fn member_round_trip_and_no_dirty_buffer() {
        let m = Member::new(id(1, 5), 9, State::Suspect);
        let mut buf = Vec::new();
        SwimCodec.encode_member(&m, &mut buf).unwrap();
        assert_eq!(buf.len(), 17 + 3); // v4 identity + incarnation + state
        assert_eq!(SwimCodec.decode_member(&buf[..]).unwrap(), m);
        let mut small = [0u8; 10];
        let mut slot = &mut small[..];
        assert!(SwimCodec.encode_member(&m, &mut slot).is_err());
        assert_eq!(small, [0u8; 10]);
    }

    #[test]
    fn restart_and_rejoin_win_address_conflicts() {
        let old = id(1, 5);
        let restarted = NodeId { epoch: 6, generation: 0, ..old };
        assert!(restarted.win_addr_conflict(&old));
        assert!(!old.win_addr_conflict(&restarted));
        let renewed = old.renew().unwrap();
        assert!(renewed.win_addr_conflict(&old));
    }
}

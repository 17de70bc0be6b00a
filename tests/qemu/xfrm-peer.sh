#!/bin/sh
# The Linux xfrm peer of tests/xfrm_qemu.rs, run as pid 1 of the QEMU guest (Debian's kernel,
# the host's root over 9p). It plays the other host of a routed ESP network: its container
# subnet on a dummy device, a tunnel-mode SA pair in ESP-in-UDP/4500 with the manual keys
# vxswitch has, and a socket holding UDP_ENCAP_ESPINUDP on port 4500 (what an IKE daemon
# does; without it the kernel does not unwrap ESP-in-UDP). Then it pings vxswitch's container,
# sends it a checked TCP stream, receives one, and prints every figure on the console as
#   VXS-RESULT <name> <json>   and the xfrm state between VXS-XFRM-BEGIN / VXS-XFRM-END,
# ending with VXS-EXIT <status> and a power-off.
. "$1"
exec >/dev/console 2>&1
status=0
fail() { echo "VXS-FAIL $*"; status=1; }
off() { echo "VXS-EXIT $status"; sync; echo 1 > /proc/sys/kernel/sysrq; echo o > /proc/sysrq-trigger; sleep 10; }
echo "VXS-STAGE up $(uname -r)"

modprobe -a esp4 xfrm_user dummy || fail "modprobe"
ip link set lo up
ip link set eth0 up && ip addr add "$GUEST_UL/24" dev eth0 || fail "eth0"
ip link add dum0 type dummy && ip addr add "$GUEST_INNER/24" dev dum0 && ip link set dum0 up || fail "dum0"
ip route add "$HOST_SUBNET" dev eth0 src "$GUEST_INNER" || fail "route"

# = what vxswitch's manual keys say, from this side: in = vxswitch -> guest, out = guest -> vxswitch.
ip xfrm state add src "$HOST_UL" dst "$GUEST_UL" proto esp spi "$SPI_IN" reqid 1 mode tunnel replay-window 32 \
  aead 'rfc4106(gcm(aes))' "$KEY_IN" 128 encap espinudp 4500 4500 0.0.0.0 || fail "state in"
ip xfrm state add src "$GUEST_UL" dst "$HOST_UL" proto esp spi "$SPI_OUT" reqid 1 mode tunnel replay-window 32 \
  aead 'rfc4106(gcm(aes))' "$KEY_OUT" 128 encap espinudp 4500 4500 0.0.0.0 || fail "state out"
ip xfrm policy add src "$GUEST_SUBNET" dst "$HOST_SUBNET" dir out tmpl src "$GUEST_UL" dst "$HOST_UL" proto esp reqid 1 mode tunnel || fail "policy out"
for dir in in fwd; do
  ip xfrm policy add src "$HOST_SUBNET" dst "$GUEST_SUBNET" dir $dir tmpl src "$HOST_UL" dst "$GUEST_UL" proto esp reqid 1 mode tunnel || fail "policy $dir"
done
# UDP_ENCAP (100) = UDP_ENCAP_ESPINUDP (2) on a socket bound to 4500, held open by perl.
perl -e 'use Socket; socket(my $s, PF_INET, SOCK_DGRAM, 17) or die "socket: $!";
  bind($s, pack_sockaddr_in(4500, INADDR_ANY)) or die "bind: $!";
  setsockopt($s, 17, 100, 2) or die "UDP_ENCAP: $!"; print "VXS-STAGE encap socket\n"; sleep 100000' &
sleep 1
[ "$status" = 0 ] || { off; exit 1; }

"$VXS_BIN" probe pattern-sink --port "$PORT_IN" --wait-secs 300 > /run/sink.json 2>/run/sink.err &
sink=$!
sleep 1
echo "VXS-READY"

"$VXS_BIN" probe ping "$HOST_INNER" --count "$PINGS" --interval-ms 10 --timeout-ms 5000 > /run/ping.json 2>&1 || fail "ping"
echo "VXS-RESULT ping $(cat /run/ping.json)"
"$VXS_BIN" probe pattern-send "$HOST_INNER" --port "$PORT_OUT" --bytes "$BYTES" > /run/send.json 2>&1 || fail "send"
echo "VXS-RESULT send $(cat /run/send.json)"
wait $sink || fail "sink: $(cat /run/sink.err)"
echo "VXS-RESULT sink $(cat /run/sink.json)"
echo "VXS-XFRM-BEGIN"
ip -s xfrm state
echo "VXS-XFRM-END"
off

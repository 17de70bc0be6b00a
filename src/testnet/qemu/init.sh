#!/bin/busybox sh
# /init of the QEMU guest's initramfs (built by src/testnet/qemu.rs). It loads the drivers for
# virtio-net, 9p and overlayfs, mounts the host's root read-only over 9p with a tmpfs overlay on
# top (the guest writes without touching the host), puts the guest kernel's own module tree at
# /lib/modules, and hands over to the guest script named in /vxs.env with switch_root, so the
# kernel's module autoloading (crypto templates, xfrm) finds modprobe and the modules there.
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for m in $(cat /modules); do
  insmod "/m/$m" || echo "vxs-init: insmod $m failed"
done
. /vxs.env
mkdir -p /host /rw /newroot
mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=512000 hostroot /host || echo "vxs-init: 9p mount failed"
mount -t tmpfs -o size=256m tmpfs /rw
mkdir -p /rw/upper /rw/work
mount -t overlay overlay -o "lowerdir=/host,upperdir=/rw/upper,workdir=/rw/work" /newroot || echo "vxs-init: overlay failed"
mkdir -p /newroot/lib/modules /newroot/run
mount -o bind "/host$VXS_MODULES" /newroot/lib/modules
mount -t tmpfs tmpfs /newroot/run
cp /vxs.env /newroot/run/vxs.env
mount --move /proc /newroot/proc
mount --move /sys /newroot/sys
mount --move /dev /newroot/dev
exec switch_root /newroot /bin/sh "$VXS_SCRIPT" /run/vxs.env

#!/usr/bin/env bash
# Buildroot post-image: the same GPT layout as scripts/build-image, from
# Buildroot's kernel (bzImage), initramfs (rootfs.cpio.zst) and GRUB images.
set -euo pipefail
IMAGES=${BINARIES_DIR:?}
EXT=${BR2_EXTERNAL_EDGEMX_PATH:?}
REPO=$EXT/..
WORK=$IMAGES/edgemx-parts
rm -rf "$WORK" && mkdir -p "$WORK"/{esp/EFI/BOOT,esp/boot/grub,slot-a,root,tmp}
# Fixed volume ids: early.cfg was embedded into GRUB at build time with them.
ESP_ID=ed6e0001 SLOTA_ID=ed6e000a SLOTB_ID=ed6e000b
CMDLINE="console=tty0 console=ttyS0,115200n8 panic=10 quiet"
sed -e "s/@SLOT_A_UUID@/ED6E-000A/" -e "s|@CMDLINE@|$CMDLINE|" -e "s/@VERSION@/buildroot/" \
    "$REPO/image/grub/grub.cfg" > "$WORK/esp/boot/grub/grub.cfg"
cp "$IMAGES/efi-part/EFI/BOOT/bootx64.efi" "$WORK/esp/EFI/BOOT/BOOTX64.EFI"
cp "$IMAGES/bzImage" "$WORK/slot-a/vmlinuz"
cp "$IMAGES/rootfs.cpio.zst" "$WORK/slot-a/initrd.img"
mkfat() { rm -f "$1"; mkfs.vfat -C -F 32 -s 1 -i "$3" -n "$4" "$1" $(($2 * 1024)) >/dev/null
          if [ $# -gt 4 ]; then mcopy -s -i "$1" "${@:5}" ::/; fi; }
mkfat "$WORK/esp.vfat" 64 "$ESP_ID" EDGEMX-ESP "$WORK"/esp/EFI "$WORK"/esp/boot
mkfat "$WORK/slot-a.vfat" 64 "$SLOTA_ID" GW-SLOT-A "$WORK"/slot-a/*
mkfat "$WORK/slot-b.vfat" 64 "$SLOTB_ID" GW-SLOT-B
mke2fs -q -F -t ext4 -L gw-data "$WORK/data.ext4" 320M
# GRUB's core.img for BIOS: the same blocklist patch as scripts/build-image.
cp "$IMAGES/grub.img" "$WORK/core.img"
printf '\x01\x08\0\0\0\0\0\0' | dd of="$WORK/core.img" bs=1 seek=$((0x1f4)) conv=notrunc status=none
sed -e "s/@DISK_UUID@/ed6e0000-0000-4000-8000-000000000001/" -e "s/@BIOS_SIZE@/1M/" \
    "$REPO/image/genimage.cfg" > "$WORK/genimage.cfg"
genimage --config "$WORK/genimage.cfg" --rootpath "$WORK/root" --tmppath "$WORK/tmp" \
    --inputpath "$WORK" --outputpath "$IMAGES"
cp "$IMAGES/boot.img" "$WORK/boot.img"
printf '\0\x08\0\0\0\0\0\0' | dd of="$WORK/boot.img" bs=1 seek=$((0x5c)) conv=notrunc status=none
printf '\x90\x90' | dd of="$WORK/boot.img" bs=1 seek=$((0x66)) conv=notrunc status=none
dd if="$WORK/boot.img" of="$IMAGES/edgemx.img" bs=440 count=1 conv=notrunc status=none
echo "post-image: $IMAGES/edgemx.img"

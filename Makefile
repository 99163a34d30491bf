# inetboot — build, test, demo. `make` builds the agent and the initramfs; `make test` runs all
# tests; `make demo` boots the sample system in QEMU. `make deps` installs what they need (root).
SHELL := /bin/bash
BUN   := node_modules/.bin/bun
B     := build
SRC   := $(shell find src -name '*.ts' 2>/dev/null) package.json
# Modules the test/demo initramfs carries; coldplug picks what the machine needs.
MODULES ?= virtio_net,virtio_pci,virtio_blk,virtio_scsi,e1000,e1000e,nbd,squashfs,overlay,ext4,loop,isofs,erofs,vfat,nls_cp437,nls_iso8859_1,nls_utf8,nls_ascii,usb_storage,uas,sd_mod,xhci_pci,ehci_pci,uhci_hcd
KPKG  = $(shell cat $(B)/kernel/.package 2>/dev/null)
DEB_PACKAGES := qemu-system-x86 qemu-utils libnbd-bin nbdkit nbd-client nginx dnsmasq busybox-static cpio \
  squashfs-tools e2fsprogs erofs-utils iproute2 kmod gcc libc6-dev zstd curl openssl xorriso mtools grub-pc-bin \
  grub-efi-amd64-bin ovmf

.PHONY: all deps test unit e2e demo clean kernel
all: $(B)/inetboot $(B)/initramfs.cpio.zst

deps: node_modules/.stamp
	@missing=$$(for p in $(DEB_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then echo "installing:" $$missing; \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; fi

node_modules/.stamp: package.json package-lock.json
	npm ci --no-audit --no-fund
	@touch $@

$(B)/inetboot: $(SRC) node_modules/.stamp
	@mkdir -p $(B)
	$(BUN) build --compile --target=bun-linux-x64 src/main.ts --outfile $@

$(B)/init: initramfs/init.c
	@mkdir -p $(B)
	gcc -Os -static -nostdlib -fno-stack-protector -fno-asynchronous-unwind-tables -fno-pie -no-pie \
	  -Wl,--build-id=none -s -o $@ $<

# The test kernel: Debian's current linux-image-*-amd64, downloaded and unpacked, never installed.
kernel: $(B)/kernel/.stamp
$(B)/kernel/.stamp:
	@mkdir -p $(B)/kernel/dl
	pkg=$$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/{print $$2; exit}'); \
	  test -n "$$pkg" || { echo "cannot resolve linux-image-amd64 (run apt-get update)"; exit 1; }; \
	  cd $(B)/kernel/dl && rm -f *.deb && apt-get download $$pkg 2>&1 | grep -v '^W: Download is performed unsandboxed' ; \
	  cd - >/dev/null && dpkg-deb -x $(B)/kernel/dl/$$pkg*.deb $(B)/kernel && echo $$pkg > $(B)/kernel/.package
	ver=$$(ls $(B)/kernel/lib/modules | head -1); depmod -b $(B)/kernel $$ver; \
	  ln -sf boot/vmlinuz-$$ver $(B)/kernel/vmlinuz
	@touch $@

$(B)/initramfs.cpio.zst: $(B)/inetboot $(B)/init $(B)/kernel/.stamp
	$(B)/inetboot initramfs --out $@ --agent $(B)/inetboot --init $(B)/init --kernel $(B)/kernel \
	  --modules $(MODULES) --with-busybox

unit: node_modules/.stamp
	$(BUN) test test/unit

e2e: all
	$(BUN) test test/e2e

test: deps all
	$(BUN) test test/unit test/e2e

demo: deps all
	$(BUN) test/demo.ts

clean:
	rm -rf $(B)

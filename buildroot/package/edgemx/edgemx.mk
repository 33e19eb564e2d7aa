################################################################################
#
# edgemx: built from this repository's workspace (the tree above buildroot/)
#
################################################################################

EDGEMX_VERSION = local
EDGEMX_SITE = $(BR2_EXTERNAL_EDGEMX_PATH)/..
EDGEMX_SITE_METHOD = local
EDGEMX_LICENSE = Apache-2.0
EDGEMX_CARGO_BUILD_OPTS = -p edgemx --bin edgemx

define EDGEMX_INSTALL_TARGET_CMDS
	$(INSTALL) -D -m 0755 $(@D)/target/$(RUSTC_TARGET_NAME)/release/edgemx $(TARGET_DIR)/init
	$(INSTALL) -D -m 0644 $(@D)/image/defaults/edgemx.toml $(TARGET_DIR)/etc/edgemx/defaults/edgemx.toml
	$(INSTALL) -D -m 0644 $(@D)/image/defaults/network.toml $(TARGET_DIR)/etc/edgemx/defaults/network.toml
endef

$(eval $(cargo-package))

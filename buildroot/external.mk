include $(sort $(wildcard $(BR2_EXTERNAL_EDGEMX_PATH)/package/*/*.mk))

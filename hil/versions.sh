# Pinned versions of everything that shapes the test kernel and module.
# Sourced by the hil scripts; part of every cache key.
LINUX_SOURCE_VERSION=7.3.4-1~bpo13+1
LINUX_SERIES=7.3
RUSTC_WEB_VERSION=1.96.0+dfsg1-1~deb12u2
BINDGEN_VERSION=0.73.2
DTSCHEMA_VERSION=2026.9

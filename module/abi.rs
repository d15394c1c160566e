// SPDX-License-Identifier: GPL-2.0

//! The ring ABI: the very files user space builds as the `hsdaq-abi` crate
//! (`../abi/src/`), included here so there is one definition of the layout,
//! the ioctls and the reference waveform. Items only user space needs are
//! unused here, and `pub` items are public to this module only.
#![allow(dead_code, unreachable_pub)]

#[path = "../abi/src/format.rs"]
pub(crate) mod format;
#[path = "../abi/src/ioctl.rs"]
pub(crate) mod ioctl;
#[path = "../abi/src/layout.rs"]
pub(crate) mod layout;
#[path = "../abi/src/waveform.rs"]
pub(crate) mod waveform;

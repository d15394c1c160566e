/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The emulated converter's packet FIFO: a region of guest RAM that the host
 * emulator (hil/emulator, `src/fifo.rs` mirrors this layout and asserts it)
 * writes from outside the guest, and the test DMA controller (fifo-dma.c)
 * reads. Little-endian; counters are 64-bit and never wrap.
 *
 * The converter makes packets of `packet_bytes` (whole scans) at its own
 * sample clock and puts each in the next free slot with the index of its
 * first scan beside it (the stream's scan counter, as an AXI-Stream
 * packetizer's sideband carries it); with no free slot it drops the packet
 * and counts it. The controller takes packets in order.
 */
#ifndef HSDAQ_FIFO_H
#define HSDAQ_FIFO_H

#include <linux/types.h>

#define FIFO_MAGIC 0x46494648 /* "HFIF" */
#define FIFO_VERSION 1
#define FIFO_HEADER_BYTES 4096
/* Slots at most: their scan counters fill the header page after 512 B. */
#define FIFO_MAX_SLOTS 448

struct fifo_regs {
	/* 0: identity, written once by the emulator before `magic`. */
	__le32 magic;
	__le32 version;
	__le32 packet_bytes;
	__le32 slots;
	__le64 rate_hz;
	__le32 channels;
	__le32 sample_bytes;
	__u8 pad0[32];
	/* 64: emulator-owned. */
	__le64 written;		/* packets written (release) */
	__le64 dropped_packets;	/* packets dropped (FIFO full) this run */
	__le64 produced_scans;	/* scans made this run (written + dropped) */
	__le32 ack_epoch;	/* the run the emulator is producing for */
	__u8 pad1[36];
	/* 128: controller-owned. */
	__le64 consumed;	/* packets taken (release) */
	__le32 run_epoch;	/* bumped to (re)start the converter at scan 0 */
	__le32 enable;		/* 1 while a stream runs */
	__u8 pad2[368];
	/* 512: the scan counter of each slot's first scan. */
	__le64 first_scan[FIFO_MAX_SLOTS];
};

#endif

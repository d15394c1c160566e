/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The C side of hsdaq: thin wrappers over kernel APIs that are static inline
 * in C (so Rust cannot call them) and that 7.3's Rust helpers do not cover.
 * Each wrapper does exactly what its C counterpart does; glue.rs gives them
 * typed, documented Rust signatures.
 */
#ifndef HSDAQ_GLUE_H
#define HSDAQ_GLUE_H

void hsdaq_pagefault_disable(void);
void hsdaq_pagefault_enable(void);
void hsdaq_cond_resched(void);

struct vm_area_struct;
void hsdaq_vma_set_writecombine(struct vm_area_struct *vma);

/* The DMA source's dmaengine client calls (see glue.c and dma.rs). */
#include <linux/types.h>

struct device;
struct dma_chan;
struct dma_async_tx_descriptor;

/*
 * One transfer in flight. Owned by Rust (dma.rs `Xfer`, the same layout);
 * the engine's callback gets it as its parameter.
 */
struct hsdaq_dma_xfer {
	struct dma_async_tx_descriptor *desc;
	void *owner;
	void (*complete)(void *owner, u32 index, u32 result, u32 residue, u64 first_scan);
	u32 index;
	bool want_metadata;
};

struct dma_chan *hsdaq_dma_request(struct device *dev, const char *name);
void hsdaq_dma_release(struct dma_chan *chan);
struct device *hsdaq_dma_device(struct dma_chan *chan);
int hsdaq_dma_config(struct dma_chan *chan, u32 width);
bool hsdaq_dma_engine_metadata(struct dma_chan *chan);
int hsdaq_dma_submit(struct dma_chan *chan, dma_addr_t buf, size_t len, struct hsdaq_dma_xfer *x);
void hsdaq_dma_issue_pending(struct dma_chan *chan);
int hsdaq_dma_terminate_sync(struct dma_chan *chan);

/* A reboot notifier that calls quiesce(owner) (see glue.c). */
#include <linux/notifier.h>

struct hsdaq_reboot {
	struct notifier_block nb;
	void *owner;
	void (*quiesce)(void *owner);
};

struct hsdaq_reboot *hsdaq_reboot_register(void *owner, void (*quiesce)(void *owner));
void hsdaq_reboot_unregister(struct hsdaq_reboot *r);

#endif

// SPDX-License-Identifier: GPL-2.0
/*
 * hsdaq C glue: see glue.h. Nothing here allocates, locks or keeps state.
 */
#include <linux/dmaengine.h>
#include <linux/err.h>
#include <linux/mm.h>
#include <linux/reboot.h>
#include <linux/slab.h>
#include <linux/sched.h>
#include <linux/uaccess.h>
#include <linux/unaligned.h>

#include "glue.h"

/* read() copies to user space with faults off, so it never sleeps on a fault with a lock held. */
void hsdaq_pagefault_disable(void)
{
	pagefault_disable();
}

void hsdaq_pagefault_enable(void)
{
	pagefault_enable();
}

/* The producer's work item yields between payload chunks (a no-op on preemptible kernels). */
void hsdaq_cond_resched(void)
{
	cond_resched();
}

/* A ring in a reserved-memory pool is mapped write-combining, as the kernel's memremap alias is. */
void hsdaq_vma_set_writecombine(struct vm_area_struct *vma)
{
	vma->vm_page_prot = pgprot_writecombine(vma->vm_page_prot);
}

/* ---- dmaengine client: the DMA source (dma.rs) ---- */

struct dma_chan *hsdaq_dma_request(struct device *dev, const char *name)
{
	return dma_request_chan(dev, name);
}

void hsdaq_dma_release(struct dma_chan *chan)
{
	dma_release_channel(chan);
}

struct device *hsdaq_dma_device(struct dma_chan *chan)
{
	return chan->device->dev;
}

/* Peripheral to memory, `width` bytes per beat. An engine without slave settings (-ENOSYS) needs none. */
int hsdaq_dma_config(struct dma_chan *chan, u32 width)
{
	struct dma_slave_config cfg = {
		.direction = DMA_DEV_TO_MEM,
		.src_addr_width = width,
		.dst_addr_width = width,
	};
	int ret = dmaengine_slave_config(chan, &cfg);

	return ret == -ENOSYS ? 0 : ret;
}

bool hsdaq_dma_engine_metadata(struct dma_chan *chan)
{
	return dmaengine_is_metadata_mode_supported(chan, DESC_METADATA_ENGINE);
}

/*
 * Completion, in the engine's callback context (a tasklet, an IRQ thread, the
 * test engine's kthread): reads the transfer's first scan index from the
 * engine's per-descriptor metadata when the binding says the stream carries
 * one (valid only inside this callback), then hands over to Rust.
 */
static void hsdaq_dma_done(void *param, const struct dmaengine_result *res)
{
	struct hsdaq_dma_xfer *x = param;
	u64 first_scan = U64_MAX;

	if (x->want_metadata && res->result == DMA_TRANS_NOERROR) {
		size_t len = 0, max = 0;
		void *p = dmaengine_desc_get_metadata_ptr(x->desc, &len, &max);

		if (!IS_ERR_OR_NULL(p) && len >= sizeof(u64))
			first_scan = get_unaligned_le64(p);
	}
	x->complete(x->owner, x->index, res->result, res->residue, first_scan);
}

/* Queues one transfer of `len` bytes into `buf` (a DMA address of the channel's device); 0 or -errno. */
int hsdaq_dma_submit(struct dma_chan *chan, dma_addr_t buf, size_t len, struct hsdaq_dma_xfer *x)
{
	struct dma_async_tx_descriptor *desc;
	dma_cookie_t cookie;

	desc = dmaengine_prep_slave_single(chan, buf, len, DMA_DEV_TO_MEM, DMA_PREP_INTERRUPT);
	if (!desc)
		return -ENOMEM;
	desc->callback_result = hsdaq_dma_done;
	desc->callback_param = x;
	x->desc = desc;
	cookie = dmaengine_submit(desc);
	return dma_submit_error(cookie);
}

void hsdaq_dma_issue_pending(struct dma_chan *chan)
{
	dma_async_issue_pending(chan);
}

/* Aborts every queued transfer and waits for running callbacks; sleeps. */
int hsdaq_dma_terminate_sync(struct dma_chan *chan)
{
	return dmaengine_terminate_sync(chan);
}

/* ---- reboot and kexec: quiesce the DMA before the kernel shuts devices down ---- */

/*
 * 7.3's Rust platform driver has no .shutdown hook, so a DMA source stops its
 * engine from a reboot notifier instead: kernel_restart_prepare (reboot and
 * kexec alike) and kernel_shutdown_prepare run the chain before
 * device_shutdown, so no transfer is in flight when the next kernel (kexec)
 * or the firmware takes over the memory.
 */
static int hsdaq_reboot_notify(struct notifier_block *nb, unsigned long action, void *data)
{
	struct hsdaq_reboot *r = container_of(nb, struct hsdaq_reboot, nb);

	r->quiesce(r->owner);
	return NOTIFY_DONE;
}

struct hsdaq_reboot *hsdaq_reboot_register(void *owner, void (*quiesce)(void *owner))
{
	struct hsdaq_reboot *r = kzalloc(sizeof(*r), GFP_KERNEL);

	if (!r)
		return NULL;
	r->owner = owner;
	r->quiesce = quiesce;
	r->nb.notifier_call = hsdaq_reboot_notify;
	register_reboot_notifier(&r->nb);
	return r;
}

/* Waits for a running notifier call, then frees the hook. */
void hsdaq_reboot_unregister(struct hsdaq_reboot *r)
{
	unregister_reboot_notifier(&r->nb);
	kfree(r);
}

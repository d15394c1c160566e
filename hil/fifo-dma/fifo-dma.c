// SPDX-License-Identifier: GPL-2.0
/*
 * fifo-dma: a test-only dmaengine provider for the DMA source's
 * hardware-in-the-loop test on QEMU's arm64 "virt" machine, which has no DMA
 * controller of its own.
 *
 * It models a stream-to-memory engine (Xilinx AXI DMA S2MM, ADI axi-dmac)
 * behind a packetizing converter: one DEV_TO_MEM slave channel whose
 * peripheral is the packet FIFO of fifo.h, a `no-map` region of guest RAM
 * that the host-side emulator writes from outside the guest. Each transfer
 * takes one packet; its first scan's counter is handed to the client as
 * engine metadata (DESC_METADATA_ENGINE), the way AXI DMA hands over its
 * APP words. QEMU cannot raise a guest interrupt from the host, so a kthread
 * polls the FIFO; everything the client sees (prep, submit, issue_pending,
 * tx_status with a real residue, terminate_all, synchronize, completion
 * callbacks in order) is the ordinary dmaengine contract.
 *
 * The controller also plays the converter's enable line: the first
 * issue_pending of a stream restarts it at scan 0 (run_epoch), and
 * terminate_all disables it.
 *
 * Not for real hardware; built and loaded only by hil/ scenarios.
 */
#include <linux/delay.h>
#include <linux/dma-direct.h>
#include <linux/dmaengine.h>
#include <linux/io.h>
#include <linux/kthread.h>
#include <linux/module.h>
#include <linux/of.h>
#include <linux/of_dma.h>
#include <linux/of_reserved_mem.h>
#include <linux/platform_device.h>
#include <linux/slab.h>

#include "fifo.h"

static bool metadata = true;
module_param(metadata, bool, 0444);
MODULE_PARM_DESC(metadata, "Hand each packet's scan counter to the client as engine metadata (default on)");

/* Bytes moved per step of a transfer, so the residue is observable. */
#define STEP_BYTES 4096

struct fdma_desc {
	struct dma_async_tx_descriptor tx;
	struct list_head node;
	dma_addr_t addr;
	size_t len;
	size_t done;		/* bytes copied so far (the residue's source) */
	__le64 meta;		/* the packet's first scan (engine metadata) */
};

struct fdma {
	struct dma_device dd;
	struct dma_chan chan;
	struct fifo_regs *regs;
	u8 *slots;
	size_t region_bytes;
	struct task_struct *mover;
	spinlock_t lock;	/* lists, cookies, `active` */
	struct list_head submitted, issued;
	struct fdma_desc *active; /* being copied by the mover */
	struct mutex move;	/* held by the mover for one step; synchronize waits on it */
	bool streaming;		/* the converter is enabled for this stream */
};

static struct fdma *to_fdma(struct dma_chan *c)
{
	return container_of(c, struct fdma, chan);
}

static struct fdma_desc *to_desc(struct dma_async_tx_descriptor *tx)
{
	return container_of(tx, struct fdma_desc, tx);
}

static void *fdma_meta_ptr(struct dma_async_tx_descriptor *tx, size_t *len, size_t *max)
{
	*len = sizeof(__le64);
	*max = sizeof(__le64);
	return &to_desc(tx)->meta;
}

static const struct dma_descriptor_metadata_ops fdma_meta_ops = {
	.get_ptr = fdma_meta_ptr,
};

static dma_cookie_t fdma_tx_submit(struct dma_async_tx_descriptor *tx)
{
	struct fdma *f = to_fdma(tx->chan);
	unsigned long flags;
	dma_cookie_t cookie;

	spin_lock_irqsave(&f->lock, flags);
	cookie = f->chan.cookie + 1;
	if (cookie < DMA_MIN_COOKIE)
		cookie = DMA_MIN_COOKIE;
	tx->cookie = f->chan.cookie = cookie;
	list_add_tail(&to_desc(tx)->node, &f->submitted);
	spin_unlock_irqrestore(&f->lock, flags);
	return cookie;
}

static struct dma_async_tx_descriptor *
fdma_prep_slave_sg(struct dma_chan *c, struct scatterlist *sgl, unsigned int sg_len,
		   enum dma_transfer_direction dir, unsigned long flags, void *context)
{
	struct fdma_desc *d;

	if (dir != DMA_DEV_TO_MEM || sg_len != 1)
		return NULL;
	d = kzalloc(sizeof(*d), GFP_NOWAIT);
	if (!d)
		return NULL;
	dma_async_tx_descriptor_init(&d->tx, c);
	d->tx.tx_submit = fdma_tx_submit;
	d->tx.flags = flags;
	if (metadata)
		d->tx.metadata_ops = &fdma_meta_ops;
	d->addr = sg_dma_address(sgl);
	d->len = sg_dma_len(sgl);
	return &d->tx;
}

/* Starts the converter for a new stream: the emulator restarts at scan 0. */
static void fdma_enable(struct fdma *f)
{
	u32 epoch = le32_to_cpu(READ_ONCE(f->regs->run_epoch)) + 1;

	WRITE_ONCE(f->regs->run_epoch, cpu_to_le32(epoch));
	smp_store_release(&f->regs->enable, cpu_to_le32(1));
	f->streaming = true;
}

static void fdma_issue_pending(struct dma_chan *c)
{
	struct fdma *f = to_fdma(c);
	unsigned long flags;

	spin_lock_irqsave(&f->lock, flags);
	list_splice_tail_init(&f->submitted, &f->issued);
	if (!f->streaming && !list_empty(&f->issued))
		fdma_enable(f);
	spin_unlock_irqrestore(&f->lock, flags);
	wake_up_process(f->mover);
}

static enum dma_status fdma_tx_status(struct dma_chan *c, dma_cookie_t cookie,
				      struct dma_tx_state *state)
{
	struct fdma *f = to_fdma(c);
	struct fdma_desc *d;
	enum dma_status st;
	unsigned long flags;
	u32 residue = 0;

	spin_lock_irqsave(&f->lock, flags);
	st = dma_async_is_complete(cookie, c->completed_cookie, c->cookie);
	if (st != DMA_COMPLETE) {
		if (f->active && f->active->tx.cookie == cookie) {
			residue = f->active->len - READ_ONCE(f->active->done);
		} else {
			list_for_each_entry(d, &f->issued, node)
				if (d->tx.cookie == cookie)
					residue = d->len;
			list_for_each_entry(d, &f->submitted, node)
				if (d->tx.cookie == cookie)
					residue = d->len;
		}
	}
	spin_unlock_irqrestore(&f->lock, flags);
	dma_set_tx_state(state, c->completed_cookie, c->cookie, residue);
	return st;
}

static void fdma_free_list(struct list_head *list)
{
	struct fdma_desc *d, *n;

	list_for_each_entry_safe(d, n, list, node) {
		list_del(&d->node);
		kfree(d);
	}
}

static int fdma_terminate_all(struct dma_chan *c)
{
	struct fdma *f = to_fdma(c);
	unsigned long flags;
	LIST_HEAD(dead);

	spin_lock_irqsave(&f->lock, flags);
	list_splice_tail_init(&f->submitted, &dead);
	list_splice_tail_init(&f->issued, &dead);
	/* The mover sees this and drops the packet it is copying, if any. */
	if (f->active)
		f->active->len = 0;
	smp_store_release(&f->regs->enable, 0);
	f->streaming = false;
	spin_unlock_irqrestore(&f->lock, flags);
	fdma_free_list(&dead);
	return 0;
}

static void fdma_synchronize(struct dma_chan *c)
{
	struct fdma *f = to_fdma(c);

	/* The mover holds `move` across a copy and its callback. */
	mutex_lock(&f->move);
	mutex_unlock(&f->move);
}

static int fdma_config(struct dma_chan *c, struct dma_slave_config *cfg)
{
	return cfg->direction == DMA_DEV_TO_MEM ? 0 : -EINVAL;
}

static void fdma_free_chan(struct dma_chan *c)
{
	fdma_terminate_all(c);
	fdma_synchronize(c);
}

/* The packet at the FIFO's head, once the emulator runs this stream. */
static bool fdma_packet_ready(struct fdma *f)
{
	u32 epoch = le32_to_cpu(READ_ONCE(f->regs->run_epoch));
	u32 ack = le32_to_cpu(smp_load_acquire(&f->regs->ack_epoch));
	u64 written = le64_to_cpu(smp_load_acquire(&f->regs->written));

	return ack == epoch && written > le64_to_cpu(READ_ONCE(f->regs->consumed));
}

/*
 * One step of the mover: if a transfer is issued and a packet is ready, copy
 * the packet into it (STEP_BYTES at a time, with the lock dropped), then
 * complete it and run its callback. Returns whether it did any work.
 */
static bool fdma_step(struct fdma *f)
{
	struct dmaengine_result res = { .result = DMA_TRANS_NOERROR };
	u32 packet = le32_to_cpu(f->regs->packet_bytes);
	u32 nslots = le32_to_cpu(f->regs->slots);
	struct fdma_desc *d;
	unsigned long flags;
	u64 consumed;
	u8 *src, *dst;
	bool whole;

	spin_lock_irqsave(&f->lock, flags);
	d = list_first_entry_or_null(&f->issued, struct fdma_desc, node);
	if (!d || !f->streaming || !fdma_packet_ready(f)) {
		spin_unlock_irqrestore(&f->lock, flags);
		return false;
	}
	list_del(&d->node);
	f->active = d;
	spin_unlock_irqrestore(&f->lock, flags);

	consumed = le64_to_cpu(f->regs->consumed);
	src = f->slots + (consumed % nslots) * (size_t)packet;
	dst = phys_to_virt(dma_to_phys(f->dd.dev, d->addr));
	if (d->len != packet)
		res.result = DMA_TRANS_READ_FAILED;
	while (res.result == DMA_TRANS_NOERROR && d->done < READ_ONCE(d->len)) {
		size_t n = min_t(size_t, STEP_BYTES, READ_ONCE(d->len) - d->done);

		memcpy(dst + d->done, src + d->done, n);
		WRITE_ONCE(d->done, d->done + n);
		cond_resched();
	}
	d->meta = f->regs->first_scan[consumed % nslots];
	/* The slot is free for the emulator only after the copy and the counter. */
	smp_store_release(&f->regs->consumed, cpu_to_le64(consumed + 1));

	spin_lock_irqsave(&f->lock, flags);
	f->active = NULL;
	whole = d->len != 0;	/* terminate_all zeroes it */
	if (whole)
		f->chan.completed_cookie = d->tx.cookie;
	spin_unlock_irqrestore(&f->lock, flags);
	if (whole && d->tx.callback_result)
		d->tx.callback_result(d->tx.callback_param, &res);
	else if (whole && d->tx.callback)
		d->tx.callback(d->tx.callback_param);
	kfree(d);
	return true;
}

/* Nothing issued: the mover sleeps until issue_pending wakes it. */
static bool fdma_idle(struct fdma *f)
{
	unsigned long flags;
	bool idle;

	spin_lock_irqsave(&f->lock, flags);
	idle = list_empty(&f->issued);
	spin_unlock_irqrestore(&f->lock, flags);
	return idle;
}

/*
 * The engine: moves packets while transfers are issued, polling the FIFO
 * every 200-400 us (the host cannot interrupt the guest); sleeps while none
 * is issued, so an idle controller costs the guest nothing.
 */
static int fdma_mover(void *data)
{
	struct fdma *f = data;

	while (!kthread_should_stop()) {
		bool worked;

		mutex_lock(&f->move);
		worked = fdma_step(f);
		mutex_unlock(&f->move);
		if (worked)
			continue;
		set_current_state(TASK_INTERRUPTIBLE);
		if (fdma_idle(f) && !kthread_should_stop()) {
			schedule_timeout(HZ);
			continue;
		}
		__set_current_state(TASK_RUNNING);
		usleep_range(200, 400);
	}
	return 0;
}

static int fdma_probe(struct platform_device *pdev)
{
	struct device *dev = &pdev->dev;
	struct device_node *np;
	struct reserved_mem *rmem;
	struct fdma *f;
	int ret;

	BUILD_BUG_ON(sizeof(struct fifo_regs) != FIFO_HEADER_BYTES);
	np = of_parse_phandle(dev->of_node, "memory-region", 0);
	rmem = np ? of_reserved_mem_lookup(np) : NULL;
	of_node_put(np);
	if (!rmem)
		return dev_err_probe(dev, -EINVAL, "memory-region: no reserved FIFO region\n");
	f = devm_kzalloc(dev, sizeof(*f), GFP_KERNEL);
	if (!f)
		return -ENOMEM;
	f->region_bytes = rmem->size;
	f->regs = devm_memremap(dev, rmem->base, rmem->size, MEMREMAP_WB);
	if (IS_ERR(f->regs))
		return PTR_ERR(f->regs);
	/* The emulator runs on the host: it may start after the guest. */
	if (le32_to_cpu(READ_ONCE(f->regs->magic)) != FIFO_MAGIC)
		return dev_err_probe(dev, -EPROBE_DEFER, "FIFO not initialised by the emulator yet\n");
	if (le32_to_cpu(f->regs->slots) == 0 || le32_to_cpu(f->regs->slots) > FIFO_MAX_SLOTS ||
	    FIFO_HEADER_BYTES + (u64)le32_to_cpu(f->regs->slots) * le32_to_cpu(f->regs->packet_bytes) >
	    rmem->size)
		return dev_err_probe(dev, -EINVAL, "FIFO geometry does not fit the region\n");
	f->slots = (u8 *)f->regs + FIFO_HEADER_BYTES;
	ret = dma_set_mask_and_coherent(dev, DMA_BIT_MASK(64));
	if (ret)
		return ret;
	spin_lock_init(&f->lock);
	mutex_init(&f->move);
	INIT_LIST_HEAD(&f->submitted);
	INIT_LIST_HEAD(&f->issued);

	dma_cap_set(DMA_SLAVE, f->dd.cap_mask);
	dma_cap_set(DMA_PRIVATE, f->dd.cap_mask);
	f->dd.dev = dev;
	f->dd.directions = BIT(DMA_DEV_TO_MEM);
	f->dd.src_addr_widths = BIT(DMA_SLAVE_BUSWIDTH_2_BYTES) | BIT(DMA_SLAVE_BUSWIDTH_4_BYTES);
	f->dd.dst_addr_widths = f->dd.src_addr_widths;
	f->dd.residue_granularity = DMA_RESIDUE_GRANULARITY_BURST;
	f->dd.desc_metadata_modes = metadata ? DESC_METADATA_ENGINE : DESC_METADATA_NONE;
	f->dd.device_prep_slave_sg = fdma_prep_slave_sg;
	f->dd.device_issue_pending = fdma_issue_pending;
	f->dd.device_tx_status = fdma_tx_status;
	f->dd.device_terminate_all = fdma_terminate_all;
	f->dd.device_synchronize = fdma_synchronize;
	f->dd.device_config = fdma_config;
	f->dd.device_free_chan_resources = fdma_free_chan;
	INIT_LIST_HEAD(&f->dd.channels);
	f->chan.device = &f->dd;
	list_add_tail(&f->chan.device_node, &f->dd.channels);

	f->mover = kthread_run(fdma_mover, f, "fifo-dma");
	if (IS_ERR(f->mover))
		return PTR_ERR(f->mover);
	ret = dma_async_device_register(&f->dd);
	if (ret)
		goto stop;
	ret = of_dma_controller_register(dev->of_node, of_dma_xlate_by_chan_id, &f->dd);
	if (ret)
		goto unregister;
	platform_set_drvdata(pdev, f);
	dev_info(dev, "%u slots of %u B, scan counter %s\n", le32_to_cpu(f->regs->slots),
		 le32_to_cpu(f->regs->packet_bytes), metadata ? "in metadata" : "withheld");
	return 0;
unregister:
	dma_async_device_unregister(&f->dd);
stop:
	kthread_stop(f->mover);
	return ret;
}

static void fdma_remove(struct platform_device *pdev)
{
	struct fdma *f = platform_get_drvdata(pdev);

	of_dma_controller_free(pdev->dev.of_node);
	dma_async_device_unregister(&f->dd);
	kthread_stop(f->mover);
}

static const struct of_device_id fdma_of[] = {
	{ .compatible = "hsdaq-test,fifo-dma" },
	{ }
};
MODULE_DEVICE_TABLE(of, fdma_of);

static struct platform_driver fdma_driver = {
	.probe = fdma_probe,
	.remove = fdma_remove,
	.driver = { .name = "fifo-dma", .of_match_table = fdma_of },
};
module_platform_driver(fdma_driver);

MODULE_DESCRIPTION("hsdaq test-only DMA controller over a host-written packet FIFO");
MODULE_LICENSE("GPL");

// SPDX-License-Identifier: GPL-2.0
/*
 * hsdaq C glue: see glue.h. Nothing here allocates, locks or keeps state.
 */
#include <linux/mm.h>
#include <linux/sched.h>
#include <linux/uaccess.h>

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

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

#endif

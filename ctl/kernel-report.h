/* SPDX-License-Identifier: MIT */
/* thpswapctl kernel: the probe's result (src/probe.h) shown to people, as
 * a table, and to programs, as JSON (the keys are listed in
 * kernel-report.c). */
#ifndef THPSWAP_KERNEL_REPORT_H
#define THPSWAP_KERNEL_REPORT_H

#include <stdio.h>

#include "json.h"
#include "probe.h"

/* The human table: feature | here | usable by thpswap? | without it ...,
 * then the verdict and notes. */
void kernel_report_table(const struct thp_caps *c, FILE *f);
/* Writes the report as members of the object currently open in @j. */
void kernel_report_json(const struct thp_caps *c, struct thp_json *j);

#endif

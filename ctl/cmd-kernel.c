extern int thp_placeholder_cmd_kernel_ctl; /* placeholder, replaced by its owner */

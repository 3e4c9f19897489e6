extern int thp_placeholder_ctl_daemon; /* placeholder, replaced by its owner */

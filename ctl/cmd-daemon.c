extern int thp_placeholder_cmd_daemon_ctl; /* placeholder, replaced by its owner */

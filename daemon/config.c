extern int thp_placeholder_config_daemon; /* placeholder, replaced by its owner */

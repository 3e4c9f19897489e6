extern int thp_placeholder_server_daemon; /* placeholder, replaced by its owner */

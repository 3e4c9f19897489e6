extern int thp_placeholder_policy_daemon; /* placeholder, replaced by its owner */

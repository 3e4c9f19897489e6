extern int thp_placeholder_session_daemon; /* placeholder, replaced by its owner */

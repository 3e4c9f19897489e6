extern int thp_placeholder_session_lib; /* placeholder, replaced by its owner */

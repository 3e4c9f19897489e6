extern int thp_placeholder_restore_lib; /* placeholder, replaced by its owner */

extern int thp_placeholder_evict_lib; /* placeholder, replaced by its owner */

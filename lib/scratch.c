extern int thp_placeholder_scratch_lib; /* placeholder, replaced by its owner */

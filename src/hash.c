extern int thp_placeholder_hash_src; /* placeholder, replaced by its owner */

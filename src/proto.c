extern int thp_placeholder_proto; /* placeholder, replaced by its owner */

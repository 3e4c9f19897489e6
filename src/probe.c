extern int thp_placeholder_probe; /* placeholder, replaced by its owner */

extern int thp_placeholder_json; /* placeholder, replaced by its owner */

extern int thp_placeholder_maps_lib; /* placeholder, replaced by its owner */

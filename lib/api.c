extern int thp_placeholder_api_lib; /* placeholder, replaced by its owner */

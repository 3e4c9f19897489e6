extern int thp_placeholder_uffd_src; /* placeholder, replaced by its owner */

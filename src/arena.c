extern int thp_placeholder_arena_src; /* placeholder, replaced by its owner */

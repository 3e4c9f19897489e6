extern int thp_placeholder_pagemap_src; /* placeholder, replaced by its owner */

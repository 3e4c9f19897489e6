extern int thp_placeholder_datagen; /* placeholder, replaced by its owner */

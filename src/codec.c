extern int thp_placeholder_codec_src; /* placeholder, replaced by its owner */

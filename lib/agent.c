extern int thp_placeholder_agent_lib; /* placeholder, replaced by its owner */

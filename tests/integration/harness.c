extern int thp_placeholder_harness_tests_integration; /* placeholder, replaced by its owner */

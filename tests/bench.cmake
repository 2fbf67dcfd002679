# Smoke test of the load generator (issue 7): it builds, authenticates
# against a real relay, relays envelopes end to end and exits 0. No timing
# is asserted (the benchmark is scripts/bench.sh, never the test suite).
if(TARGET valise-bench AND TARGET valise-relay)
  add_test(NAME bench/smoke
           COMMAND valise-bench --relay $<TARGET_FILE:valise-relay>
                   --scenarios max,idle,backlog,restart --pairs 2 --warmup 0.2 --duration 1
                   --conns 8 --backlog 64 --backlog-senders 2)
  set_tests_properties(bench/smoke PROPERTIES TIMEOUT 60)
endif()

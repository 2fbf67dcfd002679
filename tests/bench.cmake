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

# valise-storebench (issue 16) runs the store under the relay's write pattern
# and prints its per-envelope figures; nothing is asserted about their size.
if(TARGET valise-storebench)
  add_test(NAME bench/storebench_smoke
           COMMAND sh -c "d=$(mktemp -d /tmp/valise-storebench.XXXXXX) && \
$<TARGET_FILE:valise-storebench> --dir \"$d\" --pairs 4 --batch 64 --txns 6 --warm 2; \
r=$?; rm -rf \"$d\"; exit $r")
  set_tests_properties(bench/storebench_smoke PROPERTIES TIMEOUT 60
                       PASS_REGULAR_EXPRESSION "RESULT store bytes_written_per_env [0-9.]+ B")
endif()

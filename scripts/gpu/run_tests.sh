#!/bin/bash
# On the lent GPU, from the root of a committed snapshot (.gpu/src): the
# parity and core tests at JAX's default matmul precision and at "highest",
# the two sessions side by side (memory not preallocated, so they share the
# GPU). Writes $OUT/tests_{default,highest}.{log,xml}. Usage:
#   bash scripts/gpu/run_tests.sh [seconds per session]
limit=${1:-300}
files=""
for f in test_parity_torchvision test_classifier test_estimator test_controller \
         test_generator test_layers test_perturb test_metrics test_explainers; do
  [ -f tests/$f.py ] && files="$files tests/$f.py"
done
echo "test files:$files"
for p in default highest; do
  (
    [ $p = highest ] && export JAX_DEFAULT_MATMUL_PRECISION=highest
    XLA_PYTHON_CLIENT_PREALLOCATE=false timeout $limit python3 -m pytest -q \
      -p no:cacheprovider -rA --timeout=150 --junitxml=$OUT/tests_$p.xml $files \
      > $OUT/tests_$p.log 2>&1
    echo "exit $?" >> $OUT/tests_$p.log
  ) &
done
wait
for p in default highest; do echo "== $p"; tail -3 $OUT/tests_$p.log; done

#!/usr/bin/env bash
# Creates one virtual cluster per version on the embedded host, in parallel,
# shows what each one serves, and deletes them all.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -gt 0 ] && versions=("$@") || versions=(1.35 1.36 1.37)
vmatrix=bin/vmatrix
names=()
for v in "${versions[@]}"; do names+=("demo-${v//./-}"); done
trap '$vmatrix delete "${names[@]}" >/dev/null 2>&1 || true' EXIT

pids=()
for i in "${!versions[@]}"; do
  $vmatrix create "${names[$i]}" --version "${versions[$i]}" & pids+=($!)
done
for p in "${pids[@]}"; do wait "$p"; done
$vmatrix list
for n in "${names[@]}"; do
  kc=$($vmatrix kubeconfig "$n")
  echo "== $n serves $(kubectl --kubeconfig "$kc" get --raw /version | grep -o '"gitVersion": *"[^"]*"')"
  kubectl --kubeconfig "$kc" get namespaces
done
$vmatrix delete "${names[@]}"
trap - EXIT

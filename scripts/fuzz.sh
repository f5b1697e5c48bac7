#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (ASan + UBSan) and runs each for a while.
#   scripts/fuzz.sh [seconds-per-target]   exploratory run, random seed (default 60 s)
#   scripts/fuzz.sh --ci                   deterministic: fixed seed and input count, so a
#                                          CI result is the same on every machine (ctest fuzz_short)
# Every input under tests/fuzz/regressions/<target>/ (past crashes) is replayed as a seed.
# Crashing inputs are left in build-fuzz/<target>/crash-*; the script then exits non-zero.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = "--ci" ]; then
  limits=(-seed=1 -runs=40000)
  corpus_dir=corpus-ci; rm -rf build-fuzz/*/corpus-ci  # start from the seeds only, every time
else
  limits=(-max_total_time="${1:-60}")
  corpus_dir=corpus
fi
out=build-fuzz
mkdir -p "$out"
flags=(-std=c++17 -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -I.)

build_target() {  # name sources...
  local name=$1; shift
  clang++ "${flags[@]}" "$@" -lz -o "$out/$name"
}

clang++ -std=c++17 -I. tests/fuzz/make_seeds.cpp -lz -o "$out/make_seeds"
"$out/make_seeds" "$out/nifti_header/seeds" >/dev/null

build_target nifti_header_fuzz tests/fuzz/nifti_header_fuzz.cpp preprocessing/nifti_header.cpp
build_target cohort_csv_fuzz tests/fuzz/cohort_csv_fuzz.cpp app/cohort/cohort_table.cpp common/csv.cpp
mkdir -p "$out/cohort_csv/seeds"
printf 'subject_id,age,path\nsub-01,45.5,a.nii.gz\nsub-02,x,b.nii.gz\n' >"$out/cohort_csv/seeds/basic.csv"
printf '\xef\xbb\xbfsubject_id,age,sex,site,t1\r\n"s 1",30,F,HH,"a,b.nii"\r\ns2,-3,M,,c.nii\r\n' >"$out/cohort_csv/seeds/bom_crlf.csv"

# The checkpoint metadata loader needs LibTorch: instrument our checkpoint units, take the
# rest of the model library from the regular build (BRAINAGE_BUILD_DIR, default build/).
targets=(nifti_header cohort_csv)
build_dir="${BRAINAGE_BUILD_DIR:-build}"
if [ -f "$build_dir/model/libbrainage_model.a" ]; then
  build_target checkpoint_json_fuzz -I/usr/include/torch/csrc/api/include -D_GLIBCXX_USE_CXX11_ABI=1 \
    -I"$build_dir/generated" tests/fuzz/checkpoint_json_fuzz.cpp model/checkpoint.cpp model/model_options.cpp \
    common/content_hash.cpp "$build_dir/model/libbrainage_model.a" "$build_dir/common/libbrainage_common.a" -lcrypto \
    -L/usr/lib/x86_64-linux-gnu -ltorch -ltorch_cpu -lc10 -Wl,-rpath,/usr/lib/x86_64-linux-gnu
  mkdir -p "$out/checkpoint_json/seeds"
  printf '{"format":"brainage-checkpoint","format_version":1}' >"$out/checkpoint_json/seeds/min.json"
  for f in data/model/*.json; do [ -f "$f" ] && cp "$f" "$out/checkpoint_json/seeds/"; done
  targets+=(checkpoint_json)
else
  echo "fuzz: checkpoint_json skipped ($build_dir/model/libbrainage_model.a not built yet)"
fi

status=0
for target in "${targets[@]}"; do
  mkdir -p "$out/$target/$corpus_dir" "$out/$target/seeds"
  if [ -d "tests/fuzz/regressions/$target" ]; then cp tests/fuzz/regressions/"$target"/* "$out/$target/seeds/"; fi
  echo "fuzz: $target ${limits[*]}"
  if ! (cd "$out/$target" && "../${target}_fuzz" "${limits[@]}" -max_len=4096 -rss_limit_mb=2048 \
          -print_final_stats=1 "$corpus_dir" seeds 2>&1 | tail -n 12); then
    echo "fuzz: $target FAILED (crash input in $out/$target/)"
    status=1
  fi
done
exit $status

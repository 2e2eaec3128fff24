// A main() for libFuzzer targets inside `bazel test`: runs every seed given on the command line
// (files) and then a fixed number of deterministic mutations of them (byte flips, insertions,
// deletions, truncations, numeric field edits), so the target's invariants are checked on every
// build. Long coverage-guided runs use tests/fuzz/run_libfuzzer.sh.
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

int main(int argc, char** argv) {
  std::vector<std::string> seeds;
  for (int i = 1; i < argc; ++i) {
    std::ifstream in(argv[i], std::ios::binary);
    if (!in) {
      std::fprintf(stderr, "cannot read seed %s\n", argv[i]);
      return 1;
    }
    std::stringstream text;
    text << in.rdbuf();
    seeds.push_back(text.str());
  }
  if (seeds.empty()) seeds.push_back("");
  std::mt19937_64 rng(12345);
  long runs = 0;
  for (const std::string& seed : seeds) {
    LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(seed.data()), seed.size());
    ++runs;
    for (int i = 0; i < 20000; ++i) {
      std::string s = seed;
      const int edits = 1 + static_cast<int>(rng() % 4);
      for (int e = 0; e < edits; ++e) {
        const size_t pos = s.empty() ? 0 : rng() % s.size();
        switch (rng() % 6) {
          case 0:
            if (!s.empty()) s[pos] = static_cast<char>(rng());
            break;
          case 1:
            s.insert(pos, 1, "0123456789[]{}\",:-e"[rng() % 19]);
            break;
          case 2:
            if (!s.empty()) s.erase(pos, 1 + rng() % 8);
            break;
          case 3:
            s.resize(s.empty() ? 0 : rng() % s.size());
            break;
          case 4:
            if (!s.empty() && s[pos] >= '0' && s[pos] <= '9') s[pos] = '0' + rng() % 10;
            break;
          default:
            s.append(static_cast<size_t>(rng() % 16), static_cast<char>(rng()));
        }
      }
      LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(s.data()), s.size());
      ++runs;
    }
  }
  std::printf("%ld inputs, no invariant violated\n", runs);
  return 0;
}

// A main() for libFuzzer targets inside `bazel test`: runs every seed given on the command line
// (files; a Markdown file contributes each of its ```yaml blocks) and then a fixed number of
// deterministic mutations of each (byte flips, insertions, deletions, truncations, numeric field
// edits; --mutations=N per seed, default 20000), so the target's invariants are checked on every
// build. Long coverage-guided runs use tests/fuzz/run_libfuzzer.sh.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

int main(int argc, char** argv) {
  std::vector<std::string> seeds;
  long mutations = 20000;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg.rfind("--mutations=", 0) == 0) {
      mutations = std::atol(arg.c_str() + 12);
      continue;
    }
    std::ifstream in(arg, std::ios::binary);
    if (!in) {
      std::fprintf(stderr, "cannot read seed %s\n", argv[i]);
      return 1;
    }
    std::stringstream text;
    text << in.rdbuf();
    if (arg.size() > 3 && arg.compare(arg.size() - 3, 3, ".md") == 0) {
      const std::string markdown = text.str();
      for (size_t at = 0; (at = markdown.find("```yaml\n", at)) != std::string::npos;) {
        const size_t begin = at + 8, end = markdown.find("```", begin);
        if (end == std::string::npos) break;
        seeds.push_back(markdown.substr(begin, end - begin));
        at = end + 3;
      }
    } else {
      seeds.push_back(text.str());
    }
  }
  if (seeds.empty()) seeds.push_back("");
  std::mt19937_64 rng(12345);
  long runs = 0;
  for (const std::string& seed : seeds) {
    LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(seed.data()), seed.size());
    ++runs;
    for (long i = 0; i < mutations; ++i) {
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

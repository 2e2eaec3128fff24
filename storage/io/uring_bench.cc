// uring_bench: Strata's io_uring engine against fio (ioengine=io_uring, direct=1) on the same
// file, in the same run: sequential reads and writes with 1 MiB and 4 MiB requests at queue
// depth 16 and 32, and random 1 MiB reads. Each case runs Strata and fio `repeats` times,
// alternating which goes first, and reports medians: GB/s and CPU seconds per GB moved. Each
// read case starts right after an untimed rewrite of the file.
// Last line: {"cases": [...]}.
//   bazel run -c opt //storage/io:uring_bench [-- --dir=/var/tmp --file_gib=1]
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "nlohmann/json.hpp"
#include "runtime/testing/bench_util.h"
#include "storage/io/io_engine.h"

ABSL_FLAG(std::string, dir, "/var/tmp", "Directory for the test file (a real disk, not tmpfs).");
ABSL_FLAG(double, file_gib, 1.0, "Size of the test file in GiB.");
ABSL_FLAG(std::string, cases, "",
          "Only cases whose name contains this (the file is written first).");
ABSL_FLAG(int, repeats, 8, "Strata/fio runs per case, alternating order; medians are reported.");

namespace strata {
namespace {

struct Case {
  std::string name;
  bool write;
  bool random;
  int64_t block;
  int depth;
};

double CpuSeconds() {
  rusage u;
  getrusage(RUSAGE_SELF, &u);
  return u.ru_utime.tv_sec + u.ru_utime.tv_usec / 1e6 + u.ru_stime.tv_sec +
         u.ru_stime.tv_usec / 1e6;
}

struct Result {
  double gbps = 0;
  double cpu_s_per_gb = 0;
};

// Runs one pass of `c` over the file with the Strata engine.
absl::StatusOr<Result> RunStrata(const Case& c, const std::string& path, int64_t file_bytes) {
  IoEngineOptions options;
  options.queue_depth = c.depth;
  options.block_bytes = c.block;
  std::string why;
  auto engine = CreateIoEngine(options, &why);
  if (!engine.ok()) return engine.status();
  auto file = IoFile::Open(path, IoFile::Mode::kCreate, true);  // Write cases run first.
  if (!file.ok()) return file.status();
  const int64_t slab_bytes = c.block * c.depth;
  char* slab = static_cast<char*>(std::aligned_alloc(4096, slab_bytes));
  std::memset(slab, 0x5a, slab_bytes);
  (void)(*engine)->RegisterBuffer(slab, slab_bytes);  // Unregistered I/O still works.
  const int64_t blocks = file_bytes / c.block;
  std::vector<int64_t> order(blocks);
  for (int64_t i = 0; i < blocks; ++i) order[i] = i;
  if (c.random) std::shuffle(order.begin(), order.end(), std::mt19937_64(7));
  const double cpu0 = CpuSeconds();
  const auto t0 = std::chrono::steady_clock::now();
  int64_t next = 0, completed = 0;
  std::vector<int> free_slots;
  for (int s = 0; s < c.depth; ++s) free_slots.push_back(s);
  std::vector<IoCompletion> done;
  absl::Status status;
  while (completed < blocks && status.ok()) {
    std::vector<IoRequest> batch;
    while (!free_slots.empty() && next < blocks) {
      const int slot = free_slots.back();
      free_slots.pop_back();
      batch.push_back({c.write ? IoRequest::Op::kWrite : IoRequest::Op::kRead, file->get(),
                       slab + slot * c.block, order[next] * c.block, c.block,
                       static_cast<uint64_t>(slot)});
      ++next;
    }
    if (!batch.empty()) status = (*engine)->Submit(batch);
    done.clear();
    if (status.ok()) status = (*engine)->Reap(1, &done);
    for (const IoCompletion& d : done) {
      if (!d.status.ok()) status = d.status;
      free_slots.push_back(static_cast<int>(d.tag));
      ++completed;
    }
  }
  if (c.write && status.ok() && fdatasync((*file)->fd()) != 0)
    status = absl::InternalError("fdatasync");
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const double cpu = CpuSeconds() - cpu0;
  std::free(slab);
  if (!status.ok()) return status;
  const double gb = static_cast<double>(blocks * c.block) / 1e9;
  return Result{gb / seconds, cpu / gb};
}

absl::StatusOr<Result> RunFio(const Case& c, const std::string& path, int64_t file_bytes) {
  const std::string out = path + ".fio.json";
  const std::string command = absl::StrFormat(
      "fio --name=peer --filename=%s --rw=%s --bs=%d --iodepth=%d --ioengine=io_uring "
      "--direct=1 --size=%d --end_fsync=%d --randrepeat=1 --output-format=json --output=%s "
      ">/dev/null 2>&1",
      path, c.write ? "write" : (c.random ? "randread" : "read"), c.block, c.depth, file_bytes,
      c.write ? 1 : 0, out);
  if (std::system(command.c_str()) != 0) return absl::InternalError("fio failed: " + command);
  FILE* f = std::fopen(out.c_str(), "r");
  if (f == nullptr) return absl::InternalError("no fio output");
  std::string text;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), f)) > 0) text.append(buf, n);
  std::fclose(f);
  nlohmann::json json = nlohmann::json::parse(text, nullptr, false);
  if (json.is_discarded() || !json.contains("jobs")) return absl::InternalError("bad fio json");
  const nlohmann::json& job = json["jobs"][0];
  const nlohmann::json& dir = job[c.write ? "write" : "read"];
  const double bytes_per_s = dir["bw_bytes"].get<double>();
  const double runtime_s = job["job_runtime"].get<double>() / 1000.0;
  const double cpu_s =
      (job["usr_cpu"].get<double>() + job["sys_cpu"].get<double>()) / 100.0 * runtime_s;
  const double gb = bytes_per_s * runtime_s / 1e9;
  return Result{bytes_per_s / 1e9, gb > 0 ? cpu_s / gb : 0};
}

int Run() {
  const std::string path = absl::GetFlag(FLAGS_dir) + "/strata_uring_bench.dat";
  const int64_t file_bytes =
      static_cast<int64_t>(absl::GetFlag(FLAGS_file_gib) * (1 << 30)) / (4 << 20) * (4 << 20);
  const std::vector<Case> cases = {
      {"seq_write_1m_qd16", true, false, 1 << 20, 16},
      {"seq_write_4m_qd32", true, false, 4 << 20, 32},
      {"seq_write_1m_qd32", true, false, 1 << 20, 32},
      {"seq_write_4m_qd16", true, false, 4 << 20, 16},
      {"seq_read_1m_qd16", false, false, 1 << 20, 16},
      {"seq_read_1m_qd32", false, false, 1 << 20, 32},
      {"seq_read_4m_qd16", false, false, 4 << 20, 16},
      {"seq_read_4m_qd32", false, false, 4 << 20, 32},
      {"rand_read_1m_qd16", false, true, 1 << 20, 16},
      {"rand_read_1m_qd32", false, true, 1 << 20, 32},
  };
  std::fprintf(stderr, "uring_bench: %s, %.2f GiB, %d repeats per case\n", path.c_str(),
               file_bytes / double(1 << 30), absl::GetFlag(FLAGS_repeats));
  nlohmann::json report;
  report["cases"] = nlohmann::json::array();
  const std::string filter = absl::GetFlag(FLAGS_cases);
  bool file_written = false;
  for (const Case& c : cases) {
    if (!filter.empty() && c.name.find(filter) == std::string::npos) {
      if (c.write && !file_written) {  // Reads need the file: write it once, untimed.
        if (!RunStrata(c, path, file_bytes).ok()) return 1;
        file_written = true;
      }
      continue;
    }
    file_written = file_written || c.write;
    if (!c.write) {
      // Every read case starts from the same state — the file just rewritten — so what earlier
      // cases left in the virtual disk's host-side cache does not favour either reader.
      if (!RunStrata(cases[1], path, file_bytes).ok()) return 1;
    }
    std::vector<double> s_gbps, s_cpu, f_gbps, f_cpu;
    for (int r = 0; r < absl::GetFlag(FLAGS_repeats); ++r) {
      // Alternate who goes first: the virtual disk's host-side cache favours the second reader.
      absl::StatusOr<Result> s, f;
      if (r % 2 == 0) {
        s = RunStrata(c, path, file_bytes);
        f = RunFio(c, path, file_bytes);
      } else {
        f = RunFio(c, path, file_bytes);
        s = RunStrata(c, path, file_bytes);
      }
      if (!s.ok() || !f.ok()) {
        std::fprintf(stderr, "%s: %s %s\n", c.name.c_str(), s.status().ToString().c_str(),
                     f.status().ToString().c_str());
        return 1;
      }
      s_gbps.push_back(s->gbps);
      s_cpu.push_back(s->cpu_s_per_gb);
      f_gbps.push_back(f->gbps);
      f_cpu.push_back(f->cpu_s_per_gb);
    }
    const double sg = bench::Median(s_gbps), fg = bench::Median(f_gbps);
    std::fprintf(stderr,
                 "%-20s strata %6.2f GB/s  fio %6.2f GB/s  ratio %.2f  cpu s/GB %.3f (fio %.3f)\n",
                 c.name.c_str(), sg, fg, sg / fg, bench::Median(s_cpu), bench::Median(f_cpu));
    report["cases"].push_back({{"name", c.name},
                               {"strata_gbps", sg},
                               {"fio_gbps", fg},
                               {"ratio", sg / fg},
                               {"cpu_s_per_gb", bench::Median(s_cpu)},
                               {"fio_cpu_s_per_gb", bench::Median(f_cpu)}});
  }
  unlink(path.c_str());
  unlink((path + ".fio.json").c_str());
  std::printf("%s\n", report.dump().c_str());
  return 0;
}

}  // namespace
}  // namespace strata

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  return strata::Run();
}

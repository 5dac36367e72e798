// The .pte side of `pocketbert bench --device qemu`: ExecuTorch's own C++ runtime, linked against the shared
// libraries of the executorch wheel (libexecutorch, its optimized kernels, the XNNPACK backend, the thread pool),
// which need no torch. emulation.py builds it for aarch64 once (`pocketbert setup-arm64`) and runs it under
// qemu-user; the host builds the same source for x86 to compare the two.
//
//   pte_runner MODEL.pte CASES.txt TIMED_RUNS
//
// CASES.txt: one case per line, `n id_1 .. id_n m_1 .. m_n` (int32 input_ids and attention_mask, shape (1, n)).
// Prints, per case, `out v_1 .. v_k` (the first output, float32, %.9g), then `load_ms X`, `first_ms X` and
// `run_ms X` (mean of TIMED_RUNS runs of the first case) for the host to read. Exit 1 with one line on error.
#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <executorch/extension/module/module.h>
#include <executorch/extension/tensor/tensor_ptr.h>
#include <executorch/extension/tensor/tensor_ptr_maker.h>

// The wheel ships the thread pool library but not its header: the two symbols used here, as declared in
// ExecuTorch's extension/threadpool/threadpool.h.
namespace executorch::extension::threadpool {
class ThreadPool {
 public:
  bool _unsafe_reset_threadpool(uint32_t num_threads);
};
ThreadPool* get_threadpool();
}  // namespace executorch::extension::threadpool

using executorch::extension::Module;
using executorch::extension::from_blob;
using executorch::runtime::Error;
using executorch::runtime::EValue;

namespace {

int fail(const std::string& what) {
  std::fprintf(stderr, "pte_runner: %s\n", what.c_str());
  return 1;
}

double ms_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

struct Case {
  std::vector<int32_t> ids, mask;
};

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4) return fail("usage: pte_runner MODEL.pte CASES.txt TIMED_RUNS");
  std::vector<Case> cases;
  std::ifstream in(argv[2]);
  for (std::string line; std::getline(in, line);) {
    std::istringstream row(line);
    size_t n = 0;
    if (!(row >> n) || n == 0) continue;
    Case c{std::vector<int32_t>(n), std::vector<int32_t>(n)};
    for (auto& v : c.ids) row >> v;
    for (auto& v : c.mask) row >> v;
    if (!row) return fail(std::string("bad case line in ") + argv[2]);
    cases.push_back(std::move(c));
  }
  if (cases.empty()) return fail(std::string("no cases in ") + argv[2]);
  executorch::extension::threadpool::get_threadpool()->_unsafe_reset_threadpool(1);  // one thread, as the rows

  auto t0 = std::chrono::steady_clock::now();
  Module module(argv[1], Module::LoadMode::File);
  if (module.load_method("forward") != Error::Ok) return fail(std::string("cannot load forward() of ") + argv[1]);
  const double load_ms = ms_since(t0);

  auto run = [&](Case& c) {
    const auto n = static_cast<executorch::aten::SizesType>(c.ids.size());
    auto ids = from_blob(c.ids.data(), {1, n}, executorch::aten::ScalarType::Int);
    auto mask = from_blob(c.mask.data(), {1, n}, executorch::aten::ScalarType::Int);
    return module.forward(std::vector<EValue>{EValue(ids), EValue(mask)});
  };
  double first_ms = 0;
  for (size_t i = 0; i < cases.size(); ++i) {
    auto t1 = std::chrono::steady_clock::now();
    auto out = run(cases[i]);
    if (i == 0) first_ms = ms_since(t1);
    if (!out.ok()) return fail("forward() failed on case " + std::to_string(i) + " (error " +
                               std::to_string(static_cast<int>(out.error())) + ")");
    const auto& t = out.get()[0].toTensor();
    const float* v = t.template const_data_ptr<float>();
    std::printf("out");
    for (ssize_t k = 0; k < t.numel(); ++k) std::printf(" %.9g", v[k]);
    std::printf("\n");
  }
  const int timed = std::max(1, std::atoi(argv[3]));
  auto t2 = std::chrono::steady_clock::now();
  for (int r = 0; r < timed; ++r) {
    if (!run(cases[0]).ok()) return fail("forward() failed in a timed run");
  }
  std::printf("load_ms %.3f\nfirst_ms %.3f\nrun_ms %.3f\n", load_ms, first_ms, ms_since(t2) / timed);
  return 0;
}
